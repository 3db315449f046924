//! Sokuji's usage API: reserve quota before a model call, report what it really used, read
//! and sync the quota. Every counter change is one exact, idempotent D1 batch.

use serde_json::{json, Value};
use worker::{D1Database, Date, Request, Response};

use crate::core::random;
use crate::core::time::{millis_from_rfc3339, rfc3339_from_millis};
use crate::devices::rules::{self as devices, Platform};
use crate::devices::store as device_store;
use crate::error::AppError;
use crate::http::{self, header, response, Ctx};
use crate::identity::service::auth::Credential;
use crate::identity::service::auth::{self, Principal};
use crate::metering::rules::{
    self as meter, Period, QuotaState, ReportRequest, ReserveRequest, SyncRequest, TOKENS,
};
use crate::metering::store as meters;
use crate::storage::{self as store, UserRef};

/// The quota as every usage endpoint shows it.
fn quota_body(principal: &Principal, period: &Period, quota: &QuotaState) -> Value {
    json!({
        "plan": principal.user.plan,
        "period": {
            "key": period.key(),
            "start": rfc3339_from_millis(period.start_ms()),
            "resets_at": rfc3339_from_millis(period.end_ms()),
        },
        "tokens": {
            "limit": quota.limit,
            "used": quota.used,
            "reserved": quota.reserved,
            "remaining": quota.remaining(),
            "unlimited": quota.limit.is_none(),
            "over_limit": quota.over_limit(),
        },
    })
}

/// The request's time and the token limit of the caller's plan.
struct Clock {
    now_ms: u64,
    now: String,
    period: Period,
    period_key: String,
}

impl Clock {
    fn now() -> Self {
        let now_ms = Date::now().as_millis();
        let period = Period::containing(now_ms);
        Self {
            now_ms,
            now: rfc3339_from_millis(now_ms),
            period_key: period.key(),
            period,
        }
    }

    fn scope<'a>(&'a self, ctx: &Ctx, principal: &'a Principal) -> meters::Scope<'a> {
        let plan = ctx.data.config.plans.get_or_default(&principal.user.plan);
        meters::Scope {
            user_id: &principal.user.id,
            meter: TOKENS,
            period: &self.period_key,
            limit: plan.tokens_per_month,
            now: &self.now,
            now_ms: self.now_ms,
        }
    }
}

/// The device a request names (`X-Device-Id`, or the body's `device_id`) and its platform
/// (`X-Client-Platform`), validated; `None` when it names none.
fn named_device(
    req: &Request,
    body_device: Option<&str>,
) -> Result<Option<(String, Platform)>, AppError> {
    let device = match (header(req, "X-Device-Id"), body_device) {
        (Some(h), _) => devices::device_id("X-Device-Id", &h)?,
        (None, Some(b)) => devices::device_id("device_id", b)?,
        (None, None) => return Ok(None),
    };
    let platform = Platform::parse(header(req, "X-Client-Platform").as_deref())?;
    Ok(Some((device, platform)))
}

/// A sighting of `device` by the caller, now.
fn sighting<'a>(
    principal: &'a Principal,
    clock: &'a Clock,
    device: &'a str,
    platform: Platform,
) -> device_store::Sighting<'a> {
    let auth_session_id = match &principal.credential {
        Credential::Token { session_id, .. } => session_id.as_deref(),
        Credential::ApiKey { .. } => None,
    };
    device_store::Sighting {
        user_id: &principal.user.id,
        device_id: device,
        platform: platform.as_str(),
        auth_session_id,
        now: &clock.now,
        now_ms: clock.now_ms,
    }
}

/// Registers the request's device, if it names one, and returns its id; a new device beyond
/// the plan's limit of devices signed in at once is refused (`session_limit_exceeded`).
async fn admit_device(
    req: &Request,
    ctx: &Ctx,
    principal: &Principal,
    clock: &Clock,
) -> Result<Option<String>, AppError> {
    let Some((device, platform)) = named_device(req, None)? else {
        return Ok(None);
    };
    let plan = ctx.data.config.plans.get_or_default(&principal.user.plan);
    let db = store::database(&ctx.env)?;
    let sighting = sighting(principal, clock, &device, platform);
    if device_store::sighted(&db, sighting, plan.concurrent_sessions).await? {
        return Ok(Some(device));
    }
    Err(AppError::SessionLimit(format!(
        "the {} plan allows {} device(s) at once; sign out on another device or upgrade",
        plan.name,
        plan.concurrent_sessions.unwrap_or_default()
    )))
}

