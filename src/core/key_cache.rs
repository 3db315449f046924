//! Per-isolate caches that keep token verification off the network and off the CPU:
//! the Clerk JWKS (with a throttle on re-fetches) and tokens already verified.
//!
//! Both are plain data with the clock passed in; the worker keeps one of each per isolate.

use std::collections::{HashMap, VecDeque};

use super::jwt::{JwksKey, VerifiedToken};

/// What to do about a `kid`.
#[derive(Debug)]
pub enum KeyLookup<'a> {
    /// The key is cached.
    Found(&'a JwksKey),
    /// The key is unknown and a network fetch is allowed now.
    Fetch,
    /// The key is unknown and the JWKS was fetched too recently to ask again.
    Throttled,
}

/// The JWKS as this isolate knows it.
#[derive(Debug, Default)]
pub struct JwksCache {
    keys: Vec<JwksKey>,
    /// When the cached keys were fetched from Clerk (epoch ms), wherever we got them from.
    fetched_at_ms: Option<u64>,
    /// When this isolate last asked Clerk, successfully or not (epoch ms).
    last_attempt_ms: Option<u64>,
}

impl JwksCache {
    /// Whether the keys are missing or older than `ttl_ms`.
    pub fn is_stale(&self, now_ms: u64, ttl_ms: u64) -> bool {
        match self.fetched_at_ms {
            Some(at) if !self.keys.is_empty() => now_ms.saturating_sub(at) >= ttl_ms,
            _ => true,
        }
    }

    /// Looks up `kid`; when it is unknown, says whether asking Clerk again is allowed:
    /// at most once per `min_refetch_ms`, so a flood of tokens with made-up `kid`s costs
    /// at most one fetch per interval.
    pub fn lookup(&self, kid: &str, now_ms: u64, min_refetch_ms: u64) -> KeyLookup<'_> {
        if let Some(key) = self.keys.iter().find(|k| k.kid == kid) {
            return KeyLookup::Found(key);
        }
        if self.may_fetch(now_ms, min_refetch_ms) {
            KeyLookup::Fetch
        } else {
            KeyLookup::Throttled
        }
    }

    /// Whether a network fetch is allowed now.
    pub fn may_fetch(&self, now_ms: u64, min_refetch_ms: u64) -> bool {
        self.last_attempt_ms
            .is_none_or(|at| now_ms.saturating_sub(at) >= min_refetch_ms)
    }

    /// Records that Clerk is being asked now (before the answer, so a failure counts too).
    pub fn note_attempt(&mut self, now_ms: u64) {
        self.last_attempt_ms = Some(now_ms);
    }

    /// Replaces the keys with a JWKS fetched at `fetched_at_ms`.
    pub fn replace(&mut self, keys: Vec<JwksKey>, fetched_at_ms: u64) {
        self.keys = keys;
        self.fetched_at_ms = Some(fetched_at_ms);
    }

    /// Whether any key is cached.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// Entries kept at most; when full, expired entries go first, then the oldest.
pub const TOKEN_CACHE_CAPACITY: usize = 2048;
/// A verified token is trusted from the cache for at most this long, even without `exp`.
pub const TOKEN_CACHE_MAX_AGE_SECS: i64 = 300;

#[derive(Debug)]
struct CachedToken {
    token: VerifiedToken,
    valid_until: i64,
}

/// Tokens already verified, keyed by the SHA-256 of the token, each valid until its `exp`
/// (plus skew) or [`TOKEN_CACHE_MAX_AGE_SECS`], whichever is sooner. Only the signature and
/// claim checks are cached: user and session status are checked on every request.
#[derive(Debug, Default)]
pub struct VerifiedTokenCache {
    entries: HashMap<[u8; 32], CachedToken>,
    order: VecDeque<[u8; 32]>,
}

impl VerifiedTokenCache {
    /// The verified token for this hash, if cached and still valid at `now` (Unix seconds).
    pub fn get(&self, hash: &[u8; 32], now: i64) -> Option<&VerifiedToken> {
        self.entries
            .get(hash)
            .filter(|e| now <= e.valid_until)
            .map(|e| &e.token)
    }

