//! Svix webhook signatures (Clerk delivers its webhooks through Svix).
//!
//! The signed content is `{svix-id}.{svix-timestamp}.{raw body}`, the MAC is HMAC-SHA256
//! keyed with the base64 part of the `whsec_...` secret, and `svix-signature` is a
//! space-separated list of `v1,<base64 MAC>` entries, any of which may match. The configured
//! secret may be a comma-separated list (a rotation in progress): any of them may have signed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::webhooks::rules::stripe_signature::listed_secrets;

/// How far `svix-timestamp` may be from now, either way: five minutes.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SvixError {
    /// The configured secret is not `whsec_<base64>`.
    BadSecret,
    /// A required header is missing or empty; names it.
    MissingHeader(&'static str),
    /// `svix-timestamp` is not an integer.
    BadTimestamp,
    /// The timestamp is outside the tolerance.
    TimestampOutOfTolerance,
    /// No `v1` signature matches.
    NoMatchingSignature,
}

impl SvixError {
    /// A sentence for the error envelope (says nothing about the expected MAC).
    pub fn message(&self) -> String {
        match self {
            Self::BadSecret => "webhook secret is not a whsec_ secret".to_owned(),
            Self::MissingHeader(name) => format!("missing {name} header"),
            Self::BadTimestamp => "svix-timestamp is not a Unix timestamp".to_owned(),
            Self::TimestampOutOfTolerance => {
                "svix-timestamp is outside the 5-minute tolerance".to_owned()
            }
            Self::NoMatchingSignature => "no svix-signature matches".to_owned(),
        }
    }
}

/// The three Svix headers of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct SvixHeaders<'a> {
    /// `svix-id` (or `webhook-id`): the message id, stable across retries.
    pub id: Option<&'a str>,
    /// `svix-timestamp` (or `webhook-timestamp`): Unix seconds.
    pub timestamp: Option<&'a str>,
    /// `svix-signature` (or `webhook-signature`).
    pub signature: Option<&'a str>,
}

fn required<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SvixError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SvixError::MissingHeader(name))
}

/// The MAC key inside a `whsec_...` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SvixError> {
    let encoded = secret
        .trim()
        .strip_prefix("whsec_")
        .unwrap_or(secret.trim());
    B64.decode(encoded)
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or(SvixError::BadSecret)
}

/// The `v1,<base64>` signature of a message (what Svix sends, and what tests forge).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Whether every entry of a `CLERK_WEBHOOK_SECRET` list is a usable `whsec_` secret (and
/// there is at least one); checked when the configuration loads.
pub fn check_secrets(secrets: &str) -> Result<(), SvixError> {
    let mut any = false;
    for secret in listed_secrets(secrets) {
        secret_key(secret)?;
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err(SvixError::BadSecret)
    }
}

