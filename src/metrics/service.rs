//! The daily metrics' flows: the scheduled roll-up ([`roll_up`]) and the portal's read of an
//! org's days with today live ([`days`]).

use serde::Serialize;
use worker::D1Database;

use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::metrics::rules::{self, Span};
use crate::metrics::store;

pub use crate::metrics::store::DayRow;

/// What a roll-up did.
#[derive(Debug, Serialize)]
pub struct RollUpReport {
    /// The first and last day recomputed (`YYYY-MM-DD`, UTC).
    pub first: String,
    pub last: String,
    /// The (org, site, day) rows written.
    pub rows: usize,
}

/// Recomputes `org_daily_metrics` for the last [`rules::WINDOW_DAYS`] UTC days (today
/// included) from the log tables, replacing those days' rows in one batch: safe to run
/// again, or twice at once (each run's batch is atomic and writes the same rows).
pub async fn roll_up(db: &D1Database, now_ms: u64) -> Result<RollUpReport, AppError> {
    let window = rules::window(now_ms);
    let rows = store::roll_up(db, &window, &rfc3339_from_millis(now_ms)).await?;
    Ok(RollUpReport {
        first: window.first,
        last: window.last,
        rows,
    })
}

/// An org's days from `from` to `to` (inclusive, `YYYY-MM-DD`), all its sites or one (the
/// caller checks the site is the org's): past days as rolled up, today (UTC at `now_ms`)
/// computed live from the logs with the roll-up's definitions.
pub async fn days(
    db: &D1Database,
    org_id: &str,
    from: &str,
    to: &str,
    site_id: Option<&str>,
    now_ms: u64,
) -> Result<Vec<DayRow>, AppError> {
    store::days(db, org_id, from, to, site_id, &Span::today(now_ms)).await
}
