//! Meter counters, reservations and usage records: exact admission in D1.
//!
//! Every request that touches a counter is one `batch` (one round trip, one transaction):
//! make sure the counter row exists, move it forward if the request's period is later (never
//! back: see [`meter::counted_period`]), release reservations that expired, then the
//! conditional admission or the recording itself, in the counter's period. Admission is a
//! single `UPDATE ... WHERE used + reserved + ? <= limit`, so however many requests race,
//! the total admitted never exceeds the limit; `changes()` carries "was it admitted" to the
//! next statement of the same batch without another round trip.

use serde::{Deserialize, Serialize};
use worker::{query, D1Database, D1PreparedStatement, D1Result};

use crate::error::AppError;
use crate::metering::rules::{self as meter, QuotaState, ReservationOutcome, ReservationStatus};
use crate::storage::UserRef;

/// What every meter statement needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The subject metered: its kind as stored (`user`, see `rules::SubjectKind`) and its id
    /// (for a user, `users.id`). Every statement keys its rows by both.
    pub subject_kind: &'a str,
    pub subject_id: &'a str,
    /// `tokens`, ...
    pub meter: &'a str,
    /// The request's period, `YYYY-MM`. The counter moves forward to it, never back: a
    /// request from an earlier period is counted in the counter's period.
    pub period: &'a str,
    /// The plan's limit for the period; `None` is unlimited.
    pub limit: Option<u64>,
    /// Now, RFC 3339 and epoch ms.
    pub now: &'a str,
    pub now_ms: u64,
}

// D1 numbers are JS numbers: integers are bound as f64 (exact below 2^53).
fn num(n: u64) -> f64 {
    n as f64
}

fn limit(scope: &Scope<'_>) -> Option<f64> {
    scope.limit.map(num)
}

/// The subject's rows: `?1` holds its id and the parameter `kind` (such as `"?5"`) its kind.
/// The kind goes last in each statement's parameters, after those it had when the tables
/// were keyed by user alone.
fn of_subject(kind: &str) -> String {
    format!("subject_kind = {kind} AND subject_id = ?1")
}

/// The period a statement counts in, with `?1` the subject's id, `kind` its kind, `?2` the
/// meter and `?3` the request's period: the later of the request's and the counter's
/// ([`meter::counted_period`]; keys are `YYYY-MM`, so text order is time order). After
/// [`housekeeping`] it is always the counter's period.
fn counted_period(kind: &str) -> String {
    format!(
        "MAX(?3, (SELECT period FROM meter_counters WHERE {} AND meter = ?2))",
        of_subject(kind)
    )
}

/// Creates the counter, starts it over when the request's period is later than its own
/// ([`meter::starts_over`]; an earlier one never moves it back), releases expired
/// reservations and expires those of periods before the counter's.
fn housekeeping(db: &D1Database, s: &Scope<'_>) -> Result<Vec<D1PreparedStatement>, AppError> {
    Ok(vec![
        query!(
            db,
            "INSERT INTO meter_counters (subject_kind, subject_id, meter, period, used, \
                 reserved, updated_at) \
             VALUES (?5, ?1, ?2, ?3, 0, 0, ?4) \
             ON CONFLICT (subject_kind, subject_id, meter) DO NOTHING",
            s.subject_id,
            s.meter,
            s.period,
            s.now,
            s.subject_kind
        )?,
        query!(
            db,
            "UPDATE meter_counters SET period = ?3, used = 0, reserved = 0, updated_at = ?4 \
             WHERE subject_kind = ?5 AND subject_id = ?1 AND meter = ?2 AND period < ?3",
            s.subject_id,
            s.meter,
            s.period,
            s.now,
            s.subject_kind
        )?,
        query!(
            db,
            &format!(
                "UPDATE meter_counters SET reserved = MAX(0, reserved - COALESCE(( \
                     SELECT SUM(amount) FROM usage_reservations WHERE {subject} \
                     AND meter = ?2 AND status = 'reserved' AND period = {counted} \
                     AND expires_at_ms <= ?4), 0)) \
                 WHERE {subject} AND meter = ?2",
                subject = of_subject("?5"),
                counted = counted_period("?5")
            ),
            s.subject_id,
            s.meter,
            s.period,
            num(s.now_ms),
            s.subject_kind
        )?,
        query!(
            db,
            &format!(
                "UPDATE usage_reservations SET status = 'expired' WHERE {subject} \
                 AND meter = ?2 AND status = 'reserved' \
                 AND (expires_at_ms <= ?4 OR period < {counted})",
                subject = of_subject("?5"),
                counted = counted_period("?5")
            ),
            s.subject_id,
            s.meter,
            s.period,
            num(s.now_ms),
            s.subject_kind
        )?,
    ])
}

