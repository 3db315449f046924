//! A user's OpenRouter key and the credits that pay for it (SPEC §5).
//!
//! `POST /api/key`, an admin's forced rotation and an admin's credit adjustment all change an
//! account under its lock ([`credit_accounts::claim`]), so concurrent requests for one user
//! create at most one key and deduct each spend once. A request that finds the lock held
//! waits; if the holder settled the account after the waiter arrived, the waiter answers with
//! that fresh state instead of asking OpenRouter again.
//!
//! Failure safety: a key is created before anything is written; if creating it fails, the
//! account is untouched (the user keeps their key, nothing is deducted) and the answer is
//! `upstream_error`. A create that timed out may still have made a key upstream: a look-up
//! by the key's name is queued, and the sweep deletes what it finds. A replaced key is
//! queued for deletion in the same transaction that replaces it, deleted right away if
//! OpenRouter answers, and otherwise by the scheduled sweep ([`crate::provider_keys::service::key_sweep`]).
//!
//! Deleting a user takes the same lock ([`retire_user_keys`]), and a request only takes the
//! lock while its user is active, so a key created while the user is deleted is queued for
//! deletion, never left alive.

use std::time::Duration;

use serde::Serialize;
use worker::{D1Database, Delay};

use crate::clock::now_ms;
use crate::config::Config;
use crate::core::random;
use crate::core::sealed::Keyring;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::identity::rules::status::AuthSource;
use crate::log::Logger;
use crate::provider_keys::rules::{
    self as credits, first_step, settle, CreditKind, Holding, KeyReading, Step,
};
use crate::provider_keys::store::credit_accounts::{
    self as accounts, key_context, Account, Claim, Entry, KeyState, LedgerLine, Settle,
};
use crate::upstream::openrouter::{CreateFailed, CreatedKey, OpenRouter};

/// How often a request waiting for a user's lock looks again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// What happened to the key in this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new user: first key, initial credits.
    Created,
    /// Credits had run down: a fresh key, credits back to the initial amount.
    Reset,
    /// The key was near its limit (or forced): a fresh key.
    Rotated,
    /// The same key; its spend since the last look was deducted.
    Unchanged,
}

/// The answer of `POST /api/key`: the key to use and the credit state (amounts in
/// micro-USD; the handler shows USD).
#[derive(Debug, Clone)]
pub struct KeyAnswer {
    pub key: String,
    pub account: Account,
    pub action: Action,
}

/// The parts every flow needs.
struct Flow<'a> {
    db: &'a D1Database,
    config: &'a Config,
    openrouter: OpenRouter<'a>,
    keyring: Keyring,
    user_id: &'a str,
    lock_id: String,
}

/// How claiming a user's account lock ended.
enum Locked {
    /// This request holds the lock; the account as it is now.
    Held(Account),
    /// Another request settled the account after `fresh_since`: its state answers for us.
    Fresh(Account),
}

/// How long a lock is waited for and held.
#[derive(Debug, Clone, Copy)]
struct LockTerms {
    ttl_ms: u64,
    wait_ms: u64,
    /// Only while the user is active (a request on their behalf, not their deletion).
    require_active: bool,
}

/// Claims the lock on the user's account for `ttl_ms`, polling while another request holds
/// it, for at most `wait_ms` (then `conflict`). With `fresh_since`, a holder that settled the
/// account after that time answers for us instead.
async fn lock(
    db: &D1Database,
    user_id: &str,
    lock_id: &str,
    terms: LockTerms,
    fresh_since: Option<u64>,
) -> Result<Locked, AppError> {
    let deadline = now_ms() + terms.wait_ms;
    loop {
        let now = now_ms();
        let claim = accounts::claim(
            db,
            user_id,
            lock_id,
            now,
            terms.ttl_ms,
            &rfc3339_from_millis(now),
            terms.require_active,
        )
        .await?;
        match claim {
            Claim::Held(account) => return Ok(Locked::Held(account)),
            Claim::Inactive => {
                return Err(AppError::Unauthorized(
                    "user account is deactivated".to_owned(),
                ))
            }
            Claim::Busy(account) => {
                let fresh = fresh_since.is_some_and(|since| {
                    account.key_hash.is_some()
                        && account.checked_ms.is_some_and(|at| at >= since as f64)
                });
                if fresh {
                    return Ok(Locked::Fresh(account));
                }
                if now >= deadline {
                    return Err(AppError::Conflict(
                        "another request is changing this user's key or credits; retry".to_owned(),
                    ));
                }
                Delay::from(LOCK_POLL).await;
            }
        }
    }
}

