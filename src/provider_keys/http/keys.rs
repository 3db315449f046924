//! Provider keys: Puku's `POST /api/key` (an OpenRouter key bought with credits) and Sokuji's
//! pool of pre-created keys (`/api/user/provider-keys`, `/api/admin/provider-keys`).
//! Plaintext keys appear only in the answers that hand a key to its user, never in a list.

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use worker::{Request, Response};

use crate::clock::now;
use crate::config::Config;
use crate::core::time::rfc3339_from_millis;
use crate::core::{page, random, sealed};
use crate::error::AppError;
use crate::http::{self, response, Ctx};
use crate::identity::service::auth;
use crate::provider_keys::rules::usd;
use crate::provider_keys::service::credits::{self as credit_service, KeyAnswer};
use crate::provider_keys::store::pool;
use crate::storage as store;

/// The body of an answer that hands over the user's OpenRouter key.
pub fn key_answer_body(config: &Config, answer: &KeyAnswer) -> Value {
    let account = &answer.account;
    json!({
        "key": answer.key,
        "key_hash": account.key_hash,
        "key_label": account.key_label,
        "action": answer.action,
        "credits": usd(account.credits),
        "initial_credits": usd(config.providers.credits.initial_credits),
        "key_limit": usd(account.key_limit),
        "key_usage": usd(account.key_usage),
        "key_remaining": usd(account.key_remaining),
        "resets": account.resets,
        "rotations": account.rotations,
        "checked_at": account.checked_ms.map(|ms| rfc3339_from_millis(ms as u64)),
    })
}

/// `POST /api/key` (Puku): the caller's OpenRouter key and credits. A new user gets a key and
/// the initial credits; a user whose credits ran down is reset; otherwise the key's spend
/// since the last look is deducted, and a key near its limit is rotated.
pub async fn openrouter_key(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let db = store::database(&ctx.env)?;
    let config = &ctx.data.config;
    let answer = credit_service::key_for(&db, config, &principal.user.id).await?;
    response::secret(&key_answer_body(config, &answer))
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

/// `GET /api/user/provider-keys?provider=` (Sokuji): the pool key for the caller's plan and
/// this provider. The same key is handed out again until it is retired.
pub async fn user_pool_key(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let pairs = http::query_pairs(&req)?;
    let provider = pairs
        .iter()
        .find(|(k, _)| k == "provider")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| AppError::invalid("provider", "is required (e.g. ?provider=openai)"))?;
    let provider = provider_name("provider", provider)?;
    let config = &ctx.data.config;
    let keyring = config.providers.keyring()?;
    let tier = config.plans.get_or_default(&principal.user.plan).id.clone();
    let db = store::database(&ctx.env)?;
    let key = pool::assigned(&db, &principal.user.id, &provider, &tier, &now())
        .await?
        .ok_or_else(|| AppError::NotConfigured {
            setting: format!("a {provider} key for the {tier} plan in the provider key pool")
                .into(),
        })?;
    let plain = keyring
        .open(&key.key_sealed, &pool::key_context(&key.id))
        .map_err(|e| AppError::Internal(format!("pool key {} does not open: {e:?}", key.id)))?;
    response::secret(&json!({
        "provider": key.provider,
        "tier": key.tier,
        "key_id": key.id,
        "key": plain,
        "masked": key.masked,
        "label": key.label,
    }))
}

/// A `POST /api/admin/provider-keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPoolKeyBody {
    provider: String,
    tier: String,
    key: String,
    #[serde(default)]
    label: Option<String>,
}

/// `POST /api/admin/provider-keys` `{provider, tier, key, label?}`: loads a pre-created key
/// into the pool, sealed. The answer shows it masked; the same key twice is a conflict.
pub async fn add_pool_key(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    principal.require_admin()?;
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
    let keyring = config.providers.keyring()?;
    let id = random::id::<8>("pk_");
    let sealed = keyring.seal(key, &pool::key_context(&id), random::bytes::<12>());
    let sha256 = random::hex(&Sha256::digest(key.as_bytes()));
    let masked = sealed::mask(key);
    let db = store::database(&ctx.env)?;
    let new = pool::NewPoolKey {
        id: &id,
        provider: &provider,
        tier: &body.tier,
        sealed: &sealed,
        sha256: &sha256,
        masked: &masked,
        label,
        created_by: &principal.user.id,
    };
    let stored = pool::insert(&db, new, &now())
        .await?
        .ok_or_else(|| AppError::Conflict("this key is already in the pool".to_owned()))?;
    response::json(201, &json!({ "provider_key": stored }))
}

/// `GET /api/admin/provider-keys?provider=&tier=`: the pool, masked, oldest first, paginated.
pub async fn list_pool_keys(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    principal.require_admin()?;
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
    let db = store::database(&ctx.env)?;
    let mut keys = pool::page(
        &db,
        provider.as_deref(),
        tier.as_deref(),
        page.after_pair()?,
        page.limit + 1,
    )
    .await?;
    let next_cursor = page::finish(&mut keys, page.limit, |k| [&k.created_at, &k.id]);
    response::ok(&json!({ "data": keys, "next_cursor": next_cursor }))
}

/// `DELETE /api/admin/provider-keys/:id`: retires a pool key (idempotent); its users are
/// handed another key of their tier on their next request.
pub async fn retire_pool_key(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    principal.require_admin()?;
    let id = ctx.param("id").cloned().unwrap_or_default();
    let db = store::database(&ctx.env)?;
    let key = pool::retire(&db, &id, &now())
        .await?
        .ok_or_else(|| AppError::NotFound("no such provider key".to_owned()))?;
    response::ok(&json!({ "provider_key": key }))
}
