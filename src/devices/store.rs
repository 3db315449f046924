//! The `device_sessions` table: devices a user is signed in on, capped by their plan.

use serde::{Deserialize, Serialize};
use worker::{query, D1Database, D1PreparedStatement};

use crate::devices::rules::{Platform, DEVICE_TTL_MS};
use crate::error::AppError;
use crate::storage::changes;

/// A device as listed.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Device {
    pub device_id: String,
    pub platform: Platform,
    pub first_seen_at: String,
    pub last_seen_at: String,
    #[serde(skip_serializing)]
    pub last_seen_ms: u64,
}

/// One sighting of a device.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub platform: Platform,
    pub auth_session_id: Option<&'a str>,
    pub now: &'a str,
    pub now_ms: u64,
}

/// The statement that records a device sighting: a device already active is refreshed; a new
/// (or expired, or signed-out) one is admitted only while fewer than `limit` devices are
/// active, decided in the one statement. It changes a row exactly when the device was
/// admitted.
pub fn sighting(
    db: &D1Database,
    s: Sighting<'_>,
    limit: Option<u32>,
) -> Result<D1PreparedStatement, AppError> {
    let cutoff = s.now_ms.saturating_sub(DEVICE_TTL_MS) as f64;
    Ok(query!(
        db,
        "INSERT INTO device_sessions (user_id, device_id, platform, auth_session_id, \
             first_seen_at, last_seen_at, last_seen_ms, ended_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?5, ?6, NULL \
         WHERE ?7 IS NULL \
            OR EXISTS (SELECT 1 FROM device_sessions WHERE user_id = ?1 AND device_id = ?2 \
                       AND ended_at IS NULL AND last_seen_ms > ?8) \
            OR (SELECT COUNT(*) FROM device_sessions WHERE user_id = ?1 \
                AND ended_at IS NULL AND last_seen_ms > ?8) < ?7 \
         ON CONFLICT (user_id, device_id) DO UPDATE SET \
             platform = excluded.platform, auth_session_id = excluded.auth_session_id, \
             first_seen_at = CASE WHEN device_sessions.ended_at IS NOT NULL \
                                    OR device_sessions.last_seen_ms <= ?8 \
                               THEN excluded.first_seen_at ELSE device_sessions.first_seen_at END, \
             last_seen_at = excluded.last_seen_at, last_seen_ms = excluded.last_seen_ms, \
             ended_at = NULL",
        s.user_id,
        s.device_id,
        s.platform.as_str(),
        s.auth_session_id,
        s.now,
        s.now_ms as f64,
        limit,
        cutoff
    )?)
}

/// Records that a device was seen (see [`sighting`]); false when the device was refused.
pub async fn sighted(
    db: &D1Database,
    s: Sighting<'_>,
    limit: Option<u32>,
) -> Result<bool, AppError> {
    let result = sighting(db, s, limit)?.run().await?;
    Ok(changes(&result)? > 0)
}

/// The user's active devices, most recently seen first.
pub async fn active(db: &D1Database, user_id: &str, now_ms: u64) -> Result<Vec<Device>, AppError> {
    let cutoff = now_ms.saturating_sub(DEVICE_TTL_MS) as f64;
    Ok(query!(
        db,
        "SELECT device_id, platform, first_seen_at, last_seen_at, last_seen_ms \
         FROM device_sessions WHERE user_id = ?1 AND ended_at IS NULL AND last_seen_ms > ?2 \
         ORDER BY last_seen_ms DESC, device_id",
        user_id,
        cutoff
    )?
    .all()
    .await?
    .results::<Device>()?)
}

/// Signs out the devices of an auth session (and the named device), freeing their slots.
pub async fn end(
    db: &D1Database,
    user_id: &str,
    auth_session_id: Option<&str>,
    device_id: Option<&str>,
    now: &str,
) -> Result<usize, AppError> {
    let result = query!(
        db,
        "UPDATE device_sessions SET ended_at = ?4 WHERE user_id = ?1 AND ended_at IS NULL \
         AND ((?2 IS NOT NULL AND auth_session_id = ?2) OR (?3 IS NOT NULL AND device_id = ?3))",
        user_id,
        auth_session_id,
        device_id,
        now
    )?
    .run()
    .await?;
    changes(&result)
}
