//! The proxy's flow: admit (hold the prompt's bound and the reply the payer's quota can
//! afford), call the model for at most that reply, settle from what the provider reports,
//! never charging the counter more than the hold. Both settle through the request's
//! `wait_until`, so a client that leaves still pays for what the provider produced: a plain
//! call's model call and settlement run there (the answer waits for them, if the client
//! still does); a stream settles when it ends or is dropped (the client left).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::{Stream, StreamExt};
use worker::{ByteStream, Delay, Env};

use crate::error::AppError;
use crate::http::{Ctx, RequestCtx};
use crate::log::Logger;
use crate::metering::rules::{SubjectKind, TOKENS};
use crate::metering::service::{self as metering, Ask as Hold, CallUsage, Clock, Subject};
use crate::plans::rules::Plan;
use crate::proxy::rules::{self, Ending, EventReader, Settlement};
use crate::upstream::chat::{Ask, ChatApi, Usage, WireMessage};

/// Whose tokens pay for a call: a user's or an org's counter, under its plan.
#[derive(Debug, Clone)]
pub struct Payer {
    pub kind: SubjectKind,
    pub id: String,
    pub plan: Plan,
}

impl Payer {
    fn subject(&self) -> Subject<'_> {
        Subject {
            kind: self.kind,
            id: &self.id,
            plan: &self.plan,
            auth_session_id: None,
            meter: TOKENS,
        }
    }
}

/// One message of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// What a caller asks the model.
#[derive(Debug, Clone)]
pub struct Call {
    pub model: String,
    pub messages: Vec<Message>,
    /// The reply asked for (`None`: [`rules::DEFAULT_MAX_REPLY_TOKENS`]); the model is asked
    /// for no more than the quota affords.
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
}

/// A plain call's answer, settled.
#[derive(Debug, Clone)]
pub struct Answer {
    pub content: String,
    pub model: String,
    pub finish_reason: String,
    /// The usage settled: the provider's counts (or the hold, when it reported none); the
    /// payer's counter is charged at most the hold.
    pub usage: Usage,
    pub latency_ms: u64,
}

/// What a stream yields: reply text as it comes, then one `Done` (or `Failed` when the model
/// failed midway).
#[derive(Debug, Clone)]
pub enum Event {
    Delta(String),
    Done {
        usage: Usage,
        finish_reason: String,
        model: String,
        latency_ms: u64,
    },
    Failed {
        message: String,
    },
}

/// An admitted call: its hold and what the model may be asked.
struct Admitted {
    reservation_id: String,
    /// The hold's amount: the prompt's estimate and the allowance.
    hold: u64,
    prompt_estimate: u64,
    allowance: u64,
    model: String,
}

fn api<'a>(ctx: &'a RequestCtx) -> Result<ChatApi<'a>, AppError> {
    let chat = &ctx.config.chat;
    Ok(ChatApi {
        base_url: &chat.api_url,
        api_key: chat.api_key.require()?,
        timeout: Duration::from_millis(chat.timeout_ms),
    })
}

/// Holds the call's prompt estimate and affordable reply (`quota_exceeded` when not even
/// [`rules::MIN_REPLY_TOKENS`] fit; the model is not called).
async fn admit(ctx: &Ctx, payer: &Payer, call: &Call) -> Result<Admitted, AppError> {
    let prompt_estimate = rules::prompt_estimate(
        call.messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str())),
    );
    let max_reply = call
        .max_tokens
        .unwrap_or(rules::DEFAULT_MAX_REPLY_TOKENS)
        .clamp(1, rules::MAX_REPLY_TOKENS);
    let config = &ctx.data.config;
    let hold = Hold {
        prompt_estimate,
        max_reply,
        min_reply: rules::MIN_REPLY_TOKENS,
        provider: &config.chat.provider,
        model: &call.model,
    };
    let clock = Clock::at(ctx.data.now_ms);
    let admitted = metering::admit_call(
        &ctx.env,
        &payer.subject(),
        &clock,
        &hold,
        config.reservation_ttl_secs,
    )
    .await?;
    Ok(Admitted {
        hold: admitted.reservation.amount,
        reservation_id: admitted.reservation.id,
        prompt_estimate,
        allowance: admitted.reply_allowance,
        model: call.model.clone(),
    })
}

fn ask<'a>(call: &'a Call, allowance: u64, stream: bool) -> Ask<'a> {
    Ask {
        model: &call.model,
        messages: call
            .messages
            .iter()
            .map(|m| WireMessage {
                role: &m.role,
                content: &m.content,
            })
            .collect(),
        max_tokens: allowance,
        temperature: call.temperature,
        stream,
        stream_options: stream.then(|| serde_json::json!({ "include_usage": true })),
    }
}

