//! The caller's API keys: issuing them within the plan's limit, listing and revoking them.

use serde::Serialize;
use worker::{D1Database, Env};

use crate::core::page::{self, PageRequest};
use crate::core::random;
use crate::error::AppError;
use crate::identity::rules::api_key;
use crate::identity::rules::scopes::Scopes;
pub use crate::identity::store::api_keys::ApiKey;
use crate::identity::store::api_keys::{self, NewKey};
use crate::identity::store::users::User;
use crate::plans::rules::{Plan, PlanCatalog};
use crate::storage;

/// A key just created: the only time its plaintext is shown.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub stored: ApiKey,
    /// The key itself; never shown again.
    pub key: String,
}

/// The caller's key for `GET /api/user/api-key`: their newest active key, or a first one
/// created now (shown this once, with the default `usage` scope). Concurrent first calls create exactly one key: the
/// insert only happens while the user has no active key, decided in one statement.
pub enum DefaultKey {
    /// The user already had a key (shown masked).
    Existing(ApiKey),
    /// A key was created by this call.
    Created(IssuedKey),
}

/// Returns the user's existing key, or creates their first one.
pub async fn default_key(
    env: &Env,
    catalog: &PlanCatalog,
    user: &User,
    now: &str,
) -> Result<DefaultKey, AppError> {
    let db = &storage::database(env)?;
    if let Some(key) = api_keys::active_for_user(db, &user.id)
        .await?
        .into_iter()
        .next()
    {
        return Ok(DefaultKey::Existing(key));
    }
    let plan = catalog.get_or_default(&user.plan);
    if plan.api_keys == Some(0) {
        return Err(no_room(plan));
    }
    match insert(db, user, "default", Scopes::DEFAULT, Some(1), now).await? {
        Some(issued) => Ok(DefaultKey::Created(issued)),
        // Another request created the first key in the meantime: show that one.
        None => api_keys::active_for_user(db, &user.id)
            .await?
            .into_iter()
            .next()
            .map(DefaultKey::Existing)
            .ok_or_else(|| AppError::Conflict("the key was revoked meanwhile; retry".to_owned())),
    }
}

/// Creates a key with `scopes` for `user` if their plan allows one more; `quota_exceeded`
/// otherwise.
pub async fn issue(
    env: &Env,
    catalog: &PlanCatalog,
    user: &User,
    name: &str,
    scopes: Scopes,
    now: &str,
) -> Result<IssuedKey, AppError> {
    let db = &storage::database(env)?;
    let plan = catalog.get_or_default(&user.plan);
    insert(db, user, name, scopes, plan.api_keys, now)
        .await?
        .ok_or_else(|| no_room(plan))
}

/// A page of the user's keys (revoked ones included), newest first, and the cursor of the
/// next page, if any.
pub async fn page(
    env: &Env,
    user_id: &str,
    page: &PageRequest,
) -> Result<(Vec<ApiKey>, Option<String>), AppError> {
    let db = storage::database(env)?;
    let mut keys =
        api_keys::page_for_user(&db, user_id, page.after_pair()?, page.limit + 1).await?;
    let next_cursor = page::finish(&mut keys, page.limit, |k| [&k.created_at, &k.id]);
    Ok((keys, next_cursor))
}

/// Revokes one of the user's keys (idempotent: a revoked key keeps its first revocation
/// time); `not_found` when they have no such key.
pub async fn revoke(env: &Env, user_id: &str, id: &str, now: &str) -> Result<ApiKey, AppError> {
    let db = storage::database(env)?;
    api_keys::revoke(&db, user_id, id, now)
        .await?
        .ok_or_else(|| AppError::NotFound("no such API key".to_owned()))
}

fn no_room(plan: &Plan) -> AppError {
    AppError::QuotaExceeded(format!(
        "the {} plan allows {} active API key(s); revoke one or upgrade",
        plan.name,
        plan.api_keys.unwrap_or_default()
    ))
}

/// Stores a new key while the user holds fewer than `limit` active keys.
async fn insert(
    db: &D1Database,
    user: &User,
    name: &str,
    scopes: Scopes,
    limit: Option<u32>,
    now: &str,
) -> Result<Option<IssuedKey>, AppError> {
    let key = api_key::generate();
    let id = random::id::<8>("key_");
    let new = NewKey {
        id: &id,
        user_id: &user.id,
        name,
        key_hash: &api_key::hash(&key),
        masked: &api_key::mask(&key),
        scopes,
    };
    let stored = api_keys::create_within_limit(db, new, limit, now).await?;
    Ok(stored.map(|stored| IssuedKey { stored, key }))
}
