//! Sign-in and sessions: a session is a family of refresh tokens (its id is the
//! `auth_sessions` row's); each refresh spends one token and issues the next, and a spent
//! token presented again revokes the whole family.

use worker::{D1Database, D1PreparedStatement};

use crate::accounts::rules::password;
use crate::accounts::rules::secret_token::{self, REFRESH_PREFIX};
use crate::accounts::rules::throttle;
use crate::accounts::store::{credentials, login_failures, refresh_tokens};
use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::core::random;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::Ctx;
use crate::identity::rules::jwt;
use crate::identity::rules::status::AuthSource;
use crate::identity::service::sessions::{self as identity_sessions, SessionRef};
use crate::identity::service::users::{self, User};
use crate::storage;

/// The `auth_sessions.auth_source` of account sessions.
pub const SOURCE: AuthSource = AuthSource::Password;

/// What a client holds for a session.
#[derive(Debug, Clone)]
pub struct Issued {
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

/// Why sign-in failed, in the one sentence both causes share.
pub const WRONG_CREDENTIALS: &str = "email or password is incorrect";

fn occasion(ctx: &Ctx) -> Occasion<'_> {
    Occasion {
        request_id: Some(&ctx.data.request_id),
        now_ms: ctx.data.now_ms,
    }
}

fn now(ctx: &Ctx) -> String {
    rfc3339_from_millis(ctx.data.now_ms)
}

/// A signed access token for `user` in session `session_id`.
fn access_token(ctx: &Ctx, user: &User, session_id: &str) -> Result<String, AppError> {
    let secret = super::token_secret(ctx)?;
    let ttl = ctx.data.config.accounts.token_ttl_secs;
    let claims = jwt::account_claims(
        &user.external_id,
        session_id,
        (ctx.data.now_ms / 1000) as i64,
        ttl,
    );
    jwt::sign_account(secret.as_bytes(), &claims).map_err(AppError::Internal)
}

/// A new session for `user`: the statements that record it (for the caller's batch) and the
/// tokens to hand out once they have run.
pub fn start(
    ctx: &Ctx,
    db: &D1Database,
    user: &User,
    how: &'static str,
) -> Result<(Vec<D1PreparedStatement>, Issued), AppError> {
    let session_id = random::id::<16>("ses_");
    let (refresh_token, refresh_hash) = super::new_secret(REFRESH_PREFIX);
    let now = now(ctx);
    let accounts = &ctx.data.config.accounts;
    let expires = ctx.data.now_ms + accounts.refresh_ttl_secs * 1000;
    let statements = vec![
        identity_sessions::start_statement(
            db,
            SessionRef {
                id: &session_id,
                auth_source: SOURCE,
                external_user_id: &user.external_id,
            },
            &now,
        )?,
        refresh_tokens::insert_statement(db, &refresh_hash, &session_id, &user.id, expires, &now)?,
        audit::statement(
            db,
            occasion(ctx),
            &Entry::new(Actor::User(&user.id), Action::SessionStarted)
                .target(Target::new("session", &session_id))
                .with("via", how),
        )?,
    ];
    let issued = Issued {
        access_token: access_token(ctx, user, &session_id)?,
        session_id,
        refresh_token,
        expires_in: accounts.token_ttl_secs,
    };
    Ok((statements, issued))
}

/// Signs in with email and password. Throttled per email and per client IP (checked before
/// the password); a wrong password and an unknown email fail alike, after the same work.
pub async fn login(
    ctx: &Ctx,
    email: &str,
    password: &str,
    client_ip: Option<&str>,
) -> Result<(User, Issued), AppError> {
    super::token_secret(ctx)?;
    let db = storage::database(&ctx.env)?;
    let email_key = throttle::email_key(email);
    let ip_key = client_ip.map(throttle::ip_key);
    let mut limits = vec![(email_key.as_str(), throttle::EMAIL_LIMIT)];
    if let Some(ip) = &ip_key {
        limits.push((ip.as_str(), throttle::IP_LIMIT));
    }
    let now_ms = ctx.data.now_ms;
    // Counted as a failure before the password is checked (given back if it is right), so a
    // burst of concurrent guesses gets no more checks than the limit.
    let claimed = login_failures::claim(&db, &limits, now_ms).await?;
    let counted: Vec<(&str, throttle::Counter)> = limits
        .iter()
        .zip(&claimed)
        .filter_map(|((key, _), counter)| counter.map(|c| (*key, c)))
        .collect();
    if counted.len() < limits.len() {
        login_failures::release(&db, &counted).await?;
        let keys: Vec<&str> = limits.iter().map(|(key, _)| *key).collect();
        let stored = login_failures::counters(&db, &keys).await?;
        let by_email = stored.first().copied().flatten();
        let by_ip = stored.get(1).copied().flatten();
        let retry_after_secs = throttle::verdict(by_email, by_ip, now_ms).unwrap_or(1);
        return Err(AppError::RateLimited { retry_after_secs });
    }
    let cost = ctx.data.config.accounts.hash_cost;
    let credential = credentials::by_email(&db, email).await?;
    let user = match &credential {
        Some(c) if password::verify(password, &c.password_hash) => {
            users::get(&db, &c.user_id).await?.filter(User::is_active)
        }
        Some(_) => None,
        None => {
            super::verify_dummy(cost, password)?;
            None
        }
    };
    let (Some(user), Some(credential)) = (user, credential) else {
        // The failure was counted by the claim.
        return Err(AppError::Unauthorized(WRONG_CREDENTIALS.to_owned()));
    };
    login_failures::release(&db, &counted).await?;
    if password::needs_rehash(&credential.password_hash, cost) {
        let stronger = super::hash_password(cost, password)?;
        credentials::rehash(
            &db,
            &user.id,
            &credential.password_hash,
            &stronger,
            &now(ctx),
        )
        .await?;
    }
    let (statements, issued) = start(ctx, &db, &user, "login")?;
    db.batch(statements).await?;
    Ok((user, issued))
}

