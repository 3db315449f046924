//! Stripe billing: Checkout, the Billing Portal, cancelling and changing a subscription, and
//! applying Stripe's events to subscriptions and plans (SPEC §6 subscriptions, §9).
//!
//! Plans follow subscriptions: a user's plan is the plan of their newest live subscription
//! (`active`, `trialing`, or `past_due` while Stripe retries a failed payment), else the
//! catalog's default plan. So a paid checkout moves the user to the plan, and a cancellation
//! (`customer.subscription.deleted`, or a subscription that ends `canceled`, `unpaid` or
//! `incomplete_expired`) moves them back to the default plan.

use std::time::Duration;

use serde_json::json;
use worker::D1Database;

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
pub use crate::billing::rules::stripe_event::Event;
use crate::billing::rules::stripe_event::{CheckoutMode, InvoiceOutcome, StripeEvent};
use crate::billing::store::{self as billing, Applied, Change, SubscriptionState};
pub use crate::billing::store::{HistoryLine, StoredSubscription};
use crate::clock::{now, now_ms, now_secs};
use crate::config::Config;
use crate::core::form::Form;
use crate::core::page::{self, PageRequest};
use crate::core::random;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::identity::rules::status::AuthSource;
use crate::identity::service::users::{self, User};
use crate::plans::rules::Plan;
use crate::upstream::clerk::{ClerkApi, ClerkError};
use crate::upstream::stripe::{Session, Stripe, Subscription, Updated};

/// The Stripe client; `not_configured` while `STRIPE_SECRET_KEY` is unset.
pub fn stripe(config: &Config) -> Result<Stripe<'_>, AppError> {
    Ok(Stripe {
        base_url: &config.upstreams.stripe_api,
        secret_key: config.billing.secret_key.require()?,
        timeout: Duration::from_millis(config.billing.timeout_ms),
    })
}

/// The plan a Stripe price buys.
fn plan_of_price<'c>(config: &'c Config, price_id: &str) -> Option<&'c Plan> {
    config
        .plans
        .plans()
        .iter()
        .find(|p| p.stripe_price_id.as_deref() == Some(price_id))
}

/// The price of a plan that can be bought.
pub fn price_of(plan: &Plan) -> Result<&str, AppError> {
    plan.stripe_price_id.as_deref().ok_or_else(|| {
        AppError::invalid(
            "plan",
            format!(
                "the {} plan has no Stripe price and cannot be bought",
                plan.id
            ),
        )
    })
}

/// A user's Stripe customer, and whether Tollgate has it stored yet.
#[derive(Debug, Clone)]
pub struct Customer {
    /// `cus_...`.
    pub id: String,
    stored: bool,
}

/// The user's Stripe customer, created at Stripe on first use. The creation's idempotency key
/// is derived from the user, so concurrent first calls make one customer (and a retry after a
/// failed checkout finds the same one). A new customer is not stored here: the caller keeps
/// it with [`keep_customer`] once the checkout it is for exists, so a failed or refused
/// checkout leaves no customer in storage.
pub async fn customer(
    db: &D1Database,
    stripe: &Stripe<'_>,
    user: &User,
) -> Result<Customer, AppError> {
    if let Some(id) = billing::customer_of(db, &user.id).await? {
        return Ok(Customer { id, stored: true });
    }
    let form = Form::new()
        .optional("email", user.email.as_deref())
        .optional(
            "name",
            user.display_name.as_deref().or(user.username.as_deref()),
        )
        .field("metadata[user_id]", &user.id);
    let id = stripe
        .create_customer(&form, &format!("tollgate-customer-{}", user.id))
        .await?;
    Ok(Customer { id, stored: false })
}

/// Stores the user's customer once a checkout for it was created (nothing if stored already).
pub async fn keep_customer(
    db: &D1Database,
    user: &User,
    customer: &Customer,
) -> Result<(), AppError> {
    if !customer.stored {
        billing::save_customer(db, &user.id, &customer.id, &now()).await?;
    }
    Ok(())
}

/// Where Checkout sends the customer afterwards.
#[derive(Debug, Clone, Copy)]
pub struct Urls<'a> {
    pub success: &'a str,
    pub cancel: &'a str,
}

