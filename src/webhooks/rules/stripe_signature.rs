//! Stripe webhook signatures (the `Stripe-Signature` header).
//!
//! Stripe sends `Stripe-Signature: t=1492774577,v1=5257a869...,v1=...,v0=...`: comma-separated
//! `key=value` pairs in any order. `t` is the Unix timestamp of the delivery; each `v1` is a
//! lower-case hex HMAC-SHA256 of `{t}.{raw body}`, keyed with the endpoint secret — the whole
//! `whsec_...` string taken as bytes, *not* base64-decoded (that is Svix's scheme, see
//! [`crate::webhooks::rules::svix`]). There may be several `v1` entries while a secret is being rolled;
//! any one may match. `v0` (a test-mode scheme) and unknown keys are ignored. A delivery whose
//! timestamp is more than five minutes from now, in either direction, is refused so a captured
//! delivery cannot be replayed later.
//!
//! The configured secret may be a comma-separated list (several endpoints deliver to one
//! Tollgate, or a secret is being rotated): a delivery signed with any of them verifies.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::random::hex;

/// How far `t` may be from now, either way: five minutes (Stripe's default tolerance).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// There is no `Stripe-Signature` header, or it is blank.
    MissingHeader,
    /// The header has no `key=value` pairs, or its `t` is not an integer (or appears twice).
    Malformed,
    /// The header has no `t` pair.
    NoTimestamp,
    /// The signature matches but `t` is more than [`TOLERANCE_SECS`] from now.
    TimestampOutOfTolerance,
    /// No `v1` signature matches the body under the secret.
    NoMatchingSignature,
}

impl SignatureError {
    /// A sentence for the error envelope (says nothing about the expected MAC).
    pub fn message(&self) -> String {
        match self {
            Self::MissingHeader => "missing Stripe-Signature header".to_owned(),
            Self::Malformed => "Stripe-Signature header is malformed".to_owned(),
            Self::NoTimestamp => "Stripe-Signature header has no timestamp".to_owned(),
            Self::TimestampOutOfTolerance => {
                "Stripe-Signature timestamp is outside the 5-minute tolerance".to_owned()
            }
            Self::NoMatchingSignature => "no Stripe-Signature v1 signature matches".to_owned(),
        }
    }
}

/// The secrets of a setting that may list several, comma-separated (blank entries ignored).
pub fn listed_secrets(setting: &str) -> impl Iterator<Item = &str> {
    setting.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The MAC of `{timestamp}.{body}` under `secret`, ready to finalize or verify.
fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac
}

/// The hex `v1` signature of a delivery (what Stripe sends, and what tests forge).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex(&mac(secret, timestamp, body).finalize().into_bytes())
}

/// A whole `Stripe-Signature` header value for a delivery: `t={timestamp},v1={signature}`.
pub fn header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// Decodes hex digits (either case); `None` for an odd length or a non-hex character.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    use crate::core::random::hex_digit as digit;
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