/// A reservation as stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Reservation {
    pub id: String,
    pub period: String,
    pub amount: u64,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub request_id: Option<String>,
    pub status: ReservationStatus,
    pub expires_at_ms: u64,
    pub used_after: u64,
    pub reserved_after: u64,
    pub created_at: String,
}

/// How a reservation request ended.
#[derive(Debug, Clone)]
pub enum Reserved {
    /// Admitted now, or earlier under the same idempotency key (`replayed`).
    Admitted {
        reservation: Reservation,
        replayed: bool,
    },
    /// It does not fit; nothing changed.
    Refused(QuotaState),
}

#[derive(Deserialize)]
struct CounterRow {
    used: u64,
    #[serde(default)]
    reserved: u64,
}

/// The statement that reads the counter as a batch leaves it: the last of a refused
/// admission's batch, read by [`refused`].
fn counter_read(db: &D1Database, s: &Scope<'_>) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "SELECT used, reserved FROM meter_counters \
         WHERE subject_kind = ?3 AND subject_id = ?1 AND meter = ?2",
        s.subject_id,
        s.meter,
        s.subject_kind
    )?)
}

/// The quota a refused admission left unchanged, from [`counter_read`]'s result.
fn refused(result: &D1Result, s: &Scope<'_>) -> Result<QuotaState, AppError> {
    let counter = result
        .results::<CounterRow>()?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal("meter counter missing after insert".to_owned()))?;
    Ok(QuotaState {
        limit: s.limit,
        used: counter.used,
        reserved: counter.reserved,
    })
}

/// A new reservation of `amount` for `ttl_ms`, admitted only if the whole amount fits in the
/// counter's period (the one the reservation carries).
pub async fn reserve(
    db: &D1Database,
    s: &Scope<'_>,
    id: &str,
    amount: u64,
    labels: (Option<&str>, Option<&str>),
    request_id: Option<&str>,
    ttl_ms: u64,
) -> Result<Reserved, AppError> {
    let (provider, model) = labels;
    let mut statements = housekeeping(db, s)?;
    statements.push(query!(
        db,
        "UPDATE meter_counters SET reserved = reserved + ?3, updated_at = ?4 \
         WHERE subject_kind = ?7 AND subject_id = ?1 AND meter = ?2 \
         AND (?5 IS NULL OR used + reserved + ?3 <= ?5) \
         AND (?6 IS NULL OR NOT EXISTS ( \
             SELECT 1 FROM usage_reservations WHERE subject_kind = ?7 AND subject_id = ?1 \
             AND request_id = ?6))",
        s.subject_id,
        s.meter,
        num(amount),
        s.now,
        limit(s),
        request_id,
        s.subject_kind
    )?);
    statements.push(query!(
        db,
        "INSERT INTO usage_reservations (id, subject_kind, subject_id, meter, period, amount, \
             provider, model, request_id, status, expires_at_ms, used_after, reserved_after, \
             created_at) \
         SELECT ?1, c.subject_kind, ?2, ?3, MAX(?4, c.period), ?5, ?6, ?7, ?8, 'reserved', ?9, \
             c.used, c.reserved, ?10 \
         FROM meter_counters c WHERE c.subject_kind = ?11 AND c.subject_id = ?2 \
             AND c.meter = ?3 AND changes() = 1",
        id,
        s.subject_id,
        s.meter,
        s.period,
        num(amount),
        provider,
        model,
        request_id,
        num(s.now_ms + ttl_ms),
        s.now,
        s.subject_kind
    )?);
    statements.push(query!(
        db,
        "SELECT id, period, amount, provider, model, request_id, status, expires_at_ms, \
                used_after, reserved_after, created_at \
         FROM usage_reservations WHERE subject_kind = ?4 AND subject_id = ?1 \
             AND (id = ?2 OR (?3 IS NOT NULL AND request_id = ?3))",
        s.subject_id,
        id,
        request_id,
        s.subject_kind
    )?);
    statements.push(counter_read(db, s)?);
    let results = db.batch(statements).await?;
    let n = results.len();
    let reservation = results[n - 2].results::<Reservation>()?.into_iter().next();
    if let Some(reservation) = reservation {
        let replayed = reservation.id != id;
        return Ok(Reserved::Admitted {
            reservation,
            replayed,
        });
    }
    Ok(Reserved::Refused(refused(&results[n - 1], s)?))
}

