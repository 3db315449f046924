//! `POST /chat`: parse, prepare through the chat service, call the model through the
//! metered proxy on the org's tokens, answer as the seed's widget reads it (or as a stream),
//! and log the exchange.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use worker::{Request, Response};

use crate::chat::rules::{self, ChatBody};
use crate::chat::service::{self, Answered, Prepared};
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::metering::rules::SubjectKind;
use crate::proxy::http::event_stream;
use crate::proxy::service::{self as proxy, Call, Event, Message, Payer};
use crate::sites::service::SiteCaller;

/// The tokens an answer cost the org (the provider's counts).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatUsageView {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// An answer, as the seed's widget reads it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatAnswerView {
    /// The model's reply.
    pub response: String,
    /// The conversation: send it with the next message.
    pub session_id: String,
    /// From the message's arrival to the complete answer.
    pub latency_ms: u64,
    pub usage: ChatUsageView,
}

fn usage_view(usage: crate::upstream::chat::Usage) -> ChatUsageView {
    ChatUsageView {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
    }
}

/// `POST /chat {message, session_id?, visitor_id?, stream?}` with the site key.
pub async fn chat(_req: Request, ctx: Ctx, caller: SiteCaller) -> Result<Response, AppError> {
    let body: ChatBody = ctx.data.json()?;
    let message = rules::check(body).map_err(AppError::Validation)?;
    // Unconfigured chat is said before anything is counted.
    ctx.data.config.chat.api_key.require()?;
    let prepared = service::prepare(&ctx, &caller, &message).await?;
    let config = &ctx.data.config;
    let payer = Payer {
        kind: SubjectKind::Org,
        id: caller.org_id.clone(),
        plan: config.plans.get_or_default(&caller.org_plan).clone(),
    };
    let call = Call {
        model: prepared.model.clone(),
        messages: prepared
            .turns
            .iter()
            .map(|turn| Message {
                role: turn.role.to_owned(),
                content: turn.content.clone(),
            })
            .collect(),
        max_tokens: Some(prepared.max_reply_tokens),
        temperature: prepared.temperature,
    };
    if !message.stream {
        // The exchange is logged where the call settles, even if the visitor has left.
        let (env, request) = (ctx.env.clone(), Rc::clone(&ctx.data));
        let (logged_for, logged) = (caller.clone(), prepared.clone());
        let log = move |answer: &proxy::Answer| {
            let (reply, usage, latency_ms) =
                (answer.content.clone(), answer.usage, answer.latency_ms);
            async move {
                let answered = Answered {
                    reply: &reply,
                    input_tokens: usage.prompt_tokens,
                    output_tokens: usage.completion_tokens,
                    latency_ms,
                };
                service::log(&env, &request, &logged_for, &logged, &answered).await;
            }
        };
        let answer = proxy::complete(&ctx, &payer, &call, log).await?;
        return response::ok(&ChatAnswerView {
            response: answer.content,
            session_id: prepared.session_id,
            latency_ms: answer.latency_ms,
            usage: usage_view(answer.usage),
        });
    }
    let events = proxy::stream(&ctx, payer, call).await?;
    let reply = Rc::new(RefCell::new(String::new()));
    let (env, request) = (ctx.env.clone(), Rc::clone(&ctx.data));
    let frames = events.map(move |event| match event {
        Event::Delta(text) => {
            reply.borrow_mut().push_str(&text);
            frame("delta", &json!({ "text": text }))
        }
        Event::Done {
            usage, latency_ms, ..
        } => {
            let done = frame(
                "done",
                &json!({
                    "session_id": prepared.session_id,
                    "latency_ms": latency_ms,
                    "usage": usage_view(usage),
                }),
            );
            let text = reply.borrow().clone();
            log_later(&env, &request, &caller, &prepared, text, usage, latency_ms);
            done
        }
        Event::Failed { message } => frame(
            "error",
            &json!({ "code": "upstream_error", "message": message }),
        ),
    });
    event_stream(frames)
}

/// What `/openapi.json` says of `POST /chat`.
pub fn chat_doc() -> Doc {
    Doc::new(
        "A visitor's message to the site's assistant, answered with the session that \
         continues it; logged, and paid from the org's monthly tokens",
    )
    .body::<ChatBody>()
    .ok::<ChatAnswerView>(200)
    .or_media(
        "text/event-stream",
        "With `stream: true`: `delta` events, then one `done` with the session, \
         latency and usage",
    )
    .errors(&[
        "quota_exceeded",
        "rate_limited",
        "not_found",
        "upstream_error",
        "not_configured",
    ])
}

/// Logs a streamed exchange after the answer (the request's `wait_until`).
fn log_later(
    env: &worker::Env,
    request: &Rc<crate::http::RequestCtx>,
    caller: &SiteCaller,
    prepared: &Prepared,
    reply: String,
    usage: crate::upstream::chat::Usage,
    latency_ms: u64,
) {
    let (env, background, caller, prepared) = (
        env.clone(),
        Rc::clone(request),
        caller.clone(),
        prepared.clone(),
    );
    request.wait_until(async move {
        let answered = Answered {
            reply: &reply,
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            latency_ms,
        };
        service::log(&env, &background, &caller, &prepared, &answered).await;
    });
}

/// One server-sent event named `name`.
fn frame(name: &str, data: &serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}
