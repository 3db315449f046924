//! `voice_requests`: one row per request that reached the provider.

use worker::{query, D1Database};

use crate::error::AppError;
use crate::voice::rules::RequestStatus;

/// A request that reached the provider, as logged.
pub struct Logged<'a> {
    pub org_id: &'a str,
    pub site_id: &'a str,
    pub chars: u64,
    pub status: RequestStatus,
    pub latency_ms: u64,
    pub at: &'a str,
}

/// Logs one request.
pub async fn log(db: &D1Database, logged: &Logged<'_>) -> Result<(), AppError> {
    query!(
        db,
        "INSERT INTO voice_requests (id, org_id, site_id, chars, status, latency_ms, created_at) \
         VALUES ('vr_' || lower(hex(randomblob(12))), ?1, ?2, ?3, ?4, ?5, ?6)",
        logged.org_id,
        logged.site_id,
        logged.chars as f64,
        logged.status.as_str(),
        logged.latency_ms as f64,
        logged.at
    )?
    .run()
    .await?;
    Ok(())
}
