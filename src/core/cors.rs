//! The CORS allow-list: which browser origins may call the API.
//!
//! Origins are compared exactly (scheme, host and port), after lower-casing, because a
//! prefix or suffix match is how allow-lists get bypassed (`https://app.example.com.evil.io`).
//! Extension origins are listed like any other: `chrome-extension://<32-letter id>`.

/// Request headers a browser may send cross-origin (answered in preflights).
pub const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key, X-Request-Id, \
X-Site-Key, X-User-Id, X-User-Plan, X-Device-Id, X-Client-Platform";

/// Methods a browser may use cross-origin (answered in preflights).
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// Response headers a browser script may read.
pub const EXPOSED_HEADERS: &str = "X-Request-Id, Retry-After";

/// How long a browser may cache a preflight answer, in seconds.
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 7200;

/// A validated list of allowed origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<String>,
}

impl CorsPolicy {
    /// Parses a comma-separated allow-list. Empty entries are ignored; an entry that is not a
    /// bare origin (`scheme://host[:port]`, no path, no wildcard) is an error naming it.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            origins.push(normalize_origin(entry).ok_or_else(|| {
                format!("`{entry}` is not an origin (expected scheme://host[:port])")
            })?);
        }
        Ok(Self { origins })
    }

    /// Whether `origin` (the request's `Origin` header) is on the list.
    pub fn allows(&self, origin: &str) -> bool {
        match normalize_origin(origin) {
            Some(origin) => self.origins.contains(&origin),
            None => false,
        }
    }

    /// The allowed origins, normalised.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }
}

/// Lower-cases an origin and checks its shape; `None` when it is not a bare origin.
fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    let scheme_ok = !scheme.is_empty()
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    let host_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    (scheme_ok && host_ok).then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXT: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

    fn policy() -> CorsPolicy {
        CorsPolicy::parse(&format!(
            "http://localhost:5173, {EXT} ,https://app.example.com/"
        ))
        .unwrap()
    }

    #[test]
    fn allows_listed_origins_exactly() {
        let p = policy();
        assert!(p.allows("http://localhost:5173"));
        assert!(p.allows(EXT));
        assert!(p.allows("HTTPS://APP.EXAMPLE.COM"));
    }

    #[test]
    fn refuses_lookalikes_and_other_extensions() {
        let p = policy();
        assert!(!p.allows("http://localhost:5174"));
        assert!(!p.allows("https://app.example.com.evil.io"));
        assert!(!p.allows("https://evil.app.example.com"));
        assert!(!p.allows("chrome-extension://zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"));
        assert!(!p.allows("null"));
        assert!(!p.allows(""));
    }

    #[test]
    fn rejects_entries_that_are_not_origins() {
        assert!(CorsPolicy::parse("https://*.example.com").is_err());
        assert!(CorsPolicy::parse("https://example.com/path").is_err());
        assert!(CorsPolicy::parse("example.com").is_err());
        assert!(CorsPolicy::parse("*").is_err());
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        let p = CorsPolicy::parse(" , ").unwrap();
        assert!(p.origins().is_empty());
        assert!(!p.allows("http://localhost:5173"));
    }
}
