//! How often a public account action may happen: sign-ups per client IP, reset requests per
//! client IP and per email. Each is a fixed window per key that opens at its first use and
//! lasts an hour; a window holding its limit refuses (`429` with `Retry-After`) until it
//! closes.
//!
//! Exact under concurrency: a use is claimed by one upsert that fails (a CHECK in storage)
//! when its window is full, inside the same batch as what the action stores, so a refused
//! action stores nothing and no burst gets more than the limit through.

/// How long every window lasts.
pub const WINDOW_MS: u64 = 3_600_000;

/// An action bounded per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounded {
    /// Account sign-ups, per client IP.
    SignupPerIp,
    /// Password reset requests, per client IP.
    ResetPerIp,
    /// Password reset requests, per email (known or not: the count says nothing of it).
    ResetPerEmail,
}

impl Bounded {
    /// The stored key of this action's window for `who` (an IP or a normalised email).
    pub fn key(self, who: &str) -> String {
        let kind = match self {
            Self::SignupPerIp => "signup-ip",
            Self::ResetPerIp => "reset-ip",
            Self::ResetPerEmail => "reset-email",
        };
        format!("{kind}:{who}")
    }
}

/// One window as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When it opened, epoch milliseconds.
    pub start_ms: u64,
    /// Uses counted in it.
    pub count: u32,
}

/// Seconds until `window` (with `limit`) admits a use again, or `None` if it does now. A
/// window that has closed counts nothing.
pub fn retry_after(window: Window, limit: u32, now_ms: u64) -> Option<u64> {
    let closes = window.start_ms.saturating_add(WINDOW_MS);
    if now_ms >= closes || window.count < limit {
        return None;
    }
    Some((closes - now_ms).div_ceil(1000).max(1))
}

/// The client IP a key is made of: `CF-Connecting-IP` as sent by Cloudflare, or `unknown`
/// without one (a local run), so every such request shares one window.
pub fn client_ip(header: Option<&str>) -> &str {
    header
        .map(str::trim)
        .filter(|ip| !ip.is_empty() && ip.len() <= 64)
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn a_full_window_refuses_until_it_closes() {
        let four = Window {
            start_ms: T0,
            count: 4,
        };
        assert_eq!(retry_after(four, 5, T0 + 1000), None);
        let five = Window { count: 5, ..four };
        assert_eq!(retry_after(five, 5, T0 + 1000), Some(3599));
        assert_eq!(retry_after(five, 5, T0 + WINDOW_MS - 1), Some(1));
        assert_eq!(retry_after(five, 5, T0 + WINDOW_MS), None);
        // A limit lowered below what the window already holds still refuses.
        assert_eq!(retry_after(five, 3, T0), Some(3600));
    }

    #[test]
    fn keys_name_the_action_and_who() {
        assert_eq!(
            Bounded::SignupPerIp.key("203.0.113.9"),
            "signup-ip:203.0.113.9"
        );
        assert_eq!(Bounded::ResetPerIp.key("::1"), "reset-ip:::1");
        assert_eq!(Bounded::ResetPerEmail.key("a@b.co"), "reset-email:a@b.co");
    }

    #[test]
    fn a_missing_or_odd_ip_shares_the_unknown_window() {
        assert_eq!(client_ip(Some(" 198.51.100.7 ")), "198.51.100.7");
        assert_eq!(client_ip(None), "unknown");
        assert_eq!(client_ip(Some("  ")), "unknown");
        assert_eq!(client_ip(Some(&"9".repeat(65))), "unknown");
    }
}