/// A hold for a model call: `base` (the prompt's estimate) plus as much of `want` (the
/// reply asked for) as the counter can still afford, admitted only if at least `base +
/// min_extra` fits. The amount is decided inside the batch from the counter as it stands,
/// and the counter grows by exactly the amount the reservation row carries, so however many
/// calls race, the holds never exceed the limit. `Refused` changes nothing.
#[allow(clippy::too_many_arguments)]
pub async fn reserve_within(
    db: &D1Database,
    s: &Scope<'_>,
    id: &str,
    (base, want, min_extra): (u64, u64, u64),
    labels: (Option<&str>, Option<&str>),
    ttl_ms: u64,
) -> Result<Reserved, AppError> {
    let (provider, model) = labels;
    let mut statements = housekeeping(db, s)?;
    // ?5 limit (NULL: unlimited), ?6 base, ?7 want, ?8 min_extra.
    statements.push(query!(
        db,
        "INSERT INTO usage_reservations (id, subject_kind, subject_id, meter, period, amount, \
             provider, model, request_id, status, expires_at_ms, used_after, reserved_after, \
             created_at) \
         SELECT ?1, c.subject_kind, ?2, ?3, MAX(?4, c.period), a.amount, ?9, ?10, NULL, \
             'reserved', ?11, c.used, c.reserved + a.amount, ?12 \
         FROM meter_counters c, (SELECT ?6 + CASE WHEN ?5 IS NULL THEN ?7 \
                 ELSE MIN(?7, ?5 - used - reserved - ?6) END AS amount \
             FROM meter_counters WHERE subject_kind = ?13 AND subject_id = ?2 AND meter = ?3) a \
         WHERE c.subject_kind = ?13 AND c.subject_id = ?2 AND c.meter = ?3 \
             AND (?5 IS NULL OR c.used + c.reserved + ?6 + ?8 <= ?5)",
        id,
        s.subject_id,
        s.meter,
        s.period,
        limit(s),
        num(base),
        num(want),
        num(min_extra),
        provider,
        model,
        num(s.now_ms + ttl_ms),
        s.now,
        s.subject_kind
    )?);
    statements.push(query!(
        db,
        "UPDATE meter_counters SET reserved = reserved + \
             (SELECT amount FROM usage_reservations WHERE id = ?4), updated_at = ?5 \
         WHERE subject_kind = ?3 AND subject_id = ?1 AND meter = ?2 AND changes() = 1",
        s.subject_id,
        s.meter,
        s.subject_kind,
        id,
        s.now
    )?);
    statements.push(query!(
        db,
        "SELECT id, period, amount, provider, model, request_id, status, expires_at_ms, \
                used_after, reserved_after, created_at \
         FROM usage_reservations WHERE id = ?1",
        id
    )?);
    statements.push(counter_read(db, s)?);
    let results = db.batch(statements).await?;
    let n = results.len();
    if let Some(reservation) = results[n - 2].results::<Reservation>()?.into_iter().next() {
        return Ok(Reserved::Admitted {
            reservation,
            replayed: false,
        });
    }
    Ok(Reserved::Refused(refused(&results[n - 1], s)?))
}

