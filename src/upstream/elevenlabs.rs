//! ElevenLabs text to speech: `POST {base}/v1/text-to-speech/{voice_id}` with `xi-api-key`,
//! `{text, model_id}` in, audio (`audio/mpeg`) out. Failures are `upstream_error`; the
//! provider's message is logged, never returned.

use std::time::Duration;

use serde_json::{json, Value};
use worker::{Headers, Method, Request, RequestInit, Response};

use crate::error::AppError;

const SERVICE: &str = "elevenlabs";

/// A client of the API.
pub struct ElevenLabs<'a> {
    pub base_url: &'a str,
    pub api_key: &'a str,
    pub timeout: Duration,
}

impl ElevenLabs<'_> {
    /// Speaks `text`: the provider's 2xx answer, its audio body unread (to stream through).
    /// `voice_id` must already be checked (it goes into the path).
    pub async fn speak(
        &self,
        voice_id: &str,
        model_id: &str,
        text: &str,
    ) -> Result<Response, AppError> {
        let headers = Headers::new();
        headers.set("xi-api-key", self.api_key)?;
        headers.set("Content-Type", "application/json")?;
        headers.set("Accept", "audio/mpeg")?;
        let body = json!({ "text": text, "model_id": model_id }).to_string();
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let url = format!("{}/v1/text-to-speech/{voice_id}", self.base_url);
        let req = Request::new_with_init(&url, &init)?;
        let mut resp = super::send_within(SERVICE, req, self.timeout).await?;
        let status = resp.status_code();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/detail/message")
                    .or_else(|| v.get("detail"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let message: String = message.chars().take(200).collect();
        Err(AppError::Upstream {
            service: SERVICE,
            detail: format!("text to speech answered {status}: {message}"),
        })
    }
}
