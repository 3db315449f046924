//! A Resend-shaped mail API: `POST {MAIL_API_URL}/emails` with `Authorization: Bearer <key>`
//! and `{from, to: [..], subject, text, html}`; a 2xx answer carries the message's `id`.
//! The outbox id goes in `Idempotency-Key`, so a retry after a lost answer sends nothing twice.

use serde::{Deserialize, Serialize};
use worker::{Headers, Method, Request, RequestInit};

use crate::error::AppError;

const SERVICE: &str = "mail";

/// One message.
#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    pub from: &'a str,
    pub to: [&'a str; 1],
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// Sends `message`; answers the API's id for it.
pub async fn send(
    base_url: &str,
    api_key: &str,
    idempotency_key: &str,
    message: &Message<'_>,
) -> Result<Option<String>, AppError> {
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {api_key}"))?;
    headers.set("Content-Type", "application/json")?;
    headers.set("Idempotency-Key", idempotency_key)?;
    let body = serde_json::to_string(message)
        .map_err(|e| AppError::Internal(format!("mail body: {e}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(&format!("{base_url}/emails"), &init)?;
    let resp = super::send(SERVICE, req).await?;
    let status = resp.status_code();
    let text = super::text(SERVICE, resp).await?;
    if !(200..300).contains(&status) {
        return Err(AppError::Upstream {
            service: SERVICE,
            detail: format!("POST /emails answered {status}"),
        });
    }
    #[derive(Deserialize)]
    struct Sent {
        id: Option<String>,
    }
    Ok(serde_json::from_str::<Sent>(&text).ok().and_then(|s| s.id))
}
