//! `provider_keys` and `provider_key_assignments`: the pool of pre-created provider keys
//! (per provider and plan tier, sealed at rest) and which key each user was handed.

use serde::{Deserialize, Serialize};
use worker::{query, D1Database};

use crate::error::AppError;

const COLUMNS: &str =
    "id, provider, tier, key_sealed, masked, label, created_by, retired_at, created_at, updated_at";

/// A pool key. The sealed key is never serialized.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PoolKey {
    pub id: String,
    pub provider: String,
    pub tier: String,
    #[serde(skip_serializing)]
    pub key_sealed: String,
    pub masked: String,
    pub label: Option<String>,
    pub created_by: Option<String>,
    pub retired_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What the sealed key of a pool entry is bound to.
pub fn key_context(id: &str) -> String {
    format!("pool:{id}")
}

/// A key being loaded into the pool.
#[derive(Debug, Clone, Copy)]
pub struct NewPoolKey<'a> {
    pub id: &'a str,
    pub provider: &'a str,
    pub tier: &'a str,
    pub sealed: &'a str,
    /// SHA-256 of the plaintext, so the same key is not loaded twice.
    pub sha256: &'a str,
    pub masked: &'a str,
    pub label: Option<&'a str>,
    pub created_by: &'a str,
}

/// Adds a key; `None` when the same key is already in the pool.
pub async fn insert(
    db: &D1Database,
    key: NewPoolKey<'_>,
    now: &str,
) -> Result<Option<PoolKey>, AppError> {
    let sql = format!(
        "INSERT INTO provider_keys (id, provider, tier, key_sealed, key_sha256, masked, label, \
             created_by, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
         ON CONFLICT (key_sha256) DO NOTHING RETURNING {COLUMNS}"
    );
    Ok(query!(
        db,
        &sql,
        key.id,
        key.provider,
        key.tier,
        key.sealed,
        key.sha256,
        key.masked,
        key.label,
        key.created_by,
        now
    )?
    .first::<PoolKey>(None)
    .await?)
}

/// A page of the pool, oldest first, after `(created_at, id)`, optionally of one provider
/// and tier; retired keys included.
pub async fn page(
    db: &D1Database,
    provider: Option<&str>,
    tier: Option<&str>,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<PoolKey>, AppError> {
    let (created_at, id) = after.unzip();
    let sql = format!(
        "SELECT {COLUMNS} FROM provider_keys \
         WHERE (?1 IS NULL OR provider = ?1) AND (?2 IS NULL OR tier = ?2) \
           AND (?3 IS NULL OR created_at > ?3 OR (created_at = ?3 AND id > ?4)) \
         ORDER BY created_at, id LIMIT ?5"
    );
    Ok(query!(db, &sql, provider, tier, created_at, id, limit)?
        .all()
        .await?
        .results::<PoolKey>()?)
}

/// Retires a key: it is handed to nobody from now on (its users get another one). A key
/// already retired keeps its first retirement time. `None` if there is no such key.
pub async fn retire(db: &D1Database, id: &str, now: &str) -> Result<Option<PoolKey>, AppError> {
    let results = db
        .batch(vec![
            query!(
                db,
                "UPDATE provider_keys SET retired_at = ?2, updated_at = ?2 \
                 WHERE id = ?1 AND retired_at IS NULL",
                id,
                now
            )?,
            query!(
                db,
                "DELETE FROM provider_key_assignments WHERE key_id = ?1",
                id
            )?,
            query!(
                db,
                &format!("SELECT {COLUMNS} FROM provider_keys WHERE id = ?1"),
                id
            )?,
        ])
        .await?;
    Ok(results[2].results::<PoolKey>()?.into_iter().next())
}

/// The key handed to this user for `provider` at their plan's `tier`: the one assigned
/// before while it is live and of that tier, else the live key of the tier with the fewest
/// users (oldest first), assigned now. `None` when the pool has no live key for it.
/// Concurrent first requests agree on one key: the assignment is one upsert.
pub async fn assigned(
    db: &D1Database,
    user_id: &str,
    provider: &str,
    tier: &str,
    now: &str,
) -> Result<Option<PoolKey>, AppError> {
    let pick = "(SELECT k.id FROM provider_keys k \
                 WHERE k.provider = ?2 AND k.tier = ?3 AND k.retired_at IS NULL \
                 ORDER BY (SELECT COUNT(*) FROM provider_key_assignments a \
                           WHERE a.key_id = k.id), k.created_at, k.id LIMIT 1)";
    let assign = format!(
        "INSERT INTO provider_key_assignments (user_id, provider, key_id, assigned_at) \
         SELECT ?1, ?2, {pick}, ?4 WHERE {pick} IS NOT NULL \
         ON CONFLICT (user_id, provider) DO UPDATE SET key_id = excluded.key_id, \
             assigned_at = excluded.assigned_at \
         WHERE NOT EXISTS (SELECT 1 FROM provider_keys k \
                           WHERE k.id = provider_key_assignments.key_id \
                             AND k.retired_at IS NULL AND k.tier = ?3)"
    );
    let read = format!(
        "SELECT {} FROM provider_key_assignments a JOIN provider_keys k ON k.id = a.key_id \
         WHERE a.user_id = ?1 AND a.provider = ?2 AND k.tier = ?3 AND k.retired_at IS NULL",
        COLUMNS
            .split(", ")
            .map(|c| format!("k.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let results = db
        .batch(vec![
            query!(db, &assign, user_id, provider, tier, now)?,
            query!(db, &read, user_id, provider, tier)?,
        ])
        .await?;
    Ok(results[1].results::<PoolKey>()?.into_iter().next())
}
