//! Sokuji's auth endpoints: token refresh, sign-out, and the OAuth redirect to Clerk.

use serde_json::json;
use worker::{Date, Request, Response, Url};

use crate::clock::now;
use crate::devices::store as devices;
use crate::error::AppError;
use crate::http::{response, Ctx};
use crate::identity::http::views::{RefreshedTokenView, SignedOutView, TokenType};
use crate::identity::rules::jwt::{self, TokenKind, VerifiedToken};
use crate::identity::service::auth::{self, Credential, Principal};
use crate::identity::store::sessions;
use crate::storage as store;
use crate::upstream::clerk::{ClerkApi, ClerkError};

fn token_of(principal: &Principal) -> Result<&VerifiedToken, AppError> {
    match &principal.credential {
        Credential::Token { token, .. } => Ok(token),
        Credential::ApiKey { .. } => Err(AppError::BadRequest(
            "API keys do not expire or sign out; revoke the key instead".to_owned(),
        )),
    }
}

fn clerk_api(ctx: &Ctx) -> Result<ClerkApi<'_>, AppError> {
    Ok(ClerkApi {
        base_url: &ctx.data.config.upstreams.clerk_api,
        secret_key: ctx.data.config.auth.clerk_secret_key.require()?,
    })
}

/// `POST /api/auth/refresh`: a fresh token for the caller's session — minted by Clerk for a
/// Clerk session (needs `CLERK_SECRET_KEY`), signed with `JWT_SECRET` for an HMAC session.
pub async fn refresh(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let token = token_of(&principal)?;
    let fresh = match token.kind {
        TokenKind::Clerk => {
            let session = token.session_id.as_deref().ok_or_else(|| {
                AppError::BadRequest("this Clerk token names no session (sid)".to_owned())
            })?;
            match clerk_api(&ctx)?.create_session_token(session).await {
                Ok(jwt) => jwt,
                Err(ClerkError::NotFound) => {
                    return Err(AppError::Unauthorized(
                        "session is no longer active".to_owned(),
                    ))
                }
                Err(ClerkError::Failed(err)) => return Err(err),
            }
        }
        TokenKind::Hmac => {
            let auth = &ctx.data.config.auth;
            let secret = auth.jwt_secret.require()?;
            let now = (Date::now().as_millis() / 1000) as i64;
            jwt::sign_hmac(secret.as_bytes(), token, now, auth.jwt_ttl_secs)
                .map_err(AppError::Internal)?
        }
    };
    let expires_at = jwt::peek_expiry(&fresh);
    response::ok(&RefreshedTokenView {
        token: fresh,
        token_type: TokenType::Bearer,
        expires_at: expires_at
            .map(|s| crate::core::time::rfc3339_from_millis(s.max(0) as u64 * 1000)),
    })
}

/// `POST /api/auth/signout`: ends the calling device's session. Its tokens are refused from
/// now on; a Clerk session is also revoked at Clerk when `CLERK_SECRET_KEY` is set.
pub async fn signout(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let token = token_of(&principal)?;
    let session_id = token.session_id.as_deref().ok_or_else(|| {
        AppError::BadRequest("this token names no session (sid or jti) to end".to_owned())
    })?;
    let db = store::database(&ctx.env)?;
    let session = sessions::SessionRef {
        id: session_id,
        auth_source: &principal.user.auth_source,
        external_user_id: &principal.user.external_id,
    };
    sessions::end(&db, session, "signout", &now()).await?;
    // The device's slot is freed (the plan caps devices signed in at once).
    let device = crate::http::header(&req, "X-Device-Id");
    let devices_ended = devices::end(
        &db,
        &principal.user.id,
        Some(session_id),
        device.as_deref().map(str::trim),
        &now(),
    )
    .await?;
    let mut revoked_at_clerk = false;
    if token.kind == TokenKind::Clerk && ctx.data.config.auth.clerk_secret_key.is_set() {
        // The session has ended here whatever Clerk answers; a Clerk failure is logged and
        // reported in the answer, not turned into an error the client would retry.
        match clerk_api(&ctx)?.revoke_session(session_id).await {
            Ok(()) | Err(ClerkError::NotFound) => revoked_at_clerk = true,
            Err(ClerkError::Failed(err)) => {
                worker::console_error!(
                    "{}",
                    json!({ "level": "error", "msg": "Clerk session revoke failed",
                            "request_id": ctx.data.request_id, "detail": err.log_detail() })
                );
            }
        }
    }
    response::ok(&SignedOutView {
        signed_out: true,
        session_id: session_id.to_owned(),
        revoked_at_clerk,
        devices_signed_out: devices_ended as u64,
    })
}

/// `GET /api/auth/oauth/:provider?redirect_url=...`: sends the browser to the Clerk-hosted
/// sign-in for that provider. `redirect_url` (where Clerk returns to) must be an allowed
/// origin, so this can never be used as an open redirect.
pub async fn oauth(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let provider = ctx.param("provider").cloned().unwrap_or_default();
    let auth = &ctx.data.config.auth;
    if !auth.oauth_providers.contains(&provider) {
        return Err(AppError::BadRequest(format!(
            "unknown OAuth provider `{provider}`; supported: {}",
            auth.oauth_providers.join(", ")
        )));
    }
    let sign_in = auth
        .clerk_sign_in_url
        .as_deref()
        .ok_or_else(|| AppError::NotConfigured {
            setting: "CLERK_SIGN_IN_URL".into(),
        })?;
    let url = req.url()?;
    let redirect = url
        .query_pairs()
        .find(|(k, _)| k == "redirect_url")
        .map(|(_, v)| v.into_owned());
    let mut target =
        Url::parse(sign_in).map_err(|e| AppError::Internal(format!("CLERK_SIGN_IN_URL: {e}")))?;
    target
        .query_pairs_mut()
        .append_pair("strategy", &format!("oauth_{provider}"));
    if let Some(redirect) = redirect {
        // Built by hand: `Url::origin` is opaque ("null") for chrome-extension:// URLs.
        let origin = Url::parse(&redirect).ok().and_then(|u| {
            let host = u.host_str()?;
            Some(match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            })
        });
        let allowed = origin.is_some_and(|o| ctx.data.config.cors.allows(&o));
        if !allowed {
            return Err(AppError::invalid(
                "redirect_url",
                "must be a URL on an allowed origin (CORS_ALLOWED_ORIGINS)",
            ));
        }
        target
            .query_pairs_mut()
            .append_pair("redirect_url", &redirect);
    }
    Ok(Response::redirect_with_status(target, 302)?)
}