impl<'a> Flow<'a> {
    /// Checks the configuration first: without a provisioning key or an encryption key
    /// nothing is touched.
    fn new(db: &'a D1Database, config: &'a Config, user_id: &'a str) -> Result<Self, AppError> {
        let providers = &config.providers;
        Ok(Self {
            db,
            config,
            openrouter: OpenRouter {
                base_url: &config.upstreams.openrouter_api,
                provisioning_key: providers.provisioning_key.require()?,
                timeout: Duration::from_millis(providers.openrouter_timeout_ms),
            },
            keyring: providers.keyring()?,
            user_id,
            lock_id: random::id::<8>("lk_"),
        })
    }

    /// Long enough for the calls made under the lock (read the key, create one) to time out.
    fn lock_ttl_ms(&self) -> u64 {
        2 * self.config.providers.openrouter_timeout_ms + 5_000
    }

    /// Claims the account's lock (see [`lock`]), waiting as long as a holder may keep it.
    async fn lock(&self, fresh_since: Option<u64>) -> Result<Locked, AppError> {
        let ttl_ms = self.lock_ttl_ms();
        let terms = LockTerms {
            ttl_ms,
            wait_ms: ttl_ms + 1_000,
            require_active: true,
        };
        lock(self.db, self.user_id, &self.lock_id, terms, fresh_since).await
    }

    async fn release(&self) {
        if let Err(err) = accounts::release(self.db, self.user_id, &self.lock_id).await {
            log("credit account lock release failed", &err);
        }
    }

    /// The plaintext of the account's current key, if it opens.
    fn open(&self, account: &Account) -> Option<String> {
        let (hash, sealed) = (account.key_hash.as_deref()?, account.key_sealed.as_deref()?);
        match self.keyring.open(sealed, &key_context(self.user_id, hash)) {
            Ok(key) => Some(key),
            Err(err) => {
                // Sealed under a key no longer configured, or damaged: it cannot be handed
                // back, so the flow replaces it.
                log_detail(
                    "stored OpenRouter key does not open; it will be replaced",
                    &format!("{err:?}"),
                );
                None
            }
        }
    }

    /// Creates a key at OpenRouter, named after the deployment and the user
    /// ([`key_name`]). When the outcome is unknown (a timeout), a look-up by that name is
    /// queued for the sweep, so a key made upstream but never stored is found and deleted.
    async fn create(&self) -> Result<CreatedKey, AppError> {
        let name = key_name(&self.config.environment, self.user_id);
        let providers = &self.config.providers;
        let created = self
            .openrouter
            .create_key(
                &name,
                providers.credits.key_limit,
                providers.key_limit_reset.map(|r| r.as_str()),
            )
            .await;
        match created {
            Ok(key) => Ok(key),
            Err(CreateFailed {
                error,
                maybe_created,
            }) => {
                if maybe_created {
                    let now = now_ms();
                    let due = now + providers.delete_retry_secs * 1000;
                    let queued = accounts::queue_lookup(
                        self.db,
                        &name,
                        self.user_id,
                        due,
                        &rfc3339_from_millis(now),
                    )
                    .await;
                    if let Err(err) = queued {
                        log(
                            "queueing a look-up for an unknown OpenRouter create failed",
                            &err,
                        );
                    }
                }
                Err(error)
            }
        }
    }

    /// Runs the flow under the lock; the lock is given back on every failure.
    async fn run(&self, held: Account, force_rotate: bool) -> Result<KeyAnswer, AppError> {
        let mut created = None;
        let result = self.decide(&held, force_rotate, &mut created).await;
        if result.is_err() {
            self.release().await;
            if let Some(key) = created {
                // Made at OpenRouter but not kept: it must not stay alive.
                let now = now_ms();
                if let Err(err) = accounts::queue_deletion(
                    self.db,
                    &key.info.hash,
                    self.user_id,
                    "orphaned",
                    now,
                    &rfc3339_from_millis(now),
                )
                .await
                {
                    log("queueing an orphaned OpenRouter key failed", &err);
                }
            }
        }
        result
    }

