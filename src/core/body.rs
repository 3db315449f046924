//! Request bodies: size limits and JSON decoding that names the field at fault.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The field name used when a problem concerns the body as a whole.
pub const WHOLE_BODY: &str = "body";

/// Default limit for ordinary JSON bodies: 64 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Default limit for webhook deliveries (Stripe, Clerk/Svix): 1 MiB.
pub const DEFAULT_MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

/// One invalid field in a request: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path to the field (`estimate_tokens`, `items[2].id`), or `body` for the whole body.
    pub field: String,
    /// What is wrong, in a sentence a developer can act on.
    pub message: String,
}

impl FieldError {
    /// A problem with one named field.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Which size limit a route holds its request bodies to, as the route table declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyLimit {
    /// `MAX_BODY_BYTES`: API calls (the default).
    #[default]
    Api,
    /// `MAX_WEBHOOK_BODY_BYTES`: webhook deliveries, which may be larger.
    Webhook,
}

impl BodyLimit {
    /// The limit in bytes, given the configured API and webhook limits.
    pub fn bytes(self, api: usize, webhook: usize) -> usize {
        match self {
            BodyLimit::Api => api,
            BodyLimit::Webhook => webhook,
        }
    }
}

/// Whether a declared `Content-Length` already exceeds `limit` (so the body need not be read).
/// An unparsable header is left to the actual byte count.
pub fn declared_length_exceeds(content_length: Option<&str>, limit: usize) -> bool {
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// Whether a `Content-Type` header declares JSON (`application/json`, `application/*+json`).
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses bytes as JSON; a syntax error or bad UTF-8 names the path where parsing stopped.
pub fn parse_json(bytes: &[u8]) -> Result<Value, FieldError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FieldError::new(WHOLE_BODY, "a JSON body is required"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: Value = serde_path_to_error::deserialize(&mut de).map_err(field_error)?;
    de.end()
        .map_err(|e| FieldError::new(WHOLE_BODY, format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Decodes an already-parsed JSON value into `T`, naming the first field that does not fit.
/// Every request body of this API is a JSON object: serde would otherwise read a struct
/// from an array (`[]` as "no fields"), so anything else is refused here.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    if !value.is_object() {
        return Err(FieldError::new(WHOLE_BODY, "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(field_error)
}

fn field_error<E: std::fmt::Display>(err: serde_path_to_error::Error<E>) -> FieldError {
    let path = err.path().to_string();
    let field = if path == "." || path.is_empty() {
        WHOLE_BODY.to_owned()
    } else {
        path
    };
    FieldError::new(field, err.inner().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn only_objects_decode_into_bodies() {
        #[derive(Debug, Deserialize)]
        struct Patch {
            #[allow(dead_code)]
            name: Option<String>,
        }
        for body in ["[]", "[\"x\"]", "null", "3", "\"name\""] {
            let value: Value = serde_json::from_str(body).unwrap();
            let err = decode::<Patch>(&value).unwrap_err();
            assert_eq!(err.field, WHOLE_BODY, "{body}");
        }
        assert!(decode::<Patch>(&serde_json::json!({})).is_ok());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Report {
        model: String,
        input_tokens: u64,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        id: u32,
    }

    #[test]
    fn truncated_json_is_malformed_and_names_where_it_stopped() {
        let err = parse_json(br#"{"a":"#).unwrap_err();
        assert_eq!(err.field, "a");
        assert!(err.message.contains("EOF"), "{}", err.message);
    }

    #[test]
    fn trailing_garbage_and_empty_bodies_are_refused() {
        assert_eq!(parse_json(b"{} x").unwrap_err().field, WHOLE_BODY);
        assert_eq!(
            parse_json(b"  ").unwrap_err().message,
            "a JSON body is required"
        );
    }

    #[test]
    fn invalid_utf8_inside_a_string_is_refused() {
        let err = parse_json(b"{\"name\":\"\xff\"}").unwrap_err();
        assert_eq!(err.field, "name");
    }

    #[test]
    fn a_mistyped_field_is_named_with_its_path() {
        let v = parse_json(br#"{"model":"m","input_tokens":"12","items":[]}"#).unwrap();
        let err = decode::<Report>(&v).unwrap_err();
        assert_eq!(err.field, "input_tokens");
        assert!(err.message.contains("invalid type"), "{}", err.message);

        let v =
            parse_json(br#"{"model":"m","input_tokens":1,"items":[{"id":1},{"id":-2}]}"#).unwrap();
        assert_eq!(decode::<Report>(&v).unwrap_err().field, "items[1].id");
    }

    #[test]
    fn negative_and_fractional_counts_do_not_fit_unsigned_fields() {
        for body in [
            br#"{"model":"m","input_tokens":-1,"items":[]}"#.as_slice(),
            br#"{"model":"m","input_tokens":1.5,"items":[]}"#.as_slice(),
        ] {
            let v = parse_json(body).unwrap();
            assert_eq!(decode::<Report>(&v).unwrap_err().field, "input_tokens");
        }
    }

    #[test]
    fn missing_and_unknown_fields_are_reported() {
        let v = parse_json(br#"{"model":"m","items":[]}"#).unwrap();
        let err = decode::<Report>(&v).unwrap_err();
        assert!(
            err.message.contains("missing field `input_tokens`"),
            "{}",
            err.message
        );

        let v = parse_json(br#"{"model":"m","input_tokens":1,"items":[],"extra":1}"#).unwrap();
        assert!(decode::<Report>(&v)
            .unwrap_err()
            .message
            .contains("unknown field"));
    }

    #[test]
    fn a_declared_limit_reads_as_the_configured_bytes() {
        assert_eq!(BodyLimit::default(), BodyLimit::Api);
        assert_eq!(BodyLimit::Api.bytes(10, 20), 10);
        assert_eq!(BodyLimit::Webhook.bytes(10, 20), 20);
    }

    #[test]
    fn declared_length_is_checked_before_reading() {
        assert!(declared_length_exceeds(Some("2097152"), 65_536));
        assert!(!declared_length_exceeds(Some("65536"), 65_536));
        assert!(!declared_length_exceeds(Some("abc"), 65_536));
        assert!(!declared_length_exceeds(None, 65_536));
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/merge-patch+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/x-www-form-urlencoded"));
    }
}
