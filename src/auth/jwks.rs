//! Clerk's signing keys: kept parsed in the isolate, shared through KV with a TTL, and
//! fetched from Clerk only when both are stale or a token names an unknown `kid` (at most
//! once per `CLERK_JWKS_MIN_REFETCH_SECS`).

use std::cell::RefCell;

use jwt_compact::alg::RsaPublicKey;
use serde::{Deserialize, Serialize};
use worker::KvStore;

use crate::config::ClerkConfig;
use crate::core::jwt::{parse_jwks, JwksKey, Rejection};
use crate::core::key_cache::{JwksCache, KeyLookup};
use crate::core::random;
use crate::error::AppError;
use crate::upstream::clerk;

thread_local! {
    // Workers run one request at a time per isolate thread; this lives as long as the isolate.
    static CACHE: RefCell<JwksCache> = RefCell::new(JwksCache::default());
}

/// The JWKS as stored in KV.
#[derive(Serialize, Deserialize)]
struct StoredJwks {
    fetched_at_ms: u64,
    document: String,
}

fn kv_key(url: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(url.as_bytes());
    format!("clerk:jwks:{}", random::hex(&digest[..8]))
}

/// Runs `f` with the key for `kid`, loading or re-fetching the JWKS as needed.
pub async fn with_key<T>(
    config: &ClerkConfig,
    kv: &KvStore,
    kid: &str,
    now_ms: u64,
    f: impl FnOnce(&RsaPublicKey) -> T,
) -> Result<T, AppError> {
    let ttl_ms = config.jwks_cache_ttl_secs * 1000;
    let min_refetch_ms = config.jwks_min_refetch_secs * 1000;

    if CACHE.with_borrow(|c| c.is_stale(now_ms, ttl_ms)) {
        load_from_kv(config, kv, now_ms, ttl_ms).await;
    }
    if CACHE.with_borrow(|c| c.is_stale(now_ms, ttl_ms)) {
        // Nothing usable cached anywhere: Clerk must be asked, unless it was asked (and
        // failed) moments ago.
        if !CACHE.with_borrow(|c| c.may_fetch(now_ms, min_refetch_ms)) {
            return Err(AppError::Upstream {
                service: "clerk",
                detail: "JWKS unavailable; last fetch failed moments ago".to_owned(),
            });
        }
        fetch(config, kv, now_ms).await?;
    }

    let lookup = CACHE.with_borrow(|c| match c.lookup(kid, now_ms, min_refetch_ms) {
        KeyLookup::Found(key) => Ok(key.key.clone()),
        KeyLookup::Fetch => Err(true),
        KeyLookup::Throttled => Err(false),
    });
    let key = match lookup {
        Ok(key) => key,
        Err(false) => return Err(unknown(kid)),
        Err(true) => {
            if let Err(err) = fetch(config, kv, now_ms).await {
                // The keys we have are still good for other tokens; this one is unknown.
                log_fetch_failure(&err);
                return Err(unknown(kid));
            }
            find(kid).ok_or_else(|| unknown(kid))?
        }
    };
    Ok(f(&key))
}

fn find(kid: &str) -> Option<RsaPublicKey> {
    CACHE.with_borrow(|c| match c.lookup(kid, 0, u64::MAX) {
        KeyLookup::Found(key) => Some(key.key.clone()),
        _ => None,
    })
}

fn unknown(kid: &str) -> AppError {
    AppError::Unauthorized(Rejection::UnknownKey(kid.to_owned()).message())
}

fn log_fetch_failure(err: &AppError) {
    worker::console_error!(
        "{}",
        serde_json::json!({
            "level": "error", "msg": "JWKS re-fetch failed", "detail": err.log_detail(),
        })
    );
}

async fn load_from_kv(config: &ClerkConfig, kv: &KvStore, now_ms: u64, ttl_ms: u64) {
    let stored = match kv.get(&kv_key(&config.jwks_url)).json::<StoredJwks>().await {
        Ok(Some(stored)) => stored,
        // A KV miss or failure only means asking Clerk; it is never fatal.
        _ => return,
    };
    if now_ms.saturating_sub(stored.fetched_at_ms) >= ttl_ms {
        return;
    }
    if let Ok(keys) = parse_jwks(&stored.document) {
        CACHE.with_borrow_mut(|c| c.replace(keys, stored.fetched_at_ms));
    }
}

async fn fetch(config: &ClerkConfig, kv: &KvStore, now_ms: u64) -> Result<(), AppError> {
    CACHE.with_borrow_mut(|c| c.note_attempt(now_ms));
    let document = clerk::fetch_jwks(&config.jwks_url).await?;
    let keys: Vec<JwksKey> = parse_jwks(&document).map_err(|detail| AppError::Upstream {
        service: "clerk",
        detail,
    })?;
    CACHE.with_borrow_mut(|c| c.replace(keys, now_ms));
    let stored = StoredJwks {
        fetched_at_ms: now_ms,
        document,
    };
    // Sharing through KV saves other isolates a fetch; failing to share is not an error.
    if let Ok(put) = kv.put(&kv_key(&config.jwks_url), &stored) {
        let _ = put
            .expiration_ttl(config.jwks_cache_ttl_secs)
            .execute()
            .await;
    }
    Ok(())
}
