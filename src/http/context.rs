//! What one request carries through the pipeline into its handler.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_util::future::Either;

use serde::de::DeserializeOwned;
use serde_json::Value;
use worker::{D1Result, RouteContext};

use crate::config::Config;
use crate::core::body::{decode, parse_json};
use crate::error::AppError;
use crate::identity::rules::scopes::Access;
use crate::log::Logger;

/// The route context every handler receives: bindings and params from `worker::Router`,
/// plus this request's [`RequestCtx`].
pub type Ctx = RouteContext<Rc<RequestCtx>>;

/// Per-request state: configuration, request id, the body (read once, within its limit),
/// and the facts the request log line reports.
#[derive(Debug)]
pub struct RequestCtx {
    /// Configuration, validated before the request reached its handler.
    pub config: Rc<Config>,
    /// The request id echoed in `X-Request-Id` and in error envelopes.
    pub request_id: String,
    /// Writes log lines that carry this request's id.
    pub log: Logger,
    /// The request's clock: when it arrived, epoch milliseconds.
    pub now_ms: u64,
    /// What the route's batched read found, until its handler takes it.
    batched: RefCell<Option<D1Result>>,
    body: Vec<u8>,
    json: Option<Value>,
    route: Cell<Option<&'static str>>,
    access: Cell<Option<Access>>,
    principal: Cell<&'static str>,
    error_code: Cell<Option<&'static str>>,
    /// The worker's execution context, for work that outlives the answer (`wait_until`).
    background: Option<worker::Context>,
}

impl RequestCtx {
    /// A context for a request whose body has been read (and, if JSON, parsed).
    pub fn new(
        config: Rc<Config>,
        request_id: String,
        now_ms: u64,
        body: Vec<u8>,
        json: Option<Value>,
    ) -> Self {
        Self {
            config,
            log: Logger::for_request(&request_id),
            now_ms,
            batched: RefCell::new(None),
            request_id,
            body,
            json,
            route: Cell::new(None),
            access: Cell::new(None),
            principal: Cell::new("anonymous"),
            error_code: Cell::new(None),
            background: None,
        }
    }

    /// The same context, able to run work after the answer through the worker's
    /// `wait_until`.
    pub fn with_background(mut self, context: worker::Context) -> Self {
        self.background = Some(context);
        self
    }

    /// Runs `work` after the answer is sent (the worker's `wait_until`), keeping the
    /// invocation alive until it ends. Without a worker context (never in a deployed worker)
    /// the work is dropped and logged.
    pub fn wait_until(&self, work: impl std::future::Future<Output = ()> + 'static) {
        match &self.background {
            Some(context) => context.wait_until(work),
            None => self.log.warn(
                "background work dropped: no worker context",
                serde_json::json!({}),
            ),
        }
    }

