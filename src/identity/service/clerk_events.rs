//! Applying Clerk webhook events: keep users in sync, deactivate deleted users, end sessions.

use worker::{D1Database, Env};

use crate::clock::now;
use crate::config::Config;
use crate::error::AppError;
use crate::identity::rules::clerk_event::{self, ClerkEvent};
use crate::identity::rules::status::AuthSource;
use crate::identity::store::sessions::{self, SessionRef};
use crate::identity::store::users::{self, ClerkUser};
use crate::log::Logger;
use crate::storage;
use crate::webhooks::rules::signed::Signer;
use crate::webhooks::service::{self as inbox, Applied, Delivery, RetryReport, Settled};

/// The provider name Clerk's deliveries are stored under.
const PROVIDER: Signer = Signer::Clerk;

/// How an event was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changed (or confirmed) state.
    Processed,
    /// Nothing to do for this type.
    Ignored,
}

/// What receiving a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// This `svix-id` was settled before with this outcome; nothing changed now.
    Duplicate(Outcome),
    /// The event was applied now.
    Applied(Outcome),
}

/// A verified delivery: its `svix-id`, type, raw body and the event parsed from it.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a str,
    pub event: &'a ClerkEvent,
}

/// Stores the delivery (unique by `svix-id`) in the webhook inbox before acting on it, then
/// applies it and records how it settled. A repeated, settled `svix-id` changes nothing.
/// When applying fails, the failure is recorded (the inbox retries it) and returned, so Svix
/// redelivers it as well: Clerk's rule for failures.
pub async fn receive(
    env: &Env,
    delivery: Verified<'_>,
    default_plan: &str,
    log: &Logger,
) -> Result<Receipt, AppError> {
    let db = storage::database(env)?;
    let stored = Delivery {
        provider: PROVIDER,
        event_id: delivery.event_id,
        event_type: delivery.event_type,
        payload: delivery.payload,
    };
    let receipt = inbox::receive(&db, stored, || async {
        let outcome = apply(&db, delivery.event, default_plan, &now(), log).await?;
        Ok(applied(outcome))
    })
    .await?;
    if let Some(err) = receipt.error {
        return Err(err);
    }
    let outcome = match receipt.status {
        Settled::Ignored => Outcome::Ignored,
        _ => Outcome::Processed,
    };
    Ok(if receipt.duplicate {
        Receipt::Duplicate(outcome)
    } else {
        Receipt::Applied(outcome)
    })
}

/// Applies again the stored Clerk deliveries that failed, or were never settled.
pub async fn retry(
    db: &D1Database,
    config: &Config,
    log: &Logger,
) -> Result<RetryReport, AppError> {
    let default_plan = config.plans.default_plan().id.clone();
    inbox::retry(
        db,
        PROVIDER,
        config.billing.webhook_max_attempts,
        |stored| {
            let default_plan = default_plan.clone();
            async move {
                // Stored payloads parsed before they were stored; one that no longer does is
                // recorded as failed.
                let (_, event) = clerk_event::parse(stored.payload.as_bytes(), &config.plans)
                    .map_err(|problem| {
                        AppError::Internal(format!("stored Clerk event: {problem}"))
                    })?;
                Ok(applied(
                    apply(db, &event, &default_plan, &now(), log).await?,
                ))
            }
        },
    )
    .await
}

fn applied(outcome: Outcome) -> Applied {
    match outcome {
        Outcome::Processed => Applied::Processed,
        Outcome::Ignored => Applied::Ignored(None),
    }
}

/// Applies one event. Every branch is idempotent, so a retried delivery is harmless.
pub async fn apply(
    db: &D1Database,
    event: &ClerkEvent,
    default_plan: &str,
    now: &str,
    log: &Logger,
) -> Result<Outcome, AppError> {
    match event {
        ClerkEvent::UserUpsert(user) => {
            if let Some(plan) = &user.unknown_plan {
                log.warn(
                    "Clerk user names a plan the catalog lacks; plan unchanged",
                    serde_json::json!({ "user": user.id, "plan": plan }),
                );
            }
            let row = ClerkUser {
                external_id: user.id.clone(),
                email: user.email.clone(),
                username: user.username.clone(),
                display_name: user.display_name.clone(),
                avatar_url: user.avatar_url.clone(),
                plan: user.plan.clone(),
                updated_at_ms: user.updated_at_ms,
            };
            users::sync_from_clerk(db, &row, default_plan, now).await?;
            Ok(Outcome::Processed)
        }
        ClerkEvent::UserDeleted { id } => {
            // A deletion may arrive before the user was ever seen: leave a tombstone.
            users::tombstone(db, AuthSource::Clerk, id, default_plan, now).await?;
            users::deactivate(db, AuthSource::Clerk, id, now).await?;
            crate::provider_keys::service::credits::retire_user_keys(db, AuthSource::Clerk, id)
                .await?;
            Ok(Outcome::Processed)
        }
        ClerkEvent::SessionStarted { id, user_id } => {
            let session = SessionRef {
                id,
                auth_source: AuthSource::Clerk,
                external_user_id: user_id,
            };
            sessions::start(db, session, now).await?;
            Ok(Outcome::Processed)
        }
        ClerkEvent::SessionEnded {
            id,
            user_id,
            reason,
        } => {
            let session = SessionRef {
                id,
                auth_source: AuthSource::Clerk,
                external_user_id: user_id,
            };
            sessions::end(db, session, reason, now).await?;
            Ok(Outcome::Processed)
        }
        ClerkEvent::Ignored => Ok(Outcome::Ignored),
    }
}
