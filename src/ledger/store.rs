//! The `token_ledger` table. Entries are only ever inserted, each by ONE conditional
//! statement that reads the user's newest `balance_after` and writes the new one: D1 runs
//! statements one at a time, so the balance is exact under any concurrency, and the
//! `UNIQUE (user_id, idempotency_key)` makes every credit and debit happen at most once.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::error::AppError;
use crate::ledger::rules::Kind;

/// Every column, in the order `Entry` reads them.
const COLUMNS: &str = "id, user_id, kind, amount, balance_after, shortfall, debt_after, repaid, \
                       reason, reference, idempotency_key, actor, created_at";

/// The user's balance (`cur`) and debt (`debt`) before the statement: the newest entry's
/// `balance_after` and `debt_after`, or 0 (an aggregate over at most one row is always one
/// row). `?1` is the user id.
const CURRENT: &str = "(SELECT COALESCE(MAX(balance_after), 0) AS cur, \
                              COALESCE(MAX(debt_after), 0) AS debt \
                        FROM (SELECT balance_after, debt_after FROM token_ledger \
                              WHERE user_id = ?1 ORDER BY id DESC LIMIT 1))";

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub id: i64,
    pub user_id: String,
    pub kind: Kind,
    pub amount: i64,
    pub balance_after: i64,
    pub shortfall: i64,
    /// What the user owes after this entry (unrecovered shortfalls less repayments).
    pub debt_after: i64,
    /// For a credit: how much of its amount repaid debt instead of reaching the balance.
    pub repaid: i64,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub idempotency_key: String,
    pub actor: String,
    pub created_at: String,
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    pub user_id: &'a str,
    pub kind: Kind,
    /// Signed: credits > 0, debits < 0.
    pub amount: i64,
    pub reason: Option<&'a str>,
    pub reference: Option<&'a str>,
    /// Namespaced (see [`crate::ledger::rules::keys`]).
    pub key: &'a str,
    /// `usr_...`, or `system:stripe`.
    pub actor: &'a str,
    /// RFC 3339 UTC.
    pub at: &'a str,
}

/// Appends `entry` if the balance stays at or above zero and its key is new: the entry as
/// stored, or `None` when nothing was written (the key was used, or the balance is short).
/// A credit repays the user's debt first, in the same statement
/// ([`crate::ledger::rules::apply_entry`]): `repaid` of its amount goes to the debt, the
/// rest to the balance.
/// `audit` runs right after it in the same batch (see
/// [`crate::audit::service::statement_if_inserted`]): both are written, or neither.
pub async fn append(
    db: &D1Database,
    entry: &NewEntry<'_>,
    audit: D1PreparedStatement,
) -> Result<Option<Entry>, AppError> {
    let sql = format!(
        "INSERT INTO token_ledger (user_id, kind, amount, balance_after, shortfall, reason, \
             reference, idempotency_key, actor, created_at, debt_after, repaid) \
         SELECT ?1, ?2, amt, cur + amt - paid, 0, ?4, ?5, ?6, ?7, ?8, debt - paid, paid \
         FROM (SELECT cur, debt, amt, CASE WHEN amt > 0 THEN MIN(debt, amt) ELSE 0 END AS paid \
               FROM {CURRENT}, (SELECT CAST(?3 AS INTEGER) AS amt)) \
         WHERE cur + amt - paid >= 0 \
         ON CONFLICT (user_id, idempotency_key) DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let statement = query!(
        db,
        &sql,
        entry.user_id,
        entry.kind.as_str(),
        entry.amount as f64,
        entry.reason,
        entry.reference,
        entry.key,
        entry.actor,
        entry.at
    )?;
    written(db, statement, audit).await
}

/// Appends a refund's debit of the purchase `reference` (a payment intent): of `target`
/// tokens in all, what earlier refunds of it have not accounted for (debited or recorded as
/// shortfall), taking what the balance has and recording the rest as `shortfall`, which is
/// added to the user's debt ([`crate::ledger::rules::apply_clawback`]). `None` when the key
/// was used or nothing is left to take. `audit` runs with it, as for [`append`].
pub async fn append_refund(
    db: &D1Database,
    entry: &NewEntry<'_>,
    target: i64,
    audit: D1PreparedStatement,
) -> Result<Option<Entry>, AppError> {
    // `want`: the target less what refunds of this purchase already accounted for.
    let sql = format!(
        "INSERT INTO token_ledger (user_id, kind, amount, balance_after, shortfall, reason, \
             reference, idempotency_key, actor, created_at, debt_after, repaid) \
         SELECT ?1, 'refund', -MIN(cur, want), cur - MIN(cur, want), want - MIN(cur, want), \
                ?4, ?5, ?6, ?7, ?8, debt + want - MIN(cur, want), 0 \
         FROM {CURRENT}, \
              (SELECT CAST(?3 AS INTEGER) - COALESCE((SELECT SUM(shortfall - amount) \
                  FROM token_ledger WHERE user_id = ?1 AND kind = 'refund' \
                  AND reference = ?5), 0) AS want) \
         WHERE want > 0 \
         ON CONFLICT (user_id, idempotency_key) DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let statement = query!(
        db,
        &sql,
        entry.user_id,
        Kind::Refund.as_str(),
        target as f64,
        entry.reason,
        entry.reference,
        entry.key,
        entry.actor,
        entry.at
    )?;
    written(db, statement, audit).await
}