    /// Runs `work` so that it ends even if the client leaves before the answer: through the
    /// worker's `wait_until` (the invocation lives until it ends), its output handed to the
    /// returned future while the handler still waits for it. A call whose provider charges
    /// for what it produced settles this way, so a client that hangs up still pays. Without a
    /// worker context (never in a deployed worker) `work` runs in the returned future itself.
    pub fn outliving<T: 'static>(
        &self,
        work: impl Future<Output = T> + 'static,
    ) -> impl Future<Output = Result<T, AppError>> {
        match &self.background {
            Some(context) => {
                let slot = Rc::new(RefCell::new(Handoff::default()));
                let sender = Sender(Rc::clone(&slot));
                context.wait_until(async move { sender.send(work.await) });
                Either::Left(async move {
                    Receiver(slot).await.ok_or_else(|| {
                        AppError::Internal("background work ended without its output".to_owned())
                    })
                })
            }
            None => Either::Right(async move { Ok(work.await) }),
        }
    }

    /// The body decoded as `T`; a missing, malformed or mistyped body is `validation_failed`
    /// naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        match &self.json {
            Some(value) => Ok(decode(value)?),
            None => Ok(decode(&parse_json(&self.body)?)?),
        }
    }

    /// Keeps what the route's batched read found (`None`: the caller had no row to read).
    pub fn set_batched(&self, found: Option<D1Result>) {
        *self.batched.borrow_mut() = found;
    }

    /// What the route's batched read found, taken once (`None`: the caller had no row before
    /// this request, so there was nothing to read).
    pub fn take_batched(&self) -> Option<D1Result> {
        self.batched.borrow_mut().take()
    }

    /// The body exactly as received (webhook signatures are computed over these bytes).
    pub fn raw_body(&self) -> &[u8] {
        &self.body
    }

    /// Records the route pattern that matched, for the log line.
    pub fn set_route(&self, pattern: &'static str) {
        self.route.set(Some(pattern));
    }

    /// The route pattern that matched, if any.
    pub fn route(&self) -> Option<&'static str> {
        self.route.get()
    }

    /// Records who the matched route admits (from the route table).
    pub fn set_access(&self, access: Access) {
        self.access.set(Some(access));
    }

    /// Who the matched route admits; `Session` (no API keys) when no route declared it.
    pub fn access(&self) -> Access {
        self.access.get().unwrap_or(Access::Session)
    }

    /// Records what kind of caller this is (`anonymous`, `clerk`, `api_key`, ...).
    pub fn set_principal(&self, kind: &'static str) {
        self.principal.set(kind);
    }

    /// What kind of caller this is.
    pub fn principal(&self) -> &'static str {
        self.principal.get()
    }

    /// Records the error code this request ended with.
    pub fn set_error_code(&self, code: &'static str) {
        self.error_code.set(Some(code));
    }

    /// The error code this request ended with, if it failed.
    pub fn error_code(&self) -> Option<&'static str> {
        self.error_code.get()
    }
}

/// A value on its way from background work to the handler that waits for it.
struct Handoff<T> {
    value: Option<T>,
    /// The work ended (with or without a value).
    over: bool,
    waker: Option<Waker>,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self {
            value: None,
            over: false,
            waker: None,
        }
    }
}

/// The background side: sends once; dropped unsent, it still wakes the receiver.
struct Sender<T>(Rc<RefCell<Handoff<T>>>);

impl<T> Sender<T> {
    fn send(self, value: T) {
        self.0.borrow_mut().value = Some(value);
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut handoff = self.0.borrow_mut();
        handoff.over = true;
        if let Some(waker) = handoff.waker.take() {
            waker.wake();
        }
    }
}

/// The handler's side: the value, or `None` if the work ended without one.
struct Receiver<T>(Rc<RefCell<Handoff<T>>>);

impl<T> Future for Receiver<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut handoff = self.0.borrow_mut();
        if let Some(value) = handoff.value.take() {
            return Poll::Ready(Some(value));
        }
        if handoff.over {
            return Poll::Ready(None);
        }
        handoff.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll<T>(receiver: &mut Receiver<T>) -> Poll<Option<T>> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(receiver).poll(&mut cx)
    }

    #[test]
    fn background_output_reaches_the_waiting_handler_once_sent() {
        let slot = Rc::new(RefCell::new(Handoff::default()));
        let (sender, mut receiver) = (Sender(Rc::clone(&slot)), Receiver(slot));
        assert_eq!(poll(&mut receiver), Poll::Pending);
        sender.send(7);
        assert_eq!(poll(&mut receiver), Poll::Ready(Some(7)));
    }

    #[test]
    fn background_work_that_ends_without_output_does_not_leave_the_handler_waiting() {
        let slot = Rc::new(RefCell::new(Handoff::<u8>::default()));
        let (sender, mut receiver) = (Sender(Rc::clone(&slot)), Receiver(slot));
        drop(sender);
        assert_eq!(poll(&mut receiver), Poll::Ready(None));
    }
}