fn replayed(mut resp: Response, replayed: bool) -> Response {
    if replayed {
        response::set(resp.headers_mut(), "Idempotent-Replayed", "true");
    }
    resp
}

/// `POST /api/usage/reserve` `{estimate_tokens, provider?, model?, request_id?}` (camelCase
/// spellings accepted, unknown fields ignored): holds the estimate if the whole of it fits
/// (`402 quota_exceeded` otherwise) until it is settled by a report or expires. The hold
/// counts in the counter's period, which a request stamped in an earlier month never moves
/// back.
pub async fn reserve(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let body: ReserveRequest = ctx.data.json()?;
    meter::validate_reserve(&body).map_err(AppError::Validation)?;
    let key = meter::idempotency_key(
        header(&req, "Idempotency-Key").as_deref(),
        body.request_id.as_deref(),
        false,
    )?;
    let clock = Clock::now();
    admit_device(&req, &ctx, &principal, &clock).await?;
    let scope = clock.scope(&ctx, &principal);
    let db = store::database(&ctx.env)?;
    let ttl_ms = ctx.data.config.reservation_ttl_secs * 1000;
    let outcome = meters::reserve(
        &db,
        &scope,
        &random::id::<12>("rsv_"),
        body.estimate_tokens,
        (body.provider.as_deref(), body.model.as_deref()),
        key.as_deref(),
        ttl_ms,
    )
    .await?;
    match outcome {
        meters::Reserved::Admitted {
            reservation,
            replayed: again,
        } => {
            let quota = QuotaState {
                limit: scope.limit,
                used: reservation.used_after,
                reserved: reservation.reserved_after,
            };
            let body = json!({
                "reservation": {
                    "id": reservation.id,
                    "estimate_tokens": reservation.amount,
                    "provider": reservation.provider,
                    "model": reservation.model,
                    "request_id": reservation.request_id,
                    "expires_at": rfc3339_from_millis(reservation.expires_at_ms),
                    "created_at": reservation.created_at,
                },
                "quota": quota_body(&principal, &counted(&reservation.period, &clock), &quota),
            });
            Ok(replayed(response::json(201, &body)?, again))
        }
        meters::Reserved::Refused(quota) => Err(AppError::QuotaExceeded(format!(
            "{} tokens do not fit: {} of {} remain this period",
            body.estimate_tokens,
            quota.remaining().unwrap_or_default(),
            quota.limit.unwrap_or_default()
        ))),
    }
}

/// The period a stored row was counted in; the request's own if the key is unreadable.
fn counted(key: &str, clock: &Clock) -> Period {
    Period::from_key(key).unwrap_or(clock.period)
}

