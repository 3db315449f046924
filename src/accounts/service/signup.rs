//! Sign-up and email verification.

use crate::accounts::rules::secret_token::{self, MAILED_PREFIX};
use crate::accounts::rules::windows::Bounded;
use crate::accounts::service::mail::{self, Mail};
use crate::accounts::service::sessions::{self, Issued};
use crate::accounts::store::credentials;
use crate::accounts::store::mailed_tokens::{self, Purpose};
use crate::accounts::store::windows as window_store;
use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::core::random;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::Ctx;
use crate::identity::rules::status::UserStatus;
use crate::identity::service::users::{self, SignedUpUser, User};
use crate::storage;

/// What a sign-up gives: the new user (who may need a verified email) and their session.
pub struct SignedUp {
    pub user: User,
    pub email_verified: bool,
    pub session: Issued,
}

/// A validated sign-up.
pub struct NewAccount<'a> {
    /// Normalised.
    pub email: &'a str,
    pub password: &'a str,
    pub display_name: Option<&'a str>,
}

const TAKEN: &str = "an account with this email already exists";

/// Registers an account for a client IP: one use of the IP's sign-up window, the user, its
/// credential, a first session and the verification mail, all in one batch. A full window
/// (`429`, even against a concurrent burst) or a taken email (`409`, even by a concurrent
/// sign-up) changes nothing. The mail is sent after the answer.
pub async fn register(
    ctx: &Ctx,
    new: NewAccount<'_>,
    client_ip: &str,
) -> Result<SignedUp, AppError> {
    super::token_secret(ctx)?;
    let accounts = &ctx.data.config.accounts;
    mail::ready(accounts)?;
    let db = storage::database(&ctx.env)?;
    let window_key = Bounded::SignupPerIp.key(client_ip);
    let limit = accounts.signups_per_ip_per_hour;
    // A full window is refused before any password hashing; the claim in the batch below is
    // what makes the limit exact.
    super::throttled(&db, &window_key, limit, ctx.data.now_ms).await?;
    if credentials::by_email(&db, new.email).await?.is_some() {
        return Err(AppError::Conflict(TAKEN.to_owned()));
    }
    let hash = super::hash_password(accounts.hash_cost, new.password)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let user = User {
        id: random::id::<12>("usr_"),
        auth_source: sessions::SOURCE,
        external_id: random::id::<16>("acct_"),
        email: Some(new.email.to_owned()),
        username: None,
        display_name: new.display_name.map(str::to_owned),
        avatar_url: None,
        plan: ctx.data.config.plans.default_plan().id.clone(),
        status: UserStatus::Active,
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    let (verify_token, verify_hash) = super::new_secret(MAILED_PREFIX);
    let mail = Mail::verify_email(accounts, new.email, &verify_token);
    let occasion = Occasion {
        request_id: Some(&ctx.data.request_id),
        now_ms: ctx.data.now_ms,
    };
    let mut statements = vec![
        window_store::claim_statement(&db, &window_key, limit, ctx.data.now_ms)?,
        users::insert_statement(
            &db,
            SignedUpUser {
                id: &user.id,
                auth_source: sessions::SOURCE,
                external_id: &user.external_id,
                email: new.email,
                display_name: new.display_name,
                plan: &user.plan,
            },
            &now,
        )?,
        credentials::insert_statement(&db, &user.id, new.email, &hash, &now)?,
        mailed_tokens::insert_statement(
            &db,
            &verify_hash,
            Purpose::VerifyEmail,
            &user.id,
            new.email,
            ctx.data.now_ms + accounts.verify_ttl_secs * 1000,
            &now,
        )?,
        mail.queue(&db, &now)?,
        audit::statement(
            &db,
            occasion,
            &Entry::new(Actor::Anonymous, Action::AccountRegistered).target(Target::user(&user.id)),
        )?,
    ];
    let (session_statements, session) = sessions::start(ctx, &db, &user, "register")?;
    statements.extend(session_statements);
    if let Err(err) = db.batch(statements).await {
        if window_store::is_full(&err) {
            super::throttled(&db, &window_key, limit, ctx.data.now_ms).await?;
            return Err(AppError::RateLimited {
                retry_after_secs: 1,
            });
        }
        return Err(super::conflict_on_unique(err, TAKEN));
    }
    mail::send_later(ctx, vec![mail]);
    Ok(SignedUp {
        user,
        email_verified: false,
        session,
    })
}

/// Uses a mailed verification token once: the email it was sent to is marked verified if it
/// is still the account's email, or becomes the account's email if it is the new one asked
/// for. A used, expired or unknown token is `400`; an address another account took
/// meanwhile is `409`.
pub async fn verify_email(ctx: &Ctx, token: &str) -> Result<(), AppError> {
    super::token_secret(ctx)?;
    let refused = || AppError::BadRequest("verification token is invalid, used or expired".into());
    if !secret_token::looks_like(MAILED_PREFIX, token) {
        return Err(refused());
    }
    let db = storage::database(&ctx.env)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let claimed = mailed_tokens::claim(
        &db,
        &secret_token::digest(token),
        Purpose::VerifyEmail,
        ctx.data.now_ms,
        &now,
    )
    .await?
    .ok_or_else(refused)?;
    let confirmed = credentials::confirm(&db, &claimed.user_id, &claimed.email, &now)
        .await
        .map_err(|e| super::conflict_on_unique(e, TAKEN))?;
    if !confirmed {
        // The account's email changed since (or it was verified already).
        return Err(refused());
    }
    audit::record(
        &db,
        Occasion {
            request_id: Some(&ctx.data.request_id),
            now_ms: ctx.data.now_ms,
        },
        &Entry::new(Actor::User(&claimed.user_id), Action::AccountEmailVerified)
            .target(Target::user(&claimed.user_id)),
    )
    .await?;
    Ok(())
}
