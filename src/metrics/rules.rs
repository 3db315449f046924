//! The roll-up's pure decisions: which UTC days a run recomputes, and which rank is the 95th
//! percentile.

use crate::core::time::rfc3339_from_millis;

/// How many UTC days a roll-up recomputes: today and the 6 days before it. A day's late rows
/// (a message answered after midnight is logged on the next day, by its own `created_at`) are
/// caught by the runs of the following week; older days are left as they were rolled.
pub const WINDOW_DAYS: u64 = 7;

const DAY_MS: u64 = 86_400_000;

/// The UTC day (`YYYY-MM-DD`) of an instant.
pub fn day_of(epoch_ms: u64) -> String {
    rfc3339_from_millis(epoch_ms)[..10].to_owned()
}

/// A span of whole UTC days: rows whose RFC 3339 timestamp `t` has `start <= t < end`, i.e.
/// whose day is between `first` and `last` (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The first day, `YYYY-MM-DD`.
    pub first: String,
    /// The last day, `YYYY-MM-DD`.
    pub last: String,
    /// The day after the last (`YYYY-MM-DD`): timestamps compare below it as text.
    pub end: String,
}

impl Span {
    /// The days from `days_back` days before `now_ms`'s day to that day, inclusive.
    pub fn ending_today(now_ms: u64, days_back: u64) -> Self {
        Span {
            first: day_of(now_ms.saturating_sub(days_back * DAY_MS)),
            last: day_of(now_ms),
            end: day_of(now_ms + DAY_MS),
        }
    }

    /// Today (UTC) alone: what the portal computes live.
    pub fn today(now_ms: u64) -> Self {
        Self::ending_today(now_ms, 0)
    }
}

/// The roll-up's window at `now_ms`: the last [`WINDOW_DAYS`] UTC days, today included.
pub fn window(now_ms: u64) -> Span {
    Span::ending_today(now_ms, WINDOW_DAYS - 1)
}

/// The 1-based rank, in ascending order, of the 95th percentile of `n` values by the
/// nearest-rank method: ceil(0.95 × n). `None` for no values.
pub fn p95_rank(n: u64) -> Option<u64> {
    (n > 0).then(|| (95 * n).div_ceil(100))
}

/// [`p95_rank`] in SQL, over an integer column or expression `n` (> 0): integer division
/// rounds down, so ceil(95n / 100) = (95n + 99) / 100.
pub fn p95_rank_sql(n: &str) -> String {
    format!("((95 * ({n}) + 99) / 100)")
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-28T08:07:53Z
    const NOW: u64 = 1_795_853_273_000;

    #[test]
    fn the_window_is_today_and_the_six_days_before() {
        let w = window(NOW);
        assert_eq!(w.first, "2026-11-22");
        assert_eq!(w.last, "2026-11-28");
        assert_eq!(w.end, "2026-11-29");
    }

    #[test]
    fn the_window_crosses_months_and_years() {
        // 2027-01-02T00:00:00Z
        let w = window(1_798_848_000_000);
        assert_eq!(
            (w.first.as_str(), w.last.as_str(), w.end.as_str()),
            ("2026-12-27", "2027-01-02", "2027-01-03")
        );
    }

    #[test]
    fn today_is_one_day_and_timestamps_compare_as_text() {
        let t = Span::today(NOW);
        assert_eq!(
            (t.first.as_str(), t.last.as_str(), t.end.as_str()),
            ("2026-11-28", "2026-11-28", "2026-11-29")
        );
        // A timestamp of the day sorts at or after its first and before the end.
        let stamp = "2026-11-28T23:59:59.999Z";
        assert!(stamp >= t.first.as_str() && stamp < t.end.as_str());
        assert!("2026-11-29T00:00:00Z" >= t.end.as_str());
        assert!("2026-11-27T23:59:59Z" < t.first.as_str());
    }

    #[test]
    fn the_p95_rank_is_the_nearest_rank() {
        assert_eq!(p95_rank(0), None);
        assert_eq!(p95_rank(1), Some(1));
        assert_eq!(p95_rank(2), Some(2));
        assert_eq!(p95_rank(19), Some(19));
        assert_eq!(p95_rank(20), Some(19));
        assert_eq!(p95_rank(21), Some(20));
        assert_eq!(p95_rank(100), Some(95));
        assert_eq!(p95_rank(101), Some(96));
    }

    #[test]
    fn the_sql_rank_is_the_same_formula() {
        // The SQL's integer arithmetic, evaluated on the host for every n up to 1 000 (written
        // as the SQL writes it, so clippy's `div_ceil` advice does not apply).
        assert_eq!(p95_rank_sql("n"), "((95 * (n) + 99) / 100)");
        for n in 1..=1_000u64 {
            #[allow(clippy::manual_div_ceil)]
            let sql = (95 * n + 99) / 100;
            assert_eq!(Some(sql), p95_rank(n), "n = {n}");
        }
    }
}
