//! The token ledger's flows: spending, admin grants and adjustments, social rewards, buying a
//! pack through Stripe Checkout, and crediting or debiting it when Stripe's events say it was
//! paid or refunded. Every write is one conditional statement in [`store`]; when it writes
//! nothing, the entry with its key tells a replay (the first answer again) from a refusal.
//! Each new entry and its audit row are written in one D1 batch: both, or neither; a replay
//! that writes no entry writes no audit row.

use worker::{D1Database, D1PreparedStatement};

use crate::audit::rules::{Action, Actor, Entry as AuditEntry, Target};
use crate::audit::service::{self as audit, Occasion};

/// The detail field naming the ledger entry an audit row is about.
const ENTRY_ID: &str = "entry_id";
use crate::billing::rules::stripe_event::{
    Charge, CheckoutMode, Dispute, PaymentStatus, StripeEvent,
};
use crate::billing::service::subscriptions::{self as billing, Urls};
use crate::config::Config;
use crate::core::form::Form;
use crate::core::page::{self, PageRequest};
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::identity::service::users::{self, User};
use crate::ledger::rules::{self, keys, Kind, Pack, Task};
use crate::ledger::store::{self, NewEntry};
pub use crate::ledger::store::{DayKind, Entry, Filter};
use crate::upstream::stripe::Session;

/// The actor stored on entries Stripe's events make.
const STRIPE_ACTOR: &str = "system:stripe";

/// An entry, and whether it answers a retry (made by the first request with its key).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub entry: Entry,
    pub replayed: bool,
}

/// A user's balance, their debt (unrecovered refund and dispute shortfalls, repaid first by
/// every later credit), and when they last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub balance: i64,
    pub debt: i64,
    pub updated_at: Option<String>,
}

/// The user's balance, debt and when they last changed.
pub async fn balance(db: &D1Database, user_id: &str) -> Result<Balance, AppError> {
    Ok(match store::newest(db, user_id).await? {
        Some(entry) => Balance {
            balance: entry.balance_after,
            debt: entry.debt_after,
            updated_at: Some(entry.created_at),
        },
        None => Balance {
            balance: 0,
            debt: 0,
            updated_at: None,
        },
    })
}

/// A page of the user's entries, newest first, and the next page's cursor.
pub async fn transactions(
    db: &D1Database,
    user_id: &str,
    filter: &Filter<'_>,
    request: &PageRequest,
) -> Result<(Vec<Entry>, Option<String>), AppError> {
    let before = match request.after.as_deref() {
        None => None,
        Some([id]) => Some(id.parse::<i64>().map_err(|_| bad_cursor())?),
        Some(_) => return Err(bad_cursor()),
    };
    let mut rows = store::page(db, user_id, filter, before, request.limit + 1).await?;
    let next = if rows.len() > request.limit as usize {
        rows.truncate(request.limit as usize);
        rows.last()
            .map(|r| page::encode_cursor(&[&r.id.to_string()]))
    } else {
        None
    };
    Ok((rows, next))
}

fn bad_cursor() -> AppError {
    AppError::invalid("cursor", "is not a cursor returned by this API")
}

/// The user's sums per UTC day and kind in `[from_ms, to_ms)`.
pub async fn analytics(
    db: &D1Database,
    user_id: &str,
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<DayKind>, AppError> {
    store::daily(
        db,
        user_id,
        &rfc3339_from_millis(from_ms),
        &rfc3339_from_millis(to_ms),
    )
    .await
}

/// A debit the user asked for.
#[derive(Debug, Clone, Copy)]
pub struct Spend<'a> {
    /// Positive: how many tokens to take.
    pub amount: i64,
    pub reason: &'a str,
    pub reference: Option<&'a str>,
    /// The client's idempotency key, as sent.
    pub key: &'a str,
}

