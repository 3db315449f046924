//! `credit_accounts`, `credit_ledger`, `provider_key_deletions` and `provider_key_lookups`: a
//! user's OpenRouter key and credits, every change of the credits, the keys still to be
//! deleted at OpenRouter, and the keys to look for by name (a create whose outcome is
//! unknown).
//!
//! Every change of an account happens under its lock: a request claims the row (one
//! conditional upsert), talks to OpenRouter, and settles with one batch whose every
//! statement applies only while the request still holds the lock (the lock id is a fence).
//! A request whose lock expired and was taken by another changes nothing at all: no ledger
//! line, no queued deletion, no account change. So concurrent requests for one user create
//! at most one key and deduct each spend once, and the ledger's amounts add up to the
//! balance.

use serde::{Deserialize, Serialize};
use worker::{query, D1Database, D1PreparedStatement};

use crate::core::random;
use crate::error::AppError;
use crate::identity::rules::status::{AuthSource, UserStatus};
use crate::provider_keys::rules::CreditKind;
use crate::storage::changes;

/// The columns every account query returns.
const COLUMNS: &str = "key_hash, key_sealed, key_label, key_limit, key_usage, key_remaining, \
                       credits, resets, rotations, version, checked_ms";

/// A user's credit account.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    /// OpenRouter's id of the current key; `None` until the first key exists.
    pub key_hash: Option<String>,
    /// The current key, sealed (see [`key_context`]).
    pub key_sealed: Option<String>,
    /// The key's masked form.
    pub key_label: Option<String>,
    pub key_limit: i64,
    /// The key's cumulative spend at the last look.
    pub key_usage: i64,
    /// What was left of its limit at the last look.
    pub key_remaining: i64,
    pub credits: i64,
    pub resets: i64,
    pub rotations: i64,
    pub version: i64,
    /// When a request last settled the account (ms since the epoch).
    pub checked_ms: Option<f64>,
}

/// What the key of an account is sealed for: its owner and its OpenRouter id, so a sealed
/// key copied to another row does not open.
pub fn key_context(user_id: &str, key_hash: &str) -> String {
    format!("openrouter:{user_id}:{key_hash}")
}

/// How claiming an account's lock ended.
#[derive(Debug)]
pub enum Claim {
    /// This request holds the lock; the account as it is now.
    Held(Account),
    /// Another request holds it; the account as it is now.
    Busy(Account),
    /// The claim required an active user and the user is not (deleted): nothing was taken.
    Inactive,
}

#[derive(Deserialize)]
struct Standing {
    active: i64,
}

/// Claims the user's account (creating an empty one first if needed) for `ttl_ms`. A lock
/// whose holder died is taken over once it has expired. With `require_active`, the lock is
/// only taken while the user is active, in the same statement, so a request that holds the
/// lock knows the user was not deleted before it (a deletion takes the lock too, see
/// [`retire_key`]).
pub async fn claim(
    db: &D1Database,
    user_id: &str,
    lock_id: &str,
    now_ms: u64,
    ttl_ms: u64,
    now: &str,
    require_active: bool,
) -> Result<Claim, AppError> {
    let upsert = format!(
        "INSERT INTO credit_accounts (user_id, lock_id, lock_expires_ms, created_at, updated_at) \
         SELECT ?1, ?2, ?3, ?4, ?4 \
         WHERE ?6 = 0 OR EXISTS (SELECT 1 FROM users WHERE id = ?1 AND status = 'active') \
         ON CONFLICT (user_id) DO UPDATE SET lock_id = excluded.lock_id, \
             lock_expires_ms = excluded.lock_expires_ms \
         WHERE credit_accounts.lock_id IS NULL OR credit_accounts.lock_expires_ms < ?5 \
         RETURNING {COLUMNS}"
    );
    let read = format!("SELECT {COLUMNS} FROM credit_accounts WHERE user_id = ?1");
    let results = db
        .batch(vec![
            query!(
                db,
                &upsert,
                user_id,
                lock_id,
                (now_ms + ttl_ms) as f64,
                now,
                now_ms as f64,
                i32::from(require_active)
            )?,
            query!(db, &read, user_id)?,
            query!(
                db,
                "SELECT COUNT(*) AS active FROM users WHERE id = ?1 AND status = 'active'",
                user_id
            )?,
        ])
        .await?;
    if let Some(held) = results[0].results::<Account>()?.into_iter().next() {
        return Ok(Claim::Held(held));
    }
    let active = results[2]
        .results::<Standing>()?
        .into_iter()
        .next()
        .is_some_and(|s| s.active > 0);
    if require_active && !active {
        return Ok(Claim::Inactive);
    }
    let current = results[1]
        .results::<Account>()?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal("credit account missing after upsert".to_owned()))?;
    Ok(Claim::Busy(current))
}