/// Gives back a hold unused: the reservation is settled with nothing recorded and its
/// amount leaves the counter's `reserved`, in one batch. A hold already settled or expired
/// (or of another subject) changes nothing; `true` when this call released it.
pub async fn release(db: &D1Database, s: &Scope<'_>, id: &str) -> Result<bool, AppError> {
    let results = db
        .batch(vec![
            query!(
                db,
                "UPDATE meter_counters SET reserved = MAX(0, reserved - COALESCE(( \
                     SELECT amount FROM usage_reservations WHERE id = ?4 \
                     AND subject_kind = ?3 AND subject_id = ?1 AND status = 'reserved' \
                     AND period = meter_counters.period), 0)), updated_at = ?5 \
                 WHERE subject_kind = ?3 AND subject_id = ?1 AND meter = ?2",
                s.subject_id,
                s.meter,
                s.subject_kind,
                id,
                s.now
            )?,
            query!(
                db,
                "UPDATE usage_reservations SET status = 'settled', settled_at = ?4 \
                 WHERE id = ?3 AND subject_kind = ?2 AND subject_id = ?1 AND status = 'reserved'",
                s.subject_id,
                s.subject_kind,
                id,
                s.now
            )?,
        ])
        .await?;
    Ok(results[1]
        .meta()?
        .and_then(|meta| meta.changes)
        .unwrap_or_default()
        > 0)
}

/// A usage record as stored: everything a report's answer is built from, so a retry
/// answers exactly what the first call answered.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UsageRecord {
    pub id: String,
    pub period: String,
    pub request_id: String,
    pub provider: String,
    pub model: String,
    pub device_id: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub reservation_id: Option<String>,
    pub reservation_status: Option<ReservationOutcome>,
    pub released_tokens: u64,
    pub used_after: Option<u64>,
    pub reserved_after: Option<u64>,
    pub limit_at: Option<u64>,
    pub created_at: String,
}

/// What a report records.
#[derive(Debug, Clone, Copy)]
pub struct NewUsage<'a> {
    pub id: &'a str,
    pub request_id: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub device_id: Option<&'a str>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reservation_id: Option<&'a str>,
    /// The most the counter may grow by: a model call's hold, admitted under the limit.
    /// `None`: by the whole total (a client's report of usage already spent counts in full).
    pub at_most: Option<u64>,
}

/// A record written (or found, `replayed`), and how much the counter grew by for it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub record: UsageRecord,
    pub replayed: bool,
    /// What the counter's `used` grew by: the record's total, or less under
    /// [`NewUsage::at_most`]; 0 for a replay.
    pub counted: u64,
}

