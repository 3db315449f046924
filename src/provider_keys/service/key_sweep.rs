//! The provider key sweep, part of the scheduled run: finds the OpenRouter keys a timed-out
//! create may have made (look-ups by the key's name), deletes the keys left behind (a
//! rotation or reset whose deletion failed, a key created but not kept, a deleted user's
//! key, a key found by a look-up) and reseals provider keys sealed under a previous
//! encryption key.
//!
//! Two sweeps may run at once: each queued deletion and look-up is claimed by one sweep at a
//! time, and deleting a key OpenRouter no longer knows counts as done, so nothing is deleted
//! twice in effect and nothing is skipped. A look-up is resolved under the user's credit
//! lock, so a key that a request is creating and about to store is never taken for lost.

use std::time::Duration;

use serde::Serialize;
use worker::D1Database;

use crate::config::Config;
use crate::core::random;
use crate::core::sealed::Keyring;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::log::Logger;
use crate::provider_keys::store::credit_accounts::{self as accounts, Claim, PendingLookup};
use crate::provider_keys::store::seals::{self, Sealed};
use crate::upstream::openrouter::{ListedKey, OpenRouter, LIST_PAGE_SIZE};

/// Deletions handled per run (each is one OpenRouter call).
const DELETIONS_PER_RUN: u32 = 50;
/// Look-ups resolved per run (all against one listing of the keys).
const LOOKUPS_PER_RUN: u32 = 50;
/// The most list pages read per run (100 keys each).
const MAX_LIST_PAGES: usize = 200;
/// How long resolving one look-up holds the user's lock (D1 statements only).
const LOOKUP_LOCK_MS: u64 = 10_000;
/// Sealed values resealed per run and table.
const RESEALS_PER_RUN: u32 = 100;

/// How long to wait before the next attempt after `attempts` failed ones: `base_ms`
/// (`KEY_DELETE_RETRY_SECS`, default a minute), doubling, at most six hours.
pub fn backoff_ms(base_ms: u64, attempts: i64) -> u64 {
    let doublings = attempts.clamp(1, 30) as u32 - 1;
    base_ms
        .saturating_mul(1u64 << doublings.min(20))
        .min(6 * 60 * 60 * 1000)
}

/// What one run did.
#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    pub deleted: u32,
    pub failed: u32,
    pub resealed: u32,
    /// Keys found by look-ups and queued for deletion.
    pub found: u32,
}

/// One run: look-ups first (what they find is deleted in the same run), then queued
/// deletions, then resealing.
pub async fn sweep(db: &D1Database, config: &Config) -> Result<SweepReport, AppError> {
    let mut report = SweepReport::default();
    // Each part needs its own secret; one unset does not stop the other.
    if let Ok(provisioning_key) = config.providers.provisioning_key.require() {
        let openrouter = OpenRouter {
            base_url: &config.upstreams.openrouter_api,
            provisioning_key,
            timeout: Duration::from_millis(config.providers.openrouter_timeout_ms),
        };
        let retry_ms = config.providers.delete_retry_secs * 1000;
        // A failing look-up must not keep the queued deletions from running.
        if let Err(err) = resolve_lookups(db, &openrouter, retry_ms, &mut report).await {
            Logger::isolate().error(
                "key look-ups failed; queued deletions still run",
                serde_json::json!({
                    "code": err.code(),
                    "detail": err.log_detail().unwrap_or_else(|| err.public_message()),
                }),
            );
            report.failed += 1;
        }
        delete_queued(db, &openrouter, retry_ms, &mut report).await?;
    }
    if let Ok(keyring) = config.providers.keyring() {
        reseal_stale(db, &keyring, &mut report).await?;
    }
    Ok(report)
}

async fn delete_queued(
    db: &D1Database,
    openrouter: &OpenRouter<'_>,
    retry_ms: u64,
    report: &mut SweepReport,
) -> Result<(), AppError> {
    let now = crate::clock::now_ms();
    // A claim outlives the calls of one run, so a concurrent run never takes the same key.
    let claim_ms = DELETIONS_PER_RUN as u64 * openrouter.timeout.as_millis() as u64 + 60_000;
    let due = accounts::claim_due_deletions(db, now, claim_ms, DELETIONS_PER_RUN).await?;
    for pending in due {
        match openrouter.delete_key(&pending.key_hash).await {
            Ok(()) => {
                accounts::deletion_done(db, &pending.key_hash).await?;
                report.deleted += 1;
            }
            Err(err) => {
                let now = crate::clock::now_ms();
                let detail = err.log_detail().unwrap_or_else(|| err.code().to_owned());
                accounts::deletion_failed(
                    db,
                    &pending.key_hash,
                    &detail,
                    now + backoff_ms(retry_ms, pending.attempts),
                    &rfc3339_from_millis(now),
                )
                .await?;
                report.failed += 1;
            }
        }
    }
    Ok(())
}

