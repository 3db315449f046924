//! Metering's flows: admit the device a request names, hold quota, record usage, read and
//! sync the quota, list history and totals. Every flow meters a [`Subject`] (a kind and an
//! id: whose counters) at the request's [`Clock`]: today the calling user; later issues
//! meter a platform's end users and an org's sites through the same flows, adding a
//! [`SubjectKind`] and a constructor each.
//!
//! Each flow keeps its D1 round trips as they were in the handlers: one batch per counter
//! change, a quota read folded into the caller's lookup ([`quota_read`]), a device sighting
//! in the report's own batch.

use worker::{D1Database, D1PreparedStatement, D1Result, Env};

use crate::core::page::PageRequest;
use crate::core::random;
use crate::core::time::rfc3339_from_millis;
use crate::devices::rules::Platform;
use crate::devices::service::{self as devices, Device, Sighting};
use crate::error::AppError;
use crate::http::RequestCtx;
use crate::identity::service::auth::{Credential, Principal};
use crate::metering::rules::{
    Period, QuotaState, ReportRequest, ReserveRequest, SubjectKind, TOKENS, VOICE_CHARS,
};
use crate::metering::store as meters;
use crate::plans::rules::{Plan, PlanCatalog};
use crate::storage::{self, UserRef};
use crate::workflows::rules::Owner;
use crate::workflows::service as workflows;

pub use crate::metering::store::{Reservation, UsageFilter, UsageRecord, UsageTotals};

/// Who is metered: whose counters (a kind and an id), under which plan's limits, and the
/// auth session their devices are tied to. Devices and auth sessions are a user's: a subject
/// of another kind has none, and a device its request names is only the label its usage is
/// recorded under.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// What the id names.
    pub kind: SubjectKind,
    /// The counters' owner within its kind (for a user, `users.id`).
    pub id: &'a str,
    /// The plan whose limits apply.
    pub plan: &'a Plan,
    /// The auth session the subject's devices are tied to (signing it out frees them).
    pub auth_session_id: Option<&'a str>,
    /// Which of its counters: [`TOKENS`] unless [`Subject::on`] chose another.
    pub meter: &'static str,
}

impl<'a> Subject<'a> {
    /// The authenticated caller, under their plan (the default plan for an id the catalog no
    /// longer has).
    pub fn user(principal: &'a Principal, plans: &'a PlanCatalog) -> Self {
        Self {
            kind: SubjectKind::User,
            id: &principal.user.id,
            plan: plans.get_or_default(&principal.user.plan),
            auth_session_id: match &principal.credential {
                Credential::Token { session_id, .. } => session_id.as_deref(),
                Credential::ApiKey { .. } => None,
            },
            meter: TOKENS,
        }
    }

    /// An org's counters (its sites' chat and voice), under `plan`.
    pub fn org(org_id: &'a str, plan: &'a Plan) -> Self {
        Self {
            kind: SubjectKind::Org,
            id: org_id,
            plan,
            auth_session_id: None,
            meter: TOKENS,
        }
    }

    /// The same subject on another of its meters ([`VOICE_CHARS`], ...).
    pub fn on(self, meter: &'static str) -> Self {
        Self { meter, ..self }
    }

    /// The plan's limit per period for the chosen meter (`None`: unlimited).
    pub fn limit(&self) -> Option<u64> {
        match self.meter {
            VOICE_CHARS => self.plan.voice_chars_per_month,
            _ => self.plan.tokens_per_month,
        }
    }
}

/// A device a request names, validated: its id and platform.
pub type NamedDevice = (String, Platform);

/// The request's time: every flow counts in the period containing it.
#[derive(Debug, Clone)]
pub struct Clock {
    now_ms: u64,
    now: String,
    period: Period,
    period_key: String,
}

impl Clock {
    /// At `now_ms` (the request's clock, epoch milliseconds).
    pub fn at(now_ms: u64) -> Self {
        let period = Period::containing(now_ms);
        Self {
            now_ms,
            now: rfc3339_from_millis(now_ms),
            period_key: period.key(),
            period,
        }
    }

    /// Now, RFC 3339.
    pub fn rfc3339(&self) -> &str {
        &self.now
    }

