//! One error type for the whole API, rendered as one envelope:
//! `{"error": {"code": "...", "message": "...", "request_id": "..."}}`.
//!
//! Codes are stable and machine-readable; messages are for people. Internal and upstream
//! details are logged by [`AppError::log_detail`] and never returned.

use std::borrow::Cow;

use crate::core::body::FieldError;
use serde::Serialize;
use serde_json::Value;

/// Every way a request can fail, each with a stable code and HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub enum AppError {
    /// The request is wrong in a way that is not about one field.
    BadRequest(String),
    /// One or more fields are missing, mistyped or out of range.
    Validation(Vec<FieldError>),
    /// No credential, or one that does not verify.
    Unauthorized(String),
    /// The caller is known but may not do this.
    Forbidden(String),
    /// A password account whose email is not verified asked for something that costs the
    /// operator money.
    EmailNotVerified,
    /// No such resource (or path).
    NotFound(String),
    /// The path exists but not for this method; `allowed` feeds the `Allow` header.
    MethodNotAllowed { allowed: Vec<&'static str> },
    /// The request conflicts with the current state.
    Conflict(String),
    /// A new device would pass the plan's limit of devices signed in at once.
    SessionLimit(String),
    /// The body is larger than the limit for this route.
    PayloadTooLarge { limit_bytes: usize },
    /// Too many requests; retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// The plan's quota does not cover this request.
    QuotaExceeded(String),
    /// Not enough credits for this request.
    InsufficientCredits(String),
    /// A provider (Stripe, OpenRouter, Clerk, ...) failed; `detail` is logged, not returned.
    Upstream {
        service: &'static str,
        detail: String,
    },
    /// A feature whose secret or setting is unset; `setting` names it.
    NotConfigured { setting: Cow<'static, str> },
    /// A bug or an infrastructure failure; the detail is logged, not returned.
    Internal(String),
}

/// Every error code with its status, as `/openapi.json` documents them.
pub const CODES: &[(&str, u16)] = &[
    ("bad_request", 400),
    ("validation_failed", 400),
    ("unauthorized", 401),
    ("quota_exceeded", 402),
    ("insufficient_credits", 402),
    ("forbidden", 403),
    ("email_not_verified", 403),
    ("not_found", 404),
    ("method_not_allowed", 405),
    ("conflict", 409),
    ("session_limit_exceeded", 409),
    ("payload_too_large", 413),
    ("rate_limited", 429),
    ("internal", 500),
    ("upstream_error", 502),
    ("not_configured", 503),
];

impl AppError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::EmailNotVerified => "email_not_verified",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::SessionLimit(_) => "session_limit_exceeded",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::InsufficientCredits(_) => "insufficient_credits",
            Self::Upstream { .. } => "upstream_error",
            Self::NotConfigured { .. } => "not_configured",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) | Self::Validation(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::QuotaExceeded(_) | Self::InsufficientCredits(_) => 402,
            Self::Forbidden(_) | Self::EmailNotVerified => 403,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Conflict(_) | Self::SessionLimit(_) => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::RateLimited { .. } => 429,
            Self::Internal(_) => 500,
            Self::Upstream { .. } => 502,
            Self::NotConfigured { .. } => 503,
        }
    }

    /// The sentence shown to the caller. Never contains internal or upstream detail.
    pub fn public_message(&self) -> String {
        match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::SessionLimit(m)
            | Self::QuotaExceeded(m)
            | Self::InsufficientCredits(m) => m.clone(),
            Self::Validation(fields) => match fields.as_slice() {
                [one] => format!("invalid request: {}: {}", one.field, one.message),
                _ => format!("invalid request: {} fields are invalid", fields.len()),
            },
            Self::MethodNotAllowed { allowed } => {
                format!("method not allowed here; allowed: {}", allowed.join(", "))
            }
            Self::PayloadTooLarge { limit_bytes } => {
                format!("request body is larger than the {limit_bytes}-byte limit")
            }
            Self::RateLimited { retry_after_secs } => {
                format!("too many requests; retry after {retry_after_secs} s")
            }
            Self::Upstream { service, .. } => format!("{service} is unavailable; try again later"),
            Self::NotConfigured { setting } => {
                format!(
                    "this feature is not configured on this server ({setting} is unset or invalid)"
                )
            }
            Self::Internal(_) => "internal error".to_owned(),
            Self::EmailNotVerified => "verify your email address first: open the link we \
                                       mailed you (POST /api/auth/verify-email)"
                .to_owned(),
        }
    }

    /// What must be logged but not returned, if anything.
    pub fn log_detail(&self) -> Option<String> {
        match self {
            Self::Internal(detail) => Some(detail.clone()),
            Self::Upstream { service, detail } => Some(format!("{service}: {detail}")),
            _ => None,
        }
    }

    /// The JSON envelope for this error.
    pub fn envelope(&self, request_id: &str) -> Value {
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: self.code(),
                message: self.public_message(),
                request_id: request_id.to_owned(),
                fields: match self {
                    Self::Validation(fields) => Some(fields.clone()),
                    _ => None,
                },
            },
        };
        serde_json::to_value(envelope).unwrap_or(Value::Null)
    }

    /// The envelope as OpenAI's clients read errors (`/v1/*`): the same `code`, `message`,
    /// `request_id` and `fields`, plus OpenAI's `type` and `param` (the first invalid field).
    pub fn openai_envelope(&self, request_id: &str) -> Value {
        let mut envelope = self.envelope(request_id);
        let kind = match self.status() {
            400 | 404 | 405 | 409 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            402 => "insufficient_quota",
            403 => "permission_error",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        let param = match self {
            Self::Validation(fields) => fields.first().map(|f| Value::from(f.field.clone())),
            _ => None,
        };
        if let Some(error) = envelope.get_mut("error").and_then(Value::as_object_mut) {
            error.insert("type".to_owned(), Value::from(kind));
            error.insert("param".to_owned(), param.unwrap_or(Value::Null));
        }
        envelope
    }

    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

/// Every error answer: `{"error": {...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable and machine-readable: `validation_failed`, `unauthorized`, `quota_exceeded`, ...
    #[schema(value_type = String, example = "validation_failed")]
    pub code: &'static str,
    /// A sentence a developer can act on.
    pub message: String,
    /// This request's id, as in `X-Request-Id`.
    pub request_id: String,
    /// For `validation_failed`: each invalid field and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
}

