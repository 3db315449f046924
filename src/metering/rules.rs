//! Metering rules: calendar-month periods (UTC), the quota state a counter is in, and the
//! validation of what clients report. Admission itself is one conditional statement in D1
//! (see `store::meters`); this module states the rules that statement implements, so a test
//! can state them in one line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::body::FieldError;
use crate::core::time::{civil_from_days, days_from_civil, millis_from_rfc3339};

/// The meter of LLM tokens.
pub const TOKENS: &str = "tokens";

/// The meter of API calls (a platform's end users, a developer's own plan), counted whole.
pub const CALLS: &str = "calls";

/// The meter of speech characters (an org's voice sites).
pub const VOICE_CHARS: &str = "voice_chars";

/// The most tokens one report or reservation may carry. Larger numbers are input errors,
/// not usage: no model call consumes a hundred million tokens.
pub const MAX_TOKENS_PER_REQUEST: u64 = 100_000_000;

/// What a metered subject is, stored as `subject_kind` beside its `subject_id`: a subject is
/// the pair, so two kinds never share a counter whatever their ids look like. Users are the
/// only kind metered today; a platform's end users and an org's sites join as variants of
/// their own (with a constructor on `service::Subject`) when their issues land; the table's
/// CHECK already allows them (`schema/0009_meter_subjects.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A Tollgate user; the subject id is `users.id` (`usr_...`).
    User,
    /// A platform's end user; the subject id is the platform's id and the end user's id
    /// within it (see `platforms::rules::subject_id`), so the same end-user id on two
    /// platforms is two subjects.
    EndUser,
    /// An organisation (the portal's clients); the subject id is `orgs.id` (`org_...`). Its
    /// sites' chat tokens and voice characters count here, against the org's plan.
    Org,
}

crate::stored_impls!(SubjectKind("meter subject kind"), serde);

impl SubjectKind {
    /// Every kind, for the checks that the schema accepts each.
    pub const ALL: [SubjectKind; 3] = [SubjectKind::User, SubjectKind::EndUser, SubjectKind::Org];

    /// As stored in `subject_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::EndUser => "end_user",
            SubjectKind::Org => "org",
        }
    }

    /// Whether the subject is a user, who alone has devices and auth sessions.
    pub fn is_user(self) -> bool {
        matches!(self, SubjectKind::User)
    }
}

/// A calendar month in UTC: `2026-11`. Ordered in time (year, then month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub year: i64,
    /// 1–12.
    pub month: u32,
}

impl Period {
    /// The period containing `epoch_ms`.
    pub fn containing(epoch_ms: u64) -> Self {
        let days = (epoch_ms / 86_400_000) as i64;
        let (year, month, _) = civil_from_days(days);
        Self { year, month }
    }

    /// Its key in storage: `YYYY-MM`. Keys sort as text in the order of their periods, so
    /// D1 compares them with `<` (see [`counted_period`]).
    pub fn key(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// The period a storage key names; `None` for anything but `YYYY-MM`.
    pub fn from_key(key: &str) -> Option<Self> {
        let (year, month) = key.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if year.len() != 4 || month.len() != 2 || !digits(year) || !digits(month) {
            return None;
        }
        let month: u32 = month.parse().ok()?;
        (1..=12).contains(&month).then_some(Self {
            year: year.parse().ok()?,
            month,
        })
    }

    /// The first instant of the period, epoch ms.
    pub fn start_ms(&self) -> u64 {
        days_from_civil(self.year, self.month, 1) as u64 * 86_400_000
    }

    /// The first instant of the next period (when the quota resets), epoch ms.
    pub fn end_ms(&self) -> u64 {
        let (year, month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        days_from_civil(year, month, 1) as u64 * 86_400_000
    }
}

/// The period a request is counted in, given the period its counter is in (`None`: no
/// counter yet). A counter only moves forward: a request stamped in a later period starts
/// the counter over in that period; a request stamped in an earlier one (clock skew at a
/// month boundary) is counted in the counter's period and never moves it back. Keys are
/// `YYYY-MM`, so text order is time order; the batch in `store::meters` applies the same
/// rule in SQL (`period < ?`).
pub fn counted_period<'a>(counter: Option<&'a str>, request: &'a str) -> &'a str {
    match counter {
        Some(counter) if counter > request => counter,
        _ => request,
    }
}

/// Whether a counter in period `counter` starts over (used and reserved back to zero, its
/// open reservations expired) for a request stamped in period `request`: only when the
/// request's period is later.
pub fn starts_over(counter: &str, request: &str) -> bool {
    request > counter
}

/// Where a counter stands in its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaState {
    /// The plan's limit for the period; `None` is unlimited.
    pub limit: Option<u64>,
    /// Recorded usage.
    pub used: u64,
    /// Held by open reservations.
    pub reserved: u64,
}

impl QuotaState {
    /// What may still be admitted (`None`: unlimited). Never negative: usage reported after
    /// the fact may exceed the limit, and is kept.
    pub fn remaining(&self) -> Option<u64> {
        self.limit
            .map(|limit| limit.saturating_sub(self.used.saturating_add(self.reserved)))
    }

