//! Workflows, usage thresholds, deliveries and their attempts in D1. Every statement about
//! a workflow is keyed by its owner (kind and id) as the service was given it, never by an id
//! alone: another owner's workflow is not found.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement, D1Result};

use crate::error::AppError;
use crate::storage;
use crate::workflows::rules::{
    AttemptFailure, Crossing, DeliveryStatus, Owner, OwnerKind, Trigger,
};

// D1 numbers are JS numbers: integers are bound as f64 (exact below 2^53).
fn num(n: u64) -> f64 {
    n as f64
}

/// A workflow as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRow {
    pub id: String,
    pub owner_kind: OwnerKind,
    pub owner_id: String,
    pub trigger: Trigger,
    pub url: String,
    pub enabled: u8,
    pub secret_sealed: String,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str =
    "id, owner_kind, owner_id, trigger, url, enabled, secret_sealed, created_at, updated_at";

/// A workflow to insert.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub owner: &'a Owner,
    pub trigger: Trigger,
    pub url: &'a str,
    pub enabled: bool,
    pub secret_sealed: &'a str,
    pub now: &'a str,
}

/// The statement that inserts `row` only while its owner has fewer than `cap` workflows.
pub fn insert_statement(
    db: &D1Database,
    row: &NewRow<'_>,
    cap: u32,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO workflows (id, owner_kind, owner_id, trigger, url, enabled, secret_sealed, \
                                created_at, updated_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8 \
         WHERE (SELECT COUNT(*) FROM workflows WHERE owner_kind = ?2 AND owner_id = ?3) < ?9",
        row.id,
        row.owner.kind.as_str(),
        &row.owner.id,
        row.trigger.as_str(),
        row.url,
        u8::from(row.enabled),
        row.secret_sealed,
        row.now,
        cap
    )?)
}

/// Whether the batch's insert (its first statement) took.
pub fn inserted(results: &[D1Result]) -> Result<bool, AppError> {
    match results.first() {
        Some(result) => Ok(storage::changes(result)? == 1),
        None => Ok(false),
    }
}

/// The owner's workflows, oldest first.
pub async fn list(db: &D1Database, owner: &Owner) -> Result<Vec<WorkflowRow>, AppError> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLUMNS} FROM workflows WHERE owner_kind = ?1 AND owner_id = ?2 \
             ORDER BY created_at, id"
        ),
        owner.kind.as_str(),
        &owner.id
    )?
    .all()
    .await?
    .results::<WorkflowRow>()?)
}

/// The owner's workflow `id`, if it is theirs.
pub async fn get(
    db: &D1Database,
    owner: &Owner,
    id: &str,
) -> Result<Option<WorkflowRow>, AppError> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLUMNS} FROM workflows WHERE owner_kind = ?1 AND owner_id = ?2 AND id = ?3"
        ),
        owner.kind.as_str(),
        &owner.id,
        id
    )?
    .first::<WorkflowRow>(None)
    .await?)
}

/// The statement that changes the owner's workflow `id`.
pub fn update_statement(
    db: &D1Database,
    owner: &Owner,
    row: &WorkflowRow,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE workflows SET trigger = ?4, url = ?5, enabled = ?6, updated_at = ?7 \
         WHERE owner_kind = ?1 AND owner_id = ?2 AND id = ?3",
        owner.kind.as_str(),
        &owner.id,
        &row.id,
        row.trigger.as_str(),
        &row.url,
        row.enabled,
        &row.updated_at
    )?)
}

/// The statement that deletes the owner's workflow `id`.
pub fn delete_statement(
    db: &D1Database,
    owner: &Owner,
    id: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "DELETE FROM workflows WHERE owner_kind = ?1 AND owner_id = ?2 AND id = ?3",
        owner.kind.as_str(),
        &owner.id,
        id
    )?)
}

/// The statements that give up the workflow's pending deliveries (it was disabled or
/// deleted): failed, never retried. The workflow's deliveries stay listed.
pub fn abandon_statements(
    db: &D1Database,
    workflow_id: &str,
    now: &str,
) -> Result<Vec<D1PreparedStatement>, AppError> {
    Ok(vec![query!(
        db,
        "UPDATE workflow_deliveries SET status = 'failed', next_attempt_at_ms = NULL, \
             updated_at = ?2 \
         WHERE workflow_id = ?1 AND status = 'pending'",
        workflow_id,
        now
    )?])
}

/// What a delivery being sent needs: its message and its workflow's URL and sealed secret.
#[derive(Debug, Clone, Deserialize)]
pub struct Outgoing {
    pub id: String,
    pub workflow_id: String,
    pub payload: String,
    pub attempts: u32,
    pub url: String,
    pub secret_sealed: String,
}