    async fn decide(
        &self,
        held: &Account,
        force_rotate: bool,
        created: &mut Option<CreatedKey>,
    ) -> Result<KeyAnswer, AppError> {
        let policy = &self.config.providers.credits;
        let current_key = self.open(held);
        let holding = held.key_hash.as_ref().map(|_| Holding {
            credits: held.credits,
            key_usage: held.key_usage,
        });
        let step = match (&holding, force_rotate) {
            (None, true) => {
                return Err(AppError::Conflict(
                    "this user has no OpenRouter key yet".to_owned(),
                ))
            }
            (Some(_), true) => Step::Read,
            _ => first_step(policy, holding.as_ref()),
        };
        let (holding, old_hash) = match (step, holding, held.key_hash.as_deref()) {
            (Step::Read, Some(holding), Some(hash)) => (holding, hash),
            // No key yet, or credits run down: a fresh key and the initial credits.
            (step, _, old_hash) => {
                let key = created.insert(self.create().await?);
                let reset = step == Step::Reset;
                let entry = Entry {
                    kind: if reset {
                        CreditKind::Reset
                    } else {
                        CreditKind::Grant
                    },
                    amount: policy.initial_credits - held.credits,
                    reason: None,
                    actor_id: None,
                    idempotency_key: None,
                };
                let retire = old_hash.map(|hash| (hash, "reset"));
                let action = if reset {
                    Action::Reset
                } else {
                    Action::Created
                };
                return self
                    .save_new(
                        held,
                        key,
                        policy.initial_credits,
                        reset,
                        retire,
                        entry,
                        action,
                    )
                    .await;
            }
        };
        let info = self.openrouter.get_key(old_hash).await?;
        let reading = match &info {
            None => KeyReading::Gone,
            Some(info) => KeyReading::Live {
                usage: info.usage,
                remaining: info.limit_remaining.ok_or_else(|| AppError::Upstream {
                    service: "openrouter",
                    detail: "the key has no limit".to_owned(),
                })?,
                disabled: info.disabled,
            },
        };
        let settlement = settle(
            policy,
            &holding,
            reading,
            force_rotate || current_key.is_none(),
        );
        let usage_entry = Entry {
            kind: CreditKind::Usage,
            amount: settlement.credits_after - held.credits,
            reason: None,
            actor_id: None,
            idempotency_key: None,
        };
        if settlement.rotate {
            let key = created.insert(self.create().await?);
            return self
                .save_new(
                    held,
                    key,
                    settlement.credits_after,
                    false,
                    Some((old_hash, "rotated")),
                    usage_entry,
                    Action::Rotated,
                )
                .await;
        }
        let (Some(info), Some(key)) = (info, current_key) else {
            return Err(AppError::Internal(
                "a key that is gone or does not open was not rotated".to_owned(),
            ));
        };
        let state = KeyState {
            hash: old_hash,
            sealed: held.key_sealed.as_deref().unwrap_or_default(),
            label: held.key_label.as_deref().unwrap_or_default(),
            limit: info.limit.unwrap_or(held.key_limit),
            usage: info.usage,
            remaining: info.limit_remaining.unwrap_or_default(),
        };
        let entries = if usage_entry.amount == 0 {
            vec![]
        } else {
            vec![usage_entry]
        };
        let account = self
            .save(
                held,
                state,
                settlement.credits_after,
                false,
                false,
                None,
                entries,
            )
            .await?;
        Ok(KeyAnswer {
            key,
            account,
            action: Action::Unchanged,
        })
    }

