//! The daily metrics in D1: the one per-day query over the log tables (chat_sessions,
//! chat_messages, voice_requests), the roll-up that replaces `org_daily_metrics`' rows of a
//! window with it, and the portal's read of an org's days (past days from the table, today
//! from the same query, live).

use serde::Deserialize;
use worker::{query, D1Database};

use crate::error::AppError;
use crate::metrics::rules::{p95_rank_sql, Span};

/// The per-(org, site, day) activity of the log rows timestamped in [`?1`, `?2`) (`?3`: one
/// org, or NULL for every org), as the columns of `org_daily_metrics` but `computed_at`:
///
/// - sessions: chat sessions *started* that day (`started_at`);
/// - messages: chat messages of that day, both roles;
/// - latency_avg_ms: the mean latency of that day's assistant messages, rounded to the
///   millisecond; NULL when none has a latency;
/// - latency_p95_ms: their 95th percentile by nearest rank (the ceil(0.95 n)-th smallest);
/// - tokens: input + output tokens of that day's assistant messages;
/// - voice_chars: the characters of that day's voice requests with status `ok`.
///
/// A group with none of these rows is not produced. The roll-up and the live read both use
/// this text, so a day reads the same before and after it is rolled up.
fn per_day_sql() -> String {
    let rank = p95_rank_sql("n");
    format!(
        "WITH \
           msg AS ( \
             SELECT org_id, site_id, substr(created_at, 1, 10) AS day, role, \
                    input_tokens, output_tokens, latency_ms \
             FROM chat_messages \
             WHERE created_at >= ?1 AND created_at < ?2 AND (?3 IS NULL OR org_id = ?3)), \
           chat AS ( \
             SELECT org_id, site_id, day, COUNT(*) AS messages, \
                    SUM(CASE WHEN role = 'assistant' THEN input_tokens + output_tokens ELSE 0 END) \
                      AS tokens, \
                    CAST(ROUND(AVG(CASE WHEN role = 'assistant' THEN latency_ms END)) AS INTEGER) \
                      AS latency_avg_ms \
             FROM msg GROUP BY org_id, site_id, day), \
           ranked AS ( \
             SELECT org_id, site_id, day, latency_ms, \
                    ROW_NUMBER() OVER (PARTITION BY org_id, site_id, day ORDER BY latency_ms) AS r, \
                    COUNT(*) OVER (PARTITION BY org_id, site_id, day) AS n \
             FROM msg WHERE role = 'assistant' AND latency_ms IS NOT NULL), \
           p95 AS ( \
             SELECT org_id, site_id, day, latency_ms AS latency_p95_ms \
             FROM ranked WHERE r = {rank}), \
           sess AS ( \
             SELECT org_id, site_id, substr(started_at, 1, 10) AS day, COUNT(*) AS sessions \
             FROM chat_sessions \
             WHERE started_at >= ?1 AND started_at < ?2 AND (?3 IS NULL OR org_id = ?3) \
             GROUP BY org_id, site_id, day), \
           voice AS ( \
             SELECT org_id, site_id, substr(created_at, 1, 10) AS day, SUM(chars) AS voice_chars \
             FROM voice_requests \
             WHERE status = 'ok' AND created_at >= ?1 AND created_at < ?2 \
               AND (?3 IS NULL OR org_id = ?3) \
             GROUP BY org_id, site_id, day), \
           groups AS ( \
             SELECT org_id, site_id, day FROM chat \
             UNION SELECT org_id, site_id, day FROM sess \
             UNION SELECT org_id, site_id, day FROM voice) \
         SELECT g.org_id AS org_id, g.site_id AS site_id, g.day AS day, \
                COALESCE(s.sessions, 0) AS sessions, COALESCE(c.messages, 0) AS messages, \
                c.latency_avg_ms AS latency_avg_ms, p.latency_p95_ms AS latency_p95_ms, \
                COALESCE(c.tokens, 0) AS tokens, COALESCE(v.voice_chars, 0) AS voice_chars \
         FROM groups g \
           LEFT JOIN chat c ON c.org_id = g.org_id AND c.site_id = g.site_id AND c.day = g.day \
           LEFT JOIN p95 p ON p.org_id = g.org_id AND p.site_id = g.site_id AND p.day = g.day \
           LEFT JOIN sess s ON s.org_id = g.org_id AND s.site_id = g.site_id AND s.day = g.day \
           LEFT JOIN voice v ON v.org_id = g.org_id AND v.site_id = g.site_id AND v.day = g.day"
    )
}

