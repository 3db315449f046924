//! The session endpoints: sign-out and the OAuth redirect to Clerk (refresh, shared with
//! account sessions, is in [`crate::accounts::http`]).

use crate::audit::rules::{Action, Actor, Entry, Target};
use worker::{Request, Response, Url};

use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::identity::http::views::{OAuthQuery, SignedOutView};
use crate::identity::rules::jwt::{TokenKind, VerifiedToken};
use crate::identity::service::auth::{Credential, Principal};
use crate::identity::service::sessions;

fn token_of(principal: &Principal) -> Result<&VerifiedToken, AppError> {
    match &principal.credential {
        Credential::Token { token, .. } => Ok(token),
        Credential::ApiKey { .. } => Err(AppError::BadRequest(
            "API keys do not expire or sign out; revoke the key instead".to_owned(),
        )),
    }
}

/// `POST /api/auth/signout`: ends the calling device's session. Its tokens are refused from
/// now on; a Clerk session is also revoked at Clerk when `CLERK_SECRET_KEY` is set.
pub async fn signout(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let token = token_of(&principal)?;
    let session_id = token.session_id.as_deref().ok_or_else(|| {
        AppError::BadRequest("this token names no session (sid or jti) to end".to_owned())
    })?;
    if token.kind == TokenKind::Account {
        // An account session also has refresh tokens: they die with it.
        crate::accounts::service::sessions::logout(&ctx, &principal.user, session_id).await?;
        return response::ok(&SignedOutView {
            signed_out: true,
            session_id: session_id.to_owned(),
            revoked_at_clerk: false,
            devices_signed_out: 0,
        });
    }
    let device = crate::http::header(&req, "X-Device-Id");
    let signed_out = sessions::sign_out(
        &ctx,
        &principal,
        token.kind,
        session_id,
        device.as_deref().map(str::trim),
    )
    .await?;
    crate::audit::service::after(
        &ctx.env,
        &ctx.data,
        Entry::new(Actor::User(&principal.user.id), Action::SessionEnded)
            .target(Target::new("session", session_id))
            .with("reason", "signout")
            .with("devices_signed_out", signed_out.devices as u64),
    )
    .await;
    response::ok(&SignedOutView {
        signed_out: true,
        session_id: session_id.to_owned(),
        revoked_at_clerk: signed_out.revoked_at_clerk,
        devices_signed_out: signed_out.devices as u64,
    })
}

/// What `/openapi.json` says of `POST /api/auth/signout`.
pub fn signout_doc() -> Doc {
    Doc::new("End the calling device's session")
        .ok::<SignedOutView>(200)
        .errors(&[
            "bad_request",
            "upstream_error",
            "validation_failed",
            "payload_too_large",
        ])
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

/// What `/openapi.json` says of `GET /api/auth/oauth/:provider`.
pub fn oauth_doc() -> Doc {
    Doc::new("Redirect to the Clerk-hosted sign-in with this OAuth provider")
        .query::<OAuthQuery>()
        .redirect("To Clerk's sign-in for the provider")
        .errors(&["bad_request"])
}