    /// Saves a freshly created key in place of the old one (queued for deletion), then tries
    /// to delete the old one at once.
    #[allow(clippy::too_many_arguments)]
    async fn save_new(
        &self,
        held: &Account,
        key: &CreatedKey,
        credits: i64,
        reset: bool,
        retire: Option<(&str, &str)>,
        entry: Entry<'_>,
        action: Action,
    ) -> Result<KeyAnswer, AppError> {
        let hash = key.info.hash.as_str();
        let sealed = self.keyring.seal(
            &key.key,
            &key_context(self.user_id, hash),
            random::bytes::<12>(),
        );
        let label = crate::core::sealed::mask(&key.key);
        let state = KeyState {
            hash,
            sealed: &sealed,
            label: &label,
            limit: key
                .info
                .limit
                .unwrap_or(self.config.providers.credits.key_limit),
            usage: key.info.usage,
            remaining: key
                .info
                .limit_remaining
                .unwrap_or(self.config.providers.credits.key_limit),
        };
        let entries = if entry.amount == 0 {
            vec![]
        } else {
            vec![entry]
        };
        let rotated = action == Action::Rotated;
        let account = self
            .save(held, state, credits, reset, rotated, retire, entries)
            .await?;
        if let Some((old, _)) = retire {
            let retry_ms = self.config.providers.delete_retry_secs * 1000;
            delete_now(self.db, &self.openrouter, retry_ms, old).await;
        }
        Ok(KeyAnswer {
            key: key.key.clone(),
            account,
            action,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn save(
        &self,
        held: &Account,
        key: KeyState<'_>,
        credits: i64,
        reset: bool,
        rotated: bool,
        retire: Option<(&str, &str)>,
        entries: Vec<Entry<'_>>,
    ) -> Result<Account, AppError> {
        let now = now_ms();
        let now_text = rfc3339_from_millis(now);
        let settled = accounts::settle(
            self.db,
            &Settle {
                user_id: self.user_id,
                lock_id: &self.lock_id,
                version: held.version,
                key,
                credits,
                reset,
                rotated,
                retire,
                entries,
                now_ms: now,
                now: &now_text,
            },
        )
        .await?;
        settled.ok_or_else(|| {
            AppError::Conflict(
                "another request changed this user's key meanwhile; retry".to_owned(),
            )
        })
    }
}

/// `POST /api/key`: the caller's key, created, reset, rotated or kept per the seed's flow.
pub async fn key_for(
    db: &D1Database,
    config: &Config,
    user_id: &str,
) -> Result<KeyAnswer, AppError> {
    let arrived = now_ms();
    let flow = Flow::new(db, config, user_id)?;
    match flow.lock(Some(arrived)).await? {
        Locked::Held(held) => flow.run(held, false).await,
        Locked::Fresh(fresh) => {
            let key = flow.open(&fresh).ok_or_else(|| {
                AppError::Conflict("this user's key is being replaced; retry".to_owned())
            })?;
            Ok(KeyAnswer {
                key,
                account: fresh,
                action: Action::Unchanged,
            })
        }
    }
}

/// An admin's forced rotation: the spend so far is deducted, and the user gets a new key.
pub async fn force_rotation(
    db: &D1Database,
    config: &Config,
    user_id: &str,
) -> Result<KeyAnswer, AppError> {
    let flow = Flow::new(db, config, user_id)?;
    let locked = flow.lock(None).await.map_err(|err| match err {
        // The admin's credentials are fine: it is the user who is gone.
        AppError::Unauthorized(_) => {
            AppError::Conflict("the user's account is deactivated; nothing to rotate".to_owned())
        }
        other => other,
    })?;
    match locked {
        Locked::Held(held) => flow.run(held, true).await,
        Locked::Fresh(_) => Err(AppError::Internal(
            "a lock claimed without fresh_since was answered by another request".to_owned(),
        )),
    }
}

/// An admin's credit adjustment.
#[derive(Debug, Clone, Copy)]
pub struct Adjustment<'a> {
    /// Signed micro-USD.
    pub amount: i64,
    pub reason: &'a str,
    pub actor_id: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// Adds `amount` to the user's credits and records it in the ledger with the reason.
/// A retry with the same idempotency key returns the first line (`true`: replayed) and
/// changes nothing; the same key with another amount or reason is a conflict.
pub async fn adjust(
    db: &D1Database,
    user_id: &str,
    adjustment: Adjustment<'_>,
) -> Result<(LedgerLine, bool), AppError> {
    let lock_id = random::id::<8>("lk_");
    let terms = LockTerms {
        ttl_ms: 10_000,
        wait_ms: 30_000,
        require_active: false,
    };
    let held = match lock(db, user_id, &lock_id, terms, None).await? {
        Locked::Held(account) => account,
        Locked::Fresh(_) => {
            return Err(AppError::Internal(
                "a lock claimed without fresh_since was answered by another request".to_owned(),
            ))
        }
    };
    let outcome = adjust_held(db, user_id, &lock_id, &held, adjustment).await;
    if !matches!(outcome, Ok((_, false))) {
        if let Err(err) = accounts::release(db, user_id, &lock_id).await {
            log("credit account lock release failed", &err);
        }
    }
    outcome
}

async fn adjust_held(
    db: &D1Database,
    user_id: &str,
    lock_id: &str,
    held: &Account,
    a: Adjustment<'_>,
) -> Result<(LedgerLine, bool), AppError> {
    if held.key_hash.is_none() {
        return Err(AppError::Conflict(
            "this user has no credits yet (they have not requested a key)".to_owned(),
        ));
    }
    if let Some(key) = a.idempotency_key {
        if let Some(line) = accounts::adjustment_by_key(db, user_id, key).await? {
            if line.amount != a.amount || line.reason.as_deref() != Some(a.reason) {
                return Err(AppError::Conflict(
                    "this idempotency key was used for a different adjustment".to_owned(),
                ));
            }
            return Ok((line, true));
        }
    }
    let credits = held.credits + a.amount;
    if credits < 0 {
        return Err(AppError::Conflict(format!(
            "the balance is {} credits; it cannot go below zero",
            credits::usd(held.credits)
        )));
    }
    let entry = Entry {
        kind: CreditKind::Adjustment,
        amount: a.amount,
        reason: Some(a.reason),
        actor_id: Some(a.actor_id),
        idempotency_key: a.idempotency_key,
    };
    let now = rfc3339_from_millis(now_ms());
    accounts::adjust(db, user_id, lock_id, credits, &entry, &now)
        .await?
        .map(|line| (line, false))
        .ok_or_else(|| AppError::Conflict("the account changed meanwhile; retry".to_owned()))
}

/// The name of every OpenRouter key made for this user in this deployment
/// (`tollgate <ENVIRONMENT> <user id>`), which is how the sweep finds keys never stored.
pub fn key_name(environment: &str, user_id: &str) -> String {
    format!("tollgate {environment} {user_id}")
}

/// How long retiring a deleted user's key holds their lock (D1 statements only).
const RETIRE_TTL_MS: u64 = 10_000;
/// How long it waits for a request that holds the lock: longer than such a request holds it
/// with the default `OPENROUTER_TIMEOUT_MS` (2 × 10 s + 5 s); past that, the webhook fails
/// and Clerk retries it.
const RETIRE_WAIT_MS: u64 = 30_000;

/// A user was deleted: under the same lock as `POST /api/key`, queues their OpenRouter key
/// for deletion (the sweep deletes it) and forgets it. A request that holds the lock is
/// waited for, so a key it creates meanwhile is queued too; once the user is marked deleted
/// no request takes the lock again ([`accounts::claim`] with `require_active`).
pub async fn retire_user_keys(
    db: &D1Database,
    auth_source: AuthSource,
    external_id: &str,
) -> Result<(), AppError> {
    let Some(user_id) = accounts::account_holder(db, auth_source, external_id).await? else {
        return Ok(());
    };
    let lock_id = random::id::<8>("lk_");
    let terms = LockTerms {
        ttl_ms: RETIRE_TTL_MS,
        wait_ms: RETIRE_WAIT_MS,
        require_active: false,
    };
    lock(db, &user_id, &lock_id, terms, None).await?;
    let now = now_ms();
    let retired = accounts::retire_key(
        db,
        &user_id,
        &lock_id,
        "user_deleted",
        now,
        &rfc3339_from_millis(now),
    )
    .await;
    match retired {
        Ok(true) => Ok(()),
        Ok(false) => Err(AppError::Conflict(
            "another request took this user's account meanwhile; retry".to_owned(),
        )),
        Err(err) => {
            if let Err(err) = accounts::release(db, &user_id, &lock_id).await {
                log("credit account lock release failed", &err);
            }
            Err(err)
        }
    }
}

/// Deletes a retired key at OpenRouter now; on failure disables it (so it stops working at
/// once) and leaves it queued for the sweep.
pub async fn delete_now(db: &D1Database, openrouter: &OpenRouter<'_>, retry_ms: u64, hash: &str) {
    match openrouter.delete_key(hash).await {
        Ok(()) => {
            if let Err(err) = accounts::deletion_done(db, hash).await {
                log("forgetting a deleted OpenRouter key failed", &err);
            }
        }
        Err(err) => {
            log(
                "deleting a retired OpenRouter key failed; the sweep will retry",
                &err,
            );
            if let Err(err) = openrouter.disable_key(hash).await {
                log("disabling a retired OpenRouter key failed", &err);
            }
            let now = now_ms();
            let detail = err.log_detail().unwrap_or_else(|| err.code().to_owned());
            if let Err(err) = accounts::deletion_failed(
                db,
                hash,
                &detail,
                now + crate::provider_keys::service::key_sweep::backoff_ms(retry_ms, 1),
                &rfc3339_from_millis(now),
            )
            .await
            {
                log("recording a failed OpenRouter deletion failed", &err);
            }
        }
    }
}

fn log(msg: &str, err: &AppError) {
    log_detail(
        msg,
        &err.log_detail().unwrap_or_else(|| err.public_message()),
    );
}

fn log_detail(msg: &str, detail: &str) {
    Logger::isolate().error(msg, serde_json::json!({ "detail": detail }));
}
