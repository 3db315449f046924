//! Provider keys: `POST /api/key` (an OpenRouter key bought with credits) and the
//! pool of pre-created keys (`/api/user/provider-keys`, `/api/admin/provider-keys`).
//! Plaintext keys appear only in the answers that hand a key to its user, never in a list.

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service as audit;
use crate::clock::now;
use serde::Deserialize;
use worker::{Request, Response};

use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{self, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::provider_keys::http::views::{
    OpenRouterKeySecretView, PoolKeyPageView, PoolKeySecretView, PoolKeysQuery, ProviderKeyView,
    ProviderQuery,
};
use crate::provider_keys::service::credits as credit_service;
use crate::provider_keys::service::pool;
use crate::storage;

/// `POST /api/key`: the caller's OpenRouter key and credits. A new user gets a key and
/// the initial credits; a user whose credits ran down is reset; otherwise the key's spend
/// since the last look is deducted, and a key near its limit is rotated.
pub async fn openrouter_key(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let db = storage::database(&ctx.env)?;
    let config = &ctx.data.config;
    let answer = credit_service::key_for(&db, config, &principal.user.id).await?;
    response::secret(&OpenRouterKeySecretView::new(config, answer))
}

/// What `/openapi.json` says of `POST /api/key`.
pub fn openrouter_key_doc() -> Doc {
    Doc::new("The caller's OpenRouter key and credits (created, reset or rotated)")
        .ok::<OpenRouterKeySecretView>(200)
        .errors(&["conflict", "upstream_error"])
}

/// A provider name: lower-case letters, digits, `-` and `_`, at most 32.
fn provider_name(field: &str, value: &str) -> Result<String, AppError> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(AppError::invalid(
            field,
            "must be 1 to 32 lower-case letters, digits, `-` or `_` (e.g. openai)",
        ))
    }
}

/// `GET /api/user/provider-keys?provider=`: the pool key for the caller's plan and
/// this provider. The same key is handed out again until it is retired.
pub async fn user_pool_key(
    req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let pairs = http::query_pairs(&req)?;
    let provider = pairs
        .iter()
        .find(|(k, _)| k == "provider")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| AppError::invalid("provider", "is required (e.g. ?provider=openai)"))?;
    let provider = provider_name("provider", provider)?;
    let config = &ctx.data.config;
    let tier = &config.plans.get_or_default(&principal.user.plan).id;
    let db = storage::database(&ctx.env)?;
    let (key, plain) = pool::hand_out(&db, config, &principal.user.id, &provider, tier).await?;
    response::secret(&PoolKeySecretView::new(key, plain))
}

/// What `/openapi.json` says of `GET /api/user/provider-keys`.
pub fn user_pool_key_doc() -> Doc {
    Doc::new("The pool key for the caller's plan and a provider")
        .query::<ProviderQuery>()
        .ok::<PoolKeySecretView>(200)
}

/// A `POST /api/admin/provider-keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPoolKeyBody {
    /// The provider: 1 to 32 lower-case letters, digits, `-` or `_` (e.g. `openai`).
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]+$")]
    provider: String,
    /// The plan tier (a plan id) whose users are handed this key.
    tier: String,
    /// The provider API key: 16 to 512 printable characters without spaces (surrounding
    /// whitespace is trimmed).
    #[schema(min_length = 16)]
    key: String,
    /// A name for people: 1 to 64 printable characters.
    #[serde(default)]
    #[schema(min_length = 1)]
    label: Option<String>,
}

/// `POST /api/admin/provider-keys` `{provider, tier, key, label?}`: loads a pre-created key
/// into the pool, sealed. The answer shows it masked; the same key twice is a conflict.
pub async fn add_pool_key(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: NewPoolKeyBody = ctx.data.json()?;
    let config = &ctx.data.config;
    let provider = provider_name("provider", &body.provider)?;
    if config.plans.get(&body.tier).is_none() {
        return Err(AppError::invalid(
            "tier",
            format!(
                "must be a plan id: {}",
                config
                    .plans
                    .plans()
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let key = body.key.trim();
    if key.len() < 16 || key.len() > 512 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::invalid(
            "key",
            "must be 16 to 512 printable characters without spaces",
        ));
    }
    let label = body.label.as_deref().map(str::trim);
    if label
        .is_some_and(|l| l.is_empty() || l.chars().count() > 64 || l.chars().any(char::is_control))
    {
        return Err(AppError::invalid(
            "label",
            "must be 1 to 64 printable characters",
        ));
    }
    let db = storage::database(&ctx.env)?;
    let new = pool::NewKey {
        provider: &provider,
        tier: &body.tier,
        key,
        label,
        created_by: &principal.user.id,
    };
    let stored = pool::add(&db, config, new).await?;
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(Actor::User(&principal.user.id), Action::ProviderKeyAdded)
            .target(Target::new("provider_key", &stored.id))
            .with("provider", stored.provider.as_str())
            .with("tier", stored.tier.as_str()),
    )
    .await;
    response::json(
        201,
        &ProviderKeyView {
            provider_key: stored.into(),
        },
    )
}

/// What `/openapi.json` says of `POST /api/admin/provider-keys`.
pub fn add_pool_key_doc() -> Doc {
    Doc::new("Load a provider key into the pool")
        .body::<NewPoolKeyBody>()
        .ok::<ProviderKeyView>(201)
        .errors(&["conflict"])
}

/// `GET /api/admin/provider-keys?provider=&tier=`: the pool, masked, oldest first, paginated.
pub async fn list_pool_keys(
    req: Request,
    ctx: Ctx,
    _principal: Principal,
) -> Result<Response, AppError> {
    let pairs = http::query_pairs(&req)?;
    let page = http::page_request(&pairs)?;
    let find = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let provider = find("provider")
        .map(|p| provider_name("provider", &p))
        .transpose()?;
    let tier = find("tier");
    let db = storage::database(&ctx.env)?;
    let (keys, next_cursor) = pool::page(&db, provider.as_deref(), tier.as_deref(), &page).await?;
    response::ok(&PoolKeyPageView {
        data: keys.into_iter().map(Into::into).collect(),
        next_cursor,
    })
}

/// What `/openapi.json` says of `GET /api/admin/provider-keys`.
pub fn list_pool_keys_doc() -> Doc {
    Doc::new("The provider key pool, masked, oldest first")
        .query::<PoolKeysQuery>()
        .ok::<PoolKeyPageView>(200)
}

/// `DELETE /api/admin/provider-keys/:id`: retires a pool key (idempotent); its users are
/// handed another key of their tier on their next request.
pub async fn retire_pool_key(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let id = ctx.param("id").cloned().unwrap_or_default();
    let db = storage::database(&ctx.env)?;
    let at = now();
    let key = pool::retire(&db, &id, &at).await?;
    // A key retired before keeps its first retirement time: only this one is recorded.
    if key.retired_at.as_deref() == Some(at.as_str()) {
        audit::after(
            &ctx.env,
            &ctx.data,
            Entry::new(Actor::User(&principal.user.id), Action::ProviderKeyRetired)
                .target(Target::new("provider_key", &key.id)),
        )
        .await;
    }
    response::ok(&ProviderKeyView {
        provider_key: key.into(),
    })
}

/// What `/openapi.json` says of `DELETE /api/admin/provider-keys/:id`.
pub fn retire_pool_key_doc() -> Doc {
    Doc::new("Retire a pool key (idempotent)")
        .ok::<ProviderKeyView>(200)
        .errors(&["not_found"])
}
