//! The provider key sweep, part of the scheduled run: deletes the OpenRouter
//! keys left behind (a rotation or reset whose deletion failed, a key created but not kept,
//! a deleted user's key) and reseals provider keys sealed under a previous encryption key.
//!
//! Two sweeps may run at once: each queued deletion is claimed by one sweep at a time, and
//! deleting a key OpenRouter no longer knows counts as done, so nothing is deleted twice in
//! effect and nothing is skipped.

use std::time::Duration;

use serde::Serialize;
use worker::{D1Database, Date};

use crate::config::Config;
use crate::core::random;
use crate::core::sealed::Keyring;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::store::credit_accounts as accounts;
use crate::store::seals::{self, Sealed};
use crate::upstream::openrouter::OpenRouter;

/// Deletions handled per run (each is one OpenRouter call).
const DELETIONS_PER_RUN: u32 = 50;
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
}

/// One run: queued deletions first, then resealing.
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
    let now = Date::now().as_millis();
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
                let now = Date::now().as_millis();
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
            worker::console_error!(
                "{}",
                serde_json::json!({
                    "level": "error", "msg": "a sealed provider key does not open",
                    "context": context, "detail": format!("{err:?}"),
                })
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
