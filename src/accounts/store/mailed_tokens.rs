//! `account_mailed_tokens`: single-use tokens mailed in a link (email verification, password
//! reset), by SHA-256 hash.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::error::AppError;

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

crate::stored_impls!(Purpose("mailed token purpose"), serde);

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 2] = [Purpose::VerifyEmail, Purpose::ResetPassword];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// The statement that stores a new token.
pub fn insert_statement(
    db: &D1Database,
    hash: &str,
    purpose: Purpose,
    user_id: &str,
    email: &str,
    expires_at_ms: u64,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO account_mailed_tokens (token_hash, purpose, user_id, email, expires_at_ms, \
                                            created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        hash,
        purpose.as_str(),
        user_id,
        email,
        expires_at_ms as f64,
        now
    )?)
}

/// Whose a claimed token was.
#[derive(Debug, Clone, Deserialize)]
pub struct Claimed {
    pub user_id: String,
    pub email: String,
}

/// A token that is still usable: unused, unexpired and, for a reset, mailed to the address
/// its account still has. The condition of [`find`] and [`claim`], on `account_mailed_tokens`
/// (`?1` hash, `?2` purpose, `?3` now in epoch ms).
const USABLE: &str = "token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at_ms > ?3 \
     AND (purpose <> 'reset_password' OR email = (SELECT c.email FROM account_credentials c \
                                                  WHERE c.user_id = account_mailed_tokens.user_id))";

/// Whose a usable token is, without using it (`None`: unknown, used, expired, or a reset
/// mailed to an address the account no longer has).
pub async fn find(
    db: &D1Database,
    hash: &str,
    purpose: Purpose,
    now_ms: u64,
) -> Result<Option<Claimed>, AppError> {
    let sql = format!("SELECT user_id, email FROM account_mailed_tokens WHERE {USABLE}");
    Ok(query!(db, &sql, hash, purpose.as_str(), now_ms as f64)?
        .first::<Claimed>(None)
        .await?)
}

/// Uses the token once: marks it used if it is usable (see [`find`]), in one statement, so
/// two concurrent uses cannot both succeed. `None`: not usable.
pub async fn claim(
    db: &D1Database,
    hash: &str,
    purpose: Purpose,
    now_ms: u64,
    now: &str,
) -> Result<Option<Claimed>, AppError> {
    let sql = format!(
        "UPDATE account_mailed_tokens SET used_at = ?4 WHERE {USABLE} RETURNING user_id, email"
    );
    Ok(
        query!(db, &sql, hash, purpose.as_str(), now_ms as f64, now)?
            .first::<Claimed>(None)
            .await?,
    )
}

/// The statement that voids every unused token of a user for `purpose` (an older reset link
/// stops working once a newer one is used; every link stops when the email changes).
pub fn void_statement(
    db: &D1Database,
    user_id: &str,
    purpose: Purpose,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE account_mailed_tokens SET used_at = ?3 \
         WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL",
        user_id,
        purpose.as_str(),
        now
    )?)
}
