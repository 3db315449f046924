//! Per-plan request rate limits and the Workers Rate Limiting bindings that enforce them.
//!
//! A binding's limit is fixed in wrangler.toml, so each distinct `requests_per_minute` in the
//! plan catalog has a binding of its own, named after the number it enforces:
//! `RATE_LIMIT_100` allows 100 requests per 60 s per key. Plans with the same rate share a
//! binding; the key is the user id, so users never share a budget.

/// The window every plan's rate is stated over, in seconds (a binding's `simple.period`).
pub const PERIOD_SECS: u64 = 60;

/// The binding that enforces `requests_per_minute`.
pub fn binding_name(requests_per_minute: u32) -> String {
    format!("RATE_LIMIT_{requests_per_minute}")
}

/// Seconds until the current window ends, at least 1: the limiter counts in fixed windows
/// aligned to the period, so a refused caller is admitted again once the next window starts.
pub fn retry_after_secs(now_ms: u64) -> u64 {
    let into_window = (now_ms / 1000) % PERIOD_SECS;
    (PERIOD_SECS - into_window).max(1)
}

/// What to add to wrangler.toml for a rate no binding enforces yet.
pub fn missing_binding_hint(requests_per_minute: u32) -> String {
    format!(
        "add [[ratelimits]] name = \"{}\", namespace_id = \"<unique integer>\", \
         simple = {{ limit = {requests_per_minute}, period = {PERIOD_SECS} }} to wrangler.toml",
        binding_name(requests_per_minute)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binding_is_named_after_the_rate_it_enforces() {
        assert_eq!(binding_name(100), "RATE_LIMIT_100");
        assert_eq!(binding_name(1), "RATE_LIMIT_1");
    }

    #[test]
    fn retry_after_counts_to_the_next_minute_and_is_never_zero() {
        assert_eq!(retry_after_secs(0), 60);
        assert_eq!(retry_after_secs(59_999), 1);
        assert_eq!(retry_after_secs(60_000), 60);
        assert_eq!(retry_after_secs(1_700_000_045_500), 55);
        for ms in (0..180_000).step_by(250) {
            let secs = retry_after_secs(ms);
            assert!((1..=60).contains(&secs), "{ms} ms gave {secs}");
        }
    }

    #[test]
    fn the_hint_names_the_binding_and_its_limit() {
        let hint = missing_binding_hint(250);
        assert!(hint.contains("name = \"RATE_LIMIT_250\""), "{hint}");
        assert!(hint.contains("limit = 250, period = 60"), "{hint}");
    }
}
