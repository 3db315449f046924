//! Clerk's signing keys: kept parsed in the isolate, shared through KV with a TTL, and
//! fetched from Clerk only when both are stale or a token names an unknown `kid` (at most
//! once per `CLERK_JWKS_MIN_REFETCH_SECS`).
//!
//! Each Clerk instance (the operator's, the platforms' end users') has its own keys, KV entry
//! and re-fetch throttle, all keyed by its JWKS URL: a flood of tokens with made-up `kid`s
//! for one instance never spends the other's fetches, nor finds the other's keys.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use jwt_compact::alg::RsaPublicKey;
use serde::{Deserialize, Serialize};
use worker::{Delay, KvStore};

use crate::core::random;
use crate::error::AppError;
use crate::identity::config::ClerkConfig;
use crate::identity::rules::jwt::{parse_jwks, JwksKey, Rejection};
use crate::identity::rules::key_cache::{JwksCache, KeyLookup};
use crate::log::Logger;
use crate::upstream::clerk;

thread_local! {
    // One per isolate, for as long as it lives. Requests of one isolate interleave at
    // awaits, so the cache tracks a fetch in flight and others wait for it.
    // Keyed by the instance's JWKS URL.
    static CACHES: RefCell<HashMap<String, JwksCache>> = RefCell::new(HashMap::new());
}

/// Runs `f` on the instance's cache (made empty the first time).
fn with_cache<R>(config: &ClerkConfig, f: impl FnOnce(&mut JwksCache) -> R) -> R {
    CACHES.with_borrow_mut(|caches| {
        if !caches.contains_key(&config.jwks_url) {
            caches.insert(config.jwks_url.clone(), JwksCache::default());
        }
        let cache = caches
            .get_mut(&config.jwks_url)
            .expect("inserted just above");
        f(cache)
    })
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

/// How long a request waits for another request's JWKS fetch before giving up.
const WAIT_LIMIT_MS: u64 = 15_000;
/// How often a waiting request looks again.
const WAIT_STEP_MS: u64 = 25;

/// Runs `f` with the key for `kid`, loading or re-fetching the JWKS as needed.
pub async fn with_key<T>(
    config: &ClerkConfig,
    kv: &KvStore,
    kid: &str,
    f: impl FnOnce(&RsaPublicKey) -> T,
) -> Result<T, AppError> {
    let ttl_ms = config.jwks_cache_ttl_secs * 1000;
    let min_refetch_ms = config.jwks_min_refetch_secs * 1000;
    let mut fetched_already = false;
    let mut waited_ms = 0;
    loop {
        let now_ms = crate::clock::now_ms();
        let decision = with_cache(config, |c| {
            match c.lookup(kid, now_ms, ttl_ms, min_refetch_ms, fetched_already) {
                KeyLookup::Use(key) => Ok(key.key.clone()),
                KeyLookup::Fetch => Err(Next::Fetch),
                KeyLookup::Wait => Err(Next::Wait),
                KeyLookup::Unknown => Err(Next::Unknown),
                KeyLookup::Unavailable => Err(Next::Unavailable),
            }
        });
        match decision {
            Ok(key) => return Ok(f(&key)),
            Err(Next::Fetch) => {
                fetched_already = true;
                fetch(config, kv, now_ms, ttl_ms).await;
            }
            Err(Next::Wait) if waited_ms < WAIT_LIMIT_MS => {
                Delay::from(Duration::from_millis(WAIT_STEP_MS)).await;
                waited_ms += WAIT_STEP_MS;
            }
            Err(Next::Unknown) => {
                return Err(AppError::Unauthorized(
                    Rejection::UnknownKey(kid.to_owned()).message(),
                ))
            }
            Err(Next::Wait | Next::Unavailable) => {
                return Err(AppError::Upstream {
                    service: "clerk",
                    detail: "the JWKS could not be fetched".to_owned(),
                })
            }
        }
    }
}

enum Next {
    Fetch,
    Wait,
    Unknown,
    Unavailable,
}

/// Gets the JWKS: from KV when another isolate stored a newer copy than ours, else from
/// Clerk (then shared through KV). A failure leaves the cached keys in use and is logged.
async fn fetch(config: &ClerkConfig, kv: &KvStore, now_ms: u64, ttl_ms: u64) {
    with_cache(config, |c| c.begin_fetch(now_ms));
    let ours = with_cache(config, |c| c.fetched_at_ms());
    let result = match newer_in_kv(config, kv, ours, now_ms, ttl_ms).await {
        Some(found) => Ok(found),
        None => fetch_from_clerk(config, kv, now_ms).await,
    };
    match result {
        Ok(found) => with_cache(config, |c| c.end_fetch(Some(found))),
        Err(err) => {
            with_cache(config, |c| c.end_fetch(None));
            // Shared by every request of the isolate that waits on it: no one request's line.
            Logger::isolate().error(
                "JWKS fetch failed",
                serde_json::json!({ "detail": err.log_detail(), "issuer": config.issuer }),
            );
        }
    }
}

async fn newer_in_kv(
    config: &ClerkConfig,
    kv: &KvStore,
    ours: Option<u64>,
    now_ms: u64,
    ttl_ms: u64,
) -> Option<(Vec<JwksKey>, u64)> {
    // A KV miss or failure only means asking Clerk; it is never fatal.
    let stored = kv
        .get(&kv_key(&config.jwks_url))
        .json::<StoredJwks>()
        .await
        .ok()??;
    let newer = ours.is_none_or(|at| stored.fetched_at_ms > at);
    let fresh = now_ms.saturating_sub(stored.fetched_at_ms) < ttl_ms;
    if !(newer && fresh) {
        return None;
    }
    let keys = parse_jwks(&stored.document).ok()?;
    Some((keys, stored.fetched_at_ms))
}

async fn fetch_from_clerk(
    config: &ClerkConfig,
    kv: &KvStore,
    now_ms: u64,
) -> Result<(Vec<JwksKey>, u64), AppError> {
    let document = clerk::fetch_jwks(&config.jwks_url).await?;
    let keys = parse_jwks(&document).map_err(|detail| AppError::Upstream {
        service: "clerk",
        detail,
    })?;
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
    Ok((keys, now_ms))
}
