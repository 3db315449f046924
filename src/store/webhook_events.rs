//! The `webhook_events` table: every delivery, stored before it is acknowledged.

use serde::Deserialize;
use worker::{query, D1Database};

use super::changes;
use crate::error::AppError;

/// A delivery as received.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// `clerk` or `stripe`.
    pub provider: &'a str,
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
    Settled(String),
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
        delivery.provider,
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
        status: String,
    }
    let row = query!(
        db,
        "SELECT status FROM webhook_events WHERE provider = ?1 AND event_id = ?2",
        delivery.provider,
        delivery.event_id
    )?
    .first::<Row>(None)
    .await?
    .ok_or_else(|| AppError::Internal("webhook event vanished after insert".to_owned()))?;
    Ok(match row.status.as_str() {
        "processed" | "ignored" => Stored::Settled(row.status),
        _ => Stored::Retry,
    })
}

/// Records how processing ended: `processed`, `ignored` or `failed` (with the error).
pub async fn settle(
    db: &D1Database,
    provider: &str,
    event_id: &str,
    status: &str,
    error: Option<&str>,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE webhook_events SET status = ?3, error = ?4, attempts = attempts + 1, \
                processed_at = ?5 WHERE provider = ?1 AND event_id = ?2",
        provider,
        event_id,
        status,
        error,
        now
    )?
    .run()
    .await?;
    Ok(())
}
