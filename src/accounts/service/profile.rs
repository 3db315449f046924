//! The account profile: the user's display name, avatar and email (with its verification).

use crate::accounts::rules::secret_token::MAILED_PREFIX;
use crate::accounts::service::mail::{self, Mail};
use crate::accounts::store::credentials;
use crate::accounts::store::mailed_tokens::{self, Purpose};
use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::Ctx;
use crate::identity::rules::profile::ProfileChanges;
use crate::identity::service::users::{self, User};
use crate::storage;

/// A password account's profile.
pub struct AccountProfile {
    pub user: User,
    pub email: String,
    pub email_verified: bool,
}

/// The caller's account profile; `403` for a user who is not a password account.
pub async fn get(ctx: &Ctx, user: &User) -> Result<AccountProfile, AppError> {
    super::token_secret(ctx)?;
    let db = storage::database(&ctx.env)?;
    let credential = credentials::by_user(&db, &user.id)
        .await?
        .ok_or_else(not_an_account)?;
    Ok(AccountProfile {
        user: user.clone(),
        email: credential.email,
        email_verified: credential.email_verified_at.is_some(),
    })
}

fn not_an_account() -> AppError {
    AppError::Forbidden(
        "this is for Tollgate accounts (email and password); use /api/user/profile".to_owned(),
    )
}

const TAKEN: &str = "an account with this email already exists";

/// Changes the display name and avatar, and the email (normalised): a new email is
/// unverified until its mailed link is used. A taken email is `409` and changes nothing.
pub async fn update(
    ctx: &Ctx,
    user: &User,
    changes: &ProfileChanges,
    email: Option<&str>,
) -> Result<AccountProfile, AppError> {
    let current = get(ctx, user).await?;
    let db = storage::database(&ctx.env)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let accounts = &ctx.data.config.accounts;
    let new_email = email.filter(|e| *e != current.email);
    let mut fields: Vec<&str> = Vec::new();
    if changes.display_name.is_some() {
        fields.push("display_name");
    }
    if changes.avatar_url.is_some() {
        fields.push("avatar_url");
    }
    let mut mail_to_send = None;
    if let Some(email) = new_email {
        if credentials::by_email(&db, email).await?.is_some() {
            return Err(AppError::Conflict(TAKEN.to_owned()));
        }
        fields.push("email");
        let (token, hash) = super::new_secret(MAILED_PREFIX);
        let mail = Mail::verify_email(accounts, email, &token);
        let statements = vec![
            credentials::set_email_statement(&db, &user.id, email, &now)?,
            users::set_email_statement(&db, &user.id, email, &now)?,
            mailed_tokens::void_statement(&db, &user.id, Purpose::VerifyEmail, &now)?,
            mailed_tokens::insert_statement(
                &db,
                &hash,
                Purpose::VerifyEmail,
                &user.id,
                email,
                ctx.data.now_ms + accounts.verify_ttl_secs * 1000,
                &now,
            )?,
            mail.queue(&db, &now)?,
        ];
        db.batch(statements)
            .await
            .map_err(|e| super::conflict_on_unique(e, TAKEN))?;
        mail_to_send = Some(mail);
    }
    let user = if changes.is_empty() {
        users::get(&db, &user.id)
            .await?
            .unwrap_or_else(|| user.clone())
    } else {
        users::update_profile(&db, &user.id, changes, &now).await?
    };
    if !fields.is_empty() {
        audit::record(
            &db,
            Occasion {
                request_id: Some(&ctx.data.request_id),
                now_ms: ctx.data.now_ms,
            },
            &Entry::new(Actor::User(&user.id), Action::AccountProfileUpdated)
                .target(Target::user(&user.id))
                .with("fields", fields),
        )
        .await?;
    }
    if let Some(mail) = &mail_to_send {
        mail::deliver(&db, accounts, &ctx.data.log, mail).await;
    }
    Ok(AccountProfile {
        email: new_email.map_or(current.email, str::to_owned),
        email_verified: new_email.is_none() && current.email_verified,
        user,
    })
}
