//! The `webhook_events` table: every delivery, stored before it is acknowledged.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::error::AppError;
use crate::storage::changes;
use crate::webhooks::rules::signed::Signer;
use crate::webhooks::rules::status::DeliveryStatus;

/// A delivery as received.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub provider: Signer,
    /// The provider's id for the event (Svix message id, Stripe event id).
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// The raw body.
    pub payload: &'a str,
}

/// What storing a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// First time this event is seen: process it.
    New,
    /// Seen before and settled (`processed` or `ignored`): acknowledge, change nothing.
    Settled(DeliveryStatus),
    /// Seen before but not settled (an earlier attempt failed): process it again.
    Retry,
}

/// Stores the delivery unless its id is already stored.
pub async fn record(
    db: &D1Database,
    delivery: Delivery<'_>,
    now: &str,
) -> Result<Stored, AppError> {
    let inserted = query!(
        db,
        "INSERT INTO webhook_events (provider, event_id, event_type, payload, status, attempts, received_at) \
         VALUES (?1, ?2, ?3, ?4, 'received', 0, ?5) ON CONFLICT (provider, event_id) DO NOTHING",
        delivery.provider.as_str(),
        delivery.event_id,
        delivery.event_type,
        delivery.payload,
        now
    )?
    .run()
    .await?;
    if changes(&inserted)? > 0 {
        return Ok(Stored::New);
    }
    #[derive(Deserialize)]
    struct Row {
        status: DeliveryStatus,
    }
    let row = query!(
        db,
        "SELECT status FROM webhook_events WHERE provider = ?1 AND event_id = ?2",
        delivery.provider.as_str(),
        delivery.event_id
    )?
    .first::<Row>(None)
    .await?
    .ok_or_else(|| AppError::Internal("webhook event vanished after insert".to_owned()))?;
    Ok(if row.status.is_settled() {
        Stored::Settled(row.status)
    } else {
        Stored::Retry
    })
}

/// Records how processing ended: `processed`, `ignored` or `failed` (with the error).
pub fn settle(
    db: &D1Database,
    provider: Signer,
    event_id: &str,
    status: DeliveryStatus,
    error: Option<&str>,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE webhook_events SET status = ?3, error = ?4, attempts = attempts + 1, \
                processed_at = ?5 WHERE provider = ?1 AND event_id = ?2",
        provider.as_str(),
        event_id,
        status.as_str(),
        error,
        now
    )?)
}

/// A stored delivery to process again.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredEvent {
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
}

/// Up to `limit` of the provider's deliveries that failed (fewer than `max_attempts` times),
/// or were received but never settled before `stuck_before`, oldest first.
pub async fn to_retry(
    db: &D1Database,
    provider: Signer,
    max_attempts: u32,
    stuck_before: &str,
    limit: u32,
) -> Result<Vec<StoredEvent>, AppError> {
    Ok(query!(
        db,
        "SELECT event_id, event_type, payload FROM webhook_events \
         WHERE provider = ?1 AND ((status = 'failed' AND attempts < ?2) \
                                  OR (status = 'received' AND received_at < ?3)) \
         ORDER BY received_at LIMIT ?4",
        provider.as_str(),
        max_attempts,
        stuck_before,
        limit
    )?
    .all()
    .await?
    .results::<StoredEvent>()?)
}

/// How many deliveries each provider has in each status.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct StatusCount {
    pub provider: Signer,
    pub status: DeliveryStatus,
    pub count: i64,
}

/// Counts by provider and status.
pub async fn counts(db: &D1Database) -> Result<Vec<StatusCount>, AppError> {
    Ok(db
        .prepare(
            "SELECT provider, status, COUNT(*) AS count FROM webhook_events \
             GROUP BY provider, status ORDER BY provider, status",
        )
        .all()
        .await?
        .results::<StatusCount>()?)
}

/// A delivery whose processing failed.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Failure {
    pub provider: Signer,
    pub event_id: String,
    pub event_type: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub received_at: String,
    pub processed_at: Option<String>,
}

/// The newest `limit` failed deliveries.
pub async fn latest_failures(db: &D1Database, limit: u32) -> Result<Vec<Failure>, AppError> {
    Ok(query!(
        db,
        "SELECT provider, event_id, event_type, attempts, error, received_at, processed_at \
         FROM webhook_events WHERE status = 'failed' \
         ORDER BY COALESCE(processed_at, received_at) DESC LIMIT ?1",
        limit
    )?
    .all()
    .await?
    .results::<Failure>()?)
}
