//! Per-isolate caches that keep token verification off the network and off the CPU:
//! the Clerk JWKS (with a throttle on re-fetches) and tokens already verified.
//!
//! Both are plain data with the clock passed in; the worker keeps one of each per isolate.

use std::collections::{HashMap, VecDeque};

use crate::identity::rules::jwt::{EndUserToken, JwksKey, VerifiedToken};

/// What to do about a `kid`, given what the isolate knows.
#[derive(Debug)]
pub enum KeyLookup<'a> {
    /// Use this key (it may be past its TTL when a refresh is not possible right now).
    Use(&'a JwksKey),
    /// Ask for the JWKS (KV first, then Clerk).
    Fetch,
    /// Another request of this isolate is fetching the JWKS: wait for it, then look again.
    Wait,
    /// The key is not in the JWKS and it was fetched too recently to ask again.
    Unknown,
    /// No keys at all, and the last fetch failed moments ago.
    Unavailable,
}

/// The JWKS as this isolate knows it.
#[derive(Debug, Default)]
pub struct JwksCache {
    keys: Vec<JwksKey>,
    /// When the cached keys were fetched from Clerk (epoch ms), wherever we got them from.
    fetched_at_ms: Option<u64>,
    /// When this isolate last started a fetch (epoch ms).
    last_attempt_ms: Option<u64>,
    /// Whether that fetch failed.
    last_attempt_failed: bool,
    /// Whether a fetch is under way (requests interleave at awaits within an isolate).
    in_flight: bool,
}

impl JwksCache {
    /// Decides how to get the key for `kid`. `fetched_already` is set when this request has
    /// just fetched: it never fetches twice.
    ///
    /// Fetches happen at most once per `min_refetch_ms`: when the keys are past `ttl_ms`, or
    /// for a `kid` not in them (Clerk rotated its key), so a flood of tokens with made-up
    /// `kid`s costs at most one fetch per interval.
    pub fn lookup(
        &self,
        kid: &str,
        now_ms: u64,
        ttl_ms: u64,
        min_refetch_ms: u64,
        fetched_already: bool,
    ) -> KeyLookup<'_> {
        let found = self.keys.iter().find(|k| k.kid == kid);
        let may_fetch = !fetched_already
            && self
                .last_attempt_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= min_refetch_ms);
        let stale = self.is_stale(now_ms, ttl_ms);
        match found {
            Some(key) if !stale || self.in_flight || !may_fetch => KeyLookup::Use(key),
            Some(_) => KeyLookup::Fetch,
            None if self.in_flight => KeyLookup::Wait,
            None if may_fetch => KeyLookup::Fetch,
            None if self.keys.is_empty() && self.last_attempt_failed => KeyLookup::Unavailable,
            None if self.keys.is_empty() && !fetched_already => KeyLookup::Fetch,
            None if self.keys.is_empty() => KeyLookup::Unavailable,
            None => KeyLookup::Unknown,
        }
    }

    /// Whether the keys are missing or older than `ttl_ms`.
    pub fn is_stale(&self, now_ms: u64, ttl_ms: u64) -> bool {
        match self.fetched_at_ms {
            Some(at) if !self.keys.is_empty() => now_ms.saturating_sub(at) >= ttl_ms,
            _ => true,
        }
    }

    /// When the cached keys were fetched, if any are cached.
    pub fn fetched_at_ms(&self) -> Option<u64> {
        self.fetched_at_ms.filter(|_| !self.keys.is_empty())
    }

    /// Marks a fetch as started now.
    pub fn begin_fetch(&mut self, now_ms: u64) {
        self.in_flight = true;
        self.last_attempt_ms = Some(now_ms);
    }

    /// Marks the fetch as finished: with the keys fetched at `fetched_at_ms`, or failed
    /// (the keys already cached stay in use).
    pub fn end_fetch(&mut self, fetched: Option<(Vec<JwksKey>, u64)>) {
        self.in_flight = false;
        self.last_attempt_failed = fetched.is_none();
        if let Some((keys, at)) = fetched {
            self.keys = keys;
            self.fetched_at_ms = Some(at);
        }
    }
}

/// Entries kept at most; when full, expired entries go first, then the oldest.
pub const TOKEN_CACHE_CAPACITY: usize = 2048;
/// A verified token is trusted from the cache for at most this long, even without `exp`.
pub const TOKEN_CACHE_MAX_AGE_SECS: i64 = 300;

/// A verified token that may be cached: it knows its own `exp`.
pub trait Expiring {
    /// `exp`, Unix seconds, if the token has one.
    fn expires_at(&self) -> Option<i64>;
}

impl Expiring for VerifiedToken {
    fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

impl Expiring for EndUserToken {
    fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

#[derive(Debug)]
struct CachedToken<T> {
    token: T,
    valid_until: i64,
}

/// Tokens already verified, keyed by the SHA-256 of the token, each valid until its `exp`
/// (plus skew) or [`TOKEN_CACHE_MAX_AGE_SECS`], whichever is sooner. Only the signature and
/// claim checks are cached: user and session status are checked on every request.
/// One cache per kind of token ([`VerifiedToken`] by default, [`EndUserToken`]), so a token
/// verified as one kind is never found as the other.
#[derive(Debug)]
pub struct VerifiedTokenCache<T = VerifiedToken> {
    entries: HashMap<[u8; 32], CachedToken<T>>,
    order: VecDeque<[u8; 32]>,
}

impl<T> Default for VerifiedTokenCache<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T: Expiring> VerifiedTokenCache<T> {
    /// The verified token for this hash, if cached and still valid at `now` (Unix seconds).
    pub fn get(&self, hash: &[u8; 32], now: i64) -> Option<&T> {
        self.entries
            .get(hash)
            .filter(|e| now <= e.valid_until)
            .map(|e| &e.token)
    }

