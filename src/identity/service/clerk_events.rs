//! Applying Clerk webhook events: keep users in sync, deactivate deleted users, end sessions.

use worker::D1Database;

use crate::error::AppError;
use crate::identity::rules::clerk_event::ClerkEvent;
use crate::identity::store::sessions::{self, SessionRef};
use crate::identity::store::users::{self, ClerkUser};

/// How an event was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changed (or confirmed) state.
    Processed,
    /// Nothing to do for this type.
    Ignored,
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
