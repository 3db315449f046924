//! Platforms, their keys, end users, payments and registration windows in D1. Every
//! statement about a platform's rows is keyed by the platform id the service took from the
//! caller's credential (a key's hash or an end-user token's verified claim), never from the
//! request; the only lookup by a platform id from a request is the public tier list.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement, D1Result};

use crate::error::AppError;

// D1 numbers are JS numbers: integers are bound as f64 (exact below 2^53).
fn num(n: u64) -> f64 {
    n as f64
}

/// A platform as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct PlatformRow {
    pub id: String,
    pub owner_user_id: Option<String>,
    pub owner_email: Option<String>,
    pub name: Option<String>,
    pub tiers: String,
    pub created_at: String,
}

const PLATFORM_COLUMNS: &str =
    "p.id, p.owner_user_id, p.owner_email, p.name, p.tiers, p.created_at";

/// A platform key's owner, found by the key's hash.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyOwner {
    #[serde(flatten)]
    pub platform: PlatformRow,
    pub key_id: String,
    pub key_last_used_at: Option<String>,
    pub key_revoked_at: Option<String>,
}

/// The statement that finds the platform a key (by hash) belongs to.
pub fn by_key_statement(db: &D1Database, key_hash: &str) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        &format!(
            "SELECT {PLATFORM_COLUMNS}, k.id AS key_id, k.last_used_at AS key_last_used_at, \
                 k.revoked_at AS key_revoked_at \
             FROM platform_keys k JOIN platforms p ON p.id = k.platform_id \
             WHERE k.key_hash = ?1"
        ),
        key_hash
    )?)
}

/// The platform [`by_key_statement`] found.
pub fn key_owner_from(result: &D1Result) -> Result<Option<KeyOwner>, AppError> {
    Ok(result.results::<KeyOwner>()?.into_iter().next())
}

/// The statement that finds a platform by id.
pub fn by_id_statement(db: &D1Database, id: &str) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        &format!("SELECT {PLATFORM_COLUMNS} FROM platforms p WHERE p.id = ?1"),
        id
    )?)
}

/// The platform a `by_*` statement found.
pub fn platform_from(result: &D1Result) -> Result<Option<PlatformRow>, AppError> {
    Ok(result.results::<PlatformRow>()?.into_iter().next())
}

/// An end user's stored state on a platform.
#[derive(Debug, Clone, Deserialize)]
pub struct EndUserRow {
    pub tier: Option<String>,
    pub stripe_customer_id: Option<String>,
}

/// The statement that reads an end user of the platform `platform` names: `platform` is
/// either the platform's id or, for a key still being resolved, a subquery on the key's
/// hash (`by_hash`), so the read shares the key lookup's round trip.
pub fn end_user_statement(
    db: &D1Database,
    platform: PlatformBy<'_>,
    end_user_id: &str,
) -> Result<D1PreparedStatement, AppError> {
    let (platform_sql, value) = platform.sql();
    Ok(query!(
        db,
        &format!(
            "SELECT tier, stripe_customer_id FROM platform_end_users \
             WHERE platform_id = {platform_sql} AND end_user_id = ?2"
        ),
        value,
        end_user_id
    )?)
}

/// The end user [`end_user_statement`] found.
pub fn end_user_from(result: &D1Result) -> Result<Option<EndUserRow>, AppError> {
    Ok(result.results::<EndUserRow>()?.into_iter().next())
}

/// How a statement names its platform (always `?1`).
#[derive(Debug, Clone, Copy)]
pub enum PlatformBy<'a> {
    Id(&'a str),
    KeyHash(&'a str),
}

impl PlatformBy<'_> {
    fn sql(&self) -> (&'static str, &str) {
        match self {
            PlatformBy::Id(id) => ("?1", id),
            PlatformBy::KeyHash(hash) => (
                "(SELECT platform_id FROM platform_keys WHERE key_hash = ?1)",
                hash,
            ),
        }
    }
}

/// Writes a key's last-used time.
pub async fn touch_key(db: &D1Database, key_id: &str, now: &str) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE platform_keys SET last_used_at = ?2 WHERE id = ?1",
        key_id,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// A key to store: its id, hash and masked form.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub hash: &'a str,
    pub masked: &'a str,
}

/// The platform a developer (a Tollgate user) owns, if any.
pub async fn of_owner(db: &D1Database, user_id: &str) -> Result<Option<PlatformRow>, AppError> {
    let result = query!(
        db,
        &format!("SELECT {PLATFORM_COLUMNS} FROM platforms p WHERE p.owner_user_id = ?1"),
        user_id
    )?
    .all()
    .await?;
    platform_from(&result)
}