/// Verifies a delivery against `secrets` (one `whsec_` secret or a comma-separated list, any
/// of which may have signed it); returns its message id. Any entry that is not a `whsec_`
/// secret, or an empty list, is [`SvixError::BadSecret`].
pub fn verify<'a>(
    secrets: &str,
    headers: SvixHeaders<'a>,
    body: &[u8],
    now: i64,
) -> Result<&'a str, SvixError> {
    let keys = listed_secrets(secrets)
        .map(secret_key)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(SvixError::BadSecret);
    }
    let id = required(headers.id, "svix-id")?;
    let timestamp = required(headers.timestamp, "svix-timestamp")?;
    let signatures = required(headers.signature, "svix-signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| SvixError::BadTimestamp)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(SvixError::TimestampOutOfTolerance);
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|entry| match entry.split_once(',') {
            Some(("v1", encoded)) => B64.decode(encoded).ok(),
            _ => None,
        })
        .collect();
    let matches = keys.iter().any(|key| {
        let mut signed = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        signed.update(format!("{id}.{ts}.").as_bytes());
        signed.update(body);
        // verify_slice compares in constant time.
        candidates
            .iter()
            .any(|candidate| signed.clone().verify_slice(candidate).is_ok())
    });
    if matches {
        Ok(id)
    } else {
        Err(SvixError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from Svix's "Verifying Webhooks Manually" documentation.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // the documented example
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(signature: &'a str, timestamp: &'a str) -> SvixHeaders<'a> {
        SvixHeaders {
            id: Some(ID),
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    #[test]
    fn the_documented_example_verifies() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(
            verify(SECRET, headers(SIGNATURE, &ts), BODY, TIMESTAMP),
            Ok(ID)
        );
        let key = secret_key(SECRET).unwrap();
        assert_eq!(sign(&key, ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn any_listed_signature_may_match() {
        let ts = TIMESTAMP.to_string();
        let list = format!("v1,bm90IGl0 v2,abc {SIGNATURE}");
        assert_eq!(verify(SECRET, headers(&list, &ts), BODY, TIMESTAMP), Ok(ID));
    }

    #[test]
    fn a_delivery_signed_with_any_listed_secret_verifies() {
        let ts = TIMESTAMP.to_string();
        let other = "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA=="; // a made-up test key
        let list = format!("{other}, {SECRET}");
        assert_eq!(
            verify(&list, headers(SIGNATURE, &ts), BODY, TIMESTAMP),
            Ok(ID)
        );
        let by_other = sign(&secret_key(other).unwrap(), ID, TIMESTAMP, BODY);
        assert_eq!(
            verify(&list, headers(&by_other, &ts), BODY, TIMESTAMP),
            Ok(ID)
        );
        let unlisted = "whsec_bm9ib2R5IGxpc3RlZCB0aGlzIGtleQ=="; // a made-up test key
        let by_neither = sign(&secret_key(unlisted).unwrap(), ID, TIMESTAMP, BODY);
        assert_eq!(
            verify(&list, headers(&by_neither, &ts), BODY, TIMESTAMP),
            Err(SvixError::NoMatchingSignature)
        );
        let with_bad = format!("whsec_***,{SECRET}");
        assert_eq!(
            verify(&with_bad, headers(SIGNATURE, &ts), BODY, TIMESTAMP),
            Err(SvixError::BadSecret)
        );
        assert_eq!(
            verify(" , ", headers(SIGNATURE, &ts), BODY, TIMESTAMP),
            Err(SvixError::BadSecret)
        );
    }

    #[test]
    fn a_changed_body_or_signature_is_refused() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(
            verify(
                SECRET,
                headers(SIGNATURE, &ts),
                br#"{"test": 2432232315}"#,
                TIMESTAMP
            ),
            Err(SvixError::NoMatchingSignature)
        );
        let other = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=";
        assert_eq!(
            verify(SECRET, headers(other, &ts), BODY, TIMESTAMP),
            Err(SvixError::NoMatchingSignature)
        );
        let wrong_secret = "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA=="; // a made-up test key
        assert_eq!(
            verify(wrong_secret, headers(SIGNATURE, &ts), BODY, TIMESTAMP),
            Err(SvixError::NoMatchingSignature)
        );
    }

    #[test]
    fn the_timestamp_must_be_within_five_minutes() {
        let ts = TIMESTAMP.to_string();
        assert!(verify(SECRET, headers(SIGNATURE, &ts), BODY, TIMESTAMP + 300).is_ok());
        assert_eq!(
            verify(SECRET, headers(SIGNATURE, &ts), BODY, TIMESTAMP + 360),
            Err(SvixError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(SECRET, headers(SIGNATURE, &ts), BODY, TIMESTAMP - 360),
            Err(SvixError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(SECRET, headers(SIGNATURE, "soon"), BODY, TIMESTAMP),
            Err(SvixError::BadTimestamp)
        );
    }

    #[test]
    fn missing_headers_and_bad_secrets_are_named() {
        let ts = TIMESTAMP.to_string();
        let mut h = headers(SIGNATURE, &ts);
        h.id = None;
        assert_eq!(
            verify(SECRET, h, BODY, TIMESTAMP),
            Err(SvixError::MissingHeader("svix-id"))
        );
        let mut h = headers(SIGNATURE, &ts);
        h.signature = Some("  ");
        assert_eq!(
            verify(SECRET, h, BODY, TIMESTAMP),
            Err(SvixError::MissingHeader("svix-signature"))
        );
        assert_eq!(
            verify("whsec_***", headers(SIGNATURE, &ts), BODY, TIMESTAMP),
            Err(SvixError::BadSecret)
        );
    }
}
