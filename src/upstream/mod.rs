//! Thin clients of the services Tollgate calls, over the Fetch API. Base URLs come from
//! configuration, so tests and local runs point them at local fakes.

pub mod chat;
pub mod clerk;
pub mod config;
pub mod elevenlabs;
pub mod mail;
pub mod openrouter;
pub mod stripe;

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{AbortController, Delay, Fetch, Request, Response};

use crate::error::AppError;

/// How long any upstream call may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `req`, failing with `upstream_error` naming `service` on a network error or after
/// [`TIMEOUT`] (the request is aborted).
pub async fn send(service: &'static str, req: Request) -> Result<Response, AppError> {
    send_within(service, req, TIMEOUT).await
}

/// Sends `req` as [`send`] does, with a timeout of its own.
pub async fn send_within(
    service: &'static str,
    req: Request,
    timeout: Duration,
) -> Result<Response, AppError> {
    fetch_within(req, timeout)
        .await
        .map_err(|failure| AppError::Upstream {
            service,
            detail: match failure {
                NoResponse::TimedOut => format!("no answer within {} ms", timeout.as_millis()),
                NoResponse::Failed(e) => e.to_string(),
            },
        })
}

/// Why a call got no response.
#[derive(Debug)]
pub enum NoResponse {
    /// None came within the timeout (the request was aborted).
    TimedOut,
    /// The fetch failed: name lookup, connection, TLS, a bad request.
    Failed(worker::Error),
}

/// Sends `req`, aborting it after `timeout`: for callers that tell a timeout from a failure.
pub async fn fetch_within(req: Request, timeout: Duration) -> Result<Response, NoResponse> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let call = fetch.send_with_signal(&signal);
    let deadline = Delay::from(timeout);
    futures_util::pin_mut!(call);
    match select(call, deadline).await {
        Either::Left((result, _)) => result.map_err(NoResponse::Failed),
        Either::Right(((), _)) => {
            controller.abort();
            Err(NoResponse::TimedOut)
        }
    }
}

/// Reads a response body as text, failing with `upstream_error` if it cannot be read.
pub async fn text(service: &'static str, mut resp: Response) -> Result<String, AppError> {
    resp.text().await.map_err(|e| AppError::Upstream {
        service,
        detail: format!("unreadable body: {e}"),
    })
}

/// The message an OpenAI-style error body carries (`{"error": {"message"}}`, or a flat
/// `{"message"}`), at most 200 characters; empty when there is none. For logged details only.
pub fn error_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(serde_json::Value::as_str)
                .map(|m| m.chars().take(200).collect())
        })
        .unwrap_or_default()
}
