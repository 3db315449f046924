//! `account_throttle_windows`: exact per-key windows of public account actions (see
//! [`crate::accounts::rules::windows`]).

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::accounts::rules::windows::{Window, WINDOW_MS};
use crate::error::AppError;

/// The statement that claims one use of `key`'s window: a closed window starts over at
/// `now_ms`; a full one fails the statement (the table's CHECK), and with it the whole batch
/// it is part of — read that failure with [`is_full`].
pub fn claim_statement(
    db: &D1Database,
    key: &str,
    limit: u32,
    now_ms: u64,
) -> Result<D1PreparedStatement, AppError> {
    // In an upsert's SET every column reads the row as it was, so both CASEs see the old
    // window.
    Ok(query!(
        db,
        "INSERT INTO account_throttle_windows (key, window_start_ms, count, max_count) \
         VALUES (?1, ?2, 1, ?3) \
         ON CONFLICT (key) DO UPDATE SET \
           count = CASE WHEN window_start_ms + ?4 <= ?2 THEN 1 ELSE count + 1 END, \
           window_start_ms = CASE WHEN window_start_ms + ?4 <= ?2 THEN ?2 \
                                  ELSE window_start_ms END, \
           max_count = ?3",
        key,
        now_ms as f64,
        limit,
        WINDOW_MS as f64
    )?)
}

/// Whether a batch failed because a claim found its window full.
pub fn is_full(err: &worker::Error) -> bool {
    err.to_string().contains("CHECK constraint failed")
}

#[derive(Deserialize)]
struct Row {
    window_start_ms: f64,
    count: f64,
}

/// The window stored under `key` (`None`: none yet).
pub async fn window(db: &D1Database, key: &str) -> Result<Option<Window>, AppError> {
    let row = query!(
        db,
        "SELECT window_start_ms, count FROM account_throttle_windows WHERE key = ?1",
        key
    )?
    .first::<Row>(None)
    .await?;
    Ok(row.map(|row| Window {
        start_ms: row.window_start_ms as u64,
        count: row.count as u32,
    }))
}