/// Recomputes every org's rows of the window's days from the logs, in one batch: the
/// window's rows are deleted and the recomputed ones inserted (a (org, site, day) without
/// activity keeps no row). The number of rows written.
pub async fn roll_up(db: &D1Database, window: &Span, computed_at: &str) -> Result<usize, AppError> {
    let delete = query!(
        db,
        "DELETE FROM org_daily_metrics WHERE day >= ?1 AND day <= ?2",
        &window.first,
        &window.last
    )?;
    let insert = query!(
        db,
        &format!(
            "INSERT INTO org_daily_metrics (org_id, site_id, day, sessions, messages, \
               latency_avg_ms, latency_p95_ms, tokens, voice_chars, computed_at) \
             SELECT org_id, site_id, day, sessions, messages, latency_avg_ms, latency_p95_ms, \
                    tokens, voice_chars, ?4 \
             FROM ({}) AS d",
            per_day_sql()
        ),
        &window.first,
        &window.end,
        None::<&str>,
        computed_at
    )?;
    let results = db.batch(vec![delete, insert]).await?;
    let written = results.get(1).map(crate::storage::changes).transpose()?;
    Ok(written.unwrap_or(0))
}

/// One day of an org's activity (all its sites, or one).
#[derive(Debug, Clone, Deserialize)]
pub struct DayRow {
    pub day: String,
    pub sessions: i64,
    pub messages: i64,
    /// The messages-weighted mean of the sites' mean latencies.
    pub latency_avg_ms: Option<f64>,
    /// The largest of the sites' 95th percentiles (an upper bound of the day's).
    pub latency_p95_ms: Option<i64>,
    pub tokens: i64,
    pub voice_chars: i64,
}

/// An org's days from `from` to `to` (inclusive, `YYYY-MM-DD`), one site or all: days
/// before `today` from `org_daily_metrics`, `today`'s from the logs (the per-day query) —
/// whatever a roll-up stored for today is not read. Each day's sites are combined.
pub async fn days(
    db: &D1Database,
    org_id: &str,
    from: &str,
    to: &str,
    site_id: Option<&str>,
    today: &Span,
) -> Result<Vec<DayRow>, AppError> {
    let rows = query!(
        db,
        &format!(
            "WITH live AS ({}), \
             sites AS ( \
               SELECT site_id, day, sessions, messages, latency_avg_ms, latency_p95_ms, tokens, \
                      voice_chars \
               FROM org_daily_metrics \
               WHERE org_id = ?3 AND day >= ?4 AND day <= ?5 AND day < ?6 \
               UNION ALL \
               SELECT site_id, day, sessions, messages, latency_avg_ms, latency_p95_ms, tokens, \
                      voice_chars \
               FROM live WHERE day >= ?4 AND day <= ?5) \
             SELECT day, SUM(sessions) AS sessions, SUM(messages) AS messages, \
               CASE WHEN SUM(CASE WHEN latency_avg_ms IS NULL THEN 0 ELSE messages END) = 0 \
                 THEN NULL \
                 ELSE SUM(COALESCE(latency_avg_ms, 0) * messages) * 1.0 \
                      / SUM(CASE WHEN latency_avg_ms IS NULL THEN 0 ELSE messages END) END \
                 AS latency_avg_ms, \
               MAX(latency_p95_ms) AS latency_p95_ms, SUM(tokens) AS tokens, \
               SUM(voice_chars) AS voice_chars \
             FROM sites WHERE (?7 IS NULL OR site_id = ?7) \
             GROUP BY day ORDER BY day",
            per_day_sql()
        ),
        &today.first,
        &today.end,
        org_id,
        from,
        to,
        &today.first,
        site_id
    )?
    .all()
    .await?
    .results::<DayRow>()?;
    Ok(rows)
}