    fn scope<'a>(&'a self, subject: &Subject<'a>) -> meters::Scope<'a> {
        meters::Scope {
            subject_kind: subject.kind.as_str(),
            subject_id: subject.id,
            meter: subject.meter,
            period: &self.period_key,
            limit: subject.limit(),
            now: &self.now,
            now_ms: self.now_ms,
        }
    }

    /// The period a stored row was counted in; the request's own if the key is unreadable.
    fn counted(&self, key: &str) -> Period {
        Period::from_key(key).unwrap_or(self.period)
    }

    /// The device's sighting, for a user (`None` for a subject of another kind: it has no
    /// devices).
    fn sighting<'a>(
        &'a self,
        subject: &Subject<'a>,
        device: &'a NamedDevice,
    ) -> Option<Sighting<'a>> {
        subject.kind.is_user().then(|| Sighting {
            user_id: subject.id,
            device_id: &device.0,
            platform: device.1,
            auth_session_id: subject.auth_session_id,
            now: &self.now,
            now_ms: self.now_ms,
        })
    }
}

/// Registers the device a request names, if any (and the subject is a user); a new device
/// beyond the plan's limit of devices signed in at once is refused (`session_limit_exceeded`).
async fn admit_device(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    device: Option<&NamedDevice>,
) -> Result<(), AppError> {
    let Some(sighting) = device.and_then(|device| clock.sighting(subject, device)) else {
        return Ok(());
    };
    let plan = subject.plan;
    let db = storage::database(env)?;
    if devices::admit(&db, sighting, plan.concurrent_sessions).await? {
        return Ok(());
    }
    Err(AppError::SessionLimit(format!(
        "the {} plan allows {} device(s) at once; sign out on another device or upgrade",
        plan.name,
        plan.concurrent_sessions.unwrap_or_default()
    )))
}

/// What a model call asks to hold: the prompt's estimated tokens, the reply it would like
/// (`max_reply`) and the least reply worth calling for (`min_reply`), with the labels the hold
/// and its usage record carry.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub prompt_estimate: u64,
    pub max_reply: u64,
    pub min_reply: u64,
    pub provider: &'a str,
    pub model: &'a str,
}

/// A model call admitted: its hold, and the reply it may ask the model for (never more than
/// the hold less the prompt's estimate).
pub struct Admitted {
    pub reservation: Reservation,
    pub reply_allowance: u64,
    pub period: Period,
    pub quota: QuotaState,
}

/// Holds the prompt's estimate plus the largest reply up to `ask.max_reply` the subject's
/// quota can still afford, decided in one D1 batch (so concurrent calls never hold more than
/// the limit between them); `quota_exceeded` when not even `ask.min_reply` fits, with nothing
/// held. The hold lasts `ttl_secs` unless [`report`] settles it or [`release`] gives it back.
pub async fn admit_call(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    ask: &Ask<'_>,
    ttl_secs: u64,
) -> Result<Admitted, AppError> {
    let scope = clock.scope(subject);
    let db = storage::database(env)?;
    let min_reply = ask.min_reply.min(ask.max_reply);
    let outcome = meters::reserve_within(
        &db,
        &scope,
        &random::id::<12>("rsv_"),
        (ask.prompt_estimate, ask.max_reply, min_reply),
        (Some(ask.provider), Some(ask.model)),
        ttl_secs * 1000,
    )
    .await?;
    match outcome {
        meters::Reserved::Admitted { reservation, .. } => Ok(Admitted {
            reply_allowance: reservation.amount.saturating_sub(ask.prompt_estimate),
            quota: QuotaState {
                limit: scope.limit,
                used: reservation.used_after,
                reserved: reservation.reserved_after,
            },
            period: clock.counted(&reservation.period),
            reservation,
        }),
        meters::Reserved::Refused(quota) => Err(AppError::QuotaExceeded(format!(
            "a call needs about {} tokens for the prompt and at least {} for a reply: {} of {} \
             remain this period",
            ask.prompt_estimate,
            min_reply,
            quota.remaining().unwrap_or_default(),
            quota.limit.unwrap_or_default()
        ))),
    }
}

