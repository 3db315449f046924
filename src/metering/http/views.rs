//! What the usage endpoints answer: typed views of quotas, reservations, usage records,
//! devices and totals. Schema names start with `Usage` (or `Device`) so they stay unique in
//! `/openapi.json`.

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::devices::rules::Platform;
use crate::metering::rules::ReservationOutcome;

/// The caller's token quota in the current period, as every usage endpoint shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageQuotaView {
    /// The caller's plan.
    pub plan: String,
    pub period: UsagePeriodView,
    pub tokens: TokenQuotaView,
}

/// A metering period: a calendar month in UTC.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsagePeriodView {
    /// `YYYY-MM`.
    pub key: String,
    /// The period's first instant (RFC 3339).
    pub start: String,
    /// When the quota resets: the next period's first instant (RFC 3339).
    pub resets_at: String,
}

/// Where the token counter stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenQuotaView {
    /// The plan's limit for the period; null is unlimited.
    #[schema(required = true)]
    pub limit: Option<u64>,
    /// Recorded usage.
    pub used: u64,
    /// Held by open reservations.
    pub reserved: u64,
    /// What may still be reserved; null is unlimited.
    #[schema(required = true)]
    pub remaining: Option<u64>,
    pub unlimited: bool,
    /// Whether recorded usage went past the limit (usage reported after the fact).
    pub over_limit: bool,
}

/// `POST /api/usage/reserve`: the hold, and the quota right after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageReservedView {
    pub reservation: UsageReservationView,
    pub quota: UsageQuotaView,
}

/// A reservation of tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageReservationView {
    pub id: String,
    pub estimate_tokens: u64,
    #[schema(required = true)]
    pub provider: Option<String>,
    #[schema(required = true)]
    pub model: Option<String>,
    /// The idempotency key it was made under, if any.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// When the hold lapses if no report settles it (RFC 3339).
    pub expires_at: String,
    pub created_at: String,
}

/// `POST /api/usage/report`: the usage recorded, what became of its reservation, and the
/// quota right after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageReportView {
    pub usage: UsageReportedView,
    /// The reservation the report named; null when it named none.
    #[schema(required = true)]
    pub reservation: Option<UsageSettlementView>,
    /// Usage recorded without holding quota first (no reservation, or one that had
    /// expired): it counts in full and may pass the limit.
    pub recorded_without_reservation: bool,
    pub over_limit: bool,
    /// Whether a retry of this report is recognised (it carried an idempotency key).
    pub idempotent: bool,
    pub quota: UsageQuotaView,
}

/// A usage record, as a report's answer shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageReportedView {
    pub id: String,
    /// The idempotency key (the record's id when the client sent none).
    pub request_id: String,
    pub provider: String,
    pub model: String,
    #[schema(required = true)]
    pub device_id: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub created_at: String,
}

/// What a report did to the reservation it named.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageSettlementView {
    pub id: String,
    pub status: ReservationOutcome,
    /// The unused part of the hold given back.
    pub released_tokens: u64,
}

/// `POST /api/usage/sync`: the quota, whether it changed since the client's last sync, and
/// the server's time to send next time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageSyncView {
    #[serde(flatten)]
    pub quota: UsageQuotaView,
    pub has_updates: bool,
    /// `has_updates`, for the seed's clients.
    #[serde(rename = "hasUpdates")]
    pub has_updates_camel: bool,
    /// Now (RFC 3339): the `last_sync_at` of the next sync.
    pub server_time: String,
}

/// `GET /api/usage/sessions`: the caller's active devices and the plan's limit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceSessionsView {
    pub data: Vec<DeviceSessionView>,
    /// How many devices are active.
    pub active: usize,
    /// The plan's limit of devices at once; null is unlimited.
    #[schema(required = true)]
    pub limit: Option<u32>,
}

/// A device the caller is signed in on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceSessionView {
    pub device_id: String,
    pub platform: Platform,
    pub first_seen_at: String,
    pub last_seen_at: String,
    /// When it stops counting unless seen again (RFC 3339).
    pub expires_at: String,
    /// Whether it is the device of this request (`X-Device-Id`).
    pub current: bool,
}

/// `GET /api/usage/history`: a page of usage records, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageHistoryView {
    pub data: Vec<UsageRecordView>,
    /// The `cursor` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A usage record in the history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageRecordView {
    pub id: String,
    pub request_id: String,
    pub provider: String,
    pub model: String,
    #[schema(required = true)]
    pub device_id: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    #[schema(required = true)]
    pub reservation_id: Option<String>,
    /// The period it counted in, `YYYY-MM`.
    pub period: String,
    pub created_at: String,
}

/// `GET /api/usage/stats`: totals overall and by provider, model, device and UTC day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageStatsView {
    /// The window's start (inclusive, RFC 3339); null when only `to` was given.
    #[schema(required = true)]
    pub from: Option<String>,
    /// The window's end (exclusive, RFC 3339); null when only `from` was given.
    #[schema(required = true)]
    pub to: Option<String>,
    #[schema(required = true)]
    pub totals: Option<UsageTotalsView>,
    pub by_provider: Vec<UsageByProviderView>,
    pub by_model: Vec<UsageByModelView>,
    pub by_device: Vec<UsageByDeviceView>,
    pub by_day: Vec<UsageByDayView>,
}

/// Totals of usage records.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageTotalsView {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// Totals of one provider.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageByProviderView {
    pub provider: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// Totals of one model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageByModelView {
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// Totals of one device; `device_id` is null for usage reported without one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageByDeviceView {
    #[schema(required = true)]
    pub device_id: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// Totals of one UTC day (`YYYY-MM-DD`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageByDayView {
    pub day: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// `GET /api/usage/history`'s query (the handler reads it pair by pair, last one winning).
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageHistoryQuery {
    /// Records per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this provider's records.
    pub provider: Option<String>,
    /// Only this model's records.
    pub model: Option<String>,
    /// Only this device's records.
    pub device_id: Option<String>,
    /// Records created at or after this RFC 3339 UTC time.
    pub from: Option<String>,
    /// Records created before this RFC 3339 UTC time.
    pub to: Option<String>,
}

/// `GET /api/usage/stats`'s query; without `from` and `to`, the current period.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageStatsQuery {
    /// Only this provider's records.
    pub provider: Option<String>,
    /// Only this model's records.
    pub model: Option<String>,
    /// Only this device's records.
    pub device_id: Option<String>,
    /// Records created at or after this RFC 3339 UTC time.
    pub from: Option<String>,
    /// Records created before this RFC 3339 UTC time.
    pub to: Option<String>,
}