/// Records usage that happened (never refused: usage already spent is kept, even past the
/// limit) in the counter's period, settling the reservation it names. Idempotent on
/// `request_id`: a retry records nothing and returns the first record (`replayed`). `also`
/// runs first in the same batch (one round trip, one transaction): writes that belong with
/// the record, such as the device's sighting.
///
/// The record always carries the counts as reported. The counter's `used` grows by their
/// total, except under `usage.at_most` (a model call's settlement): then by at most that,
/// and, when the hold is no longer live (it expired), by at most what is left under the
/// limit, so a model call never takes the counter past its limit
/// ([`meter::counted`]).
pub async fn record(
    db: &D1Database,
    s: &Scope<'_>,
    usage: NewUsage<'_>,
    also: Vec<D1PreparedStatement>,
) -> Result<Recorded, AppError> {
    let total = usage.input_tokens + usage.output_tokens;
    let mut statements = also;
    statements.extend(housekeeping(db, s)?);
    let before = statements.len();
    statements.push(query!(
        db,
        &format!(
            "SELECT used FROM meter_counters WHERE {} AND meter = ?2",
            of_subject("?3")
        ),
        s.subject_id,
        s.meter,
        s.subject_kind
    )?);
    // The reservation's hold, read inside the transaction after expired ones were released.
    // `res` and `kind` are the parameters holding the reservation's id and the subject's kind.
    let hold = |res: &str, kind: &str| {
        format!(
            "SELECT amount FROM usage_reservations WHERE id = {res} AND {subject} \
             AND meter = ?2 AND status = 'reserved' AND period = {counted}",
            subject = of_subject(kind),
            counted = counted_period(kind)
        )
    };
    statements.push(query!(
        db,
        &format!(
            "INSERT INTO usage_records (id, subject_kind, subject_id, meter, period, request_id, \
                 provider, model, device_id, input_tokens, output_tokens, total_tokens, \
                 reservation_id, reservation_status, released_tokens, limit_at, created_at) \
             VALUES (?4, ?15, ?1, ?2, {counted}, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                 CASE WHEN ?12 IS NULL THEN NULL \
                      WHEN EXISTS ({hold}) THEN 'settled' \
                      ELSE COALESCE((SELECT CASE status WHEN 'settled' THEN 'already_settled' \
                                     ELSE status END FROM usage_reservations \
                                     WHERE id = ?12 AND {subject}), 'not_found') END, \
                 COALESCE((SELECT MAX(0, amount - ?11) FROM ({hold})), 0), ?13, ?14) \
             ON CONFLICT (subject_kind, subject_id, request_id) DO NOTHING",
            counted = counted_period("?15"),
            subject = of_subject("?15"),
            hold = hold("?12", "?15")
        ),
        s.subject_id,
        s.meter,
        s.period,
        usage.id,
        usage.request_id,
        usage.provider,
        usage.model,
        usage.device_id,
        num(usage.input_tokens),
        num(usage.output_tokens),
        num(total),
        usage.reservation_id,
        limit(s),
        s.now,
        s.subject_kind
    )?);
    // ?8 at_most (NULL: the whole total), ?9 the limit (NULL: unlimited). SQLite's UPDATE
    // reads the row as it was, so `used` and `reserved` on the right are before this change.
    statements.push(query!(
        db,
        &format!(
            "UPDATE meter_counters SET used = used + CASE WHEN ?8 IS NULL THEN ?4 \
                     ELSE MIN(?4, ?8, CASE WHEN ?9 IS NULL OR ({hold}) IS NOT NULL THEN ?8 \
                         ELSE MAX(0, ?9 - used - reserved) END) END, \
                 reserved = MAX(0, reserved - COALESCE(({hold}), 0)), updated_at = ?5 \
             WHERE {subject} AND meter = ?2 AND changes() = 1",
            hold = hold("?6", "?7"),
            subject = of_subject("?7")
        ),
        s.subject_id,
        s.meter,
        s.period,
        num(total),
        s.now,
        usage.reservation_id,
        s.subject_kind,
        usage.at_most.map(num),
        limit(s)
    )?);
    statements.push(query!(
        db,
        "UPDATE usage_reservations SET status = 'settled', settled_at = ?3 \
         WHERE id = ?2 AND subject_kind = ?5 AND subject_id = ?1 AND status = 'reserved' \
         AND EXISTS (SELECT 1 FROM usage_records WHERE id = ?4)",
        s.subject_id,
        usage.reservation_id,
        s.now,
        usage.id,
        s.subject_kind
    )?);
    statements.push(query!(
        db,
        &format!(
            "UPDATE usage_records SET \
                 used_after = (SELECT used FROM meter_counters WHERE {subject} AND meter = ?2), \
                 reserved_after = (SELECT reserved FROM meter_counters \
                                   WHERE {subject} AND meter = ?2) \
             WHERE id = ?3",
            subject = of_subject("?4")
        ),
        s.subject_id,
        s.meter,
        usage.id,
        s.subject_kind
    )?);
    statements.push(query!(
        db,
        "SELECT id, period, request_id, provider, model, device_id, input_tokens, output_tokens, \
                total_tokens, reservation_id, reservation_status, released_tokens, used_after, \
                reserved_after, limit_at, created_at \
         FROM usage_records WHERE subject_kind = ?3 AND subject_id = ?1 AND request_id = ?2",
        s.subject_id,
        usage.request_id,
        s.subject_kind
    )?);
    let results = db.batch(statements).await?;
    let record = results
        .last()
        .map(|r| r.results::<UsageRecord>())
        .transpose()?
        .and_then(|rows| rows.into_iter().next())
        .ok_or_else(|| AppError::Internal("usage record missing after insert".to_owned()))?;
    let replayed = record.id != usage.id;
    let used_before = results[before]
        .results::<CounterRow>()?
        .into_iter()
        .next()
        .map(|row| row.used);
    let counted = match (replayed, used_before, record.used_after) {
        (false, Some(before), Some(after)) => after.saturating_sub(before),
        _ => 0,
    };
    Ok(Recorded {
        record,
        replayed,
        counted,
    })
}

