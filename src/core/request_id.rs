//! Request ids: echo a caller's id when it is safe to log and return, otherwise make one.

/// The longest incoming `X-Request-Id` that is echoed back.
pub const MAX_LEN: usize = 128;

/// Whether an incoming `X-Request-Id` may be echoed: 1 to 128 characters from
/// `[A-Za-z0-9._:-]`, so it can never smuggle anything into a header, a log line or JSON.
pub fn is_acceptable(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= MAX_LEN
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The id for this request: the caller's if acceptable, else a fresh random one.
pub fn resolve(incoming: Option<&str>) -> String {
    match incoming.map(str::trim) {
        Some(id) if is_acceptable(id) => id.to_owned(),
        _ => generate(),
    }
}

/// A fresh id: `req_` and 32 hex digits of randomness (128 bits).
pub fn generate() -> String {
    super::random::id::<16>("req_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_id_shapes() {
        assert!(is_acceptable("3f2a9c1e-8d4b-4c2a-9e1f-0a1b2c3d4e5f"));
        assert!(is_acceptable("req_abc.DEF:123_x"));
        assert!(is_acceptable(&"a".repeat(MAX_LEN)));
    }

    #[test]
    fn rejects_ids_that_could_inject_or_flood() {
        assert!(!is_acceptable(""));
        assert!(!is_acceptable(&"a".repeat(MAX_LEN + 1)));
        assert!(!is_acceptable("abc def"));
        assert!(!is_acceptable("abc\r\nx-evil: 1"));
        assert!(!is_acceptable("a\"b"));
        assert!(!is_acceptable("ünïcode"));
    }

    #[test]
    fn resolve_echoes_a_good_id_and_replaces_a_bad_one() {
        assert_eq!(resolve(Some("client-42")), "client-42");
        assert_eq!(resolve(Some("  client-42 ")), "client-42");
        let made = resolve(Some("bad id"));
        assert!(made.starts_with("req_") && made.len() == 36, "{made}");
        assert!(resolve(None).starts_with("req_"));
    }

    #[test]
    fn generated_ids_are_unique_and_acceptable() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(is_acceptable(&a));
    }
}
