//! The sign-in throttle: failures counted per email and per client IP in fixed windows that
//! open at the first failure. Once a counter holds its limit, every attempt it covers is
//! refused (even with the right password) until its window closes.
//!
//! Exact under concurrency: an attempt is counted as a failure *before* its password is
//! checked, by one atomic upsert per counter that counts it only while the counter is under
//! its limit (or its window has closed); the count is given back when the password was
//! right. So however many attempts arrive at once, at most the limit of them are checked in
//! a window, and a refused attempt counts nothing.

/// How long a window lasts.
pub const WINDOW_MS: u64 = 15 * 60 * 1000;
/// Failures one email may have in a window.
pub const EMAIL_LIMIT: u32 = 5;
/// Failures one client IP may have in a window.
pub const IP_LIMIT: u32 = 20;

/// One counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// When the window opened, epoch milliseconds.
    pub window_start_ms: u64,
    /// Failures in that window.
    pub failures: u32,
}

/// Seconds until `counter` (with `limit`) lets attempts through again, or `None` if it does
/// now. A window that has closed counts nothing.
pub fn retry_after(counter: Counter, limit: u32, now_ms: u64) -> Option<u64> {
    let closes = counter.window_start_ms.saturating_add(WINDOW_MS);
    if now_ms >= closes || counter.failures < limit {
        return None;
    }
    Some((closes - now_ms).div_ceil(1000).max(1))
}

/// The longest wait any of the counters imposes, if one refuses.
pub fn verdict(email: Option<Counter>, ip: Option<Counter>, now_ms: u64) -> Option<u64> {
    let by_email = email.and_then(|c| retry_after(c, EMAIL_LIMIT, now_ms));
    let by_ip = ip.and_then(|c| retry_after(c, IP_LIMIT, now_ms));
    by_email.max(by_ip)
}

/// The counter's key for an email (normalised) or an IP.
pub fn email_key(email: &str) -> String {
    format!("email:{email}")
}

/// See [`email_key`].
pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn the_fifth_failure_closes_the_email_until_the_window_ends() {
        let four = Counter {
            window_start_ms: T0,
            failures: 4,
        };
        assert_eq!(verdict(Some(four), None, T0 + 1000), None);
        let five = Counter {
            failures: 5,
            ..four
        };
        assert_eq!(verdict(Some(five), None, T0 + 1000), Some(899));
        assert_eq!(verdict(Some(five), None, T0 + WINDOW_MS - 1), Some(1));
        assert_eq!(verdict(Some(five), None, T0 + WINDOW_MS), None);
    }

    #[test]
    fn twenty_failures_close_the_ip_and_the_longer_wait_wins() {
        let ip = Counter {
            window_start_ms: T0,
            failures: 20,
        };
        assert_eq!(verdict(None, Some(ip), T0), Some(900));
        let nineteen = Counter { failures: 19, ..ip };
        assert_eq!(verdict(None, Some(nineteen), T0), None);
        let email = Counter {
            window_start_ms: T0 + 60_000,
            failures: 5,
        };
        assert_eq!(verdict(Some(email), Some(ip), T0 + 60_000), Some(900));
    }

    #[test]
    fn keys_name_their_kind() {
        assert_eq!(email_key("a@b.co"), "email:a@b.co");
        assert_eq!(ip_key("203.0.113.9"), "ip:203.0.113.9");
    }
}