    /// Remembers a verified token until `exp + skew` (at most the max age from `now`).
    pub fn insert(&mut self, hash: [u8; 32], token: VerifiedToken, now: i64, skew: i64) {
        let cap = now + TOKEN_CACHE_MAX_AGE_SECS;
        let valid_until = token.expires_at.map_or(cap, |exp| (exp + skew).min(cap));
        if valid_until < now {
            return;
        }
        if self.entries.len() >= TOKEN_CACHE_CAPACITY {
            self.evict(now);
        }
        if self
            .entries
            .insert(hash, CachedToken { token, valid_until })
            .is_none()
        {
            self.order.push_back(hash);
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self, now: i64) {
        self.entries.retain(|_, e| e.valid_until >= now);
        self.order.retain(|h| self.entries.contains_key(h));
        while self.entries.len() >= TOKEN_CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::jwt::TokenKind;

    fn token(exp: Option<i64>) -> VerifiedToken {
        VerifiedToken {
            kind: TokenKind::Hmac,
            subject: "u".into(),
            email: None,
            username: None,
            session_id: None,
            org: None,
            expires_at: exp,
        }
    }

    fn key(kid: &str) -> JwksKey {
        JwksKey {
            kid: kid.into(),
            key: crate::core::jwt::tests::rsa_pair().1.clone(),
        }
    }

    #[test]
    fn an_empty_jwks_cache_is_stale_and_may_fetch() {
        let cache = JwksCache::default();
        assert!(cache.is_stale(0, 1000));
        assert!(matches!(cache.lookup("k", 0, 1000), KeyLookup::Fetch));
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_per_interval() {
        let mut cache = JwksCache::default();
        cache.note_attempt(10_000);
        cache.replace(vec![key("k1")], 10_000);
        assert!(matches!(
            cache.lookup("k1", 10_001, 30_000),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            cache.lookup("nope", 10_001, 30_000),
            KeyLookup::Throttled
        ));
        assert!(matches!(
            cache.lookup("nope", 39_999, 30_000),
            KeyLookup::Throttled
        ));
        assert!(matches!(
            cache.lookup("nope", 40_000, 30_000),
            KeyLookup::Fetch
        ));
        assert!(!cache.is_stale(10_000 + 3_599_999, 3_600_000));
        assert!(cache.is_stale(10_000 + 3_600_000, 3_600_000));
    }

    #[test]
    fn tokens_are_cached_until_their_expiry_plus_skew() {
        let mut cache = VerifiedTokenCache::default();
        cache.insert([1; 32], token(Some(100)), 50, 5);
        assert!(cache.get(&[1; 32], 105).is_some());
        assert!(cache.get(&[1; 32], 106).is_none());
        assert!(cache.get(&[2; 32], 50).is_none());
    }

    #[test]
    fn tokens_without_expiry_are_cached_for_the_max_age_only() {
        let mut cache = VerifiedTokenCache::default();
        cache.insert([1; 32], token(None), 0, 5);
        assert!(cache.get(&[1; 32], TOKEN_CACHE_MAX_AGE_SECS).is_some());
        assert!(cache.get(&[1; 32], TOKEN_CACHE_MAX_AGE_SECS + 1).is_none());
    }

    #[test]
    fn the_token_cache_is_bounded() {
        let mut cache = VerifiedTokenCache::default();
        for i in 0..(TOKEN_CACHE_CAPACITY + 10) {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.insert(hash, token(Some(1_000)), 0, 0);
        }
        assert!(cache.len() <= TOKEN_CACHE_CAPACITY);
        let mut newest = [0u8; 32];
        newest[..8].copy_from_slice(&((TOKEN_CACHE_CAPACITY + 9) as u64).to_le_bytes());
        assert!(cache.get(&newest, 0).is_some());
        let oldest = [0u8; 32];
        assert!(cache.get(&oldest, 0).is_none());
    }
}
