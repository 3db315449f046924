//! `account_login_failures`: exact counters of failed sign-ins per email and per client IP.

use serde::Deserialize;
use worker::{query, D1Database};

use crate::accounts::rules::throttle::{Counter, WINDOW_MS};
use crate::error::AppError;

#[derive(Deserialize)]
struct Row {
    key: String,
    window_start_ms: f64,
    failures: f64,
}

/// The counters stored under these keys, in the same order (`None`: no failures yet).
pub async fn counters(db: &D1Database, keys: &[&str]) -> Result<Vec<Option<Counter>>, AppError> {
    let first = keys.first().copied().unwrap_or_default();
    let second = keys.get(1).copied().unwrap_or(first);
    let rows = query!(
        db,
        "SELECT key, window_start_ms, failures FROM account_login_failures \
         WHERE key IN (?1, ?2)",
        first,
        second
    )?
    .all()
    .await?
    .results::<Row>()?;
    Ok(keys
        .iter()
        .map(|key| {
            rows.iter().find(|r| r.key == *key).map(|r| Counter {
                window_start_ms: r.window_start_ms as u64,
                failures: r.failures as u32,
            })
        })
        .collect())
}

/// Counts one failure under each key: one UPSERT per key, in one batch. A closed window
/// starts over at this failure.
pub async fn record(db: &D1Database, keys: &[&str], now_ms: u64) -> Result<(), AppError> {
    let mut statements = Vec::with_capacity(keys.len());
    for key in keys {
        statements.push(query!(
            db,
            "INSERT INTO account_login_failures (key, window_start_ms, failures) \
             VALUES (?1, ?2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN window_start_ms + ?3 <= ?2 THEN 1 ELSE failures + 1 END, \
               window_start_ms = CASE WHEN window_start_ms + ?3 <= ?2 THEN ?2 \
                                      ELSE window_start_ms END",
            *key,
            now_ms as f64,
            WINDOW_MS as f64
        )?);
    }
    db.batch(statements).await?;
    Ok(())
}
