//! `account_refresh_tokens`: single-use rotating refresh tokens, by SHA-256 hash, grouped in
//! families (one per session).

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::error::AppError;

/// The statement that stores a fresh token of `family`.
pub fn insert_statement(
    db: &D1Database,
    hash: &str,
    family_id: &str,
    user_id: &str,
    expires_at_ms: u64,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO account_refresh_tokens (token_hash, family_id, user_id, expires_at_ms, \
                                             created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        hash,
        family_id,
        user_id,
        expires_at_ms as f64,
        now
    )?)
}

/// A presented token as it stands after a rotation attempt.
#[derive(Debug, Clone, Deserialize)]
pub struct Presented {
    pub family_id: String,
    pub user_id: String,
    pub replaced_by: Option<String>,
    pub revoked_at: Option<String>,
    pub expires_at_ms: f64,
}

/// Rotates `old` into `new` in one batch: the old token is spent only if it is live
/// (unspent, unrevoked, unexpired), and the new one is inserted only by the request whose
/// update spent it — so of any number of concurrent rotations of one token, at most one
/// inserts a successor. Answers the old token's row afterwards (`None`: unknown token);
/// `replaced_by == new` means this request won.
pub async fn rotate(
    db: &D1Database,
    old: &str,
    new: &str,
    new_expires_at_ms: u64,
    now_ms: u64,
    now: &str,
) -> Result<Option<Presented>, AppError> {
    let spend = query!(
        db,
        "UPDATE account_refresh_tokens SET replaced_by = ?2 \
         WHERE token_hash = ?1 AND replaced_by IS NULL AND revoked_at IS NULL \
           AND expires_at_ms > ?3",
        old,
        new,
        now_ms as f64
    )?;
    let successor = query!(
        db,
        "INSERT INTO account_refresh_tokens (token_hash, family_id, user_id, expires_at_ms, \
                                             created_at) \
         SELECT ?2, family_id, user_id, ?3, ?4 FROM account_refresh_tokens \
         WHERE token_hash = ?1 AND replaced_by = ?2",
        old,
        new,
        new_expires_at_ms as f64,
        now
    )?;
    let read = query!(
        db,
        "SELECT family_id, user_id, replaced_by, revoked_at, expires_at_ms \
         FROM account_refresh_tokens WHERE token_hash = ?1",
        old
    )?;
    let results = db.batch(vec![spend, successor, read]).await?;
    let found = results
        .get(2)
        .ok_or_else(|| AppError::Internal("rotation returned no read".to_owned()))?
        .results::<Presented>()?;
    Ok(found.into_iter().next())
}

/// The statement that revokes every live token of a session.
pub fn revoke_family_statement(
    db: &D1Database,
    family_id: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE account_refresh_tokens SET revoked_at = ?2 \
         WHERE family_id = ?1 AND revoked_at IS NULL",
        family_id,
        now
    )?)
}

/// The statement that revokes every live token of a user's sessions but `except`.
pub fn revoke_user_statement(
    db: &D1Database,
    user_id: &str,
    except_family: Option<&str>,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE account_refresh_tokens SET revoked_at = ?3 \
         WHERE user_id = ?1 AND revoked_at IS NULL AND (?2 IS NULL OR family_id != ?2)",
        user_id,
        except_family,
        now
    )?)
}