    /// Whether `amount` more fits (the rule the admission statement implements).
    pub fn admits(&self, amount: u64) -> bool {
        self.limit.is_none_or(|limit| {
            self.used
                .saturating_add(self.reserved)
                .saturating_add(amount)
                <= limit
        })
    }

    /// Whether recorded usage went past the limit (usage reported after the fact).
    pub fn over_limit(&self) -> bool {
        self.limit.is_some_and(|limit| self.used > limit)
    }
}

/// What a counter's `used` grows by for usage of `total` tokens: all of it, except for a
/// model call's settlement (`at_most`: its hold), which grows it by at most the hold, and,
/// if the hold expired before the settlement (others may have taken its room), by at most
/// `room`: what is left under the limit (`None`: the hold is still live, or no limit). So a
/// model call never takes a counter past its limit, whatever its provider reports; the usage
/// record keeps `total` as reported. The record's batch in `store::record` applies the same
/// rule in SQL.
pub fn counted(total: u64, at_most: Option<u64>, room: Option<u64>) -> u64 {
    match at_most {
        None => total,
        Some(hold) => total.min(hold).min(room.unwrap_or(hold)),
    }
}

/// A client's idempotency key: `Idempotency-Key` or a body `request_id`, 1–128 characters of
/// `[A-Za-z0-9._:-]`.
pub fn idempotency_key(
    header: Option<&str>,
    body: Option<&str>,
    required: bool,
) -> Result<Option<String>, FieldError> {
    let (field, value) =
        match (header.map(str::trim), body.map(str::trim)) {
            (Some(h), Some(b)) if h != b => {
                return Err(FieldError::new(
                    "request_id",
                    "differs from the Idempotency-Key header",
                ))
            }
            (Some(h), _) => ("Idempotency-Key", h),
            (None, Some(b)) => ("request_id", b),
            (None, None) if required => return Err(FieldError::new(
                "request_id",
                "is required (or send an Idempotency-Key header) so a retry is never counted twice",
            )),
            (None, None) => return Ok(None),
        };
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(Some(value.to_owned()))
    } else {
        Err(FieldError::new(
            field,
            "must be 1 to 128 characters of letters, digits, `.`, `_`, `:` or `-`",
        ))
    }
}

/// A `POST /api/usage/reserve` body. For the seeds' clients every field also takes its
/// camelCase spelling (`estimateTokens`, `requestId`) and fields it does not know are
/// ignored; both spellings of one field at once are refused (`duplicate field`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = UsageReserveRequest)]
pub struct ReserveRequest {
    /// The tokens to hold (also `estimateTokens`).
    #[serde(alias = "estimateTokens")]
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub estimate_tokens: u64,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:/@-]+$")]
    pub provider: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:/@-]+$")]
    pub model: Option<String>,
    /// The idempotency key (also `requestId`, or the `Idempotency-Key` header; both must
    /// agree).
    #[serde(default, alias = "requestId")]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]+$")]
    pub request_id: Option<String>,
}

