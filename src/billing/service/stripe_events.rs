//! The Stripe webhook pipeline after the signature: an event is stored before it is
//! acknowledged, applied, and its status recorded. A failed event is retried from its stored
//! payload by the scheduled event and by `POST /api/webhooks/retry`; applying it again is
//! harmless (changes are applied once, by event id, and never roll back).

use serde::Serialize;
use worker::{D1Database, Date};

use crate::billing::service::subscriptions::{self as billing, Event, Outcome};
use crate::config::Config;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::webhooks::store::{self as webhook_events, Delivery, Stored};

const PROVIDER: &str = "stripe";

/// How many stored events one retry run processes.
const RETRIES_PER_RUN: u32 = 25;

/// An event received but never settled for this long is retried (its worker died).
const STUCK_AFTER_MS: u64 = 5 * 60 * 1000;

fn now() -> String {
    rfc3339_from_millis(Date::now().as_millis())
}

/// What became of a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `processed`, `ignored` or `failed`; for a duplicate, the stored status.
    pub status: String,
    pub duplicate: bool,
    /// Why it was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Stores a verified event (a duplicate id changes nothing) and applies it.
pub async fn receive(
    db: &D1Database,
    config: &Config,
    event: &Event,
    payload: &str,
) -> Result<Receipt, AppError> {
    let delivery = Delivery {
        provider: PROVIDER,
        event_id: &event.id,
        event_type: &event.kind,
        payload,
    };
    if let Stored::Settled(status) = webhook_events::record(db, delivery, &now()).await? {
        return Ok(Receipt {
            event_id: event.id.clone(),
            kind: event.kind.clone(),
            status,
            duplicate: true,
            reason: None,
        });
    }
    process(db, config, event).await
}

/// Applies a stored event and records how it ended. A failure is recorded, not returned:
/// the event is stored, so it will be retried.
async fn process(db: &D1Database, config: &Config, event: &Event) -> Result<Receipt, AppError> {
    let (status, reason, error) = match billing::apply_event(db, config, event).await {
        Ok(Outcome::Processed) => ("processed", None, None),
        Ok(Outcome::Ignored(why)) => ("ignored", Some(why), None),
        Err(err) => {
            let detail = err.log_detail().unwrap_or_else(|| err.public_message());
            worker::console_error!(
                "{}",
                serde_json::json!({
                    "level": "error", "msg": "stripe event failed; it will be retried",
                    "event_id": event.id, "type": event.kind, "detail": detail,
                })
            );
            ("failed", None, Some(detail))
        }
    };
    webhook_events::settle(db, PROVIDER, &event.id, status, error.as_deref(), &now()).await?;
    Ok(Receipt {
        event_id: event.id.clone(),
        kind: event.kind.clone(),
        status: status.to_owned(),
        duplicate: false,
        reason,
    })
}

/// What a retry run did.
#[derive(Debug, Default, Serialize)]
pub struct RetryReport {
    pub retried: u32,
    pub processed: u32,
    pub ignored: u32,
    pub failed: u32,
}

/// Retries failed events (and events stuck unsettled) from their stored payloads.
pub async fn retry(db: &D1Database, config: &Config) -> Result<RetryReport, AppError> {
    let stuck_before = rfc3339_from_millis(Date::now().as_millis().saturating_sub(STUCK_AFTER_MS));
    let due = webhook_events::to_retry(
        db,
        PROVIDER,
        config.billing.webhook_max_attempts,
        &stuck_before,
        RETRIES_PER_RUN,
    )
    .await?;
    let mut report = RetryReport::default();
    for stored in due {
        report.retried += 1;
        let event = match Event::parse(stored.payload.as_bytes()) {
            Ok(event) => event,
            Err(problem) => {
                // Stored payloads were parsed before they were stored; this is corruption.
                webhook_events::settle(
                    db,
                    PROVIDER,
                    &stored.event_id,
                    "failed",
                    Some(&problem),
                    &now(),
                )
                .await?;
                report.failed += 1;
                continue;
            }
        };
        match process(db, config, &event).await?.status.as_str() {
            "processed" => report.processed += 1,
            "ignored" => report.ignored += 1,
            _ => report.failed += 1,
        }
    }
    Ok(report)
}
