//! The webhook inbox, one flow for every provider (Clerk through Svix, Stripe, and those
//! the next products add): **store → apply → settle → retry**.
//!
//! 1. A verified delivery is stored (unique by provider and event id) before anything acts
//!    on it. A delivery already settled (`processed` or `ignored`) changes nothing.
//! 2. It is applied by the provider's own code (the `apply` given here), which must be
//!    idempotent: a retried event is harmless.
//! 3. How it ended is recorded: `processed`, `ignored`, or `failed` with the error.
//! 4. A failed delivery (or one received and never settled, because its worker died) is
//!    applied again from its stored payload by [`retry`] — the scheduled run and
//!    `POST /api/webhooks/retry` — up to `WEBHOOK_MAX_ATTEMPTS` times.
//!
//! The one rule that differs by provider is what the sender is told when applying fails,
//! and each provider's receiver says which it uses: Clerk's is answered `500`, so Svix
//! redelivers it as well; Stripe's is acknowledged with `status: failed`, since the stored
//! event is retried here.

use std::future::Future;

use serde::Serialize;
use worker::D1Database;

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::billing::service::stripe_events;
use crate::clock::{now, now_ms};
use crate::config::Config;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::identity::service::clerk_events;
use crate::log::Logger;
use crate::webhooks::rules::signed::Signer;
use crate::webhooks::rules::status::DeliveryStatus;
use crate::webhooks::store::{self, Stored};
pub use crate::webhooks::store::{Delivery, Failure, StatusCount, StoredEvent};

/// How many stored events one retry run processes, per provider.
const RETRIES_PER_RUN: u32 = 25;

/// An event received but never settled for this long is retried (its worker died).
const STUCK_AFTER_MS: u64 = 5 * 60 * 1000;

/// How many failures [`status`] lists.
const LATEST_FAILURES: u32 = 20;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It changed (or confirmed) state.
    Processed,
    /// Nothing to do for it; why, where there is more to say than its type.
    Ignored(Option<&'static str>),
}

/// How a delivery stands after [`receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Processed,
    Ignored,
    Failed,
}

impl Settled {
    /// The stored status.
    pub fn stored(self) -> DeliveryStatus {
        match self {
            Settled::Processed => DeliveryStatus::Processed,
            Settled::Ignored => DeliveryStatus::Ignored,
            Settled::Failed => DeliveryStatus::Failed,
        }
    }

    /// The stored status's text.
    pub fn as_str(self) -> &'static str {
        self.stored().as_str()
    }
}

/// What became of one delivery.
#[derive(Debug)]
pub struct Receipt {
    /// Whether it was settled before, so nothing was applied now.
    pub duplicate: bool,
    pub status: Settled,
    /// Why it was ignored, when its provider says.
    pub reason: Option<&'static str>,
    /// Why applying it failed (recorded, and retried).
    pub error: Option<AppError>,
}

/// Stores `delivery` and, unless it was settled before, applies it and records how that
/// ended. Fails only when the delivery could not be stored (nothing was applied then).
pub async fn receive<F, Fut>(
    db: &D1Database,
    delivery: Delivery<'_>,
    apply: F,
) -> Result<Receipt, AppError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Applied, AppError>>,
{
    match store::record(db, delivery, &now()).await? {
        Stored::Settled(status) => Ok(Receipt {
            duplicate: true,
            status: if status == DeliveryStatus::Ignored {
                Settled::Ignored
            } else {
                Settled::Processed
            },
            reason: None,
            error: None,
        }),
        Stored::New | Stored::Retry => {
            let event = (delivery.provider, delivery.event_id, delivery.event_type);
            settle(db, event, apply().await).await
        }
    }
}

/// Records how applying a stored event ended.
async fn settle(
    db: &D1Database,
    (provider, event_id, event_type): (Signer, &str, &str),
    applied: Result<Applied, AppError>,
) -> Result<Receipt, AppError> {
    let receipt = match applied {
        Ok(Applied::Processed) => Receipt {
            duplicate: false,
            status: Settled::Processed,
            reason: None,
            error: None,
        },
        Ok(Applied::Ignored(reason)) => Receipt {
            duplicate: false,
            status: Settled::Ignored,
            reason,
            error: None,
        },
        Err(err) => Receipt {
            duplicate: false,
            status: Settled::Failed,
            reason: None,
            error: Some(err),
        },
    };
    let detail = receipt
        .error
        .as_ref()
        .map(|err| err.log_detail().unwrap_or_else(|| err.public_message()));
    let at = now_ms();
    let settle = store::settle(
        db,
        provider,
        event_id,
        receipt.status.stored(),
        detail.as_deref(),
        &rfc3339_from_millis(at),
    )?;
    if receipt.status == Settled::Processed {
        // The event's effect and its audit row: recorded together.
        let entry = Entry::new(Actor::System(provider.as_str()), Action::WebhookApplied)
            .target(Target::new("webhook_event", event_id))
            .with("provider", provider.as_str())
            .with("type", event_type);
        let occasion = Occasion {
            request_id: Some(event_id),
            now_ms: at,
        };
        db.batch(vec![settle, audit::statement(db, occasion, &entry)?])
            .await?;
    } else {
        settle.run().await?;
    }
    Ok(receipt)
}

/// What a retry run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryReport {
    pub retried: u32,
    pub processed: u32,
    pub ignored: u32,
    pub failed: u32,
}

impl RetryReport {
    /// Adds another run's counts.
    pub fn add(&mut self, other: RetryReport) {
        self.retried += other.retried;
        self.processed += other.processed;
        self.ignored += other.ignored;
        self.failed += other.failed;
    }
}

/// Applies again, from its stored payload, each of `provider`'s deliveries that failed
/// (fewer than `max_attempts` times) or was never settled. `apply` parses and applies one
/// stored payload; a payload that no longer parses is recorded as failed.
pub async fn retry<F, Fut>(
    db: &D1Database,
    provider: Signer,
    max_attempts: u32,
    apply: F,
) -> Result<RetryReport, AppError>
where
    F: Fn(StoredEvent) -> Fut,
    Fut: Future<Output = Result<Applied, AppError>>,
{
    let stuck_before = rfc3339_from_millis(crate::clock::now_ms().saturating_sub(STUCK_AFTER_MS));
    let due = store::to_retry(db, provider, max_attempts, &stuck_before, RETRIES_PER_RUN).await?;
    let mut report = RetryReport::default();
    for stored in due {
        report.retried += 1;
        let (event_id, event_type) = (stored.event_id.clone(), stored.event_type.clone());
        match settle(db, (provider, &event_id, &event_type), apply(stored).await)
            .await?
            .status
        {
            Settled::Processed => report.processed += 1,
            Settled::Ignored => report.ignored += 1,
            Settled::Failed => report.failed += 1,
        }
    }
    Ok(report)
}

/// Retries the failed deliveries of every provider, each applied by its own capability.
pub async fn retry_every_provider(
    db: &D1Database,
    config: &Config,
    log: &Logger,
) -> Result<RetryReport, AppError> {
    let mut report = stripe_events::retry(db, config, log).await?;
    report.add(clerk_events::retry(db, config, log).await?);
    Ok(report)
}

/// Deliveries (of every provider) by provider and status, and the newest failures.
pub async fn status(db: &D1Database) -> Result<(Vec<StatusCount>, Vec<Failure>), AppError> {
    let counts = store::counts(db).await?;
    let failures = store::latest_failures(db, LATEST_FAILURES).await?;
    Ok((counts, failures))
}