/// `POST /api/usage/report`: records what a model call used (camelCase spellings accepted,
/// unknown fields ignored), in the counter's period. With `reservation_id` it settles that
/// reservation (its unused part is released); without one it records usage that already
/// happened — never refused, even past the limit (the answer says so).
/// Idempotent on `request_id` / `Idempotency-Key`: a retry answers the first answer and
/// `"idempotent": true`. Without a key the usage is still recorded (usage is never lost),
/// under a key the server makes up (the record's id), and the answer says
/// `"idempotent": false`: a retry without a key may count twice.
pub async fn report(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let body: ReportRequest = ctx.data.json()?;
    meter::validate_report(&body).map_err(AppError::Validation)?;
    let client_key = meter::idempotency_key(
        header(&req, "Idempotency-Key").as_deref(),
        body.request_id.as_deref(),
        false,
    )?;
    let id = random::id::<12>("use_");
    // Stored keys are unique per user: a keyless report gets its own record id, which no
    // other report can carry (ids are random).
    let key = client_key.clone().unwrap_or_else(|| id.clone());
    let clock = Clock::now();
    // The device is recorded with the usage, in the same batch; a report is never refused
    // for its device (the usage already happened), so a device beyond the plan's limit is
    // simply not registered.
    let device = named_device(&req, body.device_id.as_deref())?;
    let scope = clock.scope(&ctx, &principal);
    let db = store::database(&ctx.env)?;
    let also = match &device {
        Some((id, platform)) => {
            let plan = ctx.data.config.plans.get_or_default(&principal.user.plan);
            let sighting = sighting(&principal, &clock, id, *platform);
            vec![device_store::sighting(
                &db,
                sighting,
                plan.concurrent_sessions,
            )?]
        }
        None => Vec::new(),
    };
    let usage = meters::NewUsage {
        id: &id,
        request_id: &key,
        provider: &body.provider,
        model: &body.model,
        device_id: device.as_ref().map(|(id, _)| id.as_str()),
        input_tokens: body.input_tokens,
        output_tokens: body.output_tokens,
        reservation_id: body.reservation_id.as_deref(),
    };
    let (record, again) = meters::record(&db, &scope, usage, also).await?;
    let quota = QuotaState {
        limit: record.limit_at,
        used: record.used_after.unwrap_or_default(),
        reserved: record.reserved_after.unwrap_or_default(),
    };
    let period = counted(&record.period, &clock);
    let settled = record.reservation_status.as_deref() == Some("settled");
    let answer = json!({
        "usage": {
            "id": record.id,
            "request_id": record.request_id,
            "provider": record.provider,
            "model": record.model,
            "device_id": record.device_id,
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "total_tokens": record.total_tokens,
            "created_at": record.created_at,
        },
        "reservation": record.reservation_id.as_ref().map(|id| json!({
            "id": id,
            "status": record.reservation_status,
            "released_tokens": record.released_tokens,
        })),
        // Usage recorded without holding quota first (no reservation, or one that had
        // expired): it counts in full and may pass the limit.
        "recorded_without_reservation": !settled,
        "over_limit": quota.over_limit(),
        // Whether a retry of this report is recognised (it carried an idempotency key).
        "idempotent": client_key.is_some(),
        "quota": quota_body(&principal, &period, &quota),
    });
    Ok(replayed(response::ok(&answer)?, again))
}

/// Authenticates the caller and reads their token counter in the same D1 round trip.
async fn authenticate_with_quota(
    req: &Request,
    ctx: &Ctx,
    clock: &Clock,
) -> Result<(Principal, meters::Reading), AppError> {
    let read = |db: &D1Database, user: &UserRef| {
        meters::read_statement(db, user, TOKENS, &clock.period_key, clock.now_ms)
    };
    let (principal, found) = auth::authenticate_and_read(req, ctx, &read).await?;
    let limit = clock.scope(ctx, &principal).limit;
    let reading = match found {
        Some(result) => meters::reading_from(&result, &clock.period_key, limit)?,
        None => meters::Reading::untouched(&clock.period_key, limit),
    };
    Ok((principal, reading))
}

/// `GET /api/usage/quota`.
pub async fn quota(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let clock = Clock::now();
    let (principal, reading) = authenticate_with_quota(&req, &ctx, &clock).await?;
    admit_device(&req, &ctx, &principal, &clock).await?;
    let period = counted(&reading.period, &clock);
    response::ok(&quota_body(&principal, &period, &reading.quota))
}

/// `POST /api/usage/sync` `{last_sync_at?}` (or `lastSyncAt`; an RFC 3339 time or epoch
/// milliseconds; unknown fields ignored): the quota, whether it changed since the client's
/// last sync (`has_updates`, and `hasUpdates` for the seed's clients), and the server's time
/// to send next time.
pub async fn sync(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let clock = Clock::now();
    let (principal, reading) = authenticate_with_quota(&req, &ctx, &clock).await?;
    let body: SyncRequest = if ctx.data.raw_body().iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        ctx.data.json()?
    };
    let since = body.last_sync_ms()?;
    admit_device(&req, &ctx, &principal, &clock).await?;
    let period = counted(&reading.period, &clock);
    let has_updates = match (since, reading.changed_at) {
        (None, _) => true,
        // A new period started since the last sync: the quota was reset.
        (Some(since), _) if since < period.start_ms() => true,
        (Some(_), None) => false,
        (Some(since), Some(changed)) => changed > since,
    };
    let mut answer = quota_body(&principal, &period, &reading.quota);
    answer["has_updates"] = json!(has_updates);
    answer["hasUpdates"] = json!(has_updates);
    answer["server_time"] = json!(clock.now);
    response::ok(&answer)
}