/// The longest `Idempotency-Key` Stripe accepts.
const MAX_STRIPE_KEY_LEN: usize = 255;

/// The `Idempotency-Key` sent to Stripe for `operation` on behalf of `user_id`: Stripe's keys
/// are account-wide, so a key always names the user and the operation, and the client's key
/// (its `Idempotency-Key` or `request_id`) only tells its own retries apart. Without a client
/// key the call gets a fresh one. A key too long for Stripe carries the client key's SHA-256.
pub fn stripe_idempotency_key(user_id: &str, operation: &str, client_key: Option<&str>) -> String {
    let Some(client_key) = client_key else {
        return random::id::<12>(&format!("tollgate:{user_id}:{operation}:"));
    };
    let key = format!("tollgate:{user_id}:{operation}:{client_key}");
    if key.len() <= MAX_STRIPE_KEY_LEN {
        return key;
    }
    use sha2::{Digest, Sha256};
    let digest = random::hex(&Sha256::digest(client_key.as_bytes()));
    format!("tollgate:{user_id}:{operation}:sha256:{digest}")
}

/// A Checkout Session for `plan`. A user with a live subscription changes it instead.
/// `client_key` is the client's idempotency key, if it sent one.
pub async fn checkout(
    db: &D1Database,
    config: &Config,
    user: &User,
    plan: &Plan,
    urls: Urls<'_>,
    client_key: Option<&str>,
) -> Result<Session, AppError> {
    let price = price_of(plan)?;
    let stripe = stripe(config)?;
    if let Some(current) = billing::current_for_user(db, &user.id).await? {
        if is_live(&current.status) {
            return Err(AppError::Conflict(if current.plan == plan.id {
                format!("you already subscribe to the {} plan", plan.name)
            } else {
                "you already have a subscription; change its plan with \
                 PUT /api/subscriptions/update"
                    .to_owned()
            }));
        }
    }
    let customer = customer(db, &stripe, user).await?;
    let form = Form::new()
        .field("mode", "subscription")
        .field("customer", &customer.id)
        .field("client_reference_id", &user.id)
        .field("line_items[0][price]", price)
        .field("line_items[0][quantity]", 1)
        .field("success_url", urls.success)
        .field("cancel_url", urls.cancel)
        .field("metadata[user_id]", &user.id)
        .field("metadata[plan]", &plan.id)
        .field("subscription_data[metadata][user_id]", &user.id)
        .field("subscription_data[metadata][plan]", &plan.id);
    let key = stripe_idempotency_key(&user.id, "checkout", client_key);
    let session = stripe.create_checkout_session(&form, &key).await?;
    keep_customer(db, user, &customer).await?;
    Ok(session)
}

/// A Billing Portal session for the user's customer.
pub async fn portal(
    db: &D1Database,
    config: &Config,
    user: &User,
    return_url: &str,
    client_key: Option<&str>,
) -> Result<Session, AppError> {
    let stripe = stripe(config)?;
    let customer = billing::customer_of(db, &user.id).await?.ok_or_else(|| {
        AppError::Conflict("you have no billing account yet; subscribe first".to_owned())
    })?;
    let form = Form::new()
        .field("customer", &customer)
        .field("return_url", return_url);
    let key = stripe_idempotency_key(&user.id, "portal", client_key);
    stripe.create_portal_session(&form, &key).await
}

/// The user's current subscription: the newest live one, else the newest of any status.
pub async fn current(
    db: &D1Database,
    user_id: &str,
) -> Result<Option<StoredSubscription>, AppError> {
    billing::current_for_user(db, user_id).await
}

/// A page of the user's subscription history, newest first, and the next page's cursor.
pub async fn history(
    db: &D1Database,
    user_id: &str,
    page: &PageRequest,
) -> Result<(Vec<HistoryLine>, Option<String>), AppError> {
    let mut lines = billing::history(db, user_id, page.after_pair()?, page.limit + 1).await?;
    let next_cursor = page::finish(&mut lines, page.limit, |l| [&l.created_at, &l.id]);
    Ok((lines, next_cursor))
}

fn is_live(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due")
}