/// How a count ended.
#[derive(Debug, Clone)]
pub enum Counted {
    /// Counted now, or earlier under the same key (`replayed`).
    Admitted {
        record: Box<UsageRecord>,
        replayed: bool,
    },
    /// The whole amount does not fit in the period; nothing changed.
    Refused(QuotaState),
}

/// Counts `amount` on the counter, admitted and recorded in one batch only if the whole of
/// it fits (`used + reserved + amount <= limit`): the admission check and the increment are
/// one conditional `UPDATE`, so however many requests race, no more is counted than the
/// limit allows. Idempotent on `usage.request_id`: a key already recorded for the subject
/// counts nothing and returns its record (`replayed`). The record carries the amount as its
/// `input_tokens` and `total_tokens` (a count has no output). `after` runs in the same batch
/// right after the record is written; a statement there that should only apply to an
/// admitted count checks `EXISTS (SELECT 1 FROM usage_records WHERE id = <usage.id>)`.
pub async fn count(
    db: &D1Database,
    s: &Scope<'_>,
    usage: NewUsage<'_>,
    after: Vec<D1PreparedStatement>,
) -> Result<Counted, AppError> {
    let amount = usage.input_tokens;
    let mut statements = housekeeping(db, s)?;
    statements.push(query!(
        db,
        "UPDATE meter_counters SET used = used + ?3, updated_at = ?4 \
         WHERE subject_kind = ?7 AND subject_id = ?1 AND meter = ?2 \
         AND (?5 IS NULL OR used + reserved + ?3 <= ?5) \
         AND NOT EXISTS (SELECT 1 FROM usage_records WHERE subject_kind = ?7 \
             AND subject_id = ?1 AND request_id = ?6)",
        s.subject_id,
        s.meter,
        num(amount),
        s.now,
        limit(s),
        usage.request_id,
        s.subject_kind
    )?);
    statements.push(query!(
        db,
        "INSERT INTO usage_records (id, subject_kind, subject_id, meter, period, request_id, \
             provider, model, device_id, input_tokens, output_tokens, total_tokens, \
             reservation_id, reservation_status, released_tokens, used_after, reserved_after, \
             limit_at, created_at) \
         SELECT ?1, c.subject_kind, c.subject_id, c.meter, c.period, ?2, ?3, ?4, ?5, ?6, 0, ?6, \
             NULL, NULL, 0, c.used, c.reserved, ?7, ?8 \
         FROM meter_counters c WHERE c.subject_kind = ?9 AND c.subject_id = ?10 \
             AND c.meter = ?11 AND changes() = 1",
        usage.id,
        usage.request_id,
        usage.provider,
        usage.model,
        usage.device_id,
        num(amount),
        limit(s),
        s.now,
        s.subject_kind,
        s.subject_id,
        s.meter
    )?);
    statements.extend(after);
    statements.push(query!(
        db,
        "SELECT id, period, request_id, provider, model, device_id, input_tokens, output_tokens, \
                total_tokens, reservation_id, reservation_status, released_tokens, used_after, \
                reserved_after, limit_at, created_at \
         FROM usage_records WHERE subject_kind = ?3 AND subject_id = ?1 AND request_id = ?2 \
             AND meter = ?4",
        s.subject_id,
        usage.request_id,
        s.subject_kind,
        s.meter
    )?);
    statements.push(counter_read(db, s)?);
    let results = db.batch(statements).await?;
    let n = results.len();
    let record = results[n - 2].results::<UsageRecord>()?.into_iter().next();
    match record {
        Some(record) => {
            let replayed = record.id != usage.id;
            Ok(Counted::Admitted {
                record: Box::new(record),
                replayed,
            })
        }
        // Nothing recorded under the key (for this meter): refused as it stands.
        None => Ok(Counted::Refused(refused(&results[n - 1], s)?)),
    }
}

