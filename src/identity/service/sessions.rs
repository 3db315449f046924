//! A session's tokens: refreshing them, and ending the session (sign-out frees the device's
//! slot and, for a Clerk session, revokes it at Clerk).

use serde_json::json;

use crate::clock::now;
use crate::devices::service as devices;
use crate::error::AppError;
use crate::http::Ctx;
use crate::identity::rules::jwt::{self, TokenKind, VerifiedToken};
use crate::identity::rules::status::AuthSource;
use crate::identity::service::auth::Principal;
use crate::identity::store::sessions;
use crate::storage;
use crate::upstream::clerk::{ClerkApi, ClerkError};

fn clerk_api(ctx: &Ctx) -> Result<ClerkApi<'_>, AppError> {
    Ok(ClerkApi {
        base_url: &ctx.data.config.upstreams.clerk_api,
        secret_key: ctx.data.config.auth.clerk_secret_key.require()?,
    })
}

/// A fresh token for the session of `token`: minted by Clerk for a Clerk session (needs
/// `CLERK_SECRET_KEY`), signed with `JWT_SECRET` for an HMAC session.
pub async fn refresh(ctx: &Ctx, token: &VerifiedToken) -> Result<String, AppError> {
    match token.kind {
        TokenKind::Clerk => {
            let session = token.session_id.as_deref().ok_or_else(|| {
                AppError::BadRequest("this Clerk token names no session (sid)".to_owned())
            })?;
            match clerk_api(ctx)?.create_session_token(session).await {
                Ok(jwt) => Ok(jwt),
                Err(ClerkError::NotFound) => Err(AppError::Unauthorized(
                    "session is no longer active".to_owned(),
                )),
                Err(ClerkError::Failed(err)) => Err(err),
            }
        }
        TokenKind::Account => Err(AppError::invalid(
            "refresh_token",
            "is required to refresh an account session (send the refresh token, not the \
             access token)",
        )),
        TokenKind::Hmac => {
            let auth = &ctx.data.config.auth;
            let secret = auth.jwt_secret.require()?;
            let now = crate::clock::now_secs();
            jwt::sign_hmac(secret.as_bytes(), token, now, auth.jwt_ttl_secs)
                .map_err(AppError::Internal)
        }
    }
}

/// What signing out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedOut {
    /// Whether Clerk confirmed the revocation.
    pub revoked_at_clerk: bool,
    /// Devices signed out.
    pub devices: usize,
}

/// Ends the caller's session `session_id` (of a `kind` token) and the device it was used
/// on (`device`, from `X-Device-Id`). Its tokens are refused from now on; a Clerk session
/// is also revoked at Clerk when `CLERK_SECRET_KEY` is set. A Clerk failure is logged and
/// reported (`revoked_at_clerk: false`), not an error: the session has ended here.
pub async fn sign_out(
    ctx: &Ctx,
    principal: &Principal,
    kind: TokenKind,
    session_id: &str,
    device: Option<&str>,
) -> Result<SignedOut, AppError> {
    let db = storage::database(&ctx.env)?;
    let session = sessions::SessionRef {
        id: session_id,
        auth_source: principal.user.auth_source,
        external_user_id: &principal.user.external_id,
    };
    sessions::end(&db, session, "signout", &now()).await?;
    // The device's slot is freed (the plan caps devices signed in at once).
    let devices_ended =
        devices::end(&db, &principal.user.id, Some(session_id), device, &now()).await?;
    let mut revoked_at_clerk = false;
    if kind == TokenKind::Clerk && ctx.data.config.auth.clerk_secret_key.is_set() {
        match clerk_api(ctx)?.revoke_session(session_id).await {
            Ok(()) | Err(ClerkError::NotFound) => revoked_at_clerk = true,
            Err(ClerkError::Failed(err)) => {
                ctx.data.log.error(
                    "Clerk session revoke failed",
                    json!({ "detail": err.log_detail() }),
                );
            }
        }
    }
    Ok(SignedOut {
        revoked_at_clerk,
        devices: devices_ended,
    })
}

pub use crate::identity::store::sessions::SessionRef;

/// The statement that records a new active session, for the sign-in's own batch.
pub fn start_statement(
    db: &worker::D1Database,
    session: SessionRef<'_>,
    now: &str,
) -> Result<worker::D1PreparedStatement, AppError> {
    sessions::start_statement(db, session, now)
}

/// The statement that ends one active session with `reason`.
pub fn end_statement(
    db: &worker::D1Database,
    session: SessionRef<'_>,
    reason: &str,
    now: &str,
) -> Result<worker::D1PreparedStatement, AppError> {
    sessions::end_statement(db, session, reason, now)
}

/// The statement that ends every active session of a user but `except`.
pub fn end_others_statement(
    db: &worker::D1Database,
    auth_source: AuthSource,
    external_user_id: &str,
    except: Option<&str>,
    reason: &str,
    now: &str,
) -> Result<worker::D1PreparedStatement, AppError> {
    sessions::end_others_statement(db, auth_source, external_user_id, except, reason, now)
}