/// Takes `spend.amount` tokens from the user: `insufficient_credits` (nothing recorded) when
/// the balance is short; the first answer again for a retried key; `conflict` for a key used
/// by another request.
pub async fn spend(
    db: &D1Database,
    at: Occasion<'_>,
    user_id: &str,
    spend: Spend<'_>,
) -> Result<Recorded, AppError> {
    let key = keys::client(spend.key);
    let now = rfc3339_from_millis(at.now_ms);
    let entry = NewEntry {
        user_id,
        kind: Kind::Use,
        amount: -spend.amount,
        reason: Some(spend.reason),
        reference: spend.reference,
        key: &key,
        actor: user_id,
        at: &now,
    };
    let audit = AuditEntry::new(Actor::User(user_id), Action::TokensUsed)
        .target(Target::user(user_id))
        .with("amount", spend.amount)
        .with("reason", spend.reason);
    append_or_replay(
        db,
        &entry,
        audit::statement_if_inserted(db, at, &audit, ENTRY_ID)?,
        || {
            AppError::InsufficientCredits(format!(
                "not enough tokens: this needs {}; nothing was taken",
                spend.amount
            ))
        },
    )
    .await
}

/// Appends `entry`; when nothing was written, the entry already stored under its key (same
/// kind and amount: a replay; otherwise `conflict`), or `short()` when there is none.
async fn append_or_replay(
    db: &D1Database,
    entry: &NewEntry<'_>,
    audit: D1PreparedStatement,
    short: impl FnOnce() -> AppError,
) -> Result<Recorded, AppError> {
    if let Some(stored) = store::append(db, entry, audit).await? {
        return Ok(Recorded {
            entry: stored,
            replayed: false,
        });
    }
    match store::by_key(db, entry.user_id, entry.key).await? {
        Some(first) if first.kind == entry.kind && first.amount == entry.amount => Ok(Recorded {
            entry: first,
            replayed: true,
        }),
        Some(_) => Err(AppError::Conflict(
            "this idempotency key was used for a different request; nothing changed".to_owned(),
        )),
        None => Err(short()),
    }
}

/// An admin's grant (positive) or adjustment (negative) of a user's tokens.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub amount: i64,
    pub reason: &'a str,
    /// The admin's idempotency key, as sent.
    pub key: &'a str,
}

