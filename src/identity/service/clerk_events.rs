//! Applying Clerk webhook events: keep users in sync, deactivate deleted users, end sessions.

use worker::{D1Database, Env};

use crate::clock::now;
use crate::error::AppError;
use crate::identity::rules::clerk_event::ClerkEvent;
use crate::identity::store::sessions::{self, SessionRef};
use crate::identity::store::users::{self, ClerkUser};
use crate::storage;
use crate::webhooks::store::{self as webhook_events, Delivery, Stored};

/// The provider name Clerk's deliveries are stored under.
const PROVIDER: &str = "clerk";

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

/// Stores the delivery (unique by `svix-id`) before acting on it, then applies it and
/// records how it settled. A repeated, settled `svix-id` changes nothing. When applying
/// fails, the failure is recorded (best effort) and returned, so Svix retries it.
pub async fn receive(
    env: &Env,
    delivery: Verified<'_>,
    default_plan: &str,
) -> Result<Receipt, AppError> {
    let db = storage::database(env)?;
    let stored = Delivery {
        provider: PROVIDER,
        event_id: delivery.event_id,
        event_type: delivery.event_type,
        payload: delivery.payload,
    };
    match webhook_events::record(&db, stored, &now()).await? {
        // `record` settles only `processed` and `ignored`.
        Stored::Settled(status) if status == "ignored" => {
            return Ok(Receipt::Duplicate(Outcome::Ignored))
        }
        Stored::Settled(_) => return Ok(Receipt::Duplicate(Outcome::Processed)),
        Stored::New | Stored::Retry => {}
    }
    let event_id = delivery.event_id;
    match apply(&db, delivery.event, default_plan, &now()).await {
        Ok(outcome) => {
            let status = match outcome {
                Outcome::Processed => "processed",
                Outcome::Ignored => "ignored",
            };
            webhook_events::settle(&db, PROVIDER, event_id, status, None, &now()).await?;
            Ok(Receipt::Applied(outcome))
        }
        Err(err) => {
            let detail = err.log_detail().unwrap_or_else(|| err.public_message());
            // Best effort: the failure is also in the log line of this request.
            let _ =
                webhook_events::settle(&db, PROVIDER, event_id, "failed", Some(&detail), &now())
                    .await;
            Err(err)
        }
    }
}

/// Applies one event. Every branch is idempotent, so a retried delivery is harmless.
pub async fn apply(
    db: &D1Database,
    event: &ClerkEvent,
    default_plan: &str,
    now: &str,
) -> Result<Outcome, AppError> {
    match event {
        ClerkEvent::UserUpsert(user) => {
            if let Some(plan) = &user.unknown_plan {
                worker::console_warn!(
                    "{}",
                    serde_json::json!({
                        "level": "warn", "msg": "Clerk user names a plan the catalog lacks; plan unchanged",
                        "user": user.id, "plan": plan,
                    })
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
            users::tombstone(db, "clerk", id, default_plan, now).await?;
            users::deactivate(db, "clerk", id, now).await?;
            crate::provider_keys::service::credits::retire_user_keys(db, "clerk", id).await?;
            Ok(Outcome::Processed)
        }
        ClerkEvent::SessionStarted { id, user_id } => {
            let session = SessionRef {
                id,
                auth_source: "clerk",
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
                auth_source: "clerk",
                external_user_id: user_id,
            };
            sessions::end(db, session, reason, now).await?;
            Ok(Outcome::Processed)
        }
        ClerkEvent::Ignored => Ok(Outcome::Ignored),
    }
}