/// Rotates a refresh token: the new pair, or `401` for an unknown, expired, revoked or
/// spent token. A spent token (presented again, or by a concurrent loser) revokes its
/// family: every refresh token of the session dies and the session ends, so its access
/// tokens are refused too.
pub async fn refresh(ctx: &Ctx, presented: &str) -> Result<Issued, AppError> {
    super::token_secret(ctx)?;
    let refused = || AppError::Unauthorized("refresh token is invalid or expired".to_owned());
    if !secret_token::looks_like(REFRESH_PREFIX, presented) {
        return Err(refused());
    }
    let db = storage::database(&ctx.env)?;
    let old = secret_token::digest(presented);
    let (next_token, next_hash) = super::new_secret(REFRESH_PREFIX);
    let accounts = &ctx.data.config.accounts;
    let now_ms = ctx.data.now_ms;
    let now = now(ctx);
    let expires = now_ms + accounts.refresh_ttl_secs * 1000;
    let Some(row) = refresh_tokens::rotate(&db, &old, &next_hash, expires, now_ms, &now).await?
    else {
        return Err(refused());
    };
    let user = users::get(&db, &row.user_id).await?.ok_or_else(refused)?;
    match row.replaced_by.as_deref() {
        Some(next) if next == next_hash => {
            if !user.is_active() {
                return Err(refused());
            }
            audit::record(
                &db,
                occasion(ctx),
                &Entry::new(Actor::User(&user.id), Action::SessionRefreshed)
                    .target(Target::new("session", &row.family_id)),
            )
            .await?;
            Ok(Issued {
                access_token: access_token(ctx, &user, &row.family_id)?,
                session_id: row.family_id,
                refresh_token: next_token,
                expires_in: accounts.token_ttl_secs,
            })
        }
        Some(_) if row.revoked_at.is_none() => {
            // Reuse of a spent token: someone else may hold the live one. End the session.
            let session = SessionRef {
                id: &row.family_id,
                auth_source: SOURCE,
                external_user_id: &user.external_id,
            };
            db.batch(vec![
                refresh_tokens::revoke_family_statement(&db, &row.family_id, &now)?,
                identity_sessions::end_statement(&db, session, "refresh_reuse", &now)?,
                audit::statement(
                    &db,
                    occasion(ctx),
                    &Entry::new(Actor::User(&user.id), Action::SessionRevoked)
                        .target(Target::new("session", &row.family_id))
                        .with("reason", "refresh_reuse"),
                )?,
            ])
            .await?;
            Err(refused())
        }
        _ => Err(refused()),
    }
}

/// Ends the caller's account session `session_id`: the session row and every refresh token
/// of its family. Its access tokens are refused from the next request on.
pub async fn logout(ctx: &Ctx, user: &User, session_id: &str) -> Result<(), AppError> {
    let db = storage::database(&ctx.env)?;
    let now = now(ctx);
    let session = SessionRef {
        id: session_id,
        auth_source: SOURCE,
        external_user_id: &user.external_id,
    };
    db.batch(vec![
        identity_sessions::end_statement(&db, session, "logout", &now)?,
        refresh_tokens::revoke_family_statement(&db, session_id, &now)?,
        audit::statement(
            &db,
            occasion(ctx),
            &Entry::new(Actor::User(&user.id), Action::SessionEnded)
                .target(Target::new("session", session_id))
                .with("reason", "logout"),
        )?,
    ])
    .await?;
    Ok(())
}

/// The statements that end every session of `user` but `keep` (password change, reset):
/// the session rows and their refresh tokens.
pub fn end_others(
    db: &D1Database,
    user: &User,
    keep: Option<&str>,
    reason: &str,
    now: &str,
) -> Result<Vec<D1PreparedStatement>, AppError> {
    Ok(vec![
        identity_sessions::end_others_statement(db, SOURCE, &user.external_id, keep, reason, now)?,
        refresh_tokens::revoke_user_statement(db, &user.id, keep, now)?,
    ])
}