/// Gives (or takes) tokens to the user `user_id` for the admin `admin_id`: `not_found` for an
/// unknown user, `insufficient_credits` when an adjustment would go below zero.
pub async fn grant(
    db: &D1Database,
    at: Occasion<'_>,
    admin_id: &str,
    user_id: &str,
    grant: Grant<'_>,
) -> Result<Recorded, AppError> {
    let user = users::get(db, user_id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".to_owned()))?;
    let key = keys::admin(grant.key);
    let now = rfc3339_from_millis(at.now_ms);
    let kind = if grant.amount > 0 {
        Kind::Grant
    } else {
        Kind::Adjustment
    };
    let entry = NewEntry {
        user_id: &user.id,
        kind,
        amount: grant.amount,
        reason: Some(grant.reason),
        reference: None,
        key: &key,
        actor: admin_id,
        at: &now,
    };
    let action = match kind {
        Kind::Grant => Action::TokensGranted,
        _ => Action::TokensAdjusted,
    };
    let audit = AuditEntry::new(Actor::User(admin_id), action)
        .target(Target::user(&user.id))
        .with("amount", grant.amount)
        .with("reason", grant.reason);
    append_or_replay(
        db,
        &entry,
        audit::statement_if_inserted(db, at, &audit, ENTRY_ID)?,
        || {
            AppError::InsufficientCredits(format!(
                "the user has fewer than {} tokens; a balance never goes below zero",
                -grant.amount
            ))
        },
    )
    .await
}

/// The user's completed social tasks: task id and when.
pub async fn completed_tasks(
    db: &D1Database,
    user_id: &str,
) -> Result<Vec<(String, String)>, AppError> {
    Ok(store::social_rewards(db, user_id)
        .await?
        .into_iter()
        .filter_map(|e| {
            let task = e.idempotency_key.strip_prefix("social:")?.to_owned();
            Some((task, e.created_at))
        })
        .collect())
}

/// Rewards the user for `task`, once however often or concurrently it is claimed: a second
/// claim is `conflict`.
pub async fn claim_task(
    db: &D1Database,
    at: Occasion<'_>,
    user_id: &str,
    task: &Task,
    proof_url: Option<&str>,
) -> Result<Entry, AppError> {
    let key = keys::social(&task.id);
    let now = rfc3339_from_millis(at.now_ms);
    let entry = NewEntry {
        user_id,
        kind: Kind::SocialReward,
        amount: task.reward,
        reason: Some(&task.title),
        reference: Some(&task.id),
        key: &key,
        actor: user_id,
        at: &now,
    };
    let audit = AuditEntry::new(Actor::User(user_id), Action::TokensSocialReward)
        .target(Target::user(user_id))
        .with("task_id", task.id.as_str())
        .with("amount", task.reward)
        .with("proof_url", proof_url);
    let audit = audit::statement_if_inserted(db, at, &audit, ENTRY_ID)?;
    let Some(stored) = store::append(db, &entry, audit).await? else {
        return Err(AppError::Conflict(format!(
            "the task `{}` is already completed; it rewards once",
            task.id
        )));
    };
    Ok(stored)
}

/// A Stripe Checkout Session in `payment` mode for `pack`. Its metadata, and its payment
/// intent's, name the user, the pack and its tokens, so every event about the payment can
/// credit it. `client_key` is the client's idempotency key, if it sent one.
pub async fn checkout_pack(
    db: &D1Database,
    config: &Config,
    at: Occasion<'_>,
    user: &User,
    pack: &Pack,
    urls: Urls<'_>,
    client_key: Option<&str>,
) -> Result<Session, AppError> {
    let stripe = billing::stripe(config)?;
    let customer = billing::customer(db, &stripe, user).await?;
    let tokens = pack.tokens.to_string();
    let mut form = Form::new()
        .field("mode", "payment")
        .field("customer", &customer.id)
        .field("client_reference_id", &user.id);
    form = match &pack.stripe_price_id {
        Some(price) => form.field("line_items[0][price]", price),
        None => form
            .field("line_items[0][price_data][currency]", &pack.currency)
            .field("line_items[0][price_data][unit_amount]", pack.price_cents)
            .field("line_items[0][price_data][product_data][name]", &pack.name),
    };
    let form = form
        .field("line_items[0][quantity]", 1)
        .field("success_url", urls.success)
        .field("cancel_url", urls.cancel)
        .field("metadata[user_id]", &user.id)
        .field("metadata[token_pack]", &pack.id)
        .field("metadata[tokens]", &tokens)
        .field("payment_intent_data[metadata][user_id]", &user.id)
        .field("payment_intent_data[metadata][token_pack]", &pack.id)
        .field("payment_intent_data[metadata][tokens]", &tokens);
    let operation = format!("token-pack:{}", pack.id);
    let key = billing::stripe_idempotency_key(&user.id, &operation, client_key);
    let session = stripe.create_checkout_session(&form, &key).await?;
    billing::keep_customer(db, user, &customer).await?;
    let audit = AuditEntry::new(Actor::User(&user.id), Action::TokensCheckoutCreated)
        .target(Target::user(&user.id))
        .with("pack", pack.id.as_str())
        .with("tokens", pack.tokens)
        .with("session_id", session.id.as_str());
    audit::record(db, at, &audit).await?;
    Ok(session)
}

/// What an event about a pack payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// An entry was made.
    Processed,
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// A Stripe event about a pack payment (Tollgate's metadata on the object).
#[derive(Debug, Clone, Copy)]
pub struct PaymentEvent<'a> {
    /// Stripe's event id (`evt_...`), recorded as the audit row's request id.
    pub id: &'a str,
    /// What it says: a completed checkout or its delayed payment, a succeeded payment
    /// intent, a refunded charge or a dispute; anything else is ignored.
    pub data: &'a StripeEvent,
    /// When it is applied (epoch millis).
    pub now_ms: u64,
}

