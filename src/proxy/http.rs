//! `POST /v1/chat/completions` and `GET /v1/models`: OpenAI's shapes, so OpenAI's own client
//! libraries work against Tollgate with a Tollgate API key (scope `usage`) or a user token.
//! Errors on these paths carry OpenAI's `type` and `param` besides Tollgate's envelope.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Request, Response};

use crate::core::body::FieldError;
use crate::core::random;
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::identity::service::auth::Principal;
use crate::metering::rules::SubjectKind;
use crate::proxy::rules::MAX_REPLY_TOKENS;
use crate::proxy::service::{self as proxy, Call, Event, Message, Payer};

/// The most messages one call may carry.
const MAX_MESSAGES: usize = 256;

/// A message's content: text, or OpenAI's list of parts (only `text` parts are read).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ContentPart {
    /// `text` (other kinds are refused).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ChatMessageBody {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    pub content: Content,
}

/// What streaming callers ask for besides the text.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with the call's `usage`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// A Chat Completions request (OpenAI's shape; fields Tollgate does not use are ignored).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    /// One of `GET /v1/models` (default: the operator's `CHAT_MODEL`).
    #[serde(default)]
    pub model: Option<String>,
    /// 1 to 256 messages.
    pub messages: Vec<ChatMessageBody>,
    /// The longest reply wanted (the model is asked for no more than the quota affords).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 128000)]
    pub max_tokens: Option<u64>,
    /// Newer spelling of `max_tokens` (it wins when both are sent).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 128000)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Answer as server-sent `chat.completion.chunk` events ending with `data: [DONE]`.
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// The reply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssistantMessageView {
    /// `assistant`.
    pub role: &'static str,
    pub content: String,
}

/// One choice (there is always exactly one).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChoiceView {
    pub index: u32,
    pub message: AssistantMessageView,
    /// `stop`, `length`, ...
    pub finish_reason: String,
}

/// The tokens charged for the call (the provider's counts).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompletionUsageView {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// A `chat.completion` object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatCompletionView {
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChoiceView>,
    pub usage: CompletionUsageView,
}

/// One model callers may name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelView {
    pub id: String,
    /// `model`.
    pub object: &'static str,
    pub created: u64,
    pub owned_by: String,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelListView {
    /// `list`.
    pub object: &'static str,
    pub data: Vec<ModelView>,
}

/// The call the body asks for, checked (every problem under its field).
fn call(ctx: &Ctx, body: ChatCompletionRequest) -> Result<Call, AppError> {
    let chat = &ctx.data.config.chat;
    let mut problems = Vec::new();
    let model = body.model.unwrap_or_else(|| chat.model.clone());
    if !chat.models.contains(&model) {
        problems.push(FieldError::new(
            "model",
            format!(
                "is not offered here; the models are: {}",
                chat.models.join(", ")
            ),
        ));
    }
    if body.messages.is_empty() || body.messages.len() > MAX_MESSAGES {
        problems.push(FieldError::new(
            "messages",
            format!("must hold 1 to {MAX_MESSAGES} messages"),
        ));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.into_iter().enumerate() {
        if !matches!(
            m.role.as_str(),
            "system" | "developer" | "user" | "assistant"
        ) {
            problems.push(FieldError::new(
                format!("messages[{i}].role"),
                "must be system, developer, user or assistant",
            ));
        }
        let content = match m.content {
            Content::Text(text) => Some(text),
            Content::Parts(parts) => parts
                .into_iter()
                .map(|p| (p.kind == "text").then_some(p.text).flatten())
                .collect::<Option<Vec<_>>>()
                .map(|texts| texts.join("")),
        };
        match content {
            Some(content) => messages.push(Message {
                role: m.role,
                content,
            }),
            None => problems.push(FieldError::new(
                format!("messages[{i}].content"),
                "must be text, or a list of text parts",
            )),
        }
    }
    let max_tokens = body.max_completion_tokens.or(body.max_tokens);
    if max_tokens.is_some_and(|n| n == 0 || n > MAX_REPLY_TOKENS) {
        problems.push(FieldError::new(
            "max_tokens",
            format!("must be 1 to {MAX_REPLY_TOKENS}"),
        ));
    }
    if body.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        problems.push(FieldError::new("temperature", "must be from 0 to 2"));
    }
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    Ok(Call {
        model,
        messages,
        max_tokens,
        temperature: body.temperature,
    })
}