/// A counter as it stands now, without writing: a finished period reads as empty and
/// expired reservations no longer hold anything.
#[derive(Debug, Clone)]
pub struct Reading {
    /// The period it is counted in, `YYYY-MM`: the request's, or the counter's when that is
    /// later (a request from an older period never sees the newer counter as empty).
    pub period: String,
    pub quota: QuotaState,
    /// When the counter last changed (epoch ms), if it ever did.
    pub changed_at: Option<u64>,
}

/// The statement that reads `meter`'s counter in `period` for the subject of kind
/// `subject_kind` whose id `subject_id` names (no write). The id may be a subquery (a user
/// found by their credential), so the read can share a round trip with the caller's lookup.
pub fn read_statement(
    db: &D1Database,
    subject_kind: &str,
    subject_id: &UserRef,
    meter: &str,
    period: &str,
    now_ms: u64,
) -> Result<D1PreparedStatement, AppError> {
    let n = subject_id.params.len();
    let (m, p, t, k) = (n + 1, n + 2, n + 3, n + 4);
    let sql = format!(
        "SELECT c.period, c.used, c.reserved, c.updated_at, COALESCE(( \
             SELECT SUM(amount) FROM usage_reservations WHERE subject_kind = c.subject_kind \
             AND subject_id = c.subject_id AND meter = ?{m} AND status = 'reserved' \
             AND period = MAX(?{p}, c.period) AND expires_at_ms <= ?{t}), 0) AS expired_hold \
         FROM meter_counters c \
         WHERE c.subject_kind = ?{k} AND c.subject_id = {id} AND c.meter = ?{m}",
        id = subject_id.sql
    );
    let mut params = subject_id.params.clone();
    params.extend([
        meter.into(),
        period.into(),
        num(now_ms).into(),
        subject_kind.into(),
    ]);
    Ok(db.prepare(sql).bind(&params)?)
}

/// The counter [`read_statement`] found, under `limit`: a counter of an earlier period (or
/// none) reads as empty in the request's `period`, one of a later period is read as it is
/// (counters never move back), and expired reservations no longer hold anything.
pub fn reading_from(
    result: &D1Result,
    period: &str,
    limit: Option<u64>,
) -> Result<Reading, AppError> {
    #[derive(Deserialize)]
    struct Row {
        period: String,
        used: u64,
        reserved: u64,
        updated_at: String,
        expired_hold: u64,
    }
    let row = result.results::<Row>()?.into_iter().next();
    let (period, used, reserved, changed_at) = match row {
        Some(row) if meter::counted_period(Some(&row.period), period) == row.period => (
            row.period,
            row.used,
            row.reserved.saturating_sub(row.expired_hold),
            crate::core::time::millis_from_rfc3339(&row.updated_at),
        ),
        _ => (period.to_owned(), 0, 0, None),
    };
    Ok(Reading {
        period,
        quota: QuotaState {
            limit,
            used,
            reserved,
        },
        changed_at,
    })
}

