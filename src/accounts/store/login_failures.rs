//! `account_login_failures`: exact counters of failed sign-ins per email and per client IP
//! (see [`crate::accounts::rules::throttle`]).

use serde::Deserialize;
use worker::{query, D1Database};

use crate::accounts::rules::throttle::{Counter, WINDOW_MS};
use crate::error::AppError;

#[derive(Deserialize)]
struct Row {
    window_start_ms: f64,
    failures: f64,
}

/// Counts this attempt as a failure under each `(key, limit)`, one atomic upsert per key in
/// one batch: counted only while the counter is under its limit or its window has closed (a
/// closed window starts over at it). Answers each counter including this attempt, or `None`
/// where it was at its limit and counted nothing, in the order given.
pub async fn claim(
    db: &D1Database,
    limits: &[(&str, u32)],
    now_ms: u64,
) -> Result<Vec<Option<Counter>>, AppError> {
    let mut statements = Vec::with_capacity(limits.len());
    for (key, limit) in limits {
        statements.push(query!(
            db,
            "INSERT INTO account_login_failures (key, window_start_ms, failures) \
             VALUES (?1, ?2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN window_start_ms + ?3 <= ?2 THEN 1 ELSE failures + 1 END, \
               window_start_ms = CASE WHEN window_start_ms + ?3 <= ?2 THEN ?2 \
                                      ELSE window_start_ms END \
             WHERE window_start_ms + ?3 <= ?2 OR failures < ?4 \
             RETURNING window_start_ms, failures",
            *key,
            now_ms as f64,
            WINDOW_MS as f64,
            *limit
        )?);
    }
    let mut counters = Vec::with_capacity(limits.len());
    for result in db.batch(statements).await? {
        counters.push(
            result
                .results::<Row>()?
                .into_iter()
                .next()
                .map(|row| Counter {
                    window_start_ms: row.window_start_ms as u64,
                    failures: row.failures as u32,
                }),
        );
    }
    Ok(counters)
}

/// The counters stored under these keys, in the same order (`None`: none yet).
pub async fn counters(db: &D1Database, keys: &[&str]) -> Result<Vec<Option<Counter>>, AppError> {
    let mut statements = Vec::with_capacity(keys.len());
    for key in keys {
        statements.push(query!(
            db,
            "SELECT window_start_ms, failures FROM account_login_failures WHERE key = ?1",
            *key
        )?);
    }
    let mut counters = Vec::with_capacity(keys.len());
    for result in db.batch(statements).await? {
        counters.push(
            result
                .results::<Row>()?
                .into_iter()
                .next()
                .map(|row| Counter {
                    window_start_ms: row.window_start_ms as u64,
                    failures: row.failures as u32,
                }),
        );
    }
    Ok(counters)
}

/// Gives back the failures [`claim`] counted (for an attempt whose password was right, or
/// that another counter refused): one per key, in the window it was counted in (a window
/// that started over since is left alone).
pub async fn release(db: &D1Database, claimed: &[(&str, Counter)]) -> Result<(), AppError> {
    if claimed.is_empty() {
        return Ok(());
    }
    let mut statements = Vec::with_capacity(claimed.len());
    for (key, counter) in claimed {
        statements.push(query!(
            db,
            "UPDATE account_login_failures SET failures = MAX(failures - 1, 0) \
             WHERE key = ?1 AND window_start_ms = ?2",
            *key,
            counter.window_start_ms as f64
        )?);
    }
    db.batch(statements).await?;
    Ok(())
}
