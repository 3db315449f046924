//! The caller's endpoints: their profile and their API keys.

use worker::{Request, Response};

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service as audit;
use crate::clock::now;
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{self, response, Ctx};
use crate::identity::http::views::{
    ApiKeyPageQuery, ApiKeyPageView, ApiKeyView, CreatedApiKeyAnswer, CreatedDefaultApiKeyView,
    DefaultApiKeyView, NewKeyBody, ProfileView, RevokedApiKeyView,
};
use crate::identity::rules::profile::{self, ProfilePatch};
use crate::identity::rules::scopes::{Scope, Scopes};
use crate::identity::service::api_keys::{self as key_service, DefaultKey};
use crate::identity::service::auth::Principal;
use crate::identity::service::profile as profile_service;

/// `GET /api/user/profile`.
pub async fn get_profile(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    response::ok(&ProfileView::new(
        &ctx.data.config.plans,
        &principal,
        &principal.user,
    ))
}

/// What `/openapi.json` says of `GET /api/user/profile`.
pub fn get_profile_doc() -> Doc {
    Doc::new("The caller's profile, plan limits, roles and organisation")
        .ok::<ProfileView>(200)
        .errors(&["upstream_error"])
}

/// `PATCH /api/user/profile`: `username`, `display_name`, `avatar_url` (null clears).
pub async fn patch_profile(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let patch: ProfilePatch = ctx.data.json()?;
    let changes = profile::validate(patch).map_err(AppError::Validation)?;
    if changes.is_empty() {
        return response::ok(&ProfileView::new(
            &ctx.data.config.plans,
            &principal,
            &principal.user,
        ));
    }
    let user = profile_service::update(&ctx.env, &principal.user.id, &changes, &now()).await?;
    let fields: Vec<&str> = changes.field_names();
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(Actor::User(&user.id), Action::UserUpdated)
            .target(Target::user(&user.id))
            .with("fields", fields),
    )
    .await;
    response::ok(&ProfileView::new(&ctx.data.config.plans, &principal, &user))
}

/// What `/openapi.json` says of `PATCH /api/user/profile`.
pub fn patch_profile_doc() -> Doc {
    Doc::new("Change the caller's username, display name or avatar (null clears)")
        .body::<ProfilePatch>()
        .ok::<ProfileView>(200)
        .errors(&["conflict", "not_found", "upstream_error"])
}

/// `GET /api/user/api-key`: the caller's key, masked; created (and shown once, with the
/// `usage` scope) if they have none.
pub async fn get_or_create_key(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let catalog = &ctx.data.config.plans;
    match key_service::default_key(&ctx.env, catalog, &principal.user, &now()).await? {
        DefaultKey::Existing(key) => response::ok(&DefaultApiKeyView {
            created: false,
            api_key: key.into(),
        }),
        DefaultKey::Created(issued) => {
            key_created(&ctx, &principal, &issued.stored).await;
            response::json(
                201,
                &CreatedDefaultApiKeyView {
                    created: true,
                    api_key: issued.into(),
                },
            )
        }
    }
}

/// What `/openapi.json` says of `GET /api/user/api-key`.
pub fn get_or_create_key_doc() -> Doc {
    Doc::new("The caller's API key, masked; their first one is created and shown once")
        .ok::<DefaultApiKeyView>(200)
        .ok::<CreatedDefaultApiKeyView>(201)
        .errors(&["quota_exceeded", "conflict", "upstream_error"])
}

/// Records a key the caller just created.
async fn key_created(ctx: &Ctx, principal: &Principal, key: &key_service::ApiKey) {
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(Actor::User(&principal.user.id), Action::ApiKeyCreated)
            .target(Target::new("api_key", &key.id))
            .with("name", key.name.as_str())
            .with("scopes", key.scopes.names()),
    )
    .await;
}

/// `POST /api/user/api-keys` `{name?, scopes?}`: a new key, shown once. Scopes are `usage`
/// (the default), `keys`, `billing` and `admin`; only an admin may create an `admin` key.
pub async fn create_key(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: NewKeyBody = if ctx.data.raw_body().iter().all(u8::is_ascii_whitespace) {
        NewKeyBody::default()
    } else {
        ctx.data.json()?
    };
    let name = body.name.as_deref().map(str::trim).unwrap_or("default");
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "must be 1 to 64 printable characters",
        ));
    }
    let scopes =
        Scopes::requested(body.scopes.as_deref()).map_err(|m| AppError::invalid("scopes", m))?;
    if scopes.contains(Scope::Admin) && !principal.roles.admin {
        return Err(AppError::Forbidden(
            "only an admin may create a key with the `admin` scope".to_owned(),
        ));
    }
    let plans = &ctx.data.config.plans;
    let issued = key_service::issue(&ctx.env, plans, &principal.user, name, scopes, &now()).await?;
    key_created(&ctx, &principal, &issued.stored).await;
    response::json(
        201,
        &CreatedApiKeyAnswer {
            api_key: issued.into(),
        },
    )
}

/// What `/openapi.json` says of `POST /api/user/api-keys`.
pub fn create_key_doc() -> Doc {
    Doc::new("Create an API key with the given scopes, shown once")
        .body::<NewKeyBody>()
        .ok::<CreatedApiKeyAnswer>(201)
        .errors(&["quota_exceeded", "upstream_error"])
}

/// `GET /api/user/api-keys`: the caller's keys, masked, newest first, paginated.
pub async fn list_keys(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let page = http::page_request(&http::query_pairs(&req)?)?;
    let (keys, next_cursor) = key_service::page(&ctx.env, &principal.user.id, &page).await?;
    response::ok(&ApiKeyPageView {
        data: keys.into_iter().map(ApiKeyView::from).collect(),
        next_cursor,
    })
}

/// What `/openapi.json` says of `GET /api/user/api-keys`.
pub fn list_keys_doc() -> Doc {
    Doc::new("The caller's API keys, masked, newest first")
        .query::<ApiKeyPageQuery>()
        .ok::<ApiKeyPageView>(200)
        .errors(&["upstream_error"])
}

/// `DELETE /api/user/api-keys/:id`: revokes one of the caller's keys (idempotent).
pub async fn revoke_key(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let id = ctx.param("id").cloned().unwrap_or_default();
    let at = now();
    let key = key_service::revoke(&ctx.env, &principal.user.id, &id, &at).await?;
    // A key revoked before keeps its first revocation time: only this revocation is recorded.
    if key.revoked_at.as_deref() == Some(at.as_str()) {
        audit::after(
            &ctx.env,
            &ctx.data,
            Entry::new(Actor::User(&principal.user.id), Action::ApiKeyRevoked)
                .target(Target::new("api_key", &key.id)),
        )
        .await;
    }
    response::ok(&RevokedApiKeyView {
        api_key: key.into(),
    })
}

/// What `/openapi.json` says of `DELETE /api/user/api-keys/:id`.
pub fn revoke_key_doc() -> Doc {
    Doc::new("Revoke one of the caller's API keys (idempotent)")
        .ok::<RevokedApiKeyView>(200)
        .errors(&["not_found", "upstream_error", "payload_too_large"])
}