/// Verifies a delivery against the `Stripe-Signature` header; returns its timestamp.
///
/// `now_secs` is the current Unix time. The signature is checked before the timestamp, so
/// [`SignatureError::TimestampOutOfTolerance`] is only reported for an authentic (but stale or
/// future-dated) delivery. `secrets` is the setting: one secret or a comma-separated list, any
/// of which may have signed the delivery; an empty list never matches.
pub fn verify(
    secrets: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::MissingHeader)?;

    let mut any_pair = false;
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<&str> = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            continue;
        }
        any_pair = true;
        match key {
            "t" => {
                let t = value.parse().map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => signatures.push(value),
            _ => {} // v0 and anything newer we do not know.
        }
    }
    if !any_pair {
        return Err(SignatureError::Malformed);
    }
    let timestamp = timestamp.ok_or(SignatureError::NoTimestamp)?;

    let candidates: Vec<Vec<u8>> = signatures.iter().filter_map(|c| hex_decode(c)).collect();
    let matches = listed_secrets(secrets).any(|secret| {
        let expected = mac(secret, timestamp, body);
        // verify_slice compares in constant time.
        candidates
            .iter()
            .any(|candidate| expected.clone().verify_slice(candidate).is_ok())
    });
    if !matches {
        return Err(SignatureError::NoMatchingSignature);
    }

    if now_secs.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret"; // a made-up test secret
    const TIMESTAMP: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    // printf '%s' '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac 'whsec_test_secret'
    const SIGNATURE: &str = "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a";

    fn valid_header() -> String {
        format!("t={TIMESTAMP},v1={SIGNATURE}")
    }

    #[test]
    fn an_independently_computed_vector_verifies() {
        assert_eq!(sign(SECRET, TIMESTAMP, BODY), SIGNATURE);
        assert_eq!(header(SECRET, TIMESTAMP, BODY), valid_header());
        assert_eq!(
            verify(SECRET, Some(&valid_header()), BODY, TIMESTAMP),
            Ok(TIMESTAMP)
        );
    }

    #[test]
    fn pairs_may_come_in_any_order_with_v0_and_unknown_keys() {
        let h = format!("v0=deadbeef,v1={SIGNATURE},x=1,t={TIMESTAMP}");
        assert_eq!(verify(SECRET, Some(&h), BODY, TIMESTAMP), Ok(TIMESTAMP));
    }

    #[test]
    fn any_listed_v1_may_match() {
        let other = sign("whsec_old_secret", TIMESTAMP, BODY);
        let h = format!("t={TIMESTAMP},v1={other},v1={SIGNATURE}");
        assert_eq!(verify(SECRET, Some(&h), BODY, TIMESTAMP), Ok(TIMESTAMP));
    }

    #[test]
    fn a_delivery_signed_with_any_listed_secret_verifies() {
        let other = "whsec_other_endpoint";
        let list = format!("{other}, {SECRET}");
        assert_eq!(
            verify(&list, Some(&valid_header()), BODY, TIMESTAMP),
            Ok(TIMESTAMP)
        );
        let by_other = header(other, TIMESTAMP, BODY);
        assert_eq!(
            verify(&list, Some(&by_other), BODY, TIMESTAMP),
            Ok(TIMESTAMP)
        );
        let by_neither = header("whsec_unlisted", TIMESTAMP, BODY);
        assert_eq!(
            verify(&list, Some(&by_neither), BODY, TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        for empty in ["", " , ,"] {
            assert_eq!(
                verify(empty, Some(&valid_header()), BODY, TIMESTAMP),
                Err(SignatureError::NoMatchingSignature)
            );
        }
    }

    #[test]
    fn a_v0_only_header_is_refused() {
        let h = format!("t={TIMESTAMP},v0={SIGNATURE}");
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn a_wrong_secret_or_tampered_body_is_refused() {
        assert_eq!(
            verify("whsec_other_secret", Some(&valid_header()), BODY, TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(&valid_header()),
                br#"{"id":"evt_2"}"#,
                TIMESTAMP
            ),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify("", Some(&valid_header()), BODY, TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn a_changed_timestamp_is_refused() {
        // The timestamp is part of the signed payload.
        let h = format!("t={},v1={SIGNATURE}", TIMESTAMP + 1);
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn the_timestamp_must_be_within_five_minutes_either_way() {
        let h = valid_header();
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP + 300),
            Ok(TIMESTAMP)
        );
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP - 300),
            Ok(TIMESTAMP)
        );
        // 301 s old.
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP + 301),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        // 301 s in the future.
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP - 301),
            Err(SignatureError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let h = header(SECRET, i64::MIN, BODY);
        assert_eq!(
            verify(SECRET, Some(&h), BODY, i64::MAX),
            Err(SignatureError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn a_missing_or_blank_header_is_named() {
        assert_eq!(
            verify(SECRET, None, BODY, TIMESTAMP),
            Err(SignatureError::MissingHeader)
        );
        assert_eq!(
            verify(SECRET, Some("   "), BODY, TIMESTAMP),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn a_garbage_header_is_malformed() {
        for garbage in ["garbage", ",,,", "=x,=y", "t=soon,v1=abc", "t=,v1=abc"] {
            assert_eq!(
                verify(SECRET, Some(garbage), BODY, TIMESTAMP),
                Err(SignatureError::Malformed),
                "{garbage}"
            );
        }
        let twice = format!("t={TIMESTAMP},t={TIMESTAMP},v1={SIGNATURE}");
        assert_eq!(
            verify(SECRET, Some(&twice), BODY, TIMESTAMP),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_header_without_t_has_no_timestamp() {
        let h = format!("v1={SIGNATURE}");
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP),
            Err(SignatureError::NoTimestamp)
        );
    }

    #[test]
    fn a_non_hex_v1_simply_does_not_match() {
        let h = format!("t={TIMESTAMP},v1=not-hex-at-all,v1=abc,v1={SIGNATURE}");
        assert_eq!(verify(SECRET, Some(&h), BODY, TIMESTAMP), Ok(TIMESTAMP));
        let h = format!("t={TIMESTAMP},v1=zz{}", &SIGNATURE[2..]);
        assert_eq!(
            verify(SECRET, Some(&h), BODY, TIMESTAMP),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn spaces_after_commas_are_tolerated() {
        let h = format!(" t={TIMESTAMP}, v1=abc,  v1={SIGNATURE} , v0=00 ");
        assert_eq!(verify(SECRET, Some(&h), BODY, TIMESTAMP), Ok(TIMESTAMP));
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(hex_decode("00ff7Fa0"), Some(vec![0x00, 0xff, 0x7f, 0xa0]));
        assert_eq!(hex_decode(""), Some(vec![]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("0g"), None);
        assert_eq!(hex(&hex_decode(SIGNATURE).unwrap()), SIGNATURE);
    }

    #[test]
    fn messages_never_reveal_the_expected_mac() {
        for e in [
            SignatureError::MissingHeader,
            SignatureError::Malformed,
            SignatureError::NoTimestamp,
            SignatureError::TimestampOutOfTolerance,
            SignatureError::NoMatchingSignature,
        ] {
            let m = e.message();
            assert!(!m.is_empty());
            assert!(!m.contains(SIGNATURE));
        }
    }
}