/// Records a crossing once, and (only if this call's record took) a pending delivery per
/// enabled `usage.threshold` workflow of the owner, held from the schedule for `lease_ms`
/// while the first attempt is made. Answers the deliveries this call created, to send.
pub async fn record_crossing(
    db: &D1Database,
    crossing: &Crossing<'_>,
    payload: &str,
    now: &str,
    now_ms: u64,
    lease_ms: u64,
) -> Result<Vec<Outgoing>, AppError> {
    let event_key = crossing.event_key();
    let kind = crossing.owner.kind.as_str();
    let owner_id = crossing.owner.id.as_str();
    let statements = vec![
        query!(
            db,
            "INSERT OR IGNORE INTO usage_thresholds \
                 (owner_kind, owner_id, meter, period, threshold, used, limit_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            kind,
            owner_id,
            crossing.meter,
            crossing.period,
            crossing.threshold,
            num(crossing.used),
            num(crossing.limit),
            now
        )?,
        // Only right after the threshold's row took (changes() is the insert's).
        query!(
            db,
            "INSERT OR IGNORE INTO workflow_deliveries \
                 (id, workflow_id, event_key, event_type, payload, status, attempts, \
                  next_attempt_at_ms, created_at, updated_at) \
             SELECT 'msg_' || lower(hex(randomblob(12))), w.id, ?3, 'usage.threshold', ?4, \
                    'pending', 0, ?5, ?6, ?6 \
             FROM workflows w \
             WHERE w.owner_kind = ?1 AND w.owner_id = ?2 AND w.trigger = 'usage.threshold' \
               AND w.enabled = 1 AND changes() = 1",
            kind,
            owner_id,
            &event_key,
            payload,
            num(now_ms + lease_ms),
            now
        )?,
        query!(
            db,
            "SELECT d.id, d.workflow_id, d.payload, d.attempts, w.url, w.secret_sealed \
             FROM workflow_deliveries d JOIN workflows w ON w.id = d.workflow_id \
             WHERE w.owner_kind = ?1 AND w.owner_id = ?2 AND d.event_key = ?3 \
               AND d.attempts = 0",
            kind,
            owner_id,
            &event_key
        )?,
    ];
    let results = db.batch(statements).await?;
    if !inserted(&results)? {
        return Ok(Vec::new());
    }
    Ok(match results.last() {
        Some(result) => result.results::<Outgoing>()?,
        None => Vec::new(),
    })
}

/// Makes one pending delivery of `event_key` for each enabled workflow of `owner` on
/// `trigger` (a workflow never gets the same event twice: `UNIQUE (workflow_id, event_key)`),
/// and returns those not yet attempted, for their first send.
pub async fn record_event(
    db: &D1Database,
    owner: &Owner,
    trigger: Trigger,
    event_key: &str,
    payload: &str,
    (now, now_ms, lease_ms): (&str, u64, u64),
) -> Result<Vec<Outgoing>, AppError> {
    let kind = owner.kind.as_str();
    let results = db
        .batch(vec![
            query!(
                db,
                "INSERT OR IGNORE INTO workflow_deliveries \
                     (id, workflow_id, event_key, event_type, payload, status, attempts, \
                      next_attempt_at_ms, created_at, updated_at) \
                 SELECT 'msg_' || lower(hex(randomblob(12))), w.id, ?3, ?4, ?5, \
                        'pending', 0, ?6, ?7, ?7 \
                 FROM workflows w \
                 WHERE w.owner_kind = ?1 AND w.owner_id = ?2 AND w.trigger = ?4 \
                   AND w.enabled = 1",
                kind,
                &owner.id,
                event_key,
                trigger.as_str(),
                payload,
                num(now_ms + lease_ms),
                now
            )?,
            query!(
                db,
                "SELECT d.id, d.workflow_id, d.payload, d.attempts, w.url, w.secret_sealed \
                 FROM workflow_deliveries d JOIN workflows w ON w.id = d.workflow_id \
                 WHERE w.owner_kind = ?1 AND w.owner_id = ?2 AND d.event_key = ?3 \
                   AND d.attempts = 0",
                kind,
                &owner.id,
                event_key
            )?,
        ])
        .await?;
    match results.last() {
        Some(result) => Ok(result.results::<Outgoing>()?),
        None => Ok(Vec::new()),
    }
}

