//! The account endpoints (`/api/auth/...`): parse, call one service, render a view.

pub mod views;

use std::future::Future;
use std::pin::Pin;

use worker::{Request, Response};

use crate::accounts::rules::{email, password, windows};
use crate::accounts::service::signup::{self, NewAccount};
use crate::accounts::service::{passwords, profile, sessions};
use crate::core::body::FieldError;
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{self, response, Ctx};
use crate::identity::http::views::{RefreshedTokenView, TokenType};
use crate::identity::rules::jwt::{self, TokenKind};
use crate::identity::rules::profile::{self as profile_rules, ProfilePatch};
use crate::identity::rules::scopes::Access;
use crate::identity::service::auth::{self, Credential, Principal};
use crate::identity::service::sessions as identity_sessions;
use views::*;

/// Collects field errors; `Ok` when there are none.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    fn email(&mut self, field: &str, raw: &str) -> String {
        match email::normalise(raw) {
            Ok(email) => email,
            Err(message) => {
                self.0.push(FieldError::new(field, message));
                String::new()
            }
        }
    }

    fn new_password(&mut self, field: &str, raw: &str) {
        if let Err(message) = password::check(raw) {
            self.0.push(FieldError::new(field, message));
        }
    }

    /// A password that is only compared (sign-in, current password): bounded, not judged.
    fn given_password(&mut self, field: &str, raw: &str) {
        if raw.is_empty() {
            self.0.push(FieldError::new(field, "is required"));
        } else if raw.len() > password::MAX_PASSWORD_BYTES {
            self.0
                .push(FieldError::new(field, "must be at most 256 bytes"));
        }
    }

    fn done(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.0))
        }
    }
}

/// The caller's client IP (`CF-Connecting-IP`), or `unknown`.
fn client_ip(req: &Request) -> String {
    windows::client_ip(http::header(req, "CF-Connecting-IP").as_deref()).to_owned()
}

/// `POST /api/auth/register`: `201` with the user and a session; a taken email is `409`;
/// past `SIGNUP_PER_IP_PER_HOUR` sign-ups from the client IP, `429`.
pub async fn register(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let body: RegisterBody = ctx.data.json()?;
    let mut fields = Fields::default();
    let email = fields.email("email", &body.email);
    fields.new_password("password", &body.password);
    let display_name = match body.display_name {
        None => None,
        Some(name) => {
            let patch = ProfilePatch {
                display_name: Some(Some(name)),
                ..ProfilePatch::default()
            };
            match profile_rules::validate(patch) {
                Ok(changes) => changes.display_name.flatten(),
                Err(errors) => {
                    fields.0.extend(errors);
                    None
                }
            }
        }
    };
    fields.done()?;
    let signed_up = signup::register(
        &ctx,
        NewAccount {
            email: &email,
            password: &body.password,
            display_name: display_name.as_deref(),
        },
        &client_ip(&req),
    )
    .await?;
    let user = AccountUserView::new(&signed_up.user, &email, signed_up.email_verified);
    let mut resp = response::json(201, &AccountSessionView::new(user, signed_up.session))?;
    response::set(resp.headers_mut(), "Cache-Control", "no-store");
    Ok(resp)
}

/// What `/openapi.json` says of `POST /api/auth/register`.
pub fn register_doc() -> Doc {
    Doc::new(
        "Create an account: the user and a session; mails a verification link (at most \
         SIGNUP_PER_IP_PER_HOUR sign-ups per client IP an hour)",
    )
    .body::<RegisterBody>()
    .ok::<AccountSessionView>(201)
    .errors(&["conflict", "rate_limited", "not_configured"])
}

/// `POST /api/auth/login`: the user and a new session. A wrong password and an unknown
/// email answer alike (`401`); too many failures are `429` with `Retry-After`.
pub async fn login(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let body: LoginBody = ctx.data.json()?;
    let mut fields = Fields::default();
    let email = fields.email("email", &body.email);
    fields.given_password("password", &body.password);
    fields.done()?;
    let ip = http::header(&req, "CF-Connecting-IP")
        .map(|ip| ip.trim().to_owned())
        .filter(|ip| !ip.is_empty() && ip.len() <= 64);
    let (user, issued) = sessions::login(&ctx, &email, &body.password, ip.as_deref()).await?;
    let profile = profile::get(&ctx, &user).await?;
    response::secret(&AccountSessionView::new(
        AccountUserView::of(&profile),
        issued,
    ))
}

/// What `/openapi.json` says of `POST /api/auth/login`.
pub fn login_doc() -> Doc {
    Doc::new("Sign in with email and password: the user and a new session")
        .body::<LoginBody>()
        .ok::<AccountSessionView>(200)
        .errors(&["unauthorized", "rate_limited"])
}

