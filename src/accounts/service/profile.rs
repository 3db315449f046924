//! The account profile: the user's display name, avatar and email (with its verification).

use crate::accounts::rules::password;
use crate::accounts::rules::secret_token::MAILED_PREFIX;
use crate::accounts::service::mail::{self, Mail};
use crate::accounts::store::credentials::{self, Credential};
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
    /// A new email asked for, waiting for its link to be used.
    pub pending_email: Option<String>,
}

/// The caller's account profile; `403` for a user who is not a password account.
pub async fn get(ctx: &Ctx, user: &User) -> Result<AccountProfile, AppError> {
    let (profile, _) = with_credential(ctx, user).await?;
    Ok(profile)
}

async fn with_credential(ctx: &Ctx, user: &User) -> Result<(AccountProfile, Credential), AppError> {
    super::token_secret(ctx)?;
    let db = storage::database(&ctx.env)?;
    let credential = credentials::by_user(&db, &user.id)
        .await?
        .ok_or_else(not_an_account)?;
    let profile = AccountProfile {
        user: user.clone(),
        email: credential.email.clone(),
        email_verified: credential.email_verified_at.is_some(),
        pending_email: credential.pending_email.clone(),
    };
    Ok((profile, credential))
}

fn not_an_account() -> AppError {
    AppError::Forbidden(
        "this is for Tollgate accounts (email and password); use /api/user/profile".to_owned(),
    )
}

const TAKEN: &str = "an account with this email already exists";

/// A new email asked for, with the current password that must come with it.
pub struct EmailChange<'a> {
    /// Normalised.
    pub email: &'a str,
    pub current_password: Option<&'a str>,
}

/// Changes the display name and avatar, and asks for a new email. A new email needs the
/// current password (so a stolen access token cannot take the account over); it becomes the
/// account's email (for sign-in and resets) only once its mailed link is used, the old
/// address is told, and every reset and verification link mailed before stops working. A
/// taken email is `409` and changes nothing.
pub async fn update(
    ctx: &Ctx,
    user: &User,
    changes: &ProfileChanges,
    email: Option<EmailChange<'_>>,
) -> Result<AccountProfile, AppError> {
    let (current, credential) = with_credential(ctx, user).await?;
    let db = storage::database(&ctx.env)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let accounts = &ctx.data.config.accounts;
    let change = email.filter(|c| c.email != current.email);
    let mut fields: Vec<&str> = Vec::new();
    if changes.display_name.is_some() {
        fields.push("display_name");
    }
    if changes.avatar_url.is_some() {
        fields.push("avatar_url");
    }
    let mut pending_email = current.pending_email.clone();
    if let Some(change) = change {
        let given = change.current_password.ok_or_else(|| {
            AppError::invalid("current_password", "is required to change the email")
        })?;
        if !password::verify(given, &credential.password_hash) {
            return Err(AppError::invalid(
                "current_password",
                "is not the account's password",
            ));
        }
        mail::ready(accounts)?;
        if credentials::by_email(&db, change.email).await?.is_some() {
            return Err(AppError::Conflict(TAKEN.to_owned()));
        }
        fields.push("email");
        let (token, hash) = super::new_secret(MAILED_PREFIX);
        let confirm = Mail::verify_email(accounts, change.email, &token);
        let notice = Mail::email_change_notice(accounts, &current.email, change.email);
        let statements = vec![
            credentials::set_pending_email_statement(&db, &user.id, change.email, &now)?,
            mailed_tokens::void_statement(&db, &user.id, Purpose::VerifyEmail, &now)?,
            mailed_tokens::void_statement(&db, &user.id, Purpose::ResetPassword, &now)?,
            mailed_tokens::insert_statement(
                &db,
                &hash,
                Purpose::VerifyEmail,
                &user.id,
                change.email,
                ctx.data.now_ms + accounts.verify_ttl_secs * 1000,
                &now,
            )?,
            confirm.queue(&db, &now)?,
            notice.queue(&db, &now)?,
        ];
        db.batch(statements).await?;
        mail::send_later(ctx, vec![confirm, notice]);
        pending_email = Some(change.email.to_owned());
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
    Ok(AccountProfile {
        email: current.email,
        email_verified: current.email_verified,
        pending_email,
        user,
    })
}