/// Gives the lock back without changing anything.
pub async fn release(db: &D1Database, user_id: &str, lock_id: &str) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE credit_accounts SET lock_id = NULL, lock_expires_ms = NULL \
         WHERE user_id = ?1 AND lock_id = ?2",
        user_id,
        lock_id
    )?
    .run()
    .await?;
    Ok(())
}

/// The key an account holds after a settlement.
#[derive(Debug, Clone, Copy)]
pub struct KeyState<'a> {
    pub hash: &'a str,
    pub sealed: &'a str,
    pub label: &'a str,
    pub limit: i64,
    pub usage: i64,
    pub remaining: i64,
}

/// One line of the credit ledger.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub kind: CreditKind,
    /// Signed change of the balance.
    pub amount: i64,
    pub reason: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

/// Everything one locked request changes, applied in one transaction.
#[derive(Debug, Clone)]
pub struct Settle<'a> {
    pub user_id: &'a str,
    pub lock_id: &'a str,
    /// The version read when the lock was claimed.
    pub version: i64,
    pub key: KeyState<'a>,
    pub credits: i64,
    pub reset: bool,
    pub rotated: bool,
    /// A key this settlement retires, queued for deletion at OpenRouter (with why).
    pub retire: Option<(&'a str, &'a str)>,
    pub entries: Vec<Entry<'a>>,
    pub now_ms: u64,
    pub now: &'a str,
}

/// The condition every statement of a settling batch carries: this request still holds the
/// lock on the account at the version it read (`?1` user, `?2` lock id, `?3` version).
const FENCE: &str = "EXISTS (SELECT 1 FROM credit_accounts WHERE user_id = ?1 AND lock_id = ?2 \
                     AND version = ?3)";

/// Applies a settlement if this request still holds the lock; returns the account after it,
/// or `None` when the lock was lost (nothing changed: every statement is fenced by the lock,
/// and the account update that gives the lock back comes last).
pub async fn settle(db: &D1Database, s: &Settle<'_>) -> Result<Option<Account>, AppError> {
    let version = s.version as f64;
    let mut statements = Vec::new();
    if let Some((hash, reason)) = s.retire {
        statements.push(query!(
            db,
            &format!(
                "INSERT INTO provider_key_deletions (key_hash, user_id, reason, \
                     next_attempt_ms, created_at, updated_at) \
                 SELECT ?4, ?1, ?5, ?6, ?7, ?7 WHERE {FENCE} \
                 ON CONFLICT (key_hash) DO NOTHING"
            ),
            s.user_id,
            s.lock_id,
            version,
            hash,
            reason,
            s.now_ms as f64,
            s.now
        )?);
    }
    for entry in &s.entries {
        statements.push(entry_statement(db, s, entry)?);
    }
    statements.push(query!(
        db,
        "UPDATE credit_accounts SET key_hash = ?4, key_sealed = ?5, key_label = ?6, \
             key_limit = ?7, key_usage = ?8, key_remaining = ?9, credits = ?10, \
             resets = resets + ?11, rotations = rotations + ?12, version = version + 1, \
             lock_id = NULL, lock_expires_ms = NULL, checked_ms = ?13, updated_at = ?14 \
         WHERE user_id = ?1 AND lock_id = ?2 AND version = ?3",
        s.user_id,
        s.lock_id,
        version,
        s.key.hash,
        s.key.sealed,
        s.key.label,
        s.key.limit as f64,
        s.key.usage as f64,
        s.key.remaining as f64,
        s.credits as f64,
        i32::from(s.reset),
        i32::from(s.rotated),
        s.now_ms as f64,
        s.now
    )?);
    let update = statements.len() - 1;
    statements.push(query!(
        db,
        &format!("SELECT {COLUMNS} FROM credit_accounts WHERE user_id = ?1 AND version = ?2"),
        s.user_id,
        version + 1.0
    )?);
    let results = db.batch(statements).await?;
    if changes(&results[update])? == 0 {
        return Ok(None);
    }
    Ok(results
        .last()
        .map(|r| r.results::<Account>())
        .transpose()?
        .and_then(|rows| rows.into_iter().next()))
}

