//! The usage API: reserve quota before a model call, report what it really used, read
//! and sync the quota. Every counter change is one exact, idempotent D1 batch.

pub mod views;

use worker::{Request, Response};

use crate::core::time::{millis_from_rfc3339, rfc3339_from_millis};
use crate::devices::rules::{self as devices, Platform};
use crate::error::AppError;
use crate::http::doc::{Doc, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC, REPLAYED, REPLAYED_DOC};
use crate::http::{self, header, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::metering::rules::{
    self as meter, Period, QuotaState, ReportRequest, ReservationOutcome, ReserveRequest,
    SyncRequest,
};
use crate::metering::service::{self, Clock, NamedDevice, Subject, UsageFilter, UsageTotals};
use views::{
    DeviceSessionView, DeviceSessionsView, TokenQuotaView, UsageByDayView, UsageByDeviceView,
    UsageByModelView, UsageByProviderView, UsageHistoryQuery, UsageHistoryView, UsagePeriodView,
    UsageQuotaView, UsageRecordView, UsageReportView, UsageReportedView, UsageReservationView,
    UsageReservedView, UsageSettlementView, UsageStatsQuery, UsageStatsView, UsageSyncView,
    UsageTotalsView,
};

/// The header naming the calling device.
pub const DEVICE_ID: &str = "X-Device-Id";
const DEVICE_ID_DOC: &str = "The calling device, chosen by the client: 1 to 128 letters, \
    digits, `.`, `_`, `:` or `-`. A new device beyond the plan's limit of devices at once is \
    refused (`session_limit_exceeded`), except on reports.";
/// The header naming the calling device's platform.
pub const CLIENT_PLATFORM: &str = "X-Client-Platform";
const CLIENT_PLATFORM_DOC: &str =
    "The calling device's platform: `chrome` (or `chrome-extension`), `electron` or `web` \
     (the default).";

/// The quota as every usage endpoint shows it.
fn quota_view(principal: &Principal, period: &Period, quota: &QuotaState) -> UsageQuotaView {
    UsageQuotaView {
        plan: principal.user.plan.clone(),
        period: UsagePeriodView {
            key: period.key(),
            start: rfc3339_from_millis(period.start_ms()),
            resets_at: rfc3339_from_millis(period.end_ms()),
        },
        tokens: TokenQuotaView {
            limit: quota.limit,
            used: quota.used,
            reserved: quota.reserved,
            remaining: quota.remaining(),
            unlimited: quota.limit.is_none(),
            over_limit: quota.over_limit(),
        },
    }
}

/// The device a request names (`X-Device-Id`, or the body's `device_id`) and its platform
/// (`X-Client-Platform`), validated; `None` when it names none.
fn named_device(req: &Request, body_device: Option<&str>) -> Result<Option<NamedDevice>, AppError> {
    let device = match (header(req, DEVICE_ID), body_device) {
        (Some(h), _) => devices::device_id(DEVICE_ID, &h)?,
        (None, Some(b)) => devices::device_id("device_id", b)?,
        (None, None) => return Ok(None),
    };
    let platform = Platform::parse(header(req, CLIENT_PLATFORM).as_deref())?;
    Ok(Some((device, platform)))
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
/// back. A device the request names is admitted first (`409 session_limit_exceeded`).
pub async fn reserve(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: ReserveRequest = ctx.data.json()?;
    meter::validate_reserve(&body).map_err(AppError::Validation)?;
    let key = meter::idempotency_key(
        header(&req, IDEMPOTENCY_KEY).as_deref(),
        body.request_id.as_deref(),
        false,
    )?;
    let device = named_device(&req, None)?;
    let subject = Subject::user(&principal, &ctx.data.config.plans);
    let held = service::reserve(
        &ctx.env,
        &subject,
        &Clock::at(ctx.data.now_ms),
        &body,
        key.as_deref(),
        device.as_ref(),
        ctx.data.config.reservation_ttl_secs,
    )
    .await?;
    let reservation = held.reservation;
    let body = UsageReservedView {
        quota: quota_view(&principal, &held.period, &held.quota),
        reservation: UsageReservationView {
            id: reservation.id,
            estimate_tokens: reservation.amount,
            provider: reservation.provider,
            model: reservation.model,
            request_id: reservation.request_id,
            expires_at: rfc3339_from_millis(reservation.expires_at_ms),
            created_at: reservation.created_at,
        },
    };
    Ok(replayed(response::json(201, &body)?, held.replayed))
}

/// What `/openapi.json` says of `POST /api/usage/reserve`.
pub fn reserve_doc() -> Doc {
    Doc::new("Hold an estimate of tokens before a model call")
        .body::<ReserveRequest>()
        .ok::<UsageReservedView>(201)
        .response_header(REPLAYED, REPLAYED_DOC)
        .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
        .header(DEVICE_ID, DEVICE_ID_DOC)
        .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
        .errors(&["quota_exceeded", "session_limit_exceeded"])
}

/// `POST /api/usage/report`: records what a model call used (camelCase spellings accepted,
/// unknown fields ignored), in the counter's period. With `reservation_id` it settles that
/// reservation (its unused part is released); without one it records usage that already
/// happened — never refused, even past the limit (the answer says so).
/// Idempotent on `request_id` / `Idempotency-Key`: a retry answers the first answer and
/// `"idempotent": true`. Without a key the usage is still recorded (usage is never lost),
/// under a key the server makes up (the record's id), and the answer says
/// `"idempotent": false`: a retry without a key may count twice.
pub async fn report(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: ReportRequest = ctx.data.json()?;
    meter::validate_report(&body).map_err(AppError::Validation)?;
    let client_key = meter::idempotency_key(
        header(&req, IDEMPOTENCY_KEY).as_deref(),
        body.request_id.as_deref(),
        false,
    )?;
    let device = named_device(&req, body.device_id.as_deref())?;
    let subject = Subject::user(&principal, &ctx.data.config.plans);
    let reported = service::report(
        &ctx.env,
        &subject,
        &Clock::at(ctx.data.now_ms),
        &body,
        client_key.as_deref(),
        device.as_ref(),
        &ctx.data,
    )
    .await?;
    let (record, quota) = (reported.record, reported.quota);
    let settled = record.reservation_status == Some(ReservationOutcome::Settled);
    // A record naming a reservation always says what became of it (the insert decides).
    let reservation = record
        .reservation_id
        .zip(record.reservation_status)
        .map(|(id, status)| UsageSettlementView {
            id,
            status,
            released_tokens: record.released_tokens,
        });
    let answer = UsageReportView {
        usage: UsageReportedView {
            id: record.id,
            request_id: record.request_id,
            provider: record.provider,
            model: record.model,
            device_id: record.device_id,
            input_tokens: record.input_tokens,
            output_tokens: record.output_tokens,
            total_tokens: record.total_tokens,
            created_at: record.created_at,
        },
        reservation,
        // Usage recorded without holding quota first (no reservation, or one that had
        // expired): it counts in full and may pass the limit.
        recorded_without_reservation: !settled,
        over_limit: quota.over_limit(),
        // Whether a retry of this report is recognised (it carried an idempotency key).
        idempotent: client_key.is_some(),
        quota: quota_view(&principal, &reported.period, &quota),
    };
    Ok(replayed(response::ok(&answer)?, reported.replayed))
}

/// What `/openapi.json` says of `POST /api/usage/report`.
pub fn report_doc() -> Doc {
    Doc::new("Record the tokens a model call used, settling its reservation")
        .body::<ReportRequest>()
        .ok::<UsageReportView>(200)
        .response_header(REPLAYED, REPLAYED_DOC)
        .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
        .header(DEVICE_ID, DEVICE_ID_DOC)
        .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
}

/// `GET /api/usage/quota`. The caller's lookup and the counter's read are one D1 round trip.
pub async fn quota(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let clock = Clock::at(ctx.data.now_ms);
    let found = ctx.data.take_batched();
    let device = named_device(&req, None)?;
    let subject = Subject::user(&principal, &ctx.data.config.plans);
    let quota = service::quota(&ctx.env, &subject, &clock, found, device.as_ref()).await?;
    response::ok(&quota_view(&principal, &quota.period, &quota.quota))
}

/// What `/openapi.json` says of `GET /api/usage/quota`.
pub fn quota_doc() -> Doc {
    Doc::new("The caller's token quota in the current period")
        .ok::<UsageQuotaView>(200)
        .header(DEVICE_ID, DEVICE_ID_DOC)
        .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
        .errors(&["validation_failed", "session_limit_exceeded"])
}

/// `POST /api/usage/sync` `{last_sync_at?}` (or `lastSyncAt`; an RFC 3339 time or epoch
/// milliseconds; unknown fields ignored): the quota, whether it changed since the client's
/// last sync (`has_updates`, and `hasUpdates` for the seed's clients), and the server's time
/// to send next time.
pub async fn sync(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let clock = Clock::at(ctx.data.now_ms);
    let found = ctx.data.take_batched();
    let body: SyncRequest = if ctx.data.raw_body().iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        ctx.data.json()?
    };
    let since = body.last_sync_ms()?;
    let device = named_device(&req, None)?;
    let subject = Subject::user(&principal, &ctx.data.config.plans);
    let synced = service::sync(&ctx.env, &subject, &clock, found, since, device.as_ref()).await?;
    response::ok(&UsageSyncView {
        quota: quota_view(&principal, &synced.period, &synced.quota),
        has_updates: synced.has_updates,
        has_updates_camel: synced.has_updates,
        server_time: clock.rfc3339().to_owned(),
    })
}

/// What `/openapi.json` says of `POST /api/usage/sync`.
pub fn sync_doc() -> Doc {
    Doc::new("The quota, and whether it changed since the client's last sync")
        .optional_body::<SyncRequest>()
        .ok::<UsageSyncView>(200)
        .header(DEVICE_ID, DEVICE_ID_DOC)
        .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
        .errors(&["session_limit_exceeded"])
}

/// `GET /api/usage/sessions`: the caller's active devices (seen in the last 24 hours and not
/// signed out), with the plan's limit. The calling device (`X-Device-Id`) is registered first.
pub async fn sessions(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let device = named_device(&req, None)?;
    let subject = Subject::user(&principal, &ctx.data.config.plans);
    let clock = Clock::at(ctx.data.now_ms);
    let sessions = service::sessions(&ctx.env, &subject, &clock, device).await?;
    let current = sessions.current.as_deref();
    let data: Vec<DeviceSessionView> = sessions
        .devices
        .into_iter()
        .map(|d| DeviceSessionView {
            current: current == Some(d.device_id.as_str()),
            expires_at: rfc3339_from_millis(d.last_seen_ms + devices::DEVICE_TTL_MS),
            device_id: d.device_id,
            platform: d.platform,
            first_seen_at: d.first_seen_at,
            last_seen_at: d.last_seen_at,
        })
        .collect();
    response::ok(&DeviceSessionsView {
        active: data.len(),
        data,
        limit: sessions.limit,
    })
}

/// What `/openapi.json` says of `GET /api/usage/sessions`.
pub fn sessions_doc() -> Doc {
    Doc::new("The caller's active devices and the plan's limit on them")
        .ok::<DeviceSessionsView>(200)
        .header(DEVICE_ID, DEVICE_ID_DOC)
        .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
        .errors(&["validation_failed", "session_limit_exceeded"])
}

/// Reads the usage filters of a history or stats query; times must be RFC 3339.
fn usage_filter(pairs: &[(String, String)]) -> Result<UsageFilter, AppError> {
    let mut filter = UsageFilter::default();
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
pub async fn history(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let pairs = http::query_pairs(&req)?;
    let filter = usage_filter(&pairs)?;
    let page = http::page_request(&pairs)?;
    let subject = Subject::user(&principal, &ctx.data.config.plans);
    let history = service::history(&ctx.env, &subject, &filter, &page).await?;
    let data = history
        .records
        .into_iter()
        .map(|r| UsageRecordView {
            id: r.id,
            request_id: r.request_id,
            provider: r.provider,
            model: r.model,
            device_id: r.device_id,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            total_tokens: r.total_tokens,
            reservation_id: r.reservation_id,
            period: r.period,
            created_at: r.created_at,
        })
        .collect();
    response::ok(&UsageHistoryView {
        data,
        next_cursor: history.next_cursor,
    })
}

/// What `/openapi.json` says of `GET /api/usage/history`.
pub fn history_doc() -> Doc {
    Doc::new("The caller's usage records, newest first")
        .query::<UsageHistoryQuery>()
        .ok::<UsageHistoryView>(200)
}

/// `GET /api/usage/stats?from=&to=&provider=&model=&device_id=`: totals overall and by
/// provider, model, device and UTC day; without `from`/`to`, the current period.
pub async fn stats(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let filter = usage_filter(&http::query_pairs(&req)?)?;
    let subject = Subject::user(&principal, &ctx.data.config.plans);
    let stats = service::stats(&ctx.env, &subject, &Clock::at(ctx.data.now_ms), filter).await?;
    let totals = |t: &UsageTotals| UsageTotalsView {
        requests: t.requests,
        input_tokens: t.input_tokens,
        output_tokens: t.output_tokens,
        total_tokens: t.total_tokens,
    };
    response::ok(&UsageStatsView {
        from: stats.from,
        to: stats.to,
        totals: stats.total.as_ref().map(totals),
        // Providers, models and days are never null in a record; devices may be.
        by_provider: stats
            .by_provider
            .into_iter()
            .map(|t| UsageByProviderView {
                provider: t.key.unwrap_or_default(),
                requests: t.requests,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
                total_tokens: t.total_tokens,
            })
            .collect(),
        by_model: stats
            .by_model
            .into_iter()
            .map(|t| UsageByModelView {
                model: t.key.unwrap_or_default(),
                requests: t.requests,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
                total_tokens: t.total_tokens,
            })
            .collect(),
        by_device: stats
            .by_device
            .into_iter()
            .map(|t| UsageByDeviceView {
                device_id: t.key,
                requests: t.requests,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
                total_tokens: t.total_tokens,
            })
            .collect(),
        by_day: stats
            .by_day
            .into_iter()
            .map(|t| UsageByDayView {
                day: t.key.unwrap_or_default(),
                requests: t.requests,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
                total_tokens: t.total_tokens,
            })
            .collect(),
    })
}

/// What `/openapi.json` says of `GET /api/usage/stats`.
pub fn stats_doc() -> Doc {
    Doc::new("Usage totals overall and by provider, model, device and day")
        .query::<UsageStatsQuery>()
        .ok::<UsageStatsView>(200)
}