/// Pending deliveries due at `now_ms` (at most `limit`), oldest due first, with their
/// workflow's URL and sealed secret.
pub async fn due(db: &D1Database, now_ms: u64, limit: u32) -> Result<Vec<Outgoing>, AppError> {
    Ok(query!(
        db,
        "SELECT d.id, d.workflow_id, d.payload, d.attempts, w.url, w.secret_sealed \
         FROM workflow_deliveries d JOIN workflows w ON w.id = d.workflow_id \
         WHERE d.status = 'pending' AND d.next_attempt_at_ms <= ?1 \
         ORDER BY d.next_attempt_at_ms LIMIT ?2",
        num(now_ms),
        limit
    )?
    .all()
    .await?
    .results::<Outgoing>()?)
}

/// Claims a due delivery for one attempt (holding it from other runs until `until_ms`):
/// true only for the one run whose claim took.
pub async fn claim(
    db: &D1Database,
    delivery: &Outgoing,
    now_ms: u64,
    until_ms: u64,
) -> Result<bool, AppError> {
    let result = query!(
        db,
        "UPDATE workflow_deliveries SET next_attempt_at_ms = ?4 \
         WHERE id = ?1 AND status = 'pending' AND attempts = ?2 AND next_attempt_at_ms <= ?3",
        &delivery.id,
        delivery.attempts,
        num(now_ms),
        num(until_ms)
    )?
    .run()
    .await?;
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0) == 1)
}

/// One attempt's outcome.
pub struct Attempt<'a> {
    /// 1 for the first.
    pub number: u32,
    pub status_code: Option<u16>,
    /// Why it failed; `None` when delivered.
    pub failure: Option<AttemptFailure>,
    pub duration_ms: u64,
    pub at: &'a str,
    /// The delivery's status after it.
    pub status: DeliveryStatus,
    pub next_attempt_at_ms: Option<u64>,
}

/// Records an attempt and the delivery's state after it, in one batch; the delivery moves
/// only if this is its next attempt (a concurrent record of the same attempt is ignored).
pub async fn record_attempt(
    db: &D1Database,
    delivery_id: &str,
    attempt: &Attempt<'_>,
) -> Result<(), AppError> {
    db.batch(vec![
        query!(
            db,
            "INSERT OR IGNORE INTO workflow_delivery_attempts \
                 (delivery_id, attempt, status_code, failure, duration_ms, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            delivery_id,
            attempt.number,
            attempt.status_code,
            attempt.failure.map(AttemptFailure::as_str),
            num(attempt.duration_ms),
            attempt.at
        )?,
        query!(
            db,
            "UPDATE workflow_deliveries SET attempts = ?2, status = ?3, next_attempt_at_ms = ?4, \
                 updated_at = ?5 \
             WHERE id = ?1 AND attempts = ?2 - 1 AND changes() = 1",
            delivery_id,
            attempt.number,
            attempt.status.as_str(),
            attempt.next_attempt_at_ms.map(num),
            attempt.at
        )?,
    ])
    .await?;
    Ok(())
}

/// A delivery as listed, with its attempts as a JSON array.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryRow {
    pub id: String,
    pub event_type: String,
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at_ms: Option<f64>,
    pub created_at: String,
    pub updated_at: String,
    /// `[{"attempt", "status_code", "failure", "duration_ms", "at"}, ...]` ([`AttemptRow`]s),
    /// oldest first.
    pub attempt_list: String,
}

/// An attempt as listed in a [`DeliveryRow`].
#[derive(Debug, Clone, Deserialize)]
pub struct AttemptRow {
    pub attempt: u32,
    pub status_code: Option<u16>,
    /// `None` when delivered.
    pub failure: Option<AttemptFailure>,
    pub duration_ms: u64,
    pub at: String,
}

/// A page of the workflow's deliveries, newest first, after the `(created_at, id)` cursor.
pub async fn deliveries(
    db: &D1Database,
    workflow_id: &str,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<DeliveryRow>, AppError> {
    let (at, id) = after.unzip();
    Ok(query!(
        db,
        "SELECT d.id, d.event_type, d.payload, d.status, d.attempts, d.next_attempt_at_ms, \
                d.created_at, d.updated_at, \
                (SELECT json_group_array(json_object('attempt', a.attempt, \
                     'status_code', a.status_code, 'failure', a.failure, \
                     'duration_ms', a.duration_ms, 'at', a.at)) \
                 FROM (SELECT * FROM workflow_delivery_attempts \
                       WHERE delivery_id = d.id ORDER BY attempt) a) AS attempt_list \
         FROM workflow_deliveries d \
         WHERE d.workflow_id = ?1 \
           AND (?2 IS NULL OR d.created_at < ?2 OR (d.created_at = ?2 AND d.id < ?3)) \
         ORDER BY d.created_at DESC, d.id DESC LIMIT ?4",
        workflow_id,
        at,
        id,
        limit
    )?
    .all()
    .await?
    .results::<DeliveryRow>()?)
}