/// A ledger line recorded with the balance the settlement leaves, only while this request
/// holds the lock.
fn entry_statement(
    db: &D1Database,
    s: &Settle<'_>,
    entry: &Entry<'_>,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        &format!(
            "INSERT INTO credit_ledger (id, user_id, kind, amount, balance_after, reason, \
                 actor_id, key_hash, idempotency_key, created_at) \
             SELECT ?4, ?1, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 WHERE {FENCE}"
        ),
        s.user_id,
        s.lock_id,
        s.version as f64,
        random::id::<10>("cl_"),
        entry.kind.as_str(),
        entry.amount as f64,
        s.credits as f64,
        entry.reason,
        entry.actor_id,
        s.key.hash,
        entry.idempotency_key,
        s.now
    )?)
}

/// A ledger line as shown to admins.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LedgerLine {
    pub id: String,
    pub kind: CreditKind,
    pub amount: i64,
    pub balance_after: i64,
    pub reason: Option<String>,
    pub actor_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: String,
}

const LEDGER_COLUMNS: &str =
    "id, kind, amount, balance_after, reason, actor_id, idempotency_key, created_at";

/// The adjustment recorded under this idempotency key, if any.
pub async fn adjustment_by_key(
    db: &D1Database,
    user_id: &str,
    idempotency_key: &str,
) -> Result<Option<LedgerLine>, AppError> {
    let sql = format!(
        "SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE user_id = ?1 AND idempotency_key = ?2"
    );
    Ok(query!(db, &sql, user_id, idempotency_key)?
        .first::<LedgerLine>(None)
        .await?)
}

/// Sets the balance by an admin's adjustment and records it, while this request holds the
/// lock (which it gives back). Returns the ledger line, or `None` if the lock was lost.
pub async fn adjust(
    db: &D1Database,
    user_id: &str,
    lock_id: &str,
    credits: i64,
    entry: &Entry<'_>,
    now: &str,
) -> Result<Option<LedgerLine>, AppError> {
    let id = random::id::<10>("cl_");
    // The line first, fenced by the lock; the update that gives the lock back last.
    let results = db
        .batch(vec![
            query!(
                db,
                "INSERT INTO credit_ledger (id, user_id, kind, amount, balance_after, reason, \
                     actor_id, key_hash, idempotency_key, created_at) \
                 SELECT ?3, ?1, ?4, ?5, ?6, ?7, ?8, key_hash, ?9, ?10 \
                 FROM credit_accounts WHERE user_id = ?1 AND lock_id = ?2",
                user_id,
                lock_id,
                &id,
                entry.kind.as_str(),
                entry.amount as f64,
                credits as f64,
                entry.reason,
                entry.actor_id,
                entry.idempotency_key,
                now
            )?,
            query!(
                db,
                "UPDATE credit_accounts SET credits = ?3, version = version + 1, \
                     lock_id = NULL, lock_expires_ms = NULL, updated_at = ?4 \
                 WHERE user_id = ?1 AND lock_id = ?2",
                user_id,
                lock_id,
                credits as f64,
                now
            )?,
            query!(
                db,
                &format!("SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE id = ?1"),
                &id
            )?,
        ])
        .await?;
    Ok(results[2].results::<LedgerLine>()?.into_iter().next())
}