/// `POST /api/auth/refresh`: with `{"refresh_token"}`, rotates an account session's tokens;
/// without it, refreshes the bearer's Clerk or HMAC session as before.
pub async fn refresh(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let body: RefreshBody = if ctx.data.raw_body().iter().all(u8::is_ascii_whitespace) {
        RefreshBody::default()
    } else {
        ctx.data.json()?
    };
    if let Some(token) = body.refresh_token {
        let issued = sessions::refresh(&ctx, token.trim()).await?;
        return response::secret(&RefreshAnswer::Account(issued.into()));
    }
    // The bearer path keeps the access rule it had (a session token; no API keys).
    ctx.data.set_access(Access::Session);
    let principal = auth::authenticate(&req, &ctx).await?;
    let Credential::Token { token, .. } = &principal.credential else {
        return Err(AppError::Forbidden(
            "API keys do not expire or sign out; revoke the key instead".to_owned(),
        ));
    };
    let fresh = identity_sessions::refresh(&ctx, token).await?;
    let expires_at = jwt::peek_expiry(&fresh);
    response::ok(&RefreshAnswer::Session(RefreshedTokenView {
        token: fresh,
        token_type: TokenType::Bearer,
        expires_at: expires_at
            .map(|s| crate::core::time::rfc3339_from_millis(s.max(0) as u64 * 1000)),
    }))
}

/// What `/openapi.json` says of `POST /api/auth/refresh`.
pub fn refresh_doc() -> Doc {
    Doc::new(
        "Rotate an account session's tokens (refresh_token), or refresh the bearer's \
         Clerk or HMAC session",
    )
    .optional_body::<RefreshBody>()
    .ok::<RefreshAnswer>(200)
    .errors(&[
        "bad_request",
        "unauthorized",
        "forbidden",
        "rate_limited",
        "upstream_error",
    ])
}

/// The caller's account session id, or `403` for any other credential.
fn account_session(principal: &Principal) -> Result<&str, AppError> {
    match &principal.credential {
        Credential::Token {
            kind: TokenKind::Account,
            session_id: Some(session),
            ..
        } => Ok(session),
        _ => Err(AppError::Forbidden(
            "this needs a Tollgate account session (email and password sign-in)".to_owned(),
        )),
    }
}

/// `POST /api/auth/logout`: ends the caller's session; its access token is refused at once
/// and its refresh tokens are dead. A Clerk or HMAC session is signed out as
/// `POST /api/auth/signout` does.
pub async fn logout(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let session_id = match &principal.credential {
        Credential::Token {
            kind: TokenKind::Account,
            session_id: Some(session),
            ..
        } => {
            sessions::logout(&ctx, &principal.user, session).await?;
            session.clone()
        }
        Credential::Token {
            kind,
            session_id: Some(session),
            ..
        } => {
            let device = crate::http::header(&req, "X-Device-Id");
            identity_sessions::sign_out(
                &ctx,
                &principal,
                *kind,
                session,
                device.as_deref().map(str::trim),
            )
            .await?;
            session.clone()
        }
        _ => {
            return Err(AppError::BadRequest(
                "this credential names no session (sid or jti) to end".to_owned(),
            ))
        }
    };
    response::ok(&LoggedOutView {
        logged_out: true,
        session_id,
    })
}

/// What `/openapi.json` says of `POST /api/auth/logout`.
pub fn logout_doc() -> Doc {
    Doc::new("End the caller's session; its tokens are refused at once")
        .ok::<LoggedOutView>(200)
        .errors(&["bad_request"])
}

/// `GET /api/auth/profile`: the caller's account, with `email_verified`.
pub async fn get_profile(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let profile = profile::get(&ctx, &principal.user).await?;
    response::ok(&AccountUserView::of(&profile))
}

/// What `/openapi.json` says of `GET /api/auth/profile`.
pub fn get_profile_doc() -> Doc {
    Doc::new("The caller's account").ok::<AccountUserView>(200)
}

/// `PUT /api/auth/profile`: display name, avatar, and a new email (with the current
/// password; it takes over once its mailed link is used).
pub async fn put_profile(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: AccountProfileBody = ctx.data.json()?;
    let mut fields = Fields::default();
    let email = body.email.as_deref().map(|raw| fields.email("email", raw));
    if let (Some(_), Some(given)) = (&email, body.current_password.as_deref()) {
        fields.given_password("current_password", given);
    }
    let patch = ProfilePatch {
        username: None,
        display_name: body.display_name,
        avatar_url: body.avatar_url,
    };
    let changes = match profile_rules::validate(patch) {
        Ok(changes) => changes,
        Err(errors) => {
            fields.0.extend(errors);
            Default::default()
        }
    };
    fields.done()?;
    let change = email.as_deref().map(|email| profile::EmailChange {
        email,
        current_password: body.current_password.as_deref(),
    });
    let updated = profile::update(&ctx, &principal.user, &changes, change).await?;
    response::ok(&AccountUserView::of(&updated))
}

