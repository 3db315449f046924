//! Devices ("sessions" in the original client API) as other capabilities use them: admitting the device a request
//! names within the plan's limit, listing the active ones, signing them out.

use worker::{D1Database, D1PreparedStatement};

use crate::devices::store;
use crate::error::AppError;

pub use crate::devices::store::{Device, Sighting};

/// The statement that records `sighting` (a new device is admitted only while fewer than
/// `limit` are active), for a caller that runs it in its own batch: it changes a row exactly
/// when the device was admitted.
pub fn sighting_statement(
    db: &D1Database,
    sighting: Sighting<'_>,
    limit: Option<u32>,
) -> Result<D1PreparedStatement, AppError> {
    store::sighting(db, sighting, limit)
}

/// Records `sighting` on its own; false when the device was refused (the plan's limit of
/// devices at once is reached).
pub async fn admit(
    db: &D1Database,
    sighting: Sighting<'_>,
    limit: Option<u32>,
) -> Result<bool, AppError> {
    store::sighted(db, sighting, limit).await
}

/// The user's active devices, most recently seen first.
pub async fn active(db: &D1Database, user_id: &str, now_ms: u64) -> Result<Vec<Device>, AppError> {
    store::active(db, user_id, now_ms).await
}

/// Signs out the devices of an auth session (and the named device), freeing their slots;
/// returns how many were signed out.
pub async fn end(
    db: &D1Database,
    user_id: &str,
    auth_session_id: Option<&str>,
    device_id: Option<&str>,
    now: &str,
) -> Result<usize, AppError> {
    store::end(db, user_id, auth_session_id, device_id, now).await
}
