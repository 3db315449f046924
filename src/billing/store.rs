//! `billing_customers`, `subscriptions` and `subscription_history`: who a Stripe customer is,
//! the state the newest applied change left each subscription in, and every change.
//!
//! A subscription change applies only if it is at least as new as the one already applied
//! (`event_created`), and never brings a canceled subscription back: events that arrive out
//! of order cannot roll a subscription back. The user's plan is derived from their live
//! subscriptions in the same transaction.

use serde::{Deserialize, Serialize};
use worker::{query, D1Database};

use crate::core::random;
use crate::error::AppError;

/// Statuses in which a subscription grants its plan (Stripe retries a failed payment while
/// `past_due`; the plan is kept until Stripe gives up and cancels).
pub const LIVE_STATUSES: &str = "('active', 'trialing', 'past_due')";

/// SQL for the plan a user's subscriptions give: the plan of their newest live subscription,
/// else `default` (`user` and `default` are SQL expressions, e.g. `?1`, `users.id`).
pub fn derived_plan(user: &str, default: &str) -> String {
    format!(
        "COALESCE((SELECT plan FROM subscriptions WHERE user_id = {user} \
           AND status IN {LIVE_STATUSES} ORDER BY updated_at DESC, id DESC LIMIT 1), {default})"
    )
}

/// The user's Stripe customer id, if they have one.
pub async fn customer_of(db: &D1Database, user_id: &str) -> Result<Option<String>, AppError> {
    #[derive(Deserialize)]
    struct Row {
        customer_id: String,
    }
    Ok(query!(
        db,
        "SELECT customer_id FROM billing_customers WHERE user_id = ?1",
        user_id
    )?
    .first::<Row>(None)
    .await?
    .map(|r| r.customer_id))
}

/// Remembers the user's customer; if one was stored meanwhile, that one wins and is returned.
pub async fn save_customer(
    db: &D1Database,
    user_id: &str,
    customer_id: &str,
    now: &str,
) -> Result<String, AppError> {
    query!(
        db,
        "INSERT INTO billing_customers (user_id, customer_id, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id) DO NOTHING",
        user_id,
        customer_id,
        now
    )?
    .run()
    .await?;
    customer_of(db, user_id)
        .await?
        .ok_or_else(|| AppError::Internal("billing customer missing after insert".to_owned()))
}

/// The user a Stripe customer belongs to.
pub async fn user_of_customer(
    db: &D1Database,
    customer_id: &str,
) -> Result<Option<String>, AppError> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    Ok(query!(
        db,
        "SELECT user_id FROM billing_customers WHERE customer_id = ?1",
        customer_id
    )?
    .first::<Row>(None)
    .await?
    .map(|r| r.user_id))
}

const COLUMNS: &str = "id, user_id, customer_id, item_id, price_id, plan, status, \
                       cancel_at_period_end, current_period_end, event_created, created_at, \
                       updated_at";

/// A subscription as stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StoredSubscription {
    pub id: String,
    pub user_id: String,
    pub customer_id: String,
    pub item_id: Option<String>,
    pub price_id: String,
    pub plan: String,
    pub status: String,
    #[serde(deserialize_with = "flag")]
    pub cancel_at_period_end: bool,
    pub current_period_end: Option<String>,
    pub event_created: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// SQLite stores booleans as 0 and 1.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(f64::deserialize(d)? != 0.0)
}

/// A subscription by Stripe id.
pub async fn subscription(
    db: &D1Database,
    id: &str,
) -> Result<Option<StoredSubscription>, AppError> {
    let sql = format!("SELECT {COLUMNS} FROM subscriptions WHERE id = ?1");
    Ok(query!(db, &sql, id)?
        .first::<StoredSubscription>(None)
        .await?)
}

/// The user's current subscription: the newest live one, else the newest of any status.
pub async fn current_for_user(
    db: &D1Database,
    user_id: &str,
) -> Result<Option<StoredSubscription>, AppError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE user_id = ?1 \
         ORDER BY status IN {LIVE_STATUSES} DESC, updated_at DESC, id DESC LIMIT 1"
    );
    Ok(query!(db, &sql, user_id)?
        .first::<StoredSubscription>(None)
        .await?)
}

/// A subscription's state to apply.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionState<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub customer_id: &'a str,
    pub item_id: Option<&'a str>,
    pub price_id: &'a str,
    pub plan: &'a str,
    pub status: &'a str,
    pub cancel_at_period_end: bool,
    pub current_period_end: Option<&'a str>,
}

