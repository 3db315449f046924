//! The account flows: sign-up, sign-in and sessions, the profile, passwords, email
//! verification, and the mail that carries their links.
pub mod mail;
pub mod passwords;
pub mod profile;
pub mod sessions;
pub mod signup;

use std::cell::OnceCell;

use worker::D1Database;

use crate::accounts::rules::password::{self, HashCost};
use crate::accounts::rules::secret_token;
use crate::accounts::store::credentials;
use crate::core::random;
use crate::error::AppError;
use crate::http::Ctx;
use crate::identity::service::users::User;

/// Refuses (`403 email_not_verified`) a password account whose email is not verified, while
/// `REQUIRE_VERIFIED_EMAIL` is on (the default): for everything that costs the operator
/// money. Users of other sources pass without a lookup (their identity provider vouches for
/// the email).
pub async fn require_verified(ctx: &Ctx, user: &User) -> Result<(), AppError> {
    if !ctx.data.config.accounts.require_verified_email || user.auth_source != sessions::SOURCE {
        return Ok(());
    }
    let db = crate::storage::database(&ctx.env)?;
    let verified = credentials::by_user(&db, &user.id)
        .await?
        .is_none_or(|c| c.email_verified_at.is_some());
    if verified {
        Ok(())
    } else {
        Err(AppError::EmailNotVerified)
    }
}

/// `429` with the wait while `key`'s window holds `limit` uses.
async fn throttled(db: &D1Database, key: &str, limit: u32, now_ms: u64) -> Result<(), AppError> {
    let window = crate::accounts::store::windows::window(db, key).await?;
    match window.and_then(|w| crate::accounts::rules::windows::retry_after(w, limit, now_ms)) {
        Some(retry_after_secs) => Err(AppError::RateLimited { retry_after_secs }),
        None => Ok(()),
    }
}

/// The account settings, or `not_configured` while `ACCOUNT_TOKEN_SECRET` is unset or a
/// setting accounts need is invalid.
fn token_secret(ctx: &Ctx) -> Result<&str, AppError> {
    ctx.data.config.accounts.token_secret.require()
}

/// An Argon2id hash of `password` with a fresh random salt at the configured cost.
fn hash_password(cost: HashCost, password: &str) -> Result<String, AppError> {
    password::hash(password, &random::bytes::<16>(), cost).map_err(AppError::Internal)
}

thread_local! {
    /// A hash of nothing anyone knows, at the configured cost, made once per isolate: an
    /// unknown email is checked against it, so it costs what a wrong password costs.
    static DUMMY: OnceCell<(HashCost, String)> = const { OnceCell::new() };
}

/// Spends the time of one password check against a hash no password matches.
fn verify_dummy(cost: HashCost, password: &str) -> Result<(), AppError> {
    let hash = DUMMY.with(|cell| -> Result<String, AppError> {
        if let Some((made_with, hash)) = cell.get() {
            if *made_with == cost {
                return Ok(hash.clone());
            }
        }
        let hash = hash_password(cost, &random::hex(&random::bytes::<32>()))?;
        let _ = cell.set((cost, hash.clone()));
        Ok(hash)
    })?;
    let _ = password::verify(password, &hash);
    Ok(())
}

/// A fresh opaque token with `prefix` and what is stored for it.
fn new_secret(prefix: &str) -> (String, String) {
    let token = secret_token::encode(prefix, &random::bytes::<32>());
    let digest = secret_token::digest(&token);
    (token, digest)
}

/// Reads a UNIQUE failure of a batch as `conflict`; any other failure stays internal.
fn conflict_on_unique(err: worker::Error, message: &str) -> AppError {
    let text = err.to_string();
    if text.contains("UNIQUE") {
        AppError::Conflict(message.to_owned())
    } else {
        AppError::Internal(text)
    }
}