/// Gives a hold back unused (the call it was for produced nothing): nothing is charged and
/// its amount is free again at once. `false` when it was already settled, expired, or not
/// the subject's.
pub async fn release(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    reservation_id: &str,
) -> Result<bool, AppError> {
    let scope = clock.scope(subject);
    let db = storage::database(env)?;
    meters::release(&db, &scope, reservation_id).await
}

/// A hold admitted (now, or earlier under the same key: `replayed`), with the quota right
/// after it in the period it counts in.
pub struct Reserved {
    pub reservation: Reservation,
    pub replayed: bool,
    pub period: Period,
    pub quota: QuotaState,
}

/// Holds `request.estimate_tokens` if the whole of it fits (`quota_exceeded` otherwise),
/// until a report settles it or `ttl_secs` pass; admits `device` first.
pub async fn reserve(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    request: &ReserveRequest,
    key: Option<&str>,
    device: Option<&NamedDevice>,
    ttl_secs: u64,
) -> Result<Reserved, AppError> {
    admit_device(env, subject, clock, device).await?;
    let scope = clock.scope(subject);
    let db = storage::database(env)?;
    let outcome = meters::reserve(
        &db,
        &scope,
        &random::id::<12>("rsv_"),
        request.estimate_tokens,
        (request.provider.as_deref(), request.model.as_deref()),
        key,
        ttl_secs * 1000,
    )
    .await?;
    match outcome {
        meters::Reserved::Admitted {
            reservation,
            replayed,
        } => Ok(Reserved {
            quota: QuotaState {
                limit: scope.limit,
                used: reservation.used_after,
                reserved: reservation.reserved_after,
            },
            period: clock.counted(&reservation.period),
            reservation,
            replayed,
        }),
        meters::Reserved::Refused(quota) => Err(AppError::QuotaExceeded(format!(
            "{} tokens do not fit: {} of {} remain this period",
            request.estimate_tokens,
            quota.remaining().unwrap_or_default(),
            quota.limit.unwrap_or_default()
        ))),
    }
}

/// Usage recorded (now, or by an earlier report under the same key: `replayed`), with the
/// quota right after it in the period it counts in.
pub struct Reported {
    pub record: UsageRecord,
    pub replayed: bool,
    /// What the counter's `used` grew by (the record's total, or less for a model call whose
    /// provider reported more than its hold; 0 for a replay).
    pub counted: u64,
    pub period: Period,
    pub quota: QuotaState,
}

/// Records what a model call used, settling the reservation it names; never refused, even
/// past the limit. Idempotent on `client_key`; without one the record's own id is its key.
/// `device` is recorded in the same batch, and a device beyond the plan's limit is simply not
/// registered (the usage already happened). A user's `used` crossing 80 % or 100 % of the
/// plan's limit fires their usage alerts ([`alert`]), in the background of `on`.
pub async fn report(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    request: &ReportRequest,
    client_key: Option<&str>,
    device: Option<&NamedDevice>,
    on: &RequestCtx,
) -> Result<Reported, AppError> {
    let id = random::id::<12>("use_");
    // Stored keys are unique per subject: a keyless report gets its own record id, which no
    // other report can carry (ids are random).
    let key = client_key.unwrap_or(&id);
    let usage = meters::NewUsage {
        id: &id,
        request_id: key,
        provider: &request.provider,
        model: &request.model,
        device_id: device.map(|(id, _)| id.as_str()),
        input_tokens: request.input_tokens,
        output_tokens: request.output_tokens,
        reservation_id: request.reservation_id.as_deref(),
        at_most: None,
    };
    record(env, subject, clock, usage, device, on).await
}

/// What a model call used, as its provider reported it (or as the proxy estimated it), and
/// the hold it settles.
#[derive(Debug, Clone, Copy)]
pub struct CallUsage<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reservation_id: &'a str,
    /// The hold's amount: the most the counter is charged.
    pub hold: u64,
}

