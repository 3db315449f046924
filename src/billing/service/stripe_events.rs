//! Stripe's events through the webhook inbox ([`crate::webhooks::service`]): stored before
//! they are acknowledged, applied, settled; a failed event is retried from its stored payload
//! by the scheduled run and by `POST /api/webhooks/retry`. Applying one again is harmless
//! (changes are applied once, by event id, and never roll back).

use serde::Serialize;
use worker::D1Database;

use crate::billing::service::subscriptions::{self as billing, Event, Outcome};
use crate::config::Config;
use crate::error::AppError;
use crate::ledger::service as ledger;
use crate::log::Logger;
use crate::platforms::service as platforms;
use crate::webhooks::rules::signed::Signer;
use crate::webhooks::service::{self as inbox, Applied, Delivery};
pub use crate::webhooks::service::{Failure, RetryReport, StatusCount};

const PROVIDER: Signer = Signer::Stripe;

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

/// Stores a verified event in the webhook inbox (a duplicate id changes nothing) and applies
/// it. A failure to apply it is recorded and retried by the inbox, and the delivery is still
/// acknowledged (`status: failed`): Stripe's rule for failures, since the event is safe.
pub async fn receive(
    db: &D1Database,
    config: &Config,
    event: &Event,
    payload: &str,
    log: &Logger,
) -> Result<Receipt, AppError> {
    let delivery = Delivery {
        provider: PROVIDER,
        event_id: &event.id,
        event_type: &event.kind,
        payload,
    };
    let receipt = inbox::receive(db, delivery, || apply(db, config, event)).await?;
    if let Some(err) = &receipt.error {
        log_failure(log, &event.id, &event.kind, err);
    }
    Ok(Receipt {
        event_id: event.id.clone(),
        kind: event.kind.clone(),
        status: receipt.status.as_str().to_owned(),
        duplicate: receipt.duplicate,
        reason: receipt.reason,
    })
}

/// Applies an event where it belongs: events whose object names a platform's end user to
/// platforms; events about one-time payments (token packs and their refunds) to the token
/// ledger; subscription checkouts and everything else to billing.
async fn apply(db: &D1Database, config: &Config, event: &Event) -> Result<Applied, AppError> {
    let current = billing::current_subscription(config, event).await;
    if let Some(end_user) = &event.end_user {
        let status = current.as_ref().map(|s| s.status.as_str());
        return Ok(
            match platforms::apply_stripe_event(db, event, end_user, status).await? {
                Outcome::Processed => Applied::Processed,
                Outcome::Ignored(why) => Applied::Ignored(Some(why)),
            },
        );
    }
    if event.data.is_one_time_payment() {
        let payment = ledger::PaymentEvent {
            id: &event.id,
            data: &event.data,
            now_ms: crate::clock::now_ms(),
        };
        return Ok(match ledger::apply_payment(db, payment).await? {
            ledger::Applied::Processed => Applied::Processed,
            ledger::Applied::Ignored(why) => Applied::Ignored(Some(why)),
        });
    }
    Ok(
        match billing::apply_event(db, config, event, current.as_ref()).await? {
            Outcome::Processed => Applied::Processed,
            Outcome::Ignored(why) => Applied::Ignored(Some(why)),
        },
    )
}

fn log_failure(log: &Logger, event_id: &str, kind: &str, err: &AppError) {
    let detail = err.log_detail().unwrap_or_else(|| err.public_message());
    log.error(
        "stripe event failed; it will be retried",
        serde_json::json!({ "event_id": event_id, "type": kind, "detail": detail }),
    );
}

/// Applies again, from their stored payloads, the Stripe events that failed or were never
/// settled.
pub async fn retry(
    db: &D1Database,
    config: &Config,
    log: &Logger,
) -> Result<RetryReport, AppError> {
    inbox::retry(
        db,
        PROVIDER,
        config.billing.webhook_max_attempts,
        |stored| async move {
            // Stored payloads were parsed before they were stored; one that no longer does is
            // corruption, recorded as failed.
            let event = Event::parse(stored.payload.as_bytes())
                .map_err(|problem| AppError::Internal(format!("stored Stripe event: {problem}")))?;
            let applied = apply(db, config, &event).await;
            if let Err(err) = &applied {
                log_failure(log, &event.id, &event.kind, err);
            }
            applied
        },
    )
    .await
}