/// Runs `statement` (an insert returning the entry) and then `audit`, as one batch.
async fn written(
    db: &D1Database,
    statement: D1PreparedStatement,
    audit: D1PreparedStatement,
) -> Result<Option<Entry>, AppError> {
    let first = db
        .batch(vec![statement, audit])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal("the ledger batch returned no result".to_owned()))?;
    Ok(first.results::<Entry>()?.into_iter().next())
}

/// The user's entry with this key.
pub async fn by_key(db: &D1Database, user_id: &str, key: &str) -> Result<Option<Entry>, AppError> {
    Ok(query!(
        db,
        &format!("SELECT {COLUMNS} FROM token_ledger WHERE user_id = ?1 AND idempotency_key = ?2"),
        user_id,
        key
    )?
    .first::<Entry>(None)
    .await?)
}

/// The purchase entry with this key, whoever's it is.
pub async fn purchase_by_key(db: &D1Database, key: &str) -> Result<Option<Entry>, AppError> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLUMNS} FROM token_ledger \
             WHERE idempotency_key = ?1 AND kind = 'purchase' LIMIT 1"
        ),
        key
    )?
    .first::<Entry>(None)
    .await?)
}

/// The user's newest entry (its `balance_after` is the balance).
pub async fn newest(db: &D1Database, user_id: &str) -> Result<Option<Entry>, AppError> {
    Ok(query!(
        db,
        &format!("SELECT {COLUMNS} FROM token_ledger WHERE user_id = ?1 ORDER BY id DESC LIMIT 1"),
        user_id
    )?
    .first::<Entry>(None)
    .await?)
}

/// Which of a user's entries to list.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub kind: Option<Kind>,
    /// At or after (RFC 3339 UTC).
    pub from: Option<&'a str>,
    /// Before (RFC 3339 UTC).
    pub to: Option<&'a str>,
}

/// The user's entries matching `filter`, newest first, with ids below `before_id`, at most
/// `limit`.
pub async fn page(
    db: &D1Database,
    user_id: &str,
    filter: &Filter<'_>,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<Entry>, AppError> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLUMNS} FROM token_ledger \
             WHERE user_id = ?1 AND (?2 IS NULL OR kind = ?2) \
               AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4) \
               AND (?5 IS NULL OR id < ?5) \
             ORDER BY id DESC LIMIT ?6"
        ),
        user_id,
        filter.kind.map(Kind::as_str),
        filter.from,
        filter.to,
        before_id.map(|id| id as f64),
        limit
    )?
    .all()
    .await?
    .results::<Entry>()?)
}

/// One day's sums for one kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DayKind {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub kind: Kind,
    /// The sum of its credits.
    pub earned: i64,
    /// The sum of its debits, as a positive number.
    pub spent: i64,
}

/// The user's sums per UTC day and kind for entries in `[from, to)` (RFC 3339), oldest day
/// first.
pub async fn daily(
    db: &D1Database,
    user_id: &str,
    from: &str,
    to: &str,
) -> Result<Vec<DayKind>, AppError> {
    Ok(query!(
        db,
        "SELECT substr(created_at, 1, 10) AS day, kind, \
                COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS earned, \
                COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS spent \
         FROM token_ledger \
         WHERE user_id = ?1 AND created_at >= ?2 AND created_at < ?3 \
         GROUP BY day, kind ORDER BY day, kind",
        user_id,
        from,
        to
    )?
    .all()
    .await?
    .results::<DayKind>()?)
}

/// The user's social rewards (their keys name the tasks).
pub async fn social_rewards(db: &D1Database, user_id: &str) -> Result<Vec<Entry>, AppError> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLUMNS} FROM token_ledger \
             WHERE user_id = ?1 AND kind = 'social_reward' ORDER BY id"
        ),
        user_id
    )?
    .all()
    .await?
    .results::<Entry>()?)
}