/// Settles a model call's hold with what it used: the record keeps the counts as reported
/// (usage history and stats show what the provider produced), and the counter's `used` grows
/// by at most the hold, which was admitted under the limit (by at most what is left under the
/// limit, if the hold expired first). So no model call takes the counter past its limit,
/// whatever the provider reports; [`Reported::counted`] says what the counter was charged.
pub async fn settle_call(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    call: &CallUsage<'_>,
    on: &RequestCtx,
) -> Result<Reported, AppError> {
    let id = random::id::<12>("use_");
    let usage = meters::NewUsage {
        id: &id,
        request_id: &id,
        provider: call.provider,
        model: call.model,
        device_id: None,
        input_tokens: call.input_tokens,
        output_tokens: call.output_tokens,
        reservation_id: Some(call.reservation_id),
        at_most: Some(call.hold),
    };
    record(env, subject, clock, usage, None, on).await
}

/// Records `usage` (with `device`'s sighting in the same batch) and fires the alerts its
/// counting crossed.
async fn record(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    usage: meters::NewUsage<'_>,
    device: Option<&NamedDevice>,
    on: &RequestCtx,
) -> Result<Reported, AppError> {
    let scope = clock.scope(subject);
    let db = storage::database(env)?;
    let also = match device.and_then(|device| clock.sighting(subject, device)) {
        Some(sighting) => vec![devices::sighting_statement(
            &db,
            sighting,
            subject.plan.concurrent_sessions,
        )?],
        None => Vec::new(),
    };
    let meters::Recorded {
        record,
        replayed,
        counted,
    } = meters::record(&db, &scope, usage, also).await?;
    if !replayed {
        alert(env, on, subject, &record, counted).await;
    }
    Ok(Reported {
        quota: QuotaState {
            limit: record.limit_at,
            used: record.used_after.unwrap_or_default(),
            reserved: record.reserved_after.unwrap_or_default(),
        },
        period: clock.counted(&record.period),
        record,
        replayed,
        counted,
    })
}

/// Tells workflows what a new record did to a user's `used` tokens (the counter right after
/// it, less what it `counted`, is the counter before it: both come from the record's own
/// batch, so concurrent reports see disjoint steps and exactly one crosses each threshold).
/// Only `used` counts: a reservation is a hold that may be released, so holding never
/// alerts. A replayed report crossed nothing new; a subject that is not a user has no alerts.
async fn alert(
    env: &Env,
    on: &RequestCtx,
    subject: &Subject<'_>,
    record: &UsageRecord,
    counted: u64,
) {
    let owner = match subject.kind {
        SubjectKind::User => Owner::user(subject.id),
        SubjectKind::Org => Owner::org(subject.id),
        _ => return,
    };
    let Some(after) = record.used_after else {
        return;
    };
    let usage = workflows::Usage {
        owner: &owner,
        meter: subject.meter,
        before: after.saturating_sub(counted),
        after,
        limit: record.limit_at,
        period: &record.period,
    };
    workflows::on_usage(env, on, &usage).await;
}

/// The statement that reads the token counter of the user `user` names at `now_ms` (the
/// caller, a subject of kind [`SubjectKind::User`]): the route table batches it with the
/// caller's lookup (`.batched(quota_read)`), so a quota read shares that round trip.
pub fn quota_read(
    db: &D1Database,
    user: &UserRef,
    now_ms: u64,
) -> Result<D1PreparedStatement, AppError> {
    let clock = Clock::at(now_ms);
    meters::read_statement(
        db,
        SubjectKind::User.as_str(),
        user,
        TOKENS,
        &clock.period_key,
        clock.now_ms,
    )
}

/// The subject's quota as it stands, in the period it counts in.
pub struct Quota {
    pub period: Period,
    pub quota: QuotaState,
}

/// The quota [`quota_read`] found (`None`: no counter to read), after admitting `device`.
pub async fn quota(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    found: Option<D1Result>,
    device: Option<&NamedDevice>,
) -> Result<Quota, AppError> {
    let reading = reading(subject, clock, found)?;
    admit_device(env, subject, clock, device).await?;
    Ok(Quota {
        period: clock.counted(&reading.period),
        quota: reading.quota,
    })
}

/// The quota, and whether it changed since the client's last sync.
pub struct Synced {
    pub period: Period,
    pub quota: QuotaState,
    pub has_updates: bool,
}