/// `GET /api/usage/sessions`: the caller's active devices (seen in the last 24 hours and not
/// signed out), with the plan's limit. The calling device (`X-Device-Id`) is registered first.
pub async fn sessions(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let clock = Clock::now();
    let current = admit_device(&req, &ctx, &principal, &clock).await?;
    let db = store::database(&ctx.env)?;
    let active = device_store::active(&db, &principal.user.id, clock.now_ms).await?;
    let plan = ctx.data.config.plans.get_or_default(&principal.user.plan);
    let data: Vec<Value> = active
        .iter()
        .map(|d| {
            json!({
                "device_id": d.device_id,
                "platform": d.platform,
                "first_seen_at": d.first_seen_at,
                "last_seen_at": d.last_seen_at,
                "expires_at": rfc3339_from_millis(d.last_seen_ms + devices::DEVICE_TTL_MS),
                "current": current.as_deref() == Some(d.device_id.as_str()),
            })
        })
        .collect();
    response::ok(&json!({
        "data": data,
        "active": data.len(),
        "limit": plan.concurrent_sessions,
    }))
}

/// Reads the usage filters of a history or stats query; times must be RFC 3339.
fn usage_filter(pairs: &[(String, String)]) -> Result<meters::UsageFilter, AppError> {
    let mut filter = meters::UsageFilter::default();
    for (name, value) in pairs {
        let time = |field: &str| {
            millis_from_rfc3339(value)
                .map(rfc3339_from_millis)
                .ok_or_else(|| AppError::invalid(field, "must be an RFC 3339 UTC time"))
        };
        match name.as_str() {
            "provider" => filter.provider = Some(value.clone()),
            "model" => filter.model = Some(value.clone()),
            "device_id" => filter.device_id = Some(value.clone()),
            "from" => filter.from = Some(time("from")?),
            "to" => filter.to = Some(time("to")?),
            _ => {}
        }
    }
    Ok(filter)
}

/// `GET /api/usage/history?limit=&cursor=&provider=&model=&device_id=&from=&to=`: the
/// caller's usage records, newest first.
pub async fn history(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let pairs = http::query_pairs(&req)?;
    let filter = usage_filter(&pairs)?;
    let page = http::page_request(&pairs)?;
    let db = store::database(&ctx.env)?;
    let mut records = meters::history(
        &db,
        &principal.user.id,
        &filter,
        page.after_pair()?,
        page.limit + 1,
    )
    .await?;
    let next_cursor =
        crate::core::page::finish(&mut records, page.limit, |r| [&r.created_at, &r.id]);
    let data: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "request_id": r.request_id, "provider": r.provider, "model": r.model,
                "device_id": r.device_id, "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens, "total_tokens": r.total_tokens,
                "reservation_id": r.reservation_id, "period": r.period, "created_at": r.created_at,
            })
        })
        .collect();
    response::ok(&json!({ "data": data, "next_cursor": next_cursor }))
}

/// `GET /api/usage/stats?from=&to=&provider=&model=&device_id=`: totals overall and by
/// provider, model, device and UTC day; without `from`/`to`, the current period.
pub async fn stats(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let mut filter = usage_filter(&http::query_pairs(&req)?)?;
    if filter.from.is_none() && filter.to.is_none() {
        let period = Period::containing(Date::now().as_millis());
        filter.from = Some(rfc3339_from_millis(period.start_ms()));
        filter.to = Some(rfc3339_from_millis(period.end_ms()));
    }
    let db = store::database(&ctx.env)?;
    let [total, by_provider, by_model, by_device, by_day] =
        meters::stats(&db, &principal.user.id, &filter).await?;
    let rename = |rows: Vec<meters::UsageTotals>, name: &str| -> Vec<Value> {
        rows.into_iter()
            .map(|t| {
                json!({
                    name: t.key, "requests": t.requests, "input_tokens": t.input_tokens,
                    "output_tokens": t.output_tokens, "total_tokens": t.total_tokens,
                })
            })
            .collect()
    };
    let totals = total.into_iter().next();
    response::ok(&json!({
        "from": filter.from,
        "to": filter.to,
        "totals": totals.map(|t| json!({
            "requests": t.requests, "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens, "total_tokens": t.total_tokens,
        })),
        "by_provider": rename(by_provider, "provider"),
        "by_model": rename(by_model, "model"),
        "by_device": rename(by_device, "device_id"),
        "by_day": rename(by_day, "day"),
    }))
}
