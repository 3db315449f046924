//! Changing a password (signed in) and resetting a forgotten one (by a mailed link).

use crate::accounts::rules::password;
use crate::accounts::rules::secret_token::{self, MAILED_PREFIX};
use crate::accounts::rules::windows::Bounded;
use crate::accounts::service::mail::{self, Mail};
use crate::accounts::service::sessions;
use crate::accounts::store::credentials;
use crate::accounts::store::mailed_tokens::{self, Purpose};
use crate::accounts::store::windows;
use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::Ctx;
use crate::identity::service::users::{self, User};
use crate::storage;

fn occasion(ctx: &Ctx) -> Occasion<'_> {
    Occasion {
        request_id: Some(&ctx.data.request_id),
        now_ms: ctx.data.now_ms,
    }
}

/// Changes the caller's password after checking the current one; every other session of
/// theirs ends (the calling one, `keep`, goes on). A wrong current password is `401`.
pub async fn change(
    ctx: &Ctx,
    user: &User,
    keep: &str,
    current: &str,
    new: &str,
) -> Result<(), AppError> {
    super::token_secret(ctx)?;
    let db = storage::database(&ctx.env)?;
    let credential = credentials::by_user(&db, &user.id)
        .await?
        .ok_or_else(|| AppError::Forbidden("this is not a password account".to_owned()))?;
    if !password::verify(current, &credential.password_hash) {
        return Err(AppError::invalid(
            "current_password",
            "is not the account's password",
        ));
    }
    let hash = super::hash_password(ctx.data.config.accounts.hash_cost, new)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let mut statements = vec![credentials::set_hash_statement(&db, &user.id, &hash, &now)?];
    statements.extend(sessions::end_others(
        &db,
        user,
        Some(keep),
        "password_changed",
        &now,
    )?);
    statements.push(audit::statement(
        &db,
        occasion(ctx),
        &Entry::new(Actor::User(&user.id), Action::AccountPasswordChanged)
            .target(Target::user(&user.id)),
    )?);
    db.batch(statements).await?;
    Ok(())
}

/// Asks for a reset link from a client IP: one use of the IP's and the email's reset
/// windows (`429` when either is full; counted whether or not the email has an account, so
/// the answer tells nothing). For a known email a single-use token bound to that email is
/// stored and mailed after the answer; for an unknown one nothing more happens.
pub async fn request_reset(ctx: &Ctx, email: &str, client_ip: &str) -> Result<(), AppError> {
    super::token_secret(ctx)?;
    let accounts = &ctx.data.config.accounts;
    mail::ready(accounts)?;
    let db = storage::database(&ctx.env)?;
    let now_ms = ctx.data.now_ms;
    let limits = [
        (
            Bounded::ResetPerIp.key(client_ip),
            accounts.resets_per_ip_per_hour,
        ),
        (
            Bounded::ResetPerEmail.key(email),
            accounts.resets_per_email_per_hour,
        ),
    ];
    let mut claims = Vec::with_capacity(limits.len());
    for (key, limit) in &limits {
        claims.push(windows::claim_statement(&db, key, *limit, now_ms)?);
    }
    if let Err(err) = db.batch(claims).await {
        if !windows::is_full(&err) {
            return Err(err.into());
        }
        for (key, limit) in &limits {
            super::throttled(&db, key, *limit, now_ms).await?;
        }
        return Err(AppError::RateLimited {
            retry_after_secs: 1,
        });
    }
    let Some(credential) = credentials::by_email(&db, email).await? else {
        return Ok(());
    };
    let Some(user) = users::get(&db, &credential.user_id).await? else {
        return Ok(());
    };
    if !user.is_active() {
        return Ok(());
    }
    let (token, hash) = super::new_secret(MAILED_PREFIX);
    let mail = Mail::reset_password(accounts, &credential.email, &token);
    let now = rfc3339_from_millis(now_ms);
    db.batch(vec![
        mailed_tokens::insert_statement(
            &db,
            &hash,
            Purpose::ResetPassword,
            &user.id,
            &credential.email,
            now_ms + accounts.reset_ttl_secs * 1000,
            &now,
        )?,
        mail.queue(&db, &now)?,
        audit::statement(
            &db,
            occasion(ctx),
            &Entry::new(Actor::Anonymous, Action::AccountPasswordResetRequested)
                .target(Target::user(&user.id)),
        )?,
    ])
    .await?;
    mail::send_later(ctx, vec![mail]);
    Ok(())
}

/// Sets a new password with a mailed reset token, once. A used, expired or unknown token is
/// `400`, and so is one mailed to an address the account no longer has; it is looked up
/// before any password hashing. Every session of the user ends, and every other reset link
/// stops working.
pub async fn reset(ctx: &Ctx, token: &str, new: &str) -> Result<(), AppError> {
    super::token_secret(ctx)?;
    let refused = || AppError::BadRequest("reset token is invalid, used or expired".to_owned());
    if !secret_token::looks_like(MAILED_PREFIX, token) {
        return Err(refused());
    }
    let db = storage::database(&ctx.env)?;
    let accounts = &ctx.data.config.accounts;
    let digest = secret_token::digest(token);
    let now_ms = ctx.data.now_ms;
    // Looked up first: an unknown token costs no Argon2 work.
    mailed_tokens::find(&db, &digest, Purpose::ResetPassword, now_ms)
        .await?
        .ok_or_else(refused)?;
    // Hashed before the token is spent, so a failure here leaves the link usable.
    let hash = super::hash_password(accounts.hash_cost, new)?;
    let now = rfc3339_from_millis(now_ms);
    let claimed = mailed_tokens::claim(&db, &digest, Purpose::ResetPassword, now_ms, &now)
        .await?
        .ok_or_else(refused)?;
    let user = users::get(&db, &claimed.user_id)
        .await?
        .filter(User::is_active)
        .ok_or_else(refused)?;
    let mut statements = vec![
        credentials::set_hash_statement(&db, &user.id, &hash, &now)?,
        mailed_tokens::void_statement(&db, &user.id, Purpose::ResetPassword, &now)?,
    ];
    statements.extend(sessions::end_others(
        &db,
        &user,
        None,
        "password_reset",
        &now,
    )?);
    statements.push(audit::statement(
        &db,
        occasion(ctx),
        &Entry::new(Actor::Anonymous, Action::AccountPasswordReset).target(Target::user(&user.id)),
    )?);
    db.batch(statements).await?;
    Ok(())
}