/// The quota [`quota_read`] found, after admitting `device`, and whether it changed since
/// `since` (epoch ms; `None` on a first sync, which always has updates).
pub async fn sync(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    found: Option<D1Result>,
    since: Option<u64>,
    device: Option<&NamedDevice>,
) -> Result<Synced, AppError> {
    let reading = reading(subject, clock, found)?;
    admit_device(env, subject, clock, device).await?;
    let period = clock.counted(&reading.period);
    let has_updates = match (since, reading.changed_at) {
        (None, _) => true,
        // A new period started since the last sync: the quota was reset.
        (Some(since), _) if since < period.start_ms() => true,
        (Some(_), None) => false,
        (Some(since), Some(changed)) => changed > since,
    };
    Ok(Synced {
        period,
        quota: reading.quota,
        has_updates,
    })
}

fn reading(
    subject: &Subject<'_>,
    clock: &Clock,
    found: Option<D1Result>,
) -> Result<meters::Reading, AppError> {
    let limit = subject.plan.tokens_per_month;
    match found {
        Some(result) => meters::reading_from(&result, &clock.period_key, limit),
        None => Ok(meters::Reading::untouched(&clock.period_key, limit)),
    }
}

/// The subject's active devices, the request's own first registered.
pub struct Sessions {
    pub devices: Vec<Device>,
    /// The request's device, if it named one.
    pub current: Option<String>,
    /// The plan's limit of devices at once; `None` is unlimited.
    pub limit: Option<u32>,
}

/// Admits `device` (if any), then lists the subject's active devices (a user's; a subject of
/// another kind has none).
pub async fn sessions(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    device: Option<NamedDevice>,
) -> Result<Sessions, AppError> {
    admit_device(env, subject, clock, device.as_ref()).await?;
    let devices = if subject.kind.is_user() {
        let db = storage::database(env)?;
        devices::active(&db, subject.id, clock.now_ms).await?
    } else {
        Vec::new()
    };
    Ok(Sessions {
        devices,
        current: device.map(|(id, _)| id),
        limit: subject.plan.concurrent_sessions,
    })
}

/// A page of usage records, newest first.
pub struct History {
    pub records: Vec<UsageRecord>,
    pub next_cursor: Option<String>,
}

/// The page `page` asks for of the subject's usage records matching `filter`, newest first.
pub async fn history(
    env: &Env,
    subject: &Subject<'_>,
    filter: &UsageFilter,
    page: &PageRequest,
) -> Result<History, AppError> {
    let db = storage::database(env)?;
    let mut records = meters::history(
        &db,
        subject.kind.as_str(),
        subject.id,
        filter,
        page.after_pair()?,
        page.limit + 1,
    )
    .await?;
    let next_cursor =
        crate::core::page::finish(&mut records, page.limit, |r| [&r.created_at, &r.id]);
    Ok(History {
        records,
        next_cursor,
    })
}

/// Usage totals overall and by provider, model, device and UTC day.
pub struct Stats {
    /// The window, as applied (the current period when the query gave neither bound).
    pub from: Option<String>,
    pub to: Option<String>,
    pub total: Option<UsageTotals>,
    pub by_provider: Vec<UsageTotals>,
    pub by_model: Vec<UsageTotals>,
    pub by_device: Vec<UsageTotals>,
    pub by_day: Vec<UsageTotals>,
}

/// The subject's usage totals matching `filter`; without `from` and `to`, in the period of
/// `clock`.
pub async fn stats(
    env: &Env,
    subject: &Subject<'_>,
    clock: &Clock,
    mut filter: UsageFilter,
) -> Result<Stats, AppError> {
    if filter.from.is_none() && filter.to.is_none() {
        let period = clock.period;
        filter.from = Some(rfc3339_from_millis(period.start_ms()));
        filter.to = Some(rfc3339_from_millis(period.end_ms()));
    }
    let db = storage::database(env)?;
    let [total, by_provider, by_model, by_device, by_day] =
        meters::stats(&db, subject.kind.as_str(), subject.id, &filter).await?;
    Ok(Stats {
        from: filter.from,
        to: filter.to,
        total: total.into_iter().next(),
        by_provider,
        by_model,
        by_device,
        by_day,
    })
}