/// Where a change comes from: an event (`evt_...` and its type) or an API call.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The event id, or `api:<request id>`.
    pub source: &'a str,
    /// The event type, or the API action (`cancel`, `update`).
    pub kind: &'a str,
    /// How new the state is (the event's `created`, Unix seconds).
    pub created: i64,
}

/// A line of a user's subscription history.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HistoryLine {
    pub id: String,
    pub subscription_id: Option<String>,
    pub source: String,
    pub kind: String,
    pub status: Option<String>,
    pub from_plan: Option<String>,
    pub to_plan: Option<String>,
    pub created_at: String,
}

const HISTORY_COLUMNS: &str =
    "id, subscription_id, source, kind, status, from_plan, to_plan, created_at";

/// Applies a subscription's state unless a newer change was applied already or it was
/// canceled, and records the change, once per source and kind. Whether or not it applied
/// (a retry, a stale event), the user's plan is derived again from their live subscriptions
/// (`default_plan` when none is live), never kept from an earlier value.
pub async fn apply(
    db: &D1Database,
    state: SubscriptionState<'_>,
    change: Change<'_>,
    default_plan: &str,
    now: &str,
) -> Result<Applied, AppError> {
    let history_id = random::id::<10>("sh_");
    let results = db
        .batch(vec![
            query!(
                db,
                "INSERT INTO subscriptions (id, user_id, customer_id, item_id, price_id, plan, \
                     status, cancel_at_period_end, current_period_end, event_created, \
                     created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11) \
                 ON CONFLICT (id) DO UPDATE SET item_id = COALESCE(excluded.item_id, item_id), \
                     price_id = excluded.price_id, plan = excluded.plan, \
                     status = excluded.status, \
                     cancel_at_period_end = excluded.cancel_at_period_end, \
                     current_period_end = excluded.current_period_end, \
                     event_created = excluded.event_created, updated_at = excluded.updated_at \
                 WHERE subscriptions.event_created <= excluded.event_created \
                   AND subscriptions.status != 'canceled'",
                state.id,
                state.user_id,
                state.customer_id,
                state.item_id,
                state.price_id,
                state.plan,
                state.status,
                i32::from(state.cancel_at_period_end),
                state.current_period_end,
                change.created as f64,
                now
            )?,
            query!(
                db,
                "INSERT INTO subscription_history (id, user_id, subscription_id, source, kind, \
                     status, from_plan, created_at) \
                 SELECT ?1, u.id, ?3, ?4, ?5, ?6, u.plan, ?7 FROM users u \
                 WHERE u.id = ?2 AND changes() = 1 \
                 ON CONFLICT (source, kind, subscription_id) DO NOTHING",
                &history_id,
                state.user_id,
                state.id,
                change.source,
                change.kind,
                state.status,
                now
            )?,
            query!(
                db,
                &format!(
                    "UPDATE users SET plan = {derived}, updated_at = ?3 \
                     WHERE id = ?1 AND plan IS NOT {derived}",
                    derived = derived_plan("?1", "?2")
                ),
                state.user_id,
                default_plan,
                now
            )?,
            query!(
                db,
                "UPDATE subscription_history SET to_plan = (SELECT plan FROM users WHERE id = ?2) \
                 WHERE id = ?1",
                &history_id,
                state.user_id
            )?,
            query!(
                db,
                &format!(
                    "SELECT {HISTORY_COLUMNS} FROM subscription_history \
                     WHERE source = ?1 AND kind = ?2 AND subscription_id = ?3"
                ),
                change.source,
                change.kind,
                state.id
            )?,
        ])
        .await?;
    Ok(
        match results[4].results::<HistoryLine>()?.into_iter().next() {
            Some(line) if line.id == history_id => Applied::Now,
            Some(_) => Applied::Before,
            None => Applied::Stale,
        },
    )
}

/// How applying a change ended.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Applied by this call.
    Now,
    /// The same change was applied before (a retry, or a duplicate): nothing changed.
    Before,
    /// A newer change was applied already, or the subscription is canceled: nothing changed.
    Stale,
}

/// A page of the user's history, newest first, after `(created_at, id)`.
pub async fn history(
    db: &D1Database,
    user_id: &str,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<HistoryLine>, AppError> {
    let (created_at, id) = after.unzip();
    let sql = format!(
        "SELECT {HISTORY_COLUMNS} FROM subscription_history WHERE user_id = ?1 \
           AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3)) \
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    Ok(query!(db, &sql, user_id, created_at, id, limit)?
        .all()
        .await?
        .results::<HistoryLine>()?)
}