impl Reading {
    /// A counter never touched: nothing used or reserved in `period`.
    pub fn untouched(period: &str, limit: Option<u64>) -> Self {
        Self {
            period: period.to_owned(),
            quota: QuotaState {
                limit,
                used: 0,
                reserved: 0,
            },
            changed_at: None,
        }
    }
}

/// Which usage records a history or stats query covers.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub device_id: Option<String>,
    /// Inclusive lower bound on `created_at` (RFC 3339, as stored).
    pub from: Option<String>,
    /// Exclusive upper bound on `created_at`.
    pub to: Option<String>,
}

/// The subject's token records (calls counted whole are not usage of tokens) matching the
/// filter: `?1` the subject's id, `kind` the parameter
/// holding its kind, `?2`..`?6` the filter's fields.
fn matching(kind: &str) -> String {
    format!(
        "{subject} AND meter = '{tokens}' AND (?2 IS NULL OR provider = ?2) \
         AND (?3 IS NULL OR model = ?3) AND (?4 IS NULL OR device_id = ?4) \
         AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at < ?6)",
        subject = of_subject(kind),
        tokens = meter::TOKENS
    )
}

/// A page of the subject's usage records, newest first, after `(created_at, id)`.
pub async fn history(
    db: &D1Database,
    subject_kind: &str,
    subject_id: &str,
    filter: &UsageFilter,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<UsageRecord>, AppError> {
    let (after_at, after_id) = after.unzip();
    let sql = format!(
        "SELECT id, period, request_id, provider, model, device_id, input_tokens, output_tokens, \
                total_tokens, reservation_id, reservation_status, released_tokens, used_after, \
                reserved_after, limit_at, created_at \
         FROM usage_records WHERE {matching} \
           AND (?7 IS NULL OR created_at < ?7 OR (created_at = ?7 AND id < ?8)) \
         ORDER BY created_at DESC, id DESC LIMIT ?9",
        matching = matching("?10")
    );
    Ok(query!(
        db,
        &sql,
        subject_id,
        &filter.provider,
        &filter.model,
        &filter.device_id,
        &filter.from,
        &filter.to,
        after_at,
        after_id,
        limit,
        subject_kind
    )?
    .all()
    .await?
    .results::<UsageRecord>()?)
}

/// Totals of one group in the usage stats.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UsageTotals {
    /// The provider, model, device or day (`None` for the overall total or no device).
    pub key: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// The subject's usage totals overall and by provider, model, device and UTC day, in one
/// round trip.
pub async fn stats(
    db: &D1Database,
    subject_kind: &str,
    subject_id: &str,
    filter: &UsageFilter,
) -> Result<[Vec<UsageTotals>; 5], AppError> {
    let sums = "COUNT(*) AS requests, COALESCE(SUM(input_tokens), 0) AS input_tokens, \
                COALESCE(SUM(output_tokens), 0) AS output_tokens, \
                COALESCE(SUM(total_tokens), 0) AS total_tokens";
    let matching = matching("?7");
    let group = |key: &str| {
        format!(
            "SELECT {key} AS key, {sums} FROM usage_records WHERE {matching} \
             GROUP BY {key} ORDER BY total_tokens DESC, key"
        )
    };
    let statements = [
        format!("SELECT NULL AS key, {sums} FROM usage_records WHERE {matching}"),
        group("provider"),
        group("model"),
        group("device_id"),
        group("substr(created_at, 1, 10)")
            .replace("ORDER BY total_tokens DESC, key", "ORDER BY key"),
    ]
    .iter()
    .map(|sql| {
        query!(
            db,
            sql,
            subject_id,
            &filter.provider,
            &filter.model,
            &filter.device_id,
            &filter.from,
            &filter.to,
            subject_kind
        )
    })
    .collect::<Result<Vec<_>, _>>()?;
    let results = db.batch(statements).await?;
    let mut groups: [Vec<UsageTotals>; 5] = Default::default();
    for (slot, result) in groups.iter_mut().zip(results.iter()) {
        *slot = result.results::<UsageTotals>()?;
    }
    Ok(groups)
}