/// What issuing a developer's key did.
pub struct Issued {
    pub platform: PlatformRow,
    /// Whether the platform was made by this request.
    pub created: bool,
    /// How many live keys the new one replaced (0 or 1).
    pub revoked: usize,
}

/// Makes the developer's platform if they have none (`new_id`, with `tiers`), revokes its
/// live key and stores `key` as the live one, in one batch; `audit` runs last in it.
pub async fn issue_for_owner(
    db: &D1Database,
    owner_user_id: &str,
    new_id: &str,
    tiers: &str,
    key: NewKey<'_>,
    now: &str,
    audit: Vec<D1PreparedStatement>,
) -> Result<Issued, AppError> {
    let mut statements = vec![
        query!(
            db,
            "INSERT INTO platforms (id, owner_user_id, tiers, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (owner_user_id) DO NOTHING",
            new_id,
            owner_user_id,
            tiers,
            now
        )?,
        query!(
            db,
            "UPDATE platform_keys SET revoked_at = ?2 WHERE revoked_at IS NULL \
             AND platform_id = (SELECT id FROM platforms WHERE owner_user_id = ?1)",
            owner_user_id,
            now
        )?,
        query!(
            db,
            "INSERT INTO platform_keys (id, platform_id, key_hash, masked, created_at) \
             SELECT ?1, id, ?2, ?3, ?4 FROM platforms WHERE owner_user_id = ?5",
            key.id,
            key.hash,
            key.masked,
            now,
            owner_user_id
        )?,
    ];
    statements.extend(audit);
    statements.push(query!(
        db,
        &format!("SELECT {PLATFORM_COLUMNS} FROM platforms p WHERE p.owner_user_id = ?1"),
        owner_user_id
    )?);
    let results = db.batch(statements).await?;
    let platform = results
        .last()
        .map(platform_from)
        .transpose()?
        .flatten()
        .ok_or_else(|| AppError::Internal("platform missing after insert".to_owned()))?;
    Ok(Issued {
        created: platform.id == new_id,
        revoked: crate::storage::changes(&results[1])?,
        platform,
    })
}

/// A platform's live key, for display.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub masked: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// The platform's live key, if it has one.
pub async fn live_key(db: &D1Database, platform_id: &str) -> Result<Option<KeyRow>, AppError> {
    Ok(query!(
        db,
        "SELECT id, masked, created_at, last_used_at FROM platform_keys \
         WHERE platform_id = ?1 AND revoked_at IS NULL",
        platform_id
    )?
    .all()
    .await?
    .results::<KeyRow>()?
    .into_iter()
    .next())
}

/// How a public registration ended.
pub enum Registered {
    Created(PlatformRow),
    EmailTaken,
    /// The IP's window is full; it started at this time (epoch ms).
    Throttled {
        window_start_ms: u64,
    },
}

/// A public registration, exact under concurrency in one batch: the IP's window admits it
/// only while under `limit` and only if the email has no platform yet; the platform and its
/// key are stored only if admitted; `audit` runs right after the key's insert (use
/// `statement_if_inserted`).
#[allow(clippy::too_many_arguments)]
pub async fn register(
    db: &D1Database,
    ip: &str,
    (limit, window_ms): (u64, u64),
    new_id: &str,
    email: &str,
    name: Option<&str>,
    tiers: &str,
    key: NewKey<'_>,
    (now, now_ms): (&str, u64),
    audit: Vec<D1PreparedStatement>,
) -> Result<Registered, AppError> {
    let mut statements = vec![
        query!(
            db,
            "INSERT INTO platform_signup_windows (ip, window_start_ms, signups) \
             SELECT ?1, ?2, 1 WHERE NOT EXISTS (SELECT 1 FROM platforms WHERE owner_email = ?5) \
             ON CONFLICT (ip) DO UPDATE SET \
                 signups = CASE WHEN window_start_ms + ?4 <= ?2 THEN 1 ELSE signups + 1 END, \
                 window_start_ms = CASE WHEN window_start_ms + ?4 <= ?2 THEN ?2 \
                                        ELSE window_start_ms END \
             WHERE window_start_ms + ?4 <= ?2 OR signups < ?3",
            ip,
            num(now_ms),
            num(limit),
            num(window_ms),
            email
        )?,
        query!(
            db,
            "INSERT INTO platforms (id, owner_email, name, tiers, created_at, updated_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?5 WHERE changes() = 1",
            new_id,
            email,
            name,
            tiers,
            now
        )?,
        query!(
            db,
            "INSERT INTO platform_keys (id, platform_id, key_hash, masked, created_at) \
             SELECT ?1, id, ?2, ?3, ?4 FROM platforms WHERE id = ?5",
            key.id,
            key.hash,
            key.masked,
            now,
            new_id
        )?,
    ];
    statements.extend(audit);
    statements.push(by_id_statement(db, new_id)?);
    statements.push(query!(
        db,
        "SELECT (SELECT COUNT(*) FROM platforms WHERE owner_email = ?1) AS taken, \
                (SELECT window_start_ms FROM platform_signup_windows WHERE ip = ?2) \
                    AS window_start_ms",
        email,
        ip
    )?);
    let results = db.batch(statements).await?;
    let n = results.len();
    if let Some(platform) = platform_from(&results[n - 2])? {
        return Ok(Registered::Created(platform));
    }
    #[derive(Deserialize)]
    struct State {
        taken: u64,
        window_start_ms: Option<u64>,
    }
    let state = results[n - 1]
        .results::<State>()?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal("registration state missing".to_owned()))?;
    Ok(if state.taken > 0 {
        Registered::EmailTaken
    } else {
        Registered::Throttled {
            window_start_ms: state.window_start_ms.unwrap_or(now_ms),
        }
    })
}