/// Settles the hold as `settlement` says: releases it, or records the usage (which settles
/// it, appears in usage history with the provider and model, and fires usage thresholds).
/// The counter is charged at most the hold; usage reported beyond it stays in the record as
/// reported and is logged as `over_hold`.
async fn settle(
    env: &Env,
    request: &RequestCtx,
    payer: &Payer,
    admitted: &Admitted,
    settlement: Settlement,
) -> Result<(), AppError> {
    let clock = Clock::at(request.now_ms);
    let subject = payer.subject();
    match settlement {
        Settlement::Release => {
            metering::release(env, &subject, &clock, &admitted.reservation_id).await?;
        }
        Settlement::Charge { input, output } => {
            let usage = CallUsage {
                provider: &request.config.chat.provider,
                model: &admitted.model,
                input_tokens: input,
                output_tokens: output,
                reservation_id: &admitted.reservation_id,
                hold: admitted.hold,
            };
            let settled = metering::settle_call(env, &subject, &clock, &usage, request).await?;
            if let Some(over) = rules::over_hold(input + output, admitted.hold) {
                request.log.warn(
                    "over_hold",
                    serde_json::json!({
                        "subject_kind": payer.kind.as_str(),
                        "subject_id": payer.id,
                        "reservation_id": admitted.reservation_id,
                        "model": admitted.model,
                        "input_tokens": input,
                        "output_tokens": output,
                        "hold": admitted.hold,
                        "over": over,
                        "counted": settled.counted,
                    }),
                );
            }
        }
    }
    Ok(())
}

fn charged(settlement: Settlement) -> Usage {
    match settlement {
        Settlement::Release => Usage::default(),
        Settlement::Charge { input, output } => Usage {
            prompt_tokens: input,
            completion_tokens: output,
        },
    }
}

fn latency(ctx: &RequestCtx) -> u64 {
    crate::clock::now_ms().saturating_sub(ctx.now_ms)
}

/// One call, whole: admitted, then answered and settled in the background (the request's
/// `wait_until`), so the provider's usage is charged even if the client leaves before the
/// answer; `then` runs there too, after settling, with the answer (`/chat` logs the
/// exchange). An upstream failure gives the hold back (nothing charged) and is
/// `upstream_error`.
pub async fn complete<Then, Done>(
    ctx: &Ctx,
    payer: &Payer,
    call: &Call,
    then: Then,
) -> Result<Answer, AppError>
where
    Then: FnOnce(&Answer) -> Done + 'static,
    Done: Future<Output = ()> + 'static,
{
    api(&ctx.data)?;
    let admitted = admit(ctx, payer, call).await?;
    let (env, request) = (ctx.env.clone(), Rc::clone(&ctx.data));
    let (payer, call) = (payer.clone(), call.clone());
    let work = async move {
        let answer = answer(&env, &request, &payer, &call, admitted).await?;
        then(&answer).await;
        Ok::<_, AppError>(answer)
    };
    ctx.data.outliving(work).await?
}

/// Calls the model for an admitted call and settles its hold from what it answered.
async fn answer(
    env: &Env,
    request: &RequestCtx,
    payer: &Payer,
    call: &Call,
    admitted: Admitted,
) -> Result<Answer, AppError> {
    let api = api(request)?;
    let result = api.complete(&ask(call, admitted.allowance, false)).await;
    let completion = match result {
        Ok(completion) => completion,
        Err(err) => {
            settle(env, request, payer, &admitted, Settlement::Release).await?;
            return Err(err);
        }
    };
    let ending = Ending {
        usage: completion.usage,
        completed: true,
        produced_bytes: completion.content.len() as u64,
    };
    let settlement = rules::settlement(&ending, admitted.prompt_estimate, admitted.allowance);
    settle(env, request, payer, &admitted, settlement).await?;
    Ok(Answer {
        content: completion.content,
        model: completion.model.unwrap_or(admitted.model),
        finish_reason: completion
            .finish_reason
            .unwrap_or_else(|| "stop".to_owned()),
        usage: charged(settlement),
        latency_ms: latency(request),
    })
}

/// What a stream has produced so far, shared between the stream and its settlement.
#[derive(Default)]
struct Progress {
    ending: Ending,
    /// The stream was dropped (ended, or the client left).
    dropped: bool,
    waker: Option<Waker>,
}

/// Marks the stream dropped when it goes, waking its settlement.
struct DropGuard(Rc<RefCell<Progress>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let mut progress = self.0.borrow_mut();
        progress.dropped = true;
        if let Some(waker) = progress.waker.take() {
            waker.wake();
        }
    }
}

/// Ready once the stream is dropped.
struct Dropped(Rc<RefCell<Progress>>);