/// A `POST /api/usage/report` body. Like [`ReserveRequest`], it takes the camelCase
/// spellings (`inputTokens`, `outputTokens`, `deviceId`, `reservationId`, `requestId`) and
/// ignores fields it does not know.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = UsageReportRequest)]
pub struct ReportRequest {
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:/@-]+$")]
    pub provider: String,
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:/@-]+$")]
    pub model: String,
    /// Also `inputTokens`. Input plus output is at most 100000000.
    #[serde(alias = "inputTokens")]
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub input_tokens: u64,
    /// Also `outputTokens`.
    #[serde(alias = "outputTokens")]
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub output_tokens: u64,
    /// The device the usage came from (also `deviceId`; the `X-Device-Id` header wins).
    #[serde(default, alias = "deviceId")]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]+$")]
    pub device_id: Option<String>,
    /// The reservation this usage settles (also `reservationId`).
    #[serde(default, alias = "reservationId")]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:/@-]+$")]
    pub reservation_id: Option<String>,
    /// The idempotency key (also `requestId`, or the `Idempotency-Key` header; both must
    /// agree).
    #[serde(default, alias = "requestId")]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]+$")]
    pub request_id: Option<String>,
}

/// A `POST /api/usage/sync` body: `last_sync_at` (or `lastSyncAt`), an RFC 3339 UTC time or
/// epoch milliseconds (a JSON number or a string of digits). Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = UsageSyncRequest)]
pub struct SyncRequest {
    /// The server time of the client's last sync (also `lastSyncAt`): an RFC 3339 UTC time
    /// or epoch milliseconds; absent or null on a first sync.
    #[serde(default, alias = "lastSyncAt")]
    #[schema(schema_with = last_sync_at_schema)]
    pub last_sync_at: Option<Value>,
}

/// `last_sync_at`'s schema: a time as text, epoch milliseconds, or null.
fn last_sync_at_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build(),
    )
}

crate::stored_enum! {
    /// How a reservation stands (`usage_reservations.status`): `reserved` while it holds
    /// part of the limit, then `settled` by a report or `expired` (its hold released).
    pub enum ReservationStatus ("reservation status") {
        Reserved = "reserved",
        Settled = "settled",
        Expired = "expired",
    }
}

/// What became of the reservation a report named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationOutcome {
    /// Settled by this report: its unused part was released.
    Settled,
    /// An earlier report had settled it.
    AlreadySettled,
    /// It had expired (or its period ended): the usage counted in full.
    Expired,
    /// Still open but not in the counter's period (not settled by this report).
    Reserved,
    /// No reservation of the caller's has that id.
    NotFound,
}

impl SyncRequest {
    /// The client's last sync in epoch ms; `None` when it sent none (a first sync).
    pub fn last_sync_ms(&self) -> Result<Option<u64>, FieldError> {
        let millis = match &self.last_sync_at {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(text))
                if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
            {
                text.parse().ok()
            }
            Some(Value::String(text)) => millis_from_rfc3339(text),
            Some(_) => None,
        };
        millis.map(Some).ok_or_else(|| {
            FieldError::new(
                "last_sync_at",
                "must be an RFC 3339 UTC time (e.g. 2026-11-22T10:00:00Z) or epoch milliseconds",
            )
        })
    }
}

impl ReportRequest {
    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

fn label(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) {
    let ok = (1..=max).contains(&value.len())
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-' | b'/' | b'@')
        });
    if !ok {
        errors.push(FieldError::new(
            field,
            format!(
                "must be 1 to {max} characters of letters, digits, `.`, `_`, `:`, `-`, `/` or `@`"
            ),
        ));
    }
}

fn tokens(field: &str, value: u64, min: u64, errors: &mut Vec<FieldError>) {
    if value < min || value > MAX_TOKENS_PER_REQUEST {
        errors.push(FieldError::new(
            field,
            format!("must be an integer from {min} to {MAX_TOKENS_PER_REQUEST}"),
        ));
    }
}

/// Checks a reservation request, reporting every problem.
pub fn validate_reserve(req: &ReserveRequest) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    tokens("estimate_tokens", req.estimate_tokens, 1, &mut errors);
    if let Some(provider) = &req.provider {
        label("provider", provider, 64, &mut errors);
    }
    if let Some(model) = &req.model {
        label("model", model, 128, &mut errors);
    }
    errors.is_empty().then_some(()).ok_or(errors)
}