/// The user's live subscription, or `not_found`.
async fn live_subscription(db: &D1Database, user: &User) -> Result<StoredSubscription, AppError> {
    billing::current_for_user(db, &user.id)
        .await?
        .filter(|s| is_live(&s.status))
        .ok_or_else(|| AppError::NotFound("you have no active subscription".to_owned()))
}

/// Cancels the user's subscription at the end of the period (default) or now.
pub async fn cancel(
    db: &D1Database,
    config: &Config,
    user: &User,
    at_period_end: bool,
    request_id: &str,
) -> Result<StoredSubscription, AppError> {
    let stripe = stripe(config)?;
    let current = live_subscription(db, user).await?;
    let updated = if at_period_end {
        let form = Form::new().field("cancel_at_period_end", "true");
        let key = stripe_idempotency_key(&user.id, "cancel", Some(request_id));
        stripe.update_subscription(&current.id, &form, &key).await?
    } else {
        Updated {
            subscription: stripe.cancel_subscription(&current.id).await?,
            replayed: false,
        }
    };
    let done = !at_period_end || updated.subscription.cancel_at_period_end;
    record_api_change(
        db, config, user, &current, &updated, done, "cancel", request_id,
    )
    .await
}

/// Moves the user's subscription to another plan's price (prorated).
pub async fn change_plan(
    db: &D1Database,
    config: &Config,
    user: &User,
    plan: &Plan,
    request_id: &str,
) -> Result<StoredSubscription, AppError> {
    let price = price_of(plan)?;
    let stripe = stripe(config)?;
    let current = live_subscription(db, user).await?;
    if current.plan == plan.id {
        return Err(AppError::Conflict(format!(
            "you already subscribe to the {} plan",
            plan.name
        )));
    }
    let item = current.item_id.as_deref().ok_or_else(|| {
        AppError::Conflict("this subscription's item is not known yet; retry shortly".to_owned())
    })?;
    let form = Form::new()
        .field("items[0][id]", item)
        .field("items[0][price]", price)
        .field("proration_behavior", "create_prorations");
    let key = stripe_idempotency_key(&user.id, "update", Some(request_id));
    let updated = stripe.update_subscription(&current.id, &form, &key).await?;
    let done = updated
        .subscription
        .items
        .iter()
        .any(|item| item.price_id == price);
    record_api_change(
        db, config, user, &current, &updated, done, "update", request_id,
    )
    .await
}

/// Applies the subscription as Stripe has it now, as a change as new as now. When Stripe
/// replayed an earlier request with the same request id and the change asked for is not
/// there (`done` is false), the current state is still recorded, and the answer is a conflict.
#[allow(clippy::too_many_arguments)]
async fn record_api_change(
    db: &D1Database,
    config: &Config,
    user: &User,
    current: &StoredSubscription,
    updated: &Updated,
    done: bool,
    kind: &str,
    request_id: &str,
) -> Result<StoredSubscription, AppError> {
    let source = format!("api:{request_id}");
    let change = Change {
        source: &source,
        kind,
        created: now_secs(),
    };
    apply_subscription(db, config, &updated.subscription, &user.id, change).await?;
    sync_clerk(db, config, &user.id).await?;
    if updated.replayed && !done {
        return Err(AppError::Conflict(
            "a request with this X-Request-Id was made before, and Stripe answered with its \
             result instead of running this one; nothing changed. Retry with a new X-Request-Id"
                .to_owned(),
        ));
    }
    billing::subscription(db, &current.id)
        .await?
        .ok_or_else(|| AppError::Internal("subscription missing after update".to_owned()))
}

/// How processing an event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It changed state.
    Processed,
    /// Nothing to do (with why): not handled, stale, already applied, not ours.
    Ignored(&'static str),
}

/// For a subscription's `created`, `updated` or `deleted` event, its subscription as Stripe
/// has it now (`GET /v1/subscriptions/{id}`), so events delivered out of order, even two
/// stamped with the same second, always leave the newest state. `None` for any other event
/// (other `customer.subscription.*` types change nothing, so they fetch nothing), or when
/// Stripe is not configured, cannot be reached or does not know it: then the event's own
/// object applies, ordered by the event's `created`.
pub async fn current_subscription(config: &Config, event: &Event) -> Option<Subscription> {
    let StripeEvent::SubscriptionChanged { subscription, .. } = &event.data else {
        return None;
    };
    let id = subscription.id.as_deref()?;
    stripe(config).ok()?.subscription(id).await.ok()
}