/// What `/openapi.json` says of `PUT /api/auth/profile`.
pub fn put_profile_doc() -> Doc {
    Doc::new(
        "Change the display name or avatar, or ask for a new email (with the current \
         password; it takes over once its mailed link is used)",
    )
    .body::<AccountProfileBody>()
    .ok::<AccountUserView>(200)
    .errors(&["conflict", "not_found", "not_configured"])
}

/// `POST /api/auth/change-password`: ends every other session of the caller.
pub async fn change_password(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: ChangePasswordBody = ctx.data.json()?;
    let mut fields = Fields::default();
    fields.given_password("current_password", &body.current_password);
    fields.new_password("new_password", &body.new_password);
    fields.done()?;
    let session = account_session(&principal)?;
    passwords::change(
        &ctx,
        &principal.user,
        session,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    response::ok(&PasswordSetView {
        password_changed: true,
        sessions_ended: true,
    })
}

/// What `/openapi.json` says of `POST /api/auth/change-password`.
pub fn change_password_doc() -> Doc {
    Doc::new("Change the password; every other session of the caller ends")
        .body::<ChangePasswordBody>()
        .ok::<PasswordSetView>(200)
}

/// `POST /api/auth/request-password-reset`: `202` with the same body whether or not the
/// email has an account; `429` past the client IP's or the email's hourly requests.
pub async fn request_password_reset(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let body: RequestResetBody = ctx.data.json()?;
    let mut fields = Fields::default();
    let email = fields.email("email", &body.email);
    fields.done()?;
    passwords::request_reset(&ctx, &email, &client_ip(&req)).await?;
    response::json(
        202,
        &ResetRequestedView {
            status: Accepted::Accepted,
            message: "if an account has this email, a reset link is on its way",
        },
    )
}

/// What `/openapi.json` says of `POST /api/auth/request-password-reset`.
pub fn request_password_reset_doc() -> Doc {
    Doc::new(
        "Mail a password reset link if the email has an account (same answer if not; \
         at most RESET_PER_IP_PER_HOUR per client IP and RESET_PER_EMAIL_PER_HOUR per \
         email an hour)",
    )
    .body::<RequestResetBody>()
    .ok::<ResetRequestedView>(202)
    .errors(&["rate_limited", "not_configured"])
}

/// `POST /api/auth/reset-password`: sets the password once with a mailed token; every
/// session of the user ends.
pub async fn reset_password(_req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let body: ResetPasswordBody = ctx.data.json()?;
    let mut fields = Fields::default();
    fields.new_password("new_password", &body.new_password);
    fields.done()?;
    passwords::reset(&ctx, body.token.trim(), &body.new_password).await?;
    response::ok(&PasswordSetView {
        password_changed: true,
        sessions_ended: true,
    })
}

/// What `/openapi.json` says of `POST /api/auth/reset-password`.
pub fn reset_password_doc() -> Doc {
    Doc::new("Set a new password with a mailed reset token (once); every session ends")
        .body::<ResetPasswordBody>()
        .ok::<PasswordSetView>(200)
        .errors(&["bad_request"])
}

/// `POST /api/auth/verify-email`: marks the email verified with a mailed token (once).
pub async fn verify_email(_req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let body: VerifyEmailBody = ctx.data.json()?;
    signup::verify_email(&ctx, body.token.trim()).await?;
    response::ok(&EmailVerifiedView {
        email_verified: true,
    })
}

/// What `/openapi.json` says of `POST /api/auth/verify-email`.
pub fn verify_email_doc() -> Doc {
    Doc::new(
        "Mark the email verified with a mailed token (once), or make the new email \
         asked for the account's",
    )
    .body::<VerifyEmailBody>()
    .ok::<EmailVerifiedView>(200)
    .errors(&["bad_request", "conflict"])
}

/// The route guard of everything that costs the operator money (see
/// [`crate::http::dispatch::RouteTable::guard`]): `403 email_not_verified` for a password
/// account whose email is not verified, while `REQUIRE_VERIFIED_EMAIL` is on.
pub fn verified_email<'a>(
    ctx: &'a Ctx,
    principal: &'a Principal,
) -> Pin<Box<dyn Future<Output = Result<(), AppError>> + 'a>> {
    Box::pin(crate::accounts::service::require_verified(
        ctx,
        &principal.user,
    ))
}

/// The error code [`verified_email`] refuses with.
pub const NOT_VERIFIED: &str = "email_not_verified";
