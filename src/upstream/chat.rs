//! An OpenAI-compatible Chat Completions API (`POST {base}/chat/completions`, bearer key):
//! OpenRouter by default, Gemini's OpenAI-compatible endpoint or any other by configuration.
//! A plain call answers one completion; a streamed call answers the open body, read as
//! server-sent events by the proxy. Every failure is `upstream_error`, whose detail
//! (status, the API's own message) is logged, never returned.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{ByteStream, Headers, Method, Request, RequestInit};

use crate::error::AppError;

const SERVICE: &str = "chat";

/// A client of the API.
pub struct ChatApi<'a> {
    /// `CHAT_API_URL`, e.g. `https://openrouter.ai/api/v1`.
    pub base_url: &'a str,
    /// `CHAT_API_KEY`.
    pub api_key: &'a str,
    /// How long the API may take to start answering.
    pub timeout: Duration,
}

/// One message as the API takes it.
#[derive(Debug, Clone, Serialize)]
pub struct WireMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// What is asked: never more reply tokens than `max_tokens`.
#[derive(Debug, Clone, Serialize)]
pub struct Ask<'a> {
    pub model: &'a str,
    pub messages: Vec<WireMessage<'a>>,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    pub stream: bool,
    /// For streams: ask for the usage in the last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
}

/// The token counts the provider reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// A plain call's answer.
#[derive(Debug, Clone)]
pub struct Completion {
    pub model: Option<String>,
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    content: Option<String>,
}

impl ChatApi<'_> {
    /// One completion, whole.
    pub async fn complete(&self, ask: &Ask<'_>) -> Result<Completion, AppError> {
        let mut resp = self.send(ask).await?;
        let status = resp.status_code();
        let text = resp.text().await.map_err(|e| AppError::Upstream {
            service: SERVICE,
            detail: format!("unreadable body: {e}"),
        })?;
        if !(200..300).contains(&status) {
            return Err(failure(status, &text));
        }
        let wire: WireCompletion = serde_json::from_str(&text).map_err(|e| AppError::Upstream {
            service: SERVICE,
            detail: format!("unexpected answer: {e}"),
        })?;
        let choice = wire.choices.into_iter().next();
        Ok(Completion {
            model: wire.model,
            finish_reason: choice.as_ref().and_then(|c| c.finish_reason.clone()),
            content: choice
                .and_then(|c| c.message)
                .and_then(|m| m.content)
                .unwrap_or_default(),
            usage: wire.usage,
        })
    }

    /// A streamed completion: the open body, once the API has answered 2xx.
    pub async fn stream(&self, ask: &Ask<'_>) -> Result<ByteStream, AppError> {
        let mut resp = self.send(ask).await?;
        let status = resp.status_code();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(failure(status, &text));
        }
        resp.stream().map_err(|e| AppError::Upstream {
            service: SERVICE,
            detail: format!("no body to stream: {e}"),
        })
    }

    async fn send(&self, ask: &Ask<'_>) -> Result<worker::Response, AppError> {
        let headers = Headers::new();
        headers.set("Authorization", &format!("Bearer {}", self.api_key))?;
        headers.set("Content-Type", "application/json")?;
        headers.set(
            "Accept",
            if ask.stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        )?;
        let body = serde_json::to_string(ask).map_err(|e| AppError::Internal(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let url = format!("{}/chat/completions", self.base_url);
        let req = Request::new_with_init(&url, &init)?;
        super::send_within(SERVICE, req, self.timeout).await
    }
}

/// An error answer; the API's message (`{"error": {"message"}}`) goes to the log only.
fn failure(status: u16, text: &str) -> AppError {
    AppError::Upstream {
        service: SERVICE,
        detail: format!(
            "chat completions answered {status}: {}",
            super::error_message(text)
        ),
    }
}
