//! Email addresses as accounts key them: trimmed, lower-cased, and plausibly deliverable.

/// Longest address accepted, in bytes (the practical limit of SMTP paths).
pub const MAX_EMAIL_BYTES: usize = 254;

/// The address trimmed and lower-cased, or why it is refused: exactly one `@`, a non-empty
/// local part, a domain with a dot that neither starts nor ends it, no whitespace or control
/// characters, at most [`MAX_EMAIL_BYTES`].
pub fn normalise(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("is required");
    }
    if email.len() > MAX_EMAIL_BYTES {
        return Err("must be at most 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("must be an email address with one @");
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err("must be an email address such as name@example.com");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(normalise("  Ana@Example.COM ").unwrap(), "ana@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "   ",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "a@b@example.com",
            "ana smith@example.com",
            "ana@.example.com",
            "ana@example.com.",
            "ana@example..com",
            "ana\u{0}@example.com",
        ] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_length_limit_is_254_bytes() {
        let at_limit = format!("{}@example.com", "a".repeat(254 - 12));
        assert_eq!(at_limit.len(), 254);
        assert!(normalise(&at_limit).is_ok());
        let over = format!("{}@example.com", "a".repeat(255 - 12));
        assert!(normalise(&over).is_err());
    }
}