fn payer(ctx: &Ctx, principal: &Principal) -> Payer {
    Payer {
        kind: SubjectKind::User,
        id: principal.user.id.clone(),
        plan: ctx
            .data
            .config
            .plans
            .get_or_default(&principal.user.plan)
            .clone(),
    }
}

/// `POST /v1/chat/completions`: the caller's monthly tokens pay, admitted before the model
/// is called (`402` when not even a short reply fits) and settled from the provider's usage.
pub async fn completions(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: ChatCompletionRequest = ctx.data.json()?;
    let stream = body.stream.unwrap_or(false);
    let include_usage = body
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let call = call(&ctx, body)?;
    let payer = payer(&ctx, &principal);
    let id = random::id::<12>("chatcmpl-");
    let created = ctx.data.now_ms / 1000;
    if !stream {
        let answer = proxy::complete(&ctx, &payer, &call, |_| async {}).await?;
        return response::ok(&ChatCompletionView {
            id,
            object: "chat.completion",
            created,
            model: answer.model,
            choices: vec![ChoiceView {
                index: 0,
                message: AssistantMessageView {
                    role: "assistant",
                    content: answer.content,
                },
                finish_reason: answer.finish_reason,
            }],
            usage: CompletionUsageView {
                prompt_tokens: answer.usage.prompt_tokens,
                completion_tokens: answer.usage.completion_tokens,
                total_tokens: answer.usage.prompt_tokens + answer.usage.completion_tokens,
            },
        });
    }
    let model = call.model.clone();
    let events = proxy::stream(&ctx, payer, call).await?;
    let chunk = move |model: &str, delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let first = chunk(&model, json!({"role": "assistant", "content": ""}), None);
    let opening = futures_util::stream::once(async move { sse(&first) });
    let body = events.flat_map(move |event| {
        let frames: Vec<String> = match event {
            Event::Delta(text) => vec![sse(&chunk(&model, json!({"content": text}), None))],
            Event::Done {
                usage,
                finish_reason,
                model,
                ..
            } => {
                let mut frames = vec![sse(&chunk(&model, json!({}), Some(&finish_reason)))];
                if include_usage {
                    let mut last = chunk(&model, json!({}), None);
                    last["choices"] = json!([]);
                    last["usage"] = json!({
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                    });
                    frames.push(sse(&last));
                }
                frames.push("data: [DONE]\n\n".to_owned());
                frames
            }
            Event::Failed { message } => vec![sse(&json!({
                "error": {"message": message, "type": "api_error", "code": "upstream_error",
                          "param": null},
            }))],
        };
        futures_util::stream::iter(frames)
    });
    event_stream(opening.chain(body))
}

/// What `/openapi.json` says of `POST /v1/chat/completions`.
pub fn completions_doc() -> Doc {
    Doc::new(
        "A chat completion (OpenAI's shape), paid from the caller's monthly tokens: \
         the model is asked for no more reply than the quota affords",
    )
    .body::<ChatCompletionRequest>()
    .ok::<ChatCompletionView>(200)
    .or_media(
        "text/event-stream",
        "With `stream: true`: `chat.completion.chunk` events, then `data: [DONE]`",
    )
    .errors(&["quota_exceeded", "upstream_error", "not_configured"])
}

/// One server-sent event carrying `value` as its data.
pub fn sse(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// A `200 text/event-stream` answer of `frames`, not cached nor buffered by proxies.
pub fn event_stream(
    frames: impl futures_util::Stream<Item = String> + 'static,
) -> Result<Response, AppError> {
    let bytes = frames.map(|frame| Ok::<Vec<u8>, worker::Error>(frame.into_bytes()));
    let mut resp = Response::from_stream(bytes)?;
    let headers = resp.headers_mut();
    response::set(headers, "Content-Type", "text/event-stream; charset=utf-8");
    response::set(headers, "Cache-Control", "no-cache, no-store");
    response::set(headers, "X-Accel-Buffering", "no");
    Ok(resp)
}

/// `GET /v1/models`: the models callers may name (`CHAT_MODELS`).
pub async fn models(_req: Request, ctx: Ctx, _principal: Principal) -> Result<Response, AppError> {
    let chat = &ctx.data.config.chat;
    response::ok(&ModelListView {
        object: "list",
        data: chat
            .models
            .iter()
            .map(|id| ModelView {
                id: id.clone(),
                object: "model",
                created: 0,
                owned_by: chat.provider.clone(),
            })
            .collect(),
    })
}

/// What `/openapi.json` says of `GET /v1/models`.
pub fn models_doc() -> Doc {
    Doc::new("The models callers may name (OpenAI's list shape)").ok::<ModelListView>(200)
}