/// One meter of one subject under a limit, for the flows that count whole units (API
/// calls) rather than hold and settle tokens: [`count`] and [`counter_read`].
#[derive(Debug, Clone, Copy)]
pub struct Counter<'a> {
    pub kind: SubjectKind,
    pub id: &'a str,
    /// [`crate::metering::rules::CALLS`], ...
    pub meter: &'static str,
    /// The limit per period; `None` is unlimited.
    pub limit: Option<u64>,
}

impl Clock {
    fn counter_scope<'a>(&'a self, counter: &Counter<'a>) -> meters::Scope<'a> {
        meters::Scope {
            subject_kind: counter.kind.as_str(),
            subject_id: counter.id,
            meter: counter.meter,
            period: &self.period_key,
            limit: counter.limit,
            now: &self.now,
            now_ms: self.now_ms,
        }
    }
}

/// How [`count`] ended, with the quota right after it in the period it counts in.
pub enum Count {
    /// Counted now, or by an earlier request under the same key (`replayed`).
    Admitted {
        record: Box<UsageRecord>,
        replayed: bool,
        period: Period,
        quota: QuotaState,
    },
    /// The amount does not fit: nothing was counted.
    Refused { period: Period, quota: QuotaState },
}

/// What one count is: how much, under which idempotency key, labelled how in the usage
/// records.
pub struct Counting<'a> {
    pub amount: u64,
    /// The client's idempotency key; without one the record's own id is its key.
    pub key: Option<&'a str>,
    /// The record's `provider` and `model` labels.
    pub labels: (&'a str, &'a str),
}

/// Statements for a count's own batch, given the D1 binding and the new record's id.
pub type AlsoWrite<'a> =
    dyn Fn(&D1Database, &str) -> Result<Vec<D1PreparedStatement>, AppError> + 'a;

/// Counts `counting.amount` on `counter`, exactly: admitted and recorded in one D1 batch only
/// if the whole amount fits the limit (see `store::count`). `after` gives statements for the
/// same batch, given the new record's id (they should apply only if that record exists).
pub async fn count(
    env: &Env,
    counter: &Counter<'_>,
    clock: &Clock,
    counting: &Counting<'_>,
    after: &AlsoWrite<'_>,
) -> Result<Count, AppError> {
    let id = random::id::<12>("use_");
    let key = counting.key.unwrap_or(&id);
    let scope = clock.counter_scope(counter);
    let db = storage::database(env)?;
    let usage = meters::NewUsage {
        id: &id,
        request_id: key,
        provider: counting.labels.0,
        model: counting.labels.1,
        device_id: None,
        input_tokens: counting.amount,
        output_tokens: 0,
        reservation_id: None,
        at_most: None,
    };
    let after = after(&db, &id)?;
    Ok(match meters::count(&db, &scope, usage, after).await? {
        meters::Counted::Admitted { record, replayed } => Count::Admitted {
            quota: QuotaState {
                limit: record.limit_at,
                used: record.used_after.unwrap_or_default(),
                reserved: record.reserved_after.unwrap_or_default(),
            },
            period: clock.counted(&record.period),
            record,
            replayed,
        },
        meters::Counted::Refused(quota) => Count::Refused {
            period: clock.period,
            quota,
        },
    })
}

/// The statement that reads `counter` at `clock` (no write), to batch with other reads.
pub fn counter_read(
    db: &D1Database,
    counter: &Counter<'_>,
    clock: &Clock,
) -> Result<D1PreparedStatement, AppError> {
    let id = UserRef {
        sql: "?1".to_owned(),
        params: vec![counter.id.into()],
    };
    meters::read_statement(
        db,
        counter.kind.as_str(),
        &id,
        counter.meter,
        &clock.period_key,
        clock.now_ms,
    )
}

/// The quota [`counter_read`] found, as it stands in the period it counts in.
pub fn counter_reading(
    result: &D1Result,
    counter: &Counter<'_>,
    clock: &Clock,
) -> Result<Quota, AppError> {
    let reading = meters::reading_from(result, &clock.period_key, counter.limit)?;
    Ok(Quota {
        period: clock.counted(&reading.period),
        quota: reading.quota,
    })
}