    /// Remembers a verified token until `exp + skew` (at most the max age from `now`).
    pub fn insert(&mut self, hash: [u8; 32], token: T, now: i64, skew: i64) {
        let cap = now + TOKEN_CACHE_MAX_AGE_SECS;
        let valid_until = token.expires_at().map_or(cap, |exp| (exp + skew).min(cap));
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
    use crate::identity::rules::jwt::TokenKind;

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
            key: crate::identity::rules::jwt::tests::rsa_pair().1.clone(),
        }
    }

    const TTL: u64 = 3_600_000;
    const EVERY: u64 = 30_000;

    fn warm() -> JwksCache {
        let mut cache = JwksCache::default();
        cache.begin_fetch(10_000);
        cache.end_fetch(Some((vec![key("k1")], 10_000)));
        cache
    }

    #[test]
    fn a_cold_cache_fetches_and_concurrent_requests_wait() {
        let mut cache = JwksCache::default();
        assert!(matches!(
            cache.lookup("k1", 0, TTL, EVERY, false),
            KeyLookup::Fetch
        ));
        cache.begin_fetch(0);
        assert!(matches!(
            cache.lookup("k1", 1, TTL, EVERY, false),
            KeyLookup::Wait
        ));
        cache.end_fetch(Some((vec![key("k1")], 5)));
        assert!(matches!(
            cache.lookup("k1", 6, TTL, EVERY, false),
            KeyLookup::Use(_)
        ));
    }

    #[test]
    fn a_failed_cold_fetch_is_unavailable_until_the_interval_passes() {
        let mut cache = JwksCache::default();
        cache.begin_fetch(0);
        cache.end_fetch(None);
        assert!(matches!(
            cache.lookup("k1", 1, TTL, EVERY, false),
            KeyLookup::Unavailable
        ));
        assert!(matches!(
            cache.lookup("k1", 1, TTL, EVERY, true),
            KeyLookup::Unavailable
        ));
        assert!(matches!(
            cache.lookup("k1", EVERY, TTL, EVERY, false),
            KeyLookup::Fetch
        ));
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_per_interval() {
        let mut cache = warm();
        assert!(matches!(
            cache.lookup("k1", 10_001, TTL, EVERY, false),
            KeyLookup::Use(_)
        ));
        assert!(matches!(
            cache.lookup("nope", 10_001, TTL, EVERY, false),
            KeyLookup::Unknown
        ));
        assert!(matches!(
            cache.lookup("nope", 39_999, TTL, EVERY, false),
            KeyLookup::Unknown
        ));
        assert!(matches!(
            cache.lookup("nope", 40_000, TTL, EVERY, false),
            KeyLookup::Fetch
        ));
        // The request that just fetched never fetches again.
        assert!(matches!(
            cache.lookup("nope", 40_000, TTL, EVERY, true),
            KeyLookup::Unknown
        ));
        // While one request re-fetches, others with a new kid wait for it.
        cache.begin_fetch(40_000);
        assert!(matches!(
            cache.lookup("k2", 40_001, TTL, EVERY, false),
            KeyLookup::Wait
        ));
        assert!(matches!(
            cache.lookup("k1", 40_001, TTL, EVERY, false),
            KeyLookup::Use(_)
        ));
        cache.end_fetch(Some((vec![key("k2")], 40_002)));
        assert!(matches!(
            cache.lookup("k2", 40_003, TTL, EVERY, false),
            KeyLookup::Use(_)
        ));
    }

    #[test]
    fn stale_keys_are_refreshed_but_still_used_when_refreshing_fails() {
        let mut cache = warm();
        let later = 10_000 + TTL;
        assert!(cache.is_stale(later, TTL));
        assert!(matches!(
            cache.lookup("k1", later, TTL, EVERY, false),
            KeyLookup::Fetch
        ));
        cache.begin_fetch(later);
        cache.end_fetch(None);
        assert!(matches!(
            cache.lookup("k1", later, TTL, EVERY, true),
            KeyLookup::Use(_)
        ));
        assert!(matches!(
            cache.lookup("k1", later + 1, TTL, EVERY, false),
            KeyLookup::Use(_)
        ));
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
    fn end_user_tokens_are_cached_until_their_expiry_plus_skew() {
        let mut cache: VerifiedTokenCache<EndUserToken> = VerifiedTokenCache::default();
        let end_user = EndUserToken {
            subject: "user_end".into(),
            platform_id: Some("plt_1".into()),
            plan: None,
            email: None,
            session_id: None,
            expires_at: Some(1_000),
        };
        cache.insert([7; 32], end_user.clone(), 900, 5);
        assert_eq!(cache.get(&[7; 32], 1_005), Some(&end_user));
        assert_eq!(cache.get(&[7; 32], 1_006), None);
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
