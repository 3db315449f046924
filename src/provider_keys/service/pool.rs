//! The pool of pre-created provider keys: handing a user the key of their plan's tier,
//! and the admin's loading, listing and retiring of keys. Keys are sealed at rest; the
//! plaintext leaves only through [`hand_out`].

use sha2::{Digest, Sha256};
use worker::D1Database;

use crate::clock::now;
use crate::config::Config;
use crate::core::page::{self, PageRequest};
use crate::core::{random, sealed};
use crate::error::AppError;
use crate::provider_keys::store::pool;
pub use crate::provider_keys::store::pool::PoolKey;

/// The key handed to `user_id` for `provider` at their plan's `tier`, and its plaintext.
/// `not_configured` when the pool has no live key for it.
pub async fn hand_out(
    db: &D1Database,
    config: &Config,
    user_id: &str,
    provider: &str,
    tier: &str,
) -> Result<(PoolKey, String), AppError> {
    let keyring = config.providers.keyring()?;
    let key = pool::assigned(db, user_id, provider, tier, &now())
        .await?
        .ok_or_else(|| AppError::NotConfigured {
            setting: format!("a {provider} key for the {tier} plan in the provider key pool")
                .into(),
        })?;
    let plain = keyring
        .open(&key.key_sealed, &pool::key_context(&key.id))
        .map_err(|e| AppError::Internal(format!("pool key {} does not open: {e:?}", key.id)))?;
    Ok((key, plain))
}

/// A key to load into the pool (validated by the caller).
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    pub provider: &'a str,
    pub tier: &'a str,
    /// The plaintext key.
    pub key: &'a str,
    pub label: Option<&'a str>,
    /// The admin loading it.
    pub created_by: &'a str,
}

/// Loads a key into the pool, sealed; `conflict` when the same key is there already.
pub async fn add(db: &D1Database, config: &Config, new: NewKey<'_>) -> Result<PoolKey, AppError> {
    let keyring = config.providers.keyring()?;
    let id = random::id::<8>("pk_");
    let sealed = keyring.seal(new.key, &pool::key_context(&id), random::bytes::<12>());
    let sha256 = random::hex(&Sha256::digest(new.key.as_bytes()));
    let masked = sealed::mask(new.key);
    let row = pool::NewPoolKey {
        id: &id,
        provider: new.provider,
        tier: new.tier,
        sealed: &sealed,
        sha256: &sha256,
        masked: &masked,
        label: new.label,
        created_by: new.created_by,
    };
    pool::insert(db, row, &now())
        .await?
        .ok_or_else(|| AppError::Conflict("this key is already in the pool".to_owned()))
}

/// A page of the pool, oldest first, optionally of one provider and tier, and the next
/// page's cursor.
pub async fn page(
    db: &D1Database,
    provider: Option<&str>,
    tier: Option<&str>,
    page: &PageRequest,
) -> Result<(Vec<PoolKey>, Option<String>), AppError> {
    let mut keys = pool::page(db, provider, tier, page.after_pair()?, page.limit + 1).await?;
    let next_cursor = page::finish(&mut keys, page.limit, |k| [&k.created_at, &k.id]);
    Ok((keys, next_cursor))
}

/// Retires a key (idempotent); `not_found` when there is no such key.
pub async fn retire(db: &D1Database, id: &str, now: &str) -> Result<PoolKey, AppError> {
    pool::retire(db, id, now)
        .await?
        .ok_or_else(|| AppError::NotFound("no such provider key".to_owned()))
}
