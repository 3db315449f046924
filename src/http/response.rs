//! Building responses: JSON bodies and error envelopes.

use serde::Serialize;
use worker::{Headers, Response, ResponseBody, ResponseBuilder};

use crate::error::AppError;
use crate::log::Logger;

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response, AppError> {
    let bytes = serde_json::to_vec(body).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(with_body(status, json_headers(), bytes))
}

/// `200 OK` with a JSON body.
pub fn ok<T: Serialize>(body: &T) -> Result<Response, AppError> {
    json(200, body)
}

/// A response whose body is JSON already serialised.
pub fn raw_json(status: u16, body: Vec<u8>) -> Response {
    with_body(status, json_headers(), body)
}

/// `200 OK` with a JSON body that carries a secret (a provider key): never cached.
pub fn secret<T: Serialize>(body: &T) -> Result<Response, AppError> {
    let mut resp = json(200, body)?;
    set(resp.headers_mut(), "Cache-Control", "no-store");
    Ok(resp)
}

/// The error envelope for `err`, with `Allow` / `Retry-After` where the error calls for them.
/// Details that must not reach the caller are logged here, with the request id.
pub fn error(err: &AppError, request_id: &str) -> Response {
    error_at(err, request_id, "")
}

/// Whether errors on `path` take OpenAI's shape (its client libraries read them).
pub fn openai_path(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// [`error`], in OpenAI's shape on its paths ([`openai_path`]).
pub fn error_at(err: &AppError, request_id: &str, path: &str) -> Response {
    if let Some(detail) = err.log_detail() {
        Logger::for_request(request_id).error(
            "request failed",
            serde_json::json!({ "code": err.code(), "detail": detail }),
        );
    }
    let headers = json_headers();
    match err {
        AppError::MethodNotAllowed { allowed } => set(&headers, "Allow", &allowed.join(", ")),
        AppError::RateLimited { retry_after_secs } => {
            set(&headers, "Retry-After", &retry_after_secs.to_string())
        }
        _ => {}
    }
    with_body(
        err.status(),
        headers,
        if openai_path(path) {
            err.openai_envelope(request_id)
        } else {
            err.envelope(request_id)
        }
        .to_string()
        .into_bytes(),
    )
}

fn with_body(status: u16, headers: Headers, body: Vec<u8>) -> Response {
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .body(ResponseBody::Body(body))
}

fn json_headers() -> Headers {
    let headers = Headers::new();
    set(&headers, "Content-Type", "application/json");
    headers
}

/// Sets a header whose name and value are known to be valid.
pub fn set(headers: &Headers, name: &str, value: &str) {
    // Headers::set only fails for names or values that are not legal HTTP tokens; every
    // caller passes constants or values validated beforehand (request ids, origins).
    let _ = headers.set(name, value);
}
