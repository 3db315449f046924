//! Opaque secrets handed to a client or mailed in a link (refresh tokens, reset and
//! verification tokens): 32 random bytes, base64url, behind a prefix that says what they are.
//! Only their SHA-256 (hex) is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Refresh tokens.
pub const REFRESH_PREFIX: &str = "rt_";
/// Password reset and email verification tokens (mailed in a link).
pub const MAILED_PREFIX: &str = "mt_";

/// The token for these random bytes.
pub fn encode(prefix: &str, random: &[u8; 32]) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random))
}

/// What is stored for a token: SHA-256, lower-case hex.
pub fn digest(token: &str) -> String {
    crate::core::random::hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the shape of a token with `prefix` (so junk is refused before any
/// lookup).
pub fn looks_like(prefix: &str, token: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_base64url_and_stored_as_sha256_hex() {
        let token = encode(REFRESH_PREFIX, &[0xfb; 32]);
        assert!(token.starts_with("rt_") && token.len() == 3 + 43, "{token}");
        assert!(looks_like(REFRESH_PREFIX, &token));
        assert!(!looks_like(MAILED_PREFIX, &token));
        assert!(!looks_like(REFRESH_PREFIX, "rt_short"));
        let stored = digest(&token);
        assert_eq!(stored.len(), 64);
        assert_ne!(stored, digest(&encode(REFRESH_PREFIX, &[0xfa; 32])));
    }
}