impl Future for Dropped {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut progress = self.0.borrow_mut();
        if progress.dropped {
            Poll::Ready(())
        } else {
            progress.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// What the client is told when the model's stream fails mid-way: never the cause, which may
/// carry the upstream's own words (it is logged).
const STREAM_BROKE: &str = "the model's stream broke";

struct Reading {
    body: ByteStream,
    reader: EventReader,
    queue: VecDeque<Event>,
    progress: Rc<RefCell<Progress>>,
    _guard: DropGuard,
    finish_reason: Option<String>,
    model: String,
    prompt_estimate: u64,
    allowance: u64,
    started_ms: u64,
    chunk_timeout: Duration,
    over: bool,
    /// Where a broken stream's cause is told (the client is told only that it broke).
    log: Logger,
}

impl Reading {
    /// Reads one event's data into the queue.
    fn take(&mut self, data: &str) {
        let mut progress = self.progress.borrow_mut();
        match rules::chunk(data) {
            None => progress.ending.completed = true,
            Some(Err(_)) => {}
            Some(Ok(chunk)) => {
                if let Some(model) = chunk.model {
                    self.model = model;
                }
                if let Some(reason) = chunk.finish_reason {
                    self.finish_reason = Some(reason);
                    progress.ending.completed = true;
                }
                if let Some(usage) = chunk.usage {
                    progress.ending.usage = Some(usage);
                }
                if let Some(text) = chunk.content.filter(|t| !t.is_empty()) {
                    progress.ending.produced_bytes += text.len() as u64;
                    self.queue.push_back(Event::Delta(text));
                }
            }
        }
    }

    /// The stream's last event, once the body has ended (or failed).
    fn last(&mut self, failure: Option<String>) -> Event {
        self.over = true;
        let ending = self.progress.borrow().ending;
        let settlement = rules::settlement(&ending, self.prompt_estimate, self.allowance);
        match failure.filter(|_| !ending.completed) {
            Some(message) => Event::Failed { message },
            None => Event::Done {
                usage: charged(settlement),
                finish_reason: self.finish_reason.clone().unwrap_or_else(|| "stop".into()),
                model: self.model.clone(),
                latency_ms: crate::clock::now_ms().saturating_sub(self.started_ms),
            },
        }
    }
}

/// One call, streamed: admitted and opened before this returns (so a refusal or a failure to
/// start is an error answer, the hold given back), then read as it comes. The hold is settled
/// after the answer, when the stream ends or is dropped: from the provider's usage, else as
/// [`rules::settlement`] says for what was produced.
pub async fn stream(
    ctx: &Ctx,
    payer: Payer,
    call: Call,
) -> Result<impl Stream<Item = Event> + 'static, AppError> {
    let api = api(&ctx.data)?;
    let admitted = admit(ctx, &payer, &call).await?;
    let body = match api.stream(&ask(&call, admitted.allowance, true)).await {
        Ok(body) => body,
        Err(err) => {
            settle(&ctx.env, &ctx.data, &payer, &admitted, Settlement::Release).await?;
            return Err(err);
        }
    };
    let progress = Rc::new(RefCell::new(Progress::default()));
    let (env, request) = (ctx.env.clone(), Rc::clone(&ctx.data));
    let shared = Rc::clone(&progress);
    let (prompt_estimate, allowance) = (admitted.prompt_estimate, admitted.allowance);
    ctx.data.wait_until(async move {
        Dropped(Rc::clone(&shared)).await;
        let ending = shared.borrow().ending;
        let settlement = rules::settlement(&ending, admitted.prompt_estimate, admitted.allowance);
        if let Err(err) = settle(&env, &request, &payer, &admitted, settlement).await {
            request.log.error(
                "stream not settled",
                serde_json::json!({
                    "reservation_id": admitted.reservation_id,
                    "error": err.log_detail().unwrap_or_else(|| err.public_message()),
                }),
            );
        }
    });
    let state = Reading {
        body,
        reader: EventReader::default(),
        queue: VecDeque::new(),
        _guard: DropGuard(Rc::clone(&progress)),
        progress,
        finish_reason: None,
        model: call.model,
        prompt_estimate,
        allowance,
        started_ms: ctx.data.now_ms,
        chunk_timeout: Duration::from_millis(ctx.data.config.chat.timeout_ms),
        over: false,
        log: ctx.data.log.clone(),
    };
    Ok(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(event) = state.queue.pop_front() {
                    return Some((event, state));
                }
                if state.over {
                    return None;
                }
                let next = state.body.next();
                let deadline = Delay::from(state.chunk_timeout);
                futures_util::pin_mut!(next);
                let failure = match select(next, deadline).await {
                    Either::Left((Some(Ok(bytes)), _)) => {
                        for data in state.reader.push(&bytes) {
                            state.take(&data);
                        }
                        continue;
                    }
                    Either::Left((None, _)) => None,
                    Either::Left((Some(Err(err)), _)) => {
                        state.log.warn(
                            "model stream broke",
                            serde_json::json!({ "model": state.model, "error": err.to_string() }),
                        );
                        Some(STREAM_BROKE.to_owned())
                    }
                    Either::Right(((), _)) => Some("the model stopped answering".to_owned()),
                };
                let failure = failure.or_else(|| {
                    (!state.progress.borrow().ending.completed)
                        .then(|| "the model's stream ended early".to_owned())
                });
                let last = state.last(failure);
                return Some((last, state));
            }
        },
    ))
}