/// Applies one event; `current` is its subscription as Stripe has it now
/// ([`current_subscription`]), which wins over the event's object and is as new as now.
/// Errors are worth retrying (Stripe or Clerk failed); everything else is an [`Outcome`].
pub async fn apply_event(
    db: &D1Database,
    config: &Config,
    event: &Event,
    current: Option<&Subscription>,
) -> Result<Outcome, AppError> {
    let change = Change {
        source: &event.id,
        kind: &event.kind,
        created: event.created,
    };
    match &event.data {
        StripeEvent::CheckoutCompleted(session) => {
            if session.mode != Some(CheckoutMode::Subscription) {
                return Ok(Outcome::Ignored("not a subscription checkout"));
            }
            if !session.is_settled() {
                return Ok(Outcome::Ignored("the checkout is not paid"));
            }
            let Some(subscription_id) = session.subscription.as_deref() else {
                return Ok(Outcome::Ignored("the checkout has no subscription"));
            };
            let user_id = session
                .client_reference_id
                .as_deref()
                .or(session.metadata.app_user_id.as_deref())
                .or(session.metadata.user_id.as_deref());
            let Some(user) = named_user(db, config, user_id, change).await? else {
                return Ok(Outcome::Ignored("the checkout is not for a known user"));
            };
            if let Some(customer) = session.customer.as_deref() {
                billing::save_customer(db, &user.id, customer, &now()).await?;
            }
            let subscription = stripe(config)?.subscription(subscription_id).await?;
            let outcome = apply_subscription(db, config, &subscription, &user.id, change).await?;
            sync_clerk(db, config, &user.id).await?;
            Ok(outcome)
        }
        StripeEvent::SubscriptionChanged {
            subscription: object,
            ..
        } => {
            let Some(own) = object.subscription.clone() else {
                return Ok(Outcome::Ignored("not a subscription object"));
            };
            let (subscription, change) = match current.filter(|c| c.id == own.id) {
                Some(current) => (
                    current.clone(),
                    Change {
                        created: now_secs().max(event.created),
                        ..change
                    },
                ),
                None => (own, change),
            };
            let named = object
                .metadata
                .app_user_id
                .as_deref()
                .or(subscription.user_id.as_deref());
            let user = match named_user(db, config, named, change).await? {
                Some(user) => Some(user),
                None => match billing::user_of_customer(db, &subscription.customer).await? {
                    Some(id) => users::get(db, &id).await?,
                    None => None,
                },
            };
            let Some(user) = user else {
                return Ok(Outcome::Ignored("the subscription is not for a known user"));
            };
            let outcome = apply_subscription(db, config, &subscription, &user.id, change).await?;
            sync_clerk(db, config, &user.id).await?;
            Ok(outcome)
        }
        StripeEvent::InvoicePayment {
            outcome: paid @ (InvoiceOutcome::PaymentSucceeded | InvoiceOutcome::PaymentFailed),
            invoice,
        } => {
            let Some(stored) = (match invoice.subscription.as_deref() {
                Some(id) => billing::subscription(db, id).await?,
                None => None,
            }) else {
                return Ok(Outcome::Ignored(
                    "the invoice is not for a known subscription",
                ));
            };
            let status = match (paid, stored.status.as_str()) {
                (InvoiceOutcome::PaymentFailed, "active" | "trialing") => "past_due",
                (InvoiceOutcome::PaymentSucceeded, "past_due" | "incomplete") => "active",
                (_, status) => status,
            };
            let state = SubscriptionState {
                status,
                ..stored_state(&stored)
            };
            let applied = billing::apply(db, state, change, default_plan(config), &now()).await?;
            sync_clerk(db, config, &stored.user_id).await?;
            Ok(outcome(applied))
        }
        _ => Ok(Outcome::Ignored("event type not handled")),
    }
}

fn default_plan(config: &Config) -> &str {
    &config.plans.default_plan().id
}