/// Replaces the platform's tier list; `audit` runs in the same batch.
pub async fn set_tiers(
    db: &D1Database,
    platform_id: &str,
    tiers: &str,
    now: &str,
    audit: D1PreparedStatement,
) -> Result<(), AppError> {
    db.batch(vec![
        query!(
            db,
            "UPDATE platforms SET tiers = ?2, updated_at = ?3 WHERE id = ?1",
            platform_id,
            tiers,
            now
        )?,
        audit,
    ])
    .await?;
    Ok(())
}

/// The statement, for a count's batch, that records an end user as seen: made on their
/// first counted call, `last_seen_at` moved on later ones; only if the usage record
/// `record_id` was written by the batch (a refused call changes nothing).
pub fn seen_statement(
    db: &D1Database,
    platform_id: &str,
    end_user_id: &str,
    record_id: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO platform_end_users (platform_id, end_user_id, first_seen_at, last_seen_at) \
         SELECT ?1, ?2, ?4, ?4 WHERE EXISTS (SELECT 1 FROM usage_records WHERE id = ?3) \
         ON CONFLICT (platform_id, end_user_id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        platform_id,
        end_user_id,
        record_id,
        now
    )?)
}

/// A platform's numbers: end users, calls and revenue.
#[derive(Debug, Clone, Deserialize)]
pub struct Numbers {
    pub end_users: u64,
    pub active_end_users: u64,
    pub calls_this_period: u64,
    pub calls_all_time: u64,
    pub revenue_this_period_cents: u64,
    pub revenue_all_time_cents: u64,
    pub payments: u64,
}

/// The platform's numbers in `period` (`YYYY-MM`, starting at `period_start`, RFC 3339):
/// its end users and those with calls counted in the period, calls counted in the period
/// and ever, and its end users' payments in the period and ever.
pub async fn numbers(
    db: &D1Database,
    platform_id: &str,
    period: &str,
    period_start: &str,
) -> Result<Numbers, AppError> {
    // An end user's subject ids are '<platform_id>:<end user>': the range from
    // '<platform_id>:' to '<platform_id>;' (';' follows ':') holds exactly this platform's.
    let low = format!("{platform_id}:");
    let high = format!("{platform_id};");
    let result = query!(
        db,
        "SELECT \
           (SELECT COUNT(*) FROM platform_end_users WHERE platform_id = ?1) AS end_users, \
           (SELECT COUNT(*) FROM meter_counters WHERE subject_kind = 'end_user' \
              AND subject_id >= ?2 AND subject_id < ?3 AND meter = 'calls' AND period = ?4 \
              AND used > 0) AS active_end_users, \
           (SELECT COALESCE(SUM(used), 0) FROM meter_counters WHERE subject_kind = 'end_user' \
              AND subject_id >= ?2 AND subject_id < ?3 AND meter = 'calls' AND period = ?4) \
              AS calls_this_period, \
           (SELECT COALESCE(SUM(total_tokens), 0) FROM usage_records \
              WHERE subject_kind = 'end_user' AND subject_id >= ?2 AND subject_id < ?3 \
              AND meter = 'calls') AS calls_all_time, \
           (SELECT COALESCE(SUM(amount_cents), 0) FROM platform_payments \
              WHERE platform_id = ?1 AND paid_at >= ?5) AS revenue_this_period_cents, \
           (SELECT COALESCE(SUM(amount_cents), 0) FROM platform_payments \
              WHERE platform_id = ?1) AS revenue_all_time_cents, \
           (SELECT COUNT(*) FROM platform_payments WHERE platform_id = ?1) AS payments",
        platform_id,
        low,
        high,
        period,
        period_start
    )?
    .all()
    .await?;
    result
        .results::<Numbers>()?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal("platform numbers missing".to_owned()))
}

