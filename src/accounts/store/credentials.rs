//! `account_credentials`: one password credential per account user, keyed by user id, the
//! normalised email unique.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::error::AppError;

/// A credential row.
#[derive(Debug, Clone, Deserialize)]
pub struct Credential {
    pub user_id: String,
    pub email: String,
    pub password_hash: String,
    pub email_verified_at: Option<String>,
    /// A new email asked for and not confirmed yet.
    pub pending_email: Option<String>,
}

const COLUMNS: &str = "user_id, email, password_hash, email_verified_at, pending_email";

/// The credential of this (normalised) email.
pub async fn by_email(db: &D1Database, email: &str) -> Result<Option<Credential>, AppError> {
    let sql = format!("SELECT {COLUMNS} FROM account_credentials WHERE email = ?1");
    Ok(query!(db, &sql, email)?.first::<Credential>(None).await?)
}

/// The credential of this user, if they are a password account.
pub async fn by_user(db: &D1Database, user_id: &str) -> Result<Option<Credential>, AppError> {
    let sql = format!("SELECT {COLUMNS} FROM account_credentials WHERE user_id = ?1");
    Ok(query!(db, &sql, user_id)?.first::<Credential>(None).await?)
}

/// The statement that adds a credential; a taken email fails the whole batch (UNIQUE).
pub fn insert_statement(
    db: &D1Database,
    user_id: &str,
    email: &str,
    password_hash: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO account_credentials (user_id, email, password_hash, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?4)",
        user_id,
        email,
        password_hash,
        now
    )?)
}

/// The statement that replaces a password hash.
pub fn set_hash_statement(
    db: &D1Database,
    user_id: &str,
    password_hash: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE account_credentials SET password_hash = ?2, updated_at = ?3 WHERE user_id = ?1",
        user_id,
        password_hash,
        now
    )?)
}

/// Replaces the hash only if it is still `old` (a rehash at sign-in never overwrites a
/// password changed meanwhile).
pub async fn rehash(
    db: &D1Database,
    user_id: &str,
    old: &str,
    new: &str,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE account_credentials SET password_hash = ?3, updated_at = ?4 \
         WHERE user_id = ?1 AND password_hash = ?2",
        user_id,
        old,
        new,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// The statement that records a new email asked for: it replaces the account's email only
/// when [`confirm`] is given it from its mailed link.
pub fn set_pending_email_statement(
    db: &D1Database,
    user_id: &str,
    email: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE account_credentials SET pending_email = ?2, updated_at = ?3 WHERE user_id = ?1",
        user_id,
        email,
        now
    )?)
}

/// Confirms `email` from its mailed link: the account's own email, still unverified, is
/// marked verified; or the pending email becomes the account's email, verified (the user's
/// too, in the same batch). `false` when neither applies (the link is for an address the
/// account no longer has or asks for). A pending email another account took meanwhile fails
/// the batch (UNIQUE).
pub async fn confirm(
    db: &D1Database,
    user_id: &str,
    email: &str,
    now: &str,
) -> Result<bool, worker::Error> {
    let results = db
        .batch(vec![
            query!(
                db,
                "UPDATE account_credentials \
                 SET email = ?2, pending_email = NULL, email_verified_at = ?3, updated_at = ?3 \
                 WHERE user_id = ?1 \
                   AND ((email = ?2 AND email_verified_at IS NULL) OR pending_email = ?2)",
                user_id,
                email,
                now
            )?,
            query!(
                db,
                "UPDATE users SET email = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND email IS NOT ?2 AND EXISTS \
                   (SELECT 1 FROM account_credentials WHERE user_id = ?1 AND email = ?2)",
                user_id,
                email,
                now
            )?,
        ])
        .await?;
    let changed = results
        .first()
        .map_or(0, |r| crate::storage::changes(r).unwrap_or(0));
    Ok(changed > 0)
}
