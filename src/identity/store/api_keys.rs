//! The `api_keys` table: user API keys, stored as hashes.

use serde::{Deserialize, Deserializer, Serialize};
use worker::{query, D1Database, D1PreparedStatement, D1Result};

use crate::error::AppError;
use crate::identity::rules::scopes::Scopes;
use crate::identity::store::users::User;
use crate::storage::UserRef;

const COLUMNS: &str = "id, user_id, name, masked, scopes, created_at, last_used_at, revoked_at";

/// An API key as it is stored and listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiKey {
    /// `key_...`.
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `tg_live_AbCd****WxYz`.
    pub masked: String,
    /// What the key may be used for; stored as space-separated names, shown as a list.
    #[serde(deserialize_with = "stored_scopes")]
    pub scopes: Scopes,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Reads the `scopes` column (see [`Scopes::from_stored`]).
fn stored_scopes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Scopes, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(Scopes::from_stored(&text))
}

/// A key presented as a bearer credential, with its owner.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub key: ApiKey,
    pub user: User,
}

#[derive(Deserialize)]
struct KeyOwnerRow {
    key_id: String,
    key_name: String,
    key_masked: String,
    #[serde(deserialize_with = "stored_scopes")]
    key_scopes: Scopes,
    key_created_at: String,
    key_last_used_at: Option<String>,
    key_revoked_at: Option<String>,
    #[serde(flatten)]
    user: User,
}

/// The statement that finds the key with this hash and its owner (one round trip).
pub fn owner_statement(db: &D1Database, key_hash: &str) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "SELECT k.id AS key_id, k.name AS key_name, k.masked AS key_masked, \
                k.scopes AS key_scopes, k.created_at AS key_created_at, k.last_used_at AS key_last_used_at, \
                k.revoked_at AS key_revoked_at, \
                u.id, u.auth_source, u.external_id, u.email, u.username, u.display_name, \
                u.avatar_url, u.plan, u.status, u.created_at, u.updated_at \
         FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?1",
        key_hash
    )?)
}

/// The key and owner [`owner_statement`] found, if any.
pub fn owner_from(result: &D1Result) -> Result<Option<KeyOwner>, AppError> {
    let row = result.results::<KeyOwnerRow>()?.into_iter().next();
    Ok(row.map(|r| KeyOwner {
        key: ApiKey {
            id: r.key_id,
            user_id: r.user.id.clone(),
            name: r.key_name,
            masked: r.key_masked,
            scopes: r.key_scopes,
            created_at: r.key_created_at,
            last_used_at: r.key_last_used_at,
            revoked_at: r.key_revoked_at,
        },
        user: r.user,
    }))
}

/// The id of the user owning the key with this hash, as SQL (see [`UserRef`]).
pub fn owner_of_hash(key_hash: &str) -> UserRef {
    UserRef {
        sql: "(SELECT user_id FROM api_keys WHERE key_hash = ?1)".to_owned(),
        params: vec![key_hash.into()],
    }
}

/// Records use of a key, at most once per `min_interval` (the caller decides): a write per
/// request would make every API-key call a D1 write.
pub async fn touch(db: &D1Database, id: &str, now: &str) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        id,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// What a new key is stored as.
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub key_hash: &'a str,
    pub masked: &'a str,
    pub scopes: Scopes,
}

/// Stores a new key if the user holds fewer than `limit` active keys (`None`: no limit),
/// decided in one statement so concurrent creations cannot exceed the limit.
/// Returns `None` when the limit is reached.
pub async fn create_within_limit(
    db: &D1Database,
    key: NewKey<'_>,
    limit: Option<u32>,
    now: &str,
) -> Result<Option<ApiKey>, AppError> {
    let sql = format!(
        "INSERT INTO api_keys (id, user_id, name, key_hash, masked, created_at, scopes) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?8 \
         WHERE ?7 IS NULL OR (SELECT COUNT(*) FROM api_keys \
                               WHERE user_id = ?2 AND revoked_at IS NULL) < ?7 \
         RETURNING {COLUMNS}"
    );
    Ok(query!(
        db,
        &sql,
        key.id,
        key.user_id,
        key.name,
        key.key_hash,
        key.masked,
        now,
        limit,
        key.scopes.to_stored()
    )?
    .first::<ApiKey>(None)
    .await?)
}

/// The user's active keys, newest first.
pub async fn active_for_user(db: &D1Database, user_id: &str) -> Result<Vec<ApiKey>, AppError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE user_id = ?1 AND revoked_at IS NULL \
         ORDER BY created_at DESC, id DESC"
    );
    Ok(query!(db, &sql, user_id)?
        .all()
        .await?
        .results::<ApiKey>()?)
}

/// A page of the user's keys (revoked ones included), newest first, after `cursor`
/// (`created_at|id` of the last key of the previous page).
pub async fn page_for_user(
    db: &D1Database,
    user_id: &str,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<ApiKey>, AppError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE user_id = ?1 \
           AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3)) \
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    let (created_at, id) = after.unzip();
    Ok(query!(db, &sql, user_id, created_at, id, limit)?
        .all()
        .await?
        .results::<ApiKey>()?)
}

/// Revokes the user's key; a key already revoked keeps its first revocation time.
/// Returns the key, or `None` if the user has no such key.
pub async fn revoke(
    db: &D1Database,
    user_id: &str,
    id: &str,
    now: &str,
) -> Result<Option<ApiKey>, AppError> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1 AND user_id = ?2");
    // One round trip: revoke if still active, then read the key back either way.
    let results = db
        .batch(vec![
            query!(
                db,
                "UPDATE api_keys SET revoked_at = ?3 \
                 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
                id,
                user_id,
                now
            )?,
            query!(db, &sql, id, user_id)?,
        ])
        .await?;
    let key = match results.get(1) {
        Some(read) => read.results::<ApiKey>()?.into_iter().next(),
        None => None,
    };
    Ok(key)
}