/// Credits a paid pack: from a paid payment-mode Checkout Session or a succeeded payment
/// intent carrying Tollgate's metadata, keyed by the payment intent, so whichever event comes
/// first credits and the others change nothing. Anything else is ignored.
pub async fn apply_payment(db: &D1Database, event: PaymentEvent<'_>) -> Result<Applied, AppError> {
    let (metadata, payment_intent) = match event.data {
        StripeEvent::CheckoutCompleted(session)
        | StripeEvent::CheckoutAsyncPaymentSucceeded(session) => {
            if session.mode != Some(CheckoutMode::Payment) {
                return Ok(Applied::Ignored("not a payment checkout"));
            }
            if session.payment_status != Some(PaymentStatus::Paid) {
                return Ok(Applied::Ignored("the checkout is not paid"));
            }
            (&session.metadata, session.payment_intent.as_deref())
        }
        StripeEvent::PaymentIntentSucceeded(intent) => {
            if intent.status.as_deref().is_some_and(|s| s != "succeeded") {
                return Ok(Applied::Ignored("the payment did not succeed"));
            }
            (&intent.metadata, intent.id.as_deref())
        }
        StripeEvent::ChargeRefunded(charge) => return apply_refund(db, &event, charge).await,
        StripeEvent::DisputeCreated(dispute) => return apply_dispute(db, &event, dispute).await,
        _ => return Ok(Applied::Ignored("event type not handled")),
    };
    let (Some(user_id), Some(pack), Some(tokens)) = (
        metadata.user_id.as_deref(),
        metadata.token_pack.as_deref(),
        metadata.tokens.as_deref(),
    ) else {
        return Ok(Applied::Ignored("not a token pack payment"));
    };
    let Some(payment_intent) = payment_intent else {
        return Ok(Applied::Ignored("the payment has no payment intent"));
    };
    let Some(tokens) = tokens
        .parse::<i64>()
        .ok()
        .filter(|t| (1..=rules::MAX_AMOUNT).contains(t))
    else {
        return Ok(Applied::Ignored("the pack's tokens are not a valid amount"));
    };
    let Some(user) = users::get(db, user_id).await? else {
        return Ok(Applied::Ignored("the payment is not for a known user"));
    };
    let key = keys::purchase(payment_intent);
    let now = rfc3339_from_millis(event.now_ms);
    let reason = format!("token pack {pack}");
    let entry = NewEntry {
        user_id: &user.id,
        kind: Kind::Purchase,
        amount: tokens,
        reason: Some(&reason),
        reference: Some(payment_intent),
        key: &key,
        actor: STRIPE_ACTOR,
        at: &now,
    };
    let audit = AuditEntry::new(Actor::System("stripe"), Action::TokensPurchased)
        .target(Target::user(&user.id))
        .with("pack", pack)
        .with("tokens", tokens)
        .with("payment_intent", payment_intent);
    let audit = audit::statement_if_inserted(db, occasion(&event), &audit, ENTRY_ID)?;
    if store::append(db, &entry, audit).await?.is_none() {
        return Ok(Applied::Ignored("the payment was credited already"));
    }
    Ok(Applied::Processed)
}

fn occasion<'a>(event: &PaymentEvent<'a>) -> Occasion<'a> {
    Occasion {
        request_id: Some(event.id),
        now_ms: event.now_ms,
    }
}