/// Resolves the due look-ups: lists every key at OpenRouter once, then, per look-up, under
/// the user's lock, queues the keys with its name that are not the user's current key.
async fn resolve_lookups(
    db: &D1Database,
    openrouter: &OpenRouter<'_>,
    retry_ms: u64,
    report: &mut SweepReport,
) -> Result<(), AppError> {
    let now = crate::clock::now_ms();
    let pages = MAX_LIST_PAGES as u64 + LOOKUPS_PER_RUN as u64;
    let claim_ms = pages * openrouter.timeout.as_millis() as u64 + 60_000;
    let due = accounts::claim_due_lookups(db, now, claim_ms, LOOKUPS_PER_RUN).await?;
    if due.is_empty() {
        return Ok(());
    }
    let listed = match list_all(openrouter).await {
        Ok(listed) => listed,
        Err(err) => {
            let detail = err.log_detail().unwrap_or_else(|| err.code().to_owned());
            for lookup in &due {
                postpone(db, lookup, &detail, retry_ms).await?;
                report.failed += 1;
            }
            return Ok(());
        }
    };
    for lookup in &due {
        let lock_id = random::id::<8>("lk_");
        let now = crate::clock::now_ms();
        let now_text = rfc3339_from_millis(now);
        let claim = accounts::claim(
            db,
            &lookup.user_id,
            &lock_id,
            now,
            LOOKUP_LOCK_MS,
            &now_text,
            false,
        )
        .await?;
        let Claim::Held(account) = claim else {
            postpone(db, lookup, "the account is locked by a request", retry_ms).await?;
            continue;
        };
        let current = account.key_hash.as_deref();
        let found: Vec<&str> = listed
            .iter()
            .filter(|key| key.name == lookup.name && Some(key.hash.as_str()) != current)
            .map(|key| key.hash.as_str())
            .collect();
        let resolved = accounts::resolve_lookup(
            db,
            &lookup.user_id,
            &lock_id,
            lookup,
            &found,
            now,
            &now_text,
        )
        .await?;
        if resolved {
            report.found += found.len() as u32;
        } else {
            postpone(db, lookup, "the account's lock was lost", retry_ms).await?;
        }
    }
    Ok(())
}

/// Every key at OpenRouter, disabled ones included, page by page.
async fn list_all(openrouter: &OpenRouter<'_>) -> Result<Vec<ListedKey>, AppError> {
    let mut keys = Vec::new();
    for _ in 0..MAX_LIST_PAGES {
        let page = openrouter.list_keys(keys.len()).await?;
        let last = page.len() < LIST_PAGE_SIZE;
        keys.extend(page);
        if last {
            return Ok(keys);
        }
    }
    Err(AppError::Upstream {
        service: "openrouter",
        detail: format!("more than {} keys to list", MAX_LIST_PAGES * LIST_PAGE_SIZE),
    })
}

/// A look-up that could not finish is tried again after the retry delay, backing off.
async fn postpone(
    db: &D1Database,
    lookup: &PendingLookup,
    detail: &str,
    retry_ms: u64,
) -> Result<(), AppError> {
    let now = crate::clock::now_ms();
    accounts::lookup_failed(
        db,
        &lookup.name,
        detail,
        now + backoff_ms(retry_ms, lookup.attempts),
        &rfc3339_from_millis(now),
    )
    .await
}

async fn reseal_stale(
    db: &D1Database,
    keyring: &Keyring,
    report: &mut SweepReport,
) -> Result<(), AppError> {
    for place in [Sealed::Accounts, Sealed::Pool] {
        for stale in seals::stale(db, place, keyring.current_id(), RESEALS_PER_RUN).await? {
            if let Some(sealed) = resealed(keyring, &stale.sealed, &place.context(&stale)) {
                seals::reseal(db, place, &stale, &sealed).await?;
                report.resealed += 1;
            }
        }
    }
    Ok(())
}

/// The value sealed anew under the current key; `None` (logged) if it does not open.
fn resealed(keyring: &Keyring, sealed: &str, context: &str) -> Option<String> {
    match keyring.open(sealed, context) {
        Ok(plain) => Some(keyring.seal(&plain, context, random::bytes::<12>())),
        Err(err) => {
            Logger::isolate().error(
                "a sealed provider key does not open",
                serde_json::json!({ "context": context, "detail": format!("{err:?}") }),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn retries_back_off_from_a_minute_to_six_hours() {
        assert_eq!(backoff_ms(60_000, 1), 60_000);
        assert_eq!(backoff_ms(60_000, 2), 120_000);
        assert_eq!(backoff_ms(60_000, 4), 480_000);
        assert_eq!(backoff_ms(60_000, 30), 6 * 60 * 60 * 1000);
        assert_eq!(backoff_ms(60_000, 0), 60_000);
        assert_eq!(backoff_ms(0, 5), 0);
    }
}