fn stored_state(s: &StoredSubscription) -> SubscriptionState<'_> {
    SubscriptionState {
        id: &s.id,
        user_id: &s.user_id,
        customer_id: &s.customer_id,
        item_id: s.item_id.as_deref(),
        price_id: &s.price_id,
        plan: &s.plan,
        status: &s.status,
        cancel_at_period_end: s.cancel_at_period_end,
        current_period_end: s.current_period_end.as_deref(),
    }
}

/// The user an event names: by their Tollgate id (`usr_...`, as Tollgate's own checkout
/// names them), or by their Clerk user id (`user_...`, as a checkout made by a Clerk-signed-in
/// app names its customer), whose Tollgate user (`auth_source` `clerk`) is made on the
/// default plan if they never called yet (recorded as `user.created` by Stripe).
async fn named_user(
    db: &D1Database,
    config: &Config,
    id: Option<&str>,
    change: Change<'_>,
) -> Result<Option<User>, AppError> {
    let Some(id) = id else {
        return Ok(None);
    };
    if !is_clerk_user_id(id) {
        return users::get(db, id).await;
    }
    let new = users::NewUser {
        auth_source: AuthSource::Clerk,
        external_id: id,
        email: None,
        username: None,
        plan: default_plan(config),
    };
    let (user, created) = users::find_or_create(db, new, &now()).await?;
    if created {
        let entry = Entry::new(Actor::System("stripe"), Action::UserCreated)
            .target(Target::user(&user.id))
            .with("auth_source", AuthSource::Clerk.as_str())
            .with("cause", change.kind);
        let occasion = Occasion {
            request_id: Some(change.source),
            now_ms: now_ms(),
        };
        audit::record(db, occasion, &entry).await?;
    }
    Ok(Some(user))
}