/// Queues a key for deletion at OpenRouter (a key this request created but could not keep),
/// unless it is the user's current key after all (a settlement that applied although its
/// answer was lost).
pub async fn queue_deletion(
    db: &D1Database,
    key_hash: &str,
    user_id: &str,
    reason: &str,
    now_ms: u64,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "INSERT INTO provider_key_deletions (key_hash, user_id, reason, next_attempt_ms, \
             created_at, updated_at) SELECT ?1, ?2, ?3, ?4, ?5, ?5 \
         WHERE NOT EXISTS (SELECT 1 FROM credit_accounts WHERE user_id = ?2 AND key_hash = ?1) \
         ON CONFLICT (key_hash) DO NOTHING",
        key_hash,
        user_id,
        reason,
        now_ms as f64,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// A key waiting to be deleted at OpenRouter.
#[derive(Debug, Clone, Deserialize)]
pub struct PendingDeletion {
    pub key_hash: String,
    pub attempts: i64,
}

/// Up to `limit` deletions that are due, each claimed for `claim_ms` so that a concurrent
/// sweep skips them, in one statement. `attempts` counts this attempt.
pub async fn claim_due_deletions(
    db: &D1Database,
    now_ms: u64,
    claim_ms: u64,
    limit: u32,
) -> Result<Vec<PendingDeletion>, AppError> {
    Ok(query!(
        db,
        "UPDATE provider_key_deletions SET claimed_until_ms = ?2, attempts = attempts + 1 \
         WHERE key_hash IN (SELECT key_hash FROM provider_key_deletions \
             WHERE next_attempt_ms <= ?1 \
               AND (claimed_until_ms IS NULL OR claimed_until_ms < ?1) \
             ORDER BY next_attempt_ms LIMIT ?3) \
         RETURNING key_hash, attempts",
        now_ms as f64,
        (now_ms + claim_ms) as f64,
        limit
    )?
    .all()
    .await?
    .results::<PendingDeletion>()?)
}

/// The key is gone at OpenRouter: forget it.
pub async fn deletion_done(db: &D1Database, key_hash: &str) -> Result<(), AppError> {
    query!(
        db,
        "DELETE FROM provider_key_deletions WHERE key_hash = ?1",
        key_hash
    )?
    .run()
    .await?;
    Ok(())
}

/// The deletion failed: try again at `next_attempt_ms`.
pub async fn deletion_failed(
    db: &D1Database,
    key_hash: &str,
    error: &str,
    next_attempt_ms: u64,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE provider_key_deletions SET last_error = ?2, next_attempt_ms = ?3, \
             claimed_until_ms = NULL, updated_at = ?4 WHERE key_hash = ?1",
        key_hash,
        error,
        next_attempt_ms as f64,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// The Tollgate id of the user with this external identity, if they have a credit account.
pub async fn account_holder(
    db: &D1Database,
    auth_source: AuthSource,
    external_id: &str,
) -> Result<Option<String>, AppError> {
    #[derive(Deserialize)]
    struct Holder {
        user_id: String,
    }
    Ok(query!(
        db,
        "SELECT a.user_id FROM credit_accounts a JOIN users u ON u.id = a.user_id \
         WHERE u.auth_source = ?1 AND u.external_id = ?2",
        auth_source.as_str(),
        external_id
    )?
    .first::<Holder>(None)
    .await?
    .map(|h| h.user_id))
}

/// Queues the account's current key for deletion (with `reason`) and forgets it, while this
/// request holds the lock, which it gives back. `false` when the lock was lost (nothing
/// changed).
pub async fn retire_key(
    db: &D1Database,
    user_id: &str,
    lock_id: &str,
    reason: &str,
    now_ms: u64,
    now: &str,
) -> Result<bool, AppError> {
    let results = db
        .batch(vec![
            query!(
                db,
                "INSERT INTO provider_key_deletions (key_hash, user_id, reason, \
                     next_attempt_ms, created_at, updated_at) \
                 SELECT key_hash, user_id, ?3, ?4, ?5, ?5 FROM credit_accounts \
                 WHERE user_id = ?1 AND lock_id = ?2 AND key_hash IS NOT NULL \
                 ON CONFLICT (key_hash) DO NOTHING",
                user_id,
                lock_id,
                reason,
                now_ms as f64,
                now
            )?,
            query!(
                db,
                "UPDATE credit_accounts SET key_hash = NULL, key_sealed = NULL, \
                     key_label = NULL, version = version + 1, lock_id = NULL, \
                     lock_expires_ms = NULL, updated_at = ?3 \
                 WHERE user_id = ?1 AND lock_id = ?2",
                user_id,
                lock_id,
                now
            )?,
        ])
        .await?;
    Ok(changes(&results[1])? > 0)
}

/// Queues a look-up of the keys named `name` at OpenRouter, due at `due_ms`: a create whose
/// outcome is unknown (it timed out) may have made a key that nobody stored. Queued again
/// before it ran, it is pushed back to the later time and counts one more request.
pub async fn queue_lookup(
    db: &D1Database,
    name: &str,
    user_id: &str,
    due_ms: u64,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "INSERT INTO provider_key_lookups (name, user_id, next_attempt_ms, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (name) DO UPDATE SET requests = requests + 1, \
             next_attempt_ms = MAX(next_attempt_ms, excluded.next_attempt_ms), \
             updated_at = excluded.updated_at",
        name,
        user_id,
        due_ms as f64,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// A look-up waiting for the sweep.
#[derive(Debug, Clone, Deserialize)]
pub struct PendingLookup {
    /// The key name to look for.
    pub name: String,
    pub user_id: String,
    /// How often it was queued when claimed; resolving it only removes those requests.
    pub requests: i64,
    /// Attempts, this one included.
    pub attempts: i64,
}

/// Up to `limit` look-ups that are due, each claimed for `claim_ms`, in one statement.
pub async fn claim_due_lookups(
    db: &D1Database,
    now_ms: u64,
    claim_ms: u64,
    limit: u32,
) -> Result<Vec<PendingLookup>, AppError> {
    Ok(query!(
        db,
        "UPDATE provider_key_lookups SET claimed_until_ms = ?2, attempts = attempts + 1 \
         WHERE name IN (SELECT name FROM provider_key_lookups \
             WHERE next_attempt_ms <= ?1 \
               AND (claimed_until_ms IS NULL OR claimed_until_ms < ?1) \
             ORDER BY next_attempt_ms LIMIT ?3) \
         RETURNING name, user_id, requests, attempts",
        now_ms as f64,
        (now_ms + claim_ms) as f64,
        limit
    )?
    .all()
    .await?
    .results::<PendingLookup>()?)
}

/// The look-up could not finish: try again at `next_attempt_ms`.
pub async fn lookup_failed(
    db: &D1Database,
    name: &str,
    error: &str,
    next_attempt_ms: u64,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE provider_key_lookups SET last_error = ?2, next_attempt_ms = ?3, \
             claimed_until_ms = NULL, updated_at = ?4 WHERE name = ?1",
        name,
        error,
        next_attempt_ms as f64,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// Resolves a look-up while this request holds the user's lock, which it gives back: queues
/// `found` (keys with the look-up's name) for deletion, except the user's current key, and
/// marks the look-up done unless it was queued again meanwhile. `false` when the lock was
/// lost (nothing changed).
pub async fn resolve_lookup(
    db: &D1Database,
    user_id: &str,
    lock_id: &str,
    lookup: &PendingLookup,
    found: &[&str],
    now_ms: u64,
    now: &str,
) -> Result<bool, AppError> {
    let held = "EXISTS (SELECT 1 FROM credit_accounts WHERE user_id = ?1 AND lock_id = ?2)";
    let mut statements = Vec::new();
    for hash in found {
        statements.push(query!(
            db,
            "INSERT INTO provider_key_deletions (key_hash, user_id, reason, \
                 next_attempt_ms, created_at, updated_at) \
             SELECT ?3, ?1, 'orphaned', ?4, ?5, ?5 FROM credit_accounts \
             WHERE user_id = ?1 AND lock_id = ?2 AND (key_hash IS NULL OR key_hash <> ?3) \
             ON CONFLICT (key_hash) DO NOTHING",
            user_id,
            lock_id,
            *hash,
            now_ms as f64,
            now
        )?);
    }
    statements.push(query!(
        db,
        &format!("DELETE FROM provider_key_lookups WHERE name = ?3 AND requests = ?4 AND {held}"),
        user_id,
        lock_id,
        &lookup.name,
        lookup.requests as f64
    )?);
    // Queued again meanwhile: it stays, due again at its own time.
    statements.push(query!(
        db,
        &format!(
            "UPDATE provider_key_lookups SET claimed_until_ms = NULL, updated_at = ?4 \
             WHERE name = ?3 AND {held}"
        ),
        user_id,
        lock_id,
        &lookup.name,
        now
    )?);
    statements.push(query!(
        db,
        "UPDATE credit_accounts SET lock_id = NULL, lock_expires_ms = NULL \
         WHERE user_id = ?1 AND lock_id = ?2",
        user_id,
        lock_id
    )?);
    let results = db.batch(statements).await?;
    let released = results
        .last()
        .map(changes)
        .transpose()?
        .is_some_and(|n| n > 0);
    Ok(released)
}

/// A user with their credit account, as the admin list shows them.
#[derive(Debug, Clone, Deserialize)]
pub struct UserWithAccount {
    pub id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub plan: String,
    pub status: UserStatus,
    pub created_at: String,
    pub credits: Option<i64>,
    pub key_hash: Option<String>,
    pub key_label: Option<String>,
    pub key_limit: Option<i64>,
    pub key_usage: Option<i64>,
    pub key_remaining: Option<i64>,
    pub resets: Option<i64>,
    pub rotations: Option<i64>,
    pub checked_ms: Option<f64>,
    pub pending_deletions: i64,
}

/// A page of users, oldest first, after `(created_at, id)`, with their accounts.
pub async fn page_users(
    db: &D1Database,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<UserWithAccount>, AppError> {
    let (created_at, id) = after.unzip();
    Ok(query!(
        db,
        "SELECT u.id, u.email, u.username, u.plan, u.status, u.created_at, a.credits, \
                a.key_hash, a.key_label, a.key_limit, a.key_usage, a.key_remaining, \
                a.resets, a.rotations, a.checked_ms, \
                (SELECT COUNT(*) FROM provider_key_deletions d WHERE d.user_id = u.id) \
                    AS pending_deletions \
         FROM users u LEFT JOIN credit_accounts a ON a.user_id = u.id \
         WHERE ?1 IS NULL OR u.created_at > ?1 OR (u.created_at = ?1 AND u.id > ?2) \
         ORDER BY u.created_at, u.id LIMIT ?3",
        created_at,
        id,
        limit
    )?
    .all()
    .await?
    .results::<UserWithAccount>()?)
}