/// Checks a usage report, reporting every problem.
pub fn validate_report(req: &ReportRequest) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    label("provider", &req.provider, 64, &mut errors);
    label("model", &req.model, 128, &mut errors);
    tokens("input_tokens", req.input_tokens, 0, &mut errors);
    tokens("output_tokens", req.output_tokens, 0, &mut errors);
    if errors.is_empty() && req.total_tokens() > MAX_TOKENS_PER_REQUEST {
        errors.push(FieldError::new(
            "output_tokens",
            format!("input plus output must be at most {MAX_TOKENS_PER_REQUEST}"),
        ));
    }
    if let Some(device) = &req.device_id {
        label("device_id", device, 128, &mut errors);
    }
    if let Some(reservation) = &req.reservation_id {
        label("reservation_id", reservation, 64, &mut errors);
    }
    errors.is_empty().then_some(()).ok_or(errors)
}

#[cfg(test)]
mod tests {
    #[test]
    fn subject_kinds_and_reservation_statuses_map_to_their_columns_both_ways() {
        crate::core::stored::check::<super::SubjectKind>();
        crate::core::stored::check::<super::ReservationStatus>();
    }

    use super::*;
    use crate::core::body::decode;
    use serde_json::json;

    #[test]
    fn every_subject_kind_is_one_the_meter_tables_accept() {
        // The CHECK of all three tables, as the migration that made them keyed by subject
        // states it: a kind the code writes but the schema refuses would fail every request.
        let schema = include_str!("../../schema/0016_org_meters.sql");
        let check = "CHECK (subject_kind IN ('user', 'end_user', 'site', 'org'))";
        assert_eq!(
            schema.matches(check).count(),
            3,
            "the three tables share one CHECK"
        );
        for kind in SubjectKind::ALL {
            assert!(
                check.contains(&format!("'{}'", kind.as_str())),
                "{kind:?} is not allowed by {check}"
            );
        }
        assert_eq!(SubjectKind::User.as_str(), "user");
        assert!(SubjectKind::User.is_user());
    }

    #[test]
    fn periods_are_utc_calendar_months() {
        let p = Period::containing(1_795_366_800_000); // 2026-11-22T17:00:00Z
        assert_eq!(p.key(), "2026-11");
        assert_eq!(p.start_ms(), 1_793_491_200_000); // 2026-11-01T00:00:00Z
        assert_eq!(p.end_ms(), 1_796_083_200_000); // 2026-12-01T00:00:00Z
        let december = Period::containing(p.end_ms());
        assert_eq!(december.key(), "2026-12");
        assert_eq!(Period::containing(p.end_ms() - 1).key(), "2026-11");
        assert_eq!(Period::containing(december.end_ms()).key(), "2027-01");
        assert_eq!(Period::containing(0).key(), "1970-01");
    }