impl From<FieldError> for AppError {
    fn from(err: FieldError) -> Self {
        Self::Validation(vec![err])
    }
}

impl From<worker::Error> for AppError {
    fn from(err: worker::Error) -> Self {
        Self::Internal(err.to_string())
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.public_message())
    }
}

impl std::error::Error for AppError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<AppError> {
        vec![
            AppError::BadRequest("b".into()),
            AppError::invalid("f", "m"),
            AppError::Unauthorized("u".into()),
            AppError::Forbidden("f".into()),
            AppError::EmailNotVerified,
            AppError::NotFound("n".into()),
            AppError::MethodNotAllowed {
                allowed: vec!["GET"],
            },
            AppError::Conflict("c".into()),
            AppError::SessionLimit("s".into()),
            AppError::PayloadTooLarge { limit_bytes: 10 },
            AppError::RateLimited {
                retry_after_secs: 3,
            },
            AppError::QuotaExceeded("q".into()),
            AppError::InsufficientCredits("i".into()),
            AppError::Upstream {
                service: "stripe",
                detail: "secret body".into(),
            },
            AppError::NotConfigured {
                setting: "STRIPE_SECRET_KEY".into(),
            },
            AppError::Internal("db exploded at row 7".into()),
        ]
    }

    #[test]
    fn the_code_table_is_every_error_with_its_status() {
        let mut from_errors: Vec<_> = all().iter().map(|e| (e.code(), e.status())).collect();
        let mut table = CODES.to_vec();
        from_errors.sort();
        table.sort();
        assert_eq!(from_errors, table);
    }

    #[test]
    fn each_error_has_its_documented_status_and_code() {
        let expected = [
            (400, "bad_request"),
            (400, "validation_failed"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (403, "email_not_verified"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            (409, "conflict"),
            (409, "session_limit_exceeded"),
            (413, "payload_too_large"),
            (429, "rate_limited"),
            (402, "quota_exceeded"),
            (402, "insufficient_credits"),
            (502, "upstream_error"),
            (503, "not_configured"),
            (500, "internal"),
        ];
        assert_eq!(all().len(), expected.len());
        for (err, (status, code)) in all().iter().zip(expected) {
            assert_eq!((err.status(), err.code()), (status, code), "{err:?}");
        }
    }

    #[test]
    fn the_envelope_carries_code_message_and_request_id() {
        let body = AppError::NotFound("no such route".into()).envelope("req_1");
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(body["error"]["message"], "no such route");
        assert_eq!(body["error"]["request_id"], "req_1");
        assert!(body["error"].get("fields").is_none());
    }

    #[test]
    fn validation_errors_list_their_fields() {
        let body = AppError::invalid("input_tokens", "must be a whole number").envelope("r");
        assert_eq!(body["error"]["fields"][0]["field"], "input_tokens");
        assert_eq!(
            body["error"]["fields"][0]["message"],
            "must be a whole number"
        );
    }

    #[test]
    fn internal_and_upstream_details_are_logged_not_returned() {
        for err in all() {
            let text = err.envelope("r").to_string();
            assert!(!text.contains("exploded"), "{text}");
            assert!(!text.contains("secret body"), "{text}");
        }
        let internal = AppError::Internal("db exploded at row 7".into());
        assert_eq!(
            internal.log_detail().as_deref(),
            Some("db exploded at row 7")
        );
        assert_eq!(AppError::NotFound("x".into()).log_detail(), None);
    }
}