/// Debits a refunded pack: `charge.refunded` for a payment intent that has a purchase entry
/// takes back tokens in proportion to `amount_refunded / amount` (cumulative, so each refund
/// takes what earlier ones did not), never below zero: what the balance lacks is the entry's
/// `shortfall`. Other charges (subscriptions) are ignored.
async fn apply_refund(
    db: &D1Database,
    event: &PaymentEvent<'_>,
    charge: &Charge,
) -> Result<Applied, AppError> {
    let (Some(charge_id), Some(payment_intent)) =
        (charge.id.as_deref(), charge.payment_intent.as_deref())
    else {
        return Ok(Applied::Ignored("not a token pack payment"));
    };
    let (Some(amount), Some(refunded)) = (charge.amount, charge.amount_refunded) else {
        return Ok(Applied::Ignored("the charge has no amounts"));
    };
    let Some(purchase) = store::purchase_by_key(db, &keys::purchase(payment_intent)).await? else {
        return Ok(Applied::Ignored("not a token pack payment"));
    };
    let target = rules::refund_target(purchase.amount, refunded, amount);
    let key = keys::refund(charge_id, refunded);
    let now = rfc3339_from_millis(event.now_ms);
    let reason = format!("refund of {refunded} of {amount}");
    let entry = NewEntry {
        user_id: &purchase.user_id,
        kind: Kind::Refund,
        amount: 0,
        reason: Some(&reason),
        reference: Some(payment_intent),
        key: &key,
        actor: STRIPE_ACTOR,
        at: &now,
    };
    // What was debited and what fell short are the entry's (`entry_id`).
    let audit = AuditEntry::new(Actor::System("stripe"), Action::TokensRefunded)
        .target(Target::user(&purchase.user_id))
        .with("payment_intent", payment_intent)
        .with("charge", charge_id)
        .with("amount_refunded", refunded)
        .with("tokens_to_take", target);
    let audit = audit::statement_if_inserted(db, occasion(event), &audit, ENTRY_ID)?;
    if store::append_refund(db, &entry, target, audit)
        .await?
        .is_none()
    {
        return Ok(Applied::Ignored("the refund was debited already"));
    }
    Ok(Applied::Processed)
}

/// Debits a disputed pack: `charge.dispute.created` (a Dispute: `id`, `charge`,
/// `payment_intent`, `amount`, `reason`) for a payment intent that has a purchase entry takes
/// back all of the pack's tokens, less what refunds of it (or an earlier dispute) already
/// accounted for, once per dispute (`stripe:dispute:<dispute>`); what the balance lacks is
/// the entry's `shortfall`, owed as debt. A refund of the same payment after the dispute, or
/// a dispute after a full refund, has nothing left to take.
async fn apply_dispute(
    db: &D1Database,
    event: &PaymentEvent<'_>,
    disputed: &Dispute,
) -> Result<Applied, AppError> {
    let (Some(dispute), Some(payment_intent)) =
        (disputed.id.as_deref(), disputed.payment_intent.as_deref())
    else {
        return Ok(Applied::Ignored("not a token pack payment"));
    };
    let Some(purchase) = store::purchase_by_key(db, &keys::purchase(payment_intent)).await? else {
        return Ok(Applied::Ignored("not a token pack payment"));
    };
    let charge = disputed.charge.as_deref().unwrap_or("");
    let why = disputed.reason.as_deref().unwrap_or("general");
    let key = keys::dispute(dispute);
    let now = rfc3339_from_millis(event.now_ms);
    let reason = format!("dispute {dispute} ({why})");
    let entry = NewEntry {
        user_id: &purchase.user_id,
        kind: Kind::Refund,
        amount: 0,
        reason: Some(&reason),
        reference: Some(payment_intent),
        key: &key,
        actor: STRIPE_ACTOR,
        at: &now,
    };
    let audit = AuditEntry::new(Actor::System("stripe"), Action::TokensRefunded)
        .target(Target::user(&purchase.user_id))
        .with("payment_intent", payment_intent)
        .with("charge", charge)
        .with("dispute", dispute)
        .with("dispute_reason", why)
        .with("amount_disputed", disputed.amount)
        .with("tokens_to_take", purchase.amount);
    let audit = audit::statement_if_inserted(db, occasion(event), &audit, ENTRY_ID)?;
    if store::append_refund(db, &entry, purchase.amount, audit)
        .await?
        .is_none()
    {
        return Ok(Applied::Ignored(
            "the dispute was debited already, or refunds took the pack back",
        ));
    }
    Ok(Applied::Processed)
}