    #[test]
    fn period_keys_sort_in_time_order_and_read_back() {
        let months: Vec<Period> = [
            999_u64,
            1_795_366_800_000,
            1_798_761_600_000,
            4_102_444_800_000,
        ]
        .into_iter()
        .map(Period::containing)
        .collect();
        for pair in months.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].key() < pair[1].key(), "{:?}", pair);
        }
        // Zero-padded, so September sorts before October as text too.
        let september = Period::from_key("2026-09").unwrap();
        let october = Period::from_key("2026-10").unwrap();
        assert!(september < october && september.key() < october.key());
        for p in &months {
            assert_eq!(Period::from_key(&p.key()), Some(*p));
        }
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "",
            "2026-11-01",
        ] {
            assert_eq!(Period::from_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_counter_never_moves_back_to_an_older_period() {
        // A request stamped in the old month, landing after one of the new month.
        assert_eq!(counted_period(Some("2026-12"), "2026-11"), "2026-12");
        assert!(!starts_over("2026-12", "2026-11"));
        assert_eq!(counted_period(Some("2027-01"), "2026-12"), "2027-01");
        assert!(!starts_over("2027-01", "2026-12"));
        // The same period: nothing moves.
        assert_eq!(counted_period(Some("2026-11"), "2026-11"), "2026-11");
        assert!(!starts_over("2026-11", "2026-11"));
    }

    #[test]
    fn a_later_request_starts_the_counter_over_in_its_period() {
        assert_eq!(counted_period(Some("2026-11"), "2026-12"), "2026-12");
        assert!(starts_over("2026-11", "2026-12"));
        assert!(starts_over("2026-12", "2027-01"));
        assert_eq!(counted_period(None, "2026-11"), "2026-11");
    }

    #[test]
    fn admission_fits_the_whole_amount_or_nothing() {
        let q = QuotaState {
            limit: Some(100),
            used: 60,
            reserved: 30,
        };
        assert!(q.admits(10));
        assert!(!q.admits(11));
        assert_eq!(q.remaining(), Some(10));
        let unlimited = QuotaState {
            limit: None,
            used: u64::MAX - 1,
            reserved: 5,
        };
        assert!(unlimited.admits(u64::MAX));
        assert_eq!(unlimited.remaining(), None);
    }

    #[test]
    fn usage_after_the_fact_may_pass_the_limit_and_is_shown() {
        let q = QuotaState {
            limit: Some(100),
            used: 130,
            reserved: 0,
        };
        assert!(q.over_limit());
        assert_eq!(q.remaining(), Some(0));
    }

    #[test]
    fn a_model_calls_settlement_never_counts_past_its_hold_or_the_limit() {
        // A client's report counts in full.
        assert_eq!(counted(130, None, Some(0)), 130);
        // A model call: what was reported, at most the hold.
        assert_eq!(counted(90, Some(100), Some(100)), 90);
        assert_eq!(counted(130, Some(100), Some(100)), 100);
        assert_eq!(counted(130, Some(100), None), 100);
        // Its hold expired and others took the room: at most what is left.
        assert_eq!(counted(90, Some(100), Some(40)), 40);
        assert_eq!(counted(90, Some(100), Some(0)), 0);
    }

    #[test]
    fn idempotency_keys_come_from_the_header_or_the_body() {
        assert_eq!(
            idempotency_key(Some("k1"), None, true).unwrap().as_deref(),
            Some("k1")
        );
        assert_eq!(
            idempotency_key(None, Some("k2"), true).unwrap().as_deref(),
            Some("k2")
        );
        assert_eq!(
            idempotency_key(Some("k"), Some("k"), true)
                .unwrap()
                .as_deref(),
            Some("k")
        );
        assert_eq!(idempotency_key(None, None, false).unwrap(), None);
        assert_eq!(
            idempotency_key(None, None, true).unwrap_err().field,
            "request_id"
        );
        assert_eq!(
            idempotency_key(Some("a"), Some("b"), true)
                .unwrap_err()
                .field,
            "request_id"
        );
        assert_eq!(
            idempotency_key(Some("has space"), None, true)
                .unwrap_err()
                .field,
            "Idempotency-Key"
        );
        assert!(idempotency_key(None, Some(&"x".repeat(129)), true).is_err());
    }

    #[test]
    fn reports_refuse_bad_numbers_and_labels() {
        let ok: ReportRequest = decode(&json!({
            "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 5,
            "request_id": "r1"
        }))
        .unwrap();
        assert!(validate_report(&ok).is_ok());
        assert_eq!(ok.total_tokens(), 15);
        for bad in [
            json!({ "provider": "openai", "model": "m", "input_tokens": -1, "output_tokens": 5 }),
            json!({ "provider": "openai", "model": "m", "input_tokens": 1.5, "output_tokens": 5 }),
            json!({ "provider": "openai", "model": "m", "input_tokens": "10", "output_tokens": 5 }),
            json!({ "provider": "openai", "model": "m", "input_tokens": 10 }),
            json!({ "provider": "openai", "model": "m", "input_tokens": 1e30, "output_tokens": 1 }),
        ] {
            assert!(decode::<ReportRequest>(&bad).is_err(), "{bad}");
        }
        let huge: ReportRequest = decode(&json!({
            "provider": "openai", "model": "m", "input_tokens": 100_000_001u64, "output_tokens": 0
        }))
        .unwrap();
        assert_eq!(validate_report(&huge).unwrap_err()[0].field, "input_tokens");
        let both_big: ReportRequest = decode(&json!({
            "provider": "openai", "model": "m", "input_tokens": 60_000_000u64, "output_tokens": 60_000_000u64
        }))
        .unwrap();
        assert_eq!(
            validate_report(&both_big).unwrap_err()[0].field,
            "output_tokens"
        );
        let labels: ReportRequest = decode(&json!({
            "provider": "", "model": "a b", "input_tokens": 1, "output_tokens": 1, "device_id": "x".repeat(200)
        }))
        .unwrap();
        let fields: Vec<String> = validate_report(&labels)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["provider", "model", "device_id"]);
    }

    #[test]
    fn bodies_take_camel_case_spellings_and_ignore_unknown_fields() {
        let report: ReportRequest = decode(&json!({
            "provider": "openai", "model": "gpt-4o", "inputTokens": 10, "outputTokens": 5,
            "deviceId": "ext-1", "reservationId": "rsv_1", "requestId": "r1",
            "timestamp": "2026-11-22T10:00:00Z", "metadata": { "any": ["thing"] }
        }))
        .unwrap();
        assert_eq!(report.total_tokens(), 15);
        assert_eq!(report.device_id.as_deref(), Some("ext-1"));
        assert_eq!(report.reservation_id.as_deref(), Some("rsv_1"));
        assert_eq!(report.request_id.as_deref(), Some("r1"));
        assert!(validate_report(&report).is_ok());
        let reserve: ReserveRequest =
            decode(&json!({ "estimateTokens": 500, "requestId": "k", "sessionId": 3 })).unwrap();
        assert_eq!(reserve.estimate_tokens, 500);
        assert_eq!(reserve.request_id.as_deref(), Some("k"));
        let sync: SyncRequest =
            decode(&json!({ "lastSyncAt": "2026-11-22T10:00:00Z", "deviceId": "x" })).unwrap();
        assert_eq!(sync.last_sync_ms().unwrap(), Some(1_795_341_600_000));
        // Unknown fields are ignored, but the types of known ones are still checked.
        let wrong_type = decode::<ReportRequest>(&json!({
            "provider": "openai", "model": "m", "inputTokens": "10", "output_tokens": 5, "x": 1
        }));
        assert_eq!(wrong_type.unwrap_err().field, "inputTokens");
    }

    #[test]
    fn both_spellings_of_one_field_are_refused() {
        let err = decode::<ReportRequest>(&json!({
            "provider": "openai", "model": "m", "input_tokens": 10, "inputTokens": 99,
            "output_tokens": 5
        }))
        .unwrap_err();
        assert!(err.message.contains("duplicate field"), "{err:?}");
        let err = decode::<SyncRequest>(&json!({ "last_sync_at": 1, "lastSyncAt": 2 }));
        assert!(err.is_err());
    }

    #[test]
    fn last_sync_at_takes_rfc3339_or_epoch_millis() {
        let at = |value: Value| {
            decode::<SyncRequest>(&json!({ "last_sync_at": value }))
                .unwrap()
                .last_sync_ms()
        };
        assert_eq!(
            at(json!("2026-11-22T10:00:00Z")).unwrap(),
            Some(1_795_341_600_000)
        );
        assert_eq!(
            at(json!(1_795_341_600_000u64)).unwrap(),
            Some(1_795_341_600_000)
        );
        assert_eq!(at(json!("1795341600000")).unwrap(), Some(1_795_341_600_000));
        assert_eq!(at(json!(null)).unwrap(), None);
        assert_eq!(SyncRequest::default().last_sync_ms().unwrap(), None);
        for bad in [
            json!("yesterday"),
            json!(-1),
            json!(1.5),
            json!(true),
            json!(""),
            json!("99999999999999999999999"),
            json!({}),
        ] {
            assert_eq!(at(bad.clone()).unwrap_err().field, "last_sync_at", "{bad}");
        }
    }

    #[test]
    fn reservations_need_a_positive_estimate() {
        let zero: ReserveRequest = decode(&json!({ "estimate_tokens": 0 })).unwrap();
        assert_eq!(
            validate_reserve(&zero).unwrap_err()[0].field,
            "estimate_tokens"
        );
        let ok: ReserveRequest =
            decode(&json!({ "estimate_tokens": 500, "model": "gpt-4o" })).unwrap();
        assert!(validate_reserve(&ok).is_ok());
    }
}