/// Whether `id` is a Clerk user id (`user_`, then letters, digits and `_`), not a Tollgate
/// one.
fn is_clerk_user_id(id: &str) -> bool {
    id.strip_prefix("user_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 128
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Applies a subscription's state for `user_id`.
async fn apply_subscription(
    db: &D1Database,
    config: &Config,
    subscription: &Subscription,
    user_id: &str,
    change: Change<'_>,
) -> Result<Outcome, AppError> {
    // The item whose price is in the catalog decides the plan, whichever item it is.
    let bought = subscription.items.iter().find_map(|item| {
        plan_of_price(config, &item.price_id).map(|plan| (item.id.as_str(), &item.price_id, plan))
    });
    let stored;
    let (item_id, price, plan) = match bought {
        Some((item, price, plan)) => (Some(item), price.as_str(), plan.id.as_str()),
        None => {
            // Repriced or grandfathered: the subscription keeps the plan it was stored with,
            // and its status changes (cancellation, unpaid) still apply.
            stored = billing::subscription(db, &subscription.id).await?;
            match &stored {
                Some(s) => (s.item_id.as_deref(), s.price_id.as_str(), s.plan.as_str()),
                None => {
                    return Ok(Outcome::Ignored(
                        "the subscription's prices are not in the catalog",
                    ))
                }
            }
        }
    };
    let period_end = subscription
        .current_period_end
        .map(|s| rfc3339_from_millis(s.max(0) as u64 * 1000));
    let state = SubscriptionState {
        id: &subscription.id,
        user_id,
        customer_id: &subscription.customer,
        item_id,
        price_id: price,
        plan,
        status: &subscription.status,
        cancel_at_period_end: subscription.cancel_at_period_end,
        current_period_end: period_end.as_deref(),
    };
    let before = users::get(db, user_id).await?.map(|u| u.plan);
    let applied = billing::apply(db, state, change, default_plan(config), &now()).await?;
    if matches!(applied, Applied::Now) {
        record_plan_change(db, user_id, before.as_deref(), change).await?;
    }
    Ok(outcome(applied))
}

/// Records in the audit log a change of the user's plan that `change` caused, if it changed
/// it: by the user through the API (`api:<request id>`), or by Stripe's event.
async fn record_plan_change(
    db: &D1Database,
    user_id: &str,
    before: Option<&str>,
    change: Change<'_>,
) -> Result<(), AppError> {
    let Some(after) = users::get(db, user_id).await?.map(|u| u.plan) else {
        return Ok(());
    };
    if before == Some(after.as_str()) {
        return Ok(());
    }
    let (actor, request_id) = match change.source.strip_prefix("api:") {
        Some(request_id) => (Actor::User(user_id), request_id),
        None => (Actor::System("stripe"), change.source),
    };
    let entry = Entry::new(actor, Action::PlanChanged)
        .target(Target::user(user_id))
        .with("from", before)
        .with("to", after.as_str())
        .with("cause", change.kind);
    let occasion = Occasion {
        request_id: Some(request_id),
        now_ms: now_ms(),
    };
    audit::record(db, occasion, &entry).await
}

/// A change applied now, or by an earlier attempt at the same event (whose follow-up, such
/// as the Clerk sync, failed), is processed; a stale one is ignored.
fn outcome(applied: Applied) -> Outcome {
    match applied {
        Applied::Now | Applied::Before => Outcome::Processed,
        Applied::Stale => Outcome::Ignored("a newer change was applied already"),
    }
}

/// Writes the user's plan and subscription to their Clerk user's public metadata, when
/// Clerk's Backend API is configured and the user came from Clerk: `{plan, subscribed,
/// subscriptionId}` (`subscribed`: their current subscription is live, `active`, `trialing`
/// or `past_due`; `subscriptionId`: its id, else `null`, which Clerk's merge turns into no
/// key). Failing here fails the event, so it is retried.
async fn sync_clerk(db: &D1Database, config: &Config, user_id: &str) -> Result<(), AppError> {
    let Ok(secret_key) = config.auth.clerk_secret_key.require() else {
        return Ok(());
    };
    let Some(user) = users::get(db, user_id).await? else {
        return Ok(());
    };
    if user.auth_source != AuthSource::Clerk {
        return Ok(());
    }
    let live = billing::current_for_user(db, &user.id)
        .await?
        .filter(|s| is_live(&s.status));
    let clerk = ClerkApi {
        base_url: &config.upstreams.clerk_api,
        secret_key,
    };
    match clerk
        .update_public_metadata(
            &user.external_id,
            &json!({
                "plan": user.plan,
                "subscribed": live.is_some(),
                "subscriptionId": live.map(|s| s.id),
            }),
        )
        .await
    {
        // The Clerk user is gone: nothing to keep in sync.
        Ok(()) | Err(ClerkError::NotFound) => Ok(()),
        Err(ClerkError::Failed(err)) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::stripe_idempotency_key;

    #[test]
    fn stripe_keys_name_the_user_and_the_operation() {
        let a = stripe_idempotency_key("usr_a", "checkout", Some("k1"));
        let b = stripe_idempotency_key("usr_b", "checkout", Some("k1"));
        assert_eq!(a, "tollgate:usr_a:checkout:k1");
        assert_ne!(a, b, "two users never share a key");
        assert_ne!(a, stripe_idempotency_key("usr_a", "portal", Some("k1")));
        assert_eq!(a, stripe_idempotency_key("usr_a", "checkout", Some("k1")));
        let fresh = stripe_idempotency_key("usr_a", "checkout", None);
        assert!(fresh.starts_with("tollgate:usr_a:checkout:"), "{fresh}");
        assert_ne!(fresh, stripe_idempotency_key("usr_a", "checkout", None));
    }

    #[test]
    fn only_clerk_user_ids_are_taken_for_clerk_users() {
        use super::is_clerk_user_id;
        assert!(is_clerk_user_id("user_2abcDEF123"));
        assert!(is_clerk_user_id("user_dev_1"));
        for id in [
            "usr_abc",
            "user_",
            "user_a-b",
            "user_a b",
            "xuser_abc",
            "",
            "user_é",
        ] {
            assert!(!is_clerk_user_id(id), "{id}");
        }
    }

    #[test]
    fn a_long_client_key_is_hashed_to_fit_stripes_limit() {
        let long = "k".repeat(300);
        let key = stripe_idempotency_key("usr_a", "checkout", Some(&long));
        assert!(key.len() <= 255, "{}", key.len());
        assert!(key.starts_with("tollgate:usr_a:checkout:sha256:"), "{key}");
        let other = stripe_idempotency_key("usr_a", "checkout", Some(&"j".repeat(300)));
        assert_ne!(key, other);
    }
}