/// Stores the end user's Stripe customer (made at their first checkout); the end user is
/// recorded if they were not yet.
pub async fn save_customer(
    db: &D1Database,
    platform_id: &str,
    end_user_id: &str,
    customer: &str,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "INSERT INTO platform_end_users (platform_id, end_user_id, stripe_customer_id, \
             first_seen_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (platform_id, end_user_id) DO UPDATE SET \
             stripe_customer_id = excluded.stripe_customer_id",
        platform_id,
        end_user_id,
        customer,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// A paid Checkout of a tier by an end user, as Stripe reported it.
pub struct Payment<'a> {
    /// The Checkout Session (`cs_...`): a payment is counted once per session.
    pub id: &'a str,
    pub platform_id: &'a str,
    pub end_user_id: &'a str,
    pub tier: &'a str,
    pub amount_cents: u64,
    pub currency: &'a str,
    /// When Stripe says it happened (the event's time): a tier change older than the end
    /// user's last one is not applied.
    pub at_ms: u64,
    pub now: &'a str,
}

/// What applying a payment did.
pub struct PaymentApplied {
    /// The payment was counted now (not before).
    pub counted: bool,
    /// The end user's tier was changed by it.
    pub tier_changed: bool,
}

/// Counts the payment once (by session id, only for a platform that exists) and, the first
/// time only, moves the end user to its tier unless a later change was applied already; in
/// one batch. `audit` runs right after the tier change (use `statement_if_inserted`).
pub async fn apply_payment(
    db: &D1Database,
    p: &Payment<'_>,
    audit: Vec<D1PreparedStatement>,
) -> Result<PaymentApplied, AppError> {
    let mut statements = vec![
        payment_statement(db, p)?,
        query!(
            db,
            "INSERT INTO platform_end_users (platform_id, end_user_id, tier, tier_changed_at_ms, \
                 first_seen_at, last_seen_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?5 WHERE changes() = 1 \
             ON CONFLICT (platform_id, end_user_id) DO UPDATE SET tier = excluded.tier, \
                 tier_changed_at_ms = excluded.tier_changed_at_ms \
             WHERE platform_end_users.tier_changed_at_ms IS NULL \
                 OR platform_end_users.tier_changed_at_ms <= excluded.tier_changed_at_ms",
            p.platform_id,
            p.end_user_id,
            p.tier,
            num(p.at_ms),
            p.now
        )?,
    ];
    let tier_change = statements.len() - 1;
    statements.extend(audit);
    let results = db.batch(statements).await?;
    let tier_changed = crate::storage::changes(&results[tier_change])? > 0;
    let counted = crate::storage::changes(&results[0])? > 0;
    Ok(PaymentApplied {
        counted,
        tier_changed,
    })
}

/// Counts a payment that changes no tier (a renewal's invoice), once by its id, for a
/// platform that exists; whether it was counted now.
pub async fn count_payment(db: &D1Database, p: &Payment<'_>) -> Result<bool, AppError> {
    let result = payment_statement(db, p)?.run().await?;
    Ok(crate::storage::changes(&result)? > 0)
}

fn payment_statement(db: &D1Database, p: &Payment<'_>) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO platform_payments (id, platform_id, end_user_id, tier, amount_cents, \
             currency, paid_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM platforms WHERE id = ?2) \
         ON CONFLICT (id) DO NOTHING",
        p.id,
        p.platform_id,
        p.end_user_id,
        p.tier,
        num(p.amount_cents),
        p.currency,
        p.now
    )?)
}

/// Moves the end user back to the platform's first tier (their subscription ended), unless a
/// later change was applied already: the change is recorded with its time even when they are
/// on the first tier already, so a paid Checkout older than it, delivered after it, does not
/// move them up. Whether it changed anything.
pub async fn end_tier(
    db: &D1Database,
    platform_id: &str,
    end_user_id: &str,
    at_ms: u64,
    now: &str,
) -> Result<bool, AppError> {
    let result = query!(
        db,
        "INSERT INTO platform_end_users (platform_id, end_user_id, tier, tier_changed_at_ms, \
             first_seen_at, last_seen_at) \
         SELECT ?1, ?2, NULL, ?3, ?4, ?4 WHERE EXISTS (SELECT 1 FROM platforms WHERE id = ?1) \
         ON CONFLICT (platform_id, end_user_id) DO UPDATE SET tier = NULL, \
             tier_changed_at_ms = excluded.tier_changed_at_ms \
         WHERE platform_end_users.tier_changed_at_ms IS NULL \
             OR platform_end_users.tier_changed_at_ms < excluded.tier_changed_at_ms",
        platform_id,
        end_user_id,
        num(at_ms),
        now
    )?
    .run()
    .await?;
    Ok(crate::storage::changes(&result)? > 0)
}
