//! Workflows' flows: an owner's workflows (list, create with a secret shown once, update,
//! delete, their deliveries), usage thresholds turned into deliveries exactly once
//! ([`on_usage`]), and the sending of deliveries: the first attempt in the background of the
//! request that fired them, retries by the schedule ([`retry_due`]).
//!
//! Every function takes an owner already resolved from the caller's credential (a user's own
//! id, or the org the portal resolved); another owner's workflow is `not_found`, as a missing
//! one is.

use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{D1Database, Env, Headers, Method, Request, RequestInit, RequestRedirect};

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::config::Config;
use crate::core::body::FieldError;
use crate::core::page::PageRequest;
use crate::core::random;
use crate::core::sealed::Keyring;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::{Ctx, RequestCtx};
use crate::log::Logger;
use crate::storage;
use crate::upstream::NoResponse;
use crate::workflows::rules::{
    self, AttemptFailure, Crossing, DeliveryStatus, Owner, Trigger, LEASE_MS, MAX_ATTEMPTS,
    MAX_WORKFLOWS_PER_OWNER, SEND_TIMEOUT_MS,
};
use crate::workflows::store::{self, Attempt, Outgoing, WorkflowRow};

/// A new workflow, as a client sends it (unknown fields refused).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkflow {
    /// What fires it: `usage.threshold` (80 % and 100 % of a monthly limit) or
    /// `chat.session.started`.
    #[serde(default)]
    #[schema(value_type = Trigger, required = true)]
    pub trigger: Option<String>,
    /// Where deliveries are POSTed: an https URL of a public host, at most 2048 bytes; not an
    /// IP address in a loopback, private, link-local, CGNAT, unique-local or unspecified range
    /// (nor an IPv4-mapped form of one, nor a number spelled other than a.b.c.d), not
    /// `localhost`, `*.localhost`, `*.local` or `*.internal`. Plain http and local hosts only in
    /// local development.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 2048)]
    pub url: Option<String>,
    /// Whether it fires (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A change to a workflow: only the fields sent change (unknown fields refused).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowPatch {
    #[serde(default)]
    #[schema(value_type = Option<Trigger>)]
    pub trigger: Option<String>,
    /// A new URL, checked as at creation: https, a public host (never an internal
    /// address or name), at most 2048 bytes; plain http and local hosts only in local
    /// development.
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A workflow (never its secret).
#[derive(Debug, Clone)]
pub struct Workflow {
    pub id: String,
    pub owner: Owner,
    pub trigger: Trigger,
    pub url: String,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl Workflow {
    fn from_row(row: WorkflowRow) -> Self {
        Self {
            trigger: row.trigger,
            owner: Owner {
                kind: row.owner_kind,
                id: row.owner_id,
            },
            id: row.id,
            url: row.url,
            enabled: row.enabled == 1,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn trigger_field(value: &str, problems: &mut Vec<FieldError>) -> Option<Trigger> {
    let trigger = Trigger::parse(value);
    if trigger.is_none() {
        problems.push(FieldError::new(
            "trigger",
            "must be `usage.threshold` or `chat.session.started`",
        ));
    }
    trigger
}

fn url_field(config: &Config, value: &str, problems: &mut Vec<FieldError>) -> Option<String> {
    rules::url(value, rules::receivers(&config.environment))
        .map_err(|why| problems.push(FieldError::new("url", why)))
        .ok()
}

fn required<T>(field: &str, problems: &mut Vec<FieldError>) -> Option<T> {
    problems.push(FieldError::new(field, "is required"));
    None
}

fn context_of(id: &str) -> String {
    format!("workflow:{id}")
}

fn not_found() -> AppError {
    AppError::NotFound("no such workflow".to_owned())
}

fn target(id: &str) -> Target<'_> {
    Target::new("workflow", id)
}

/// The owner's workflows, oldest first.
pub async fn list(ctx: &Ctx, owner: &Owner) -> Result<Vec<Workflow>, AppError> {
    let db = storage::database(&ctx.env)?;
    Ok(store::list(&db, owner)
        .await?
        .into_iter()
        .map(Workflow::from_row)
        .collect())
}

/// Creates a workflow for `owner`; answers it with its secret (`whsec_...`), which is shown
/// this once and stored sealed. Every bad field is named (`validation_failed`); beyond
/// [`MAX_WORKFLOWS_PER_OWNER`] it is `conflict`; without `KEY_ENCRYPTION_KEY` it is
/// `not_configured`. Nothing is stored on a refusal.
pub async fn create(
    ctx: &Ctx,
    owner: &Owner,
    new: NewWorkflow,
    actor: Actor<'_>,
) -> Result<(Workflow, String), AppError> {
    let config = &ctx.data.config;
    let mut problems = Vec::new();
    let trigger = match new.trigger.as_deref() {
        Some(trigger) => trigger_field(trigger, &mut problems),
        None => required("trigger", &mut problems),
    };
    let url = match new.url.as_deref() {
        Some(url) => url_field(config, url, &mut problems),
        None => required("url", &mut problems),
    };
    let (Some(trigger), Some(url)) = (trigger, url) else {
        return Err(AppError::Validation(problems));
    };
    let keyring = config.providers.keyring()?;
    let id = random::id::<12>("wf_");
    let secret = rules::secret(&random::bytes::<32>());
    let sealed = keyring.seal(&secret, &context_of(&id), random::bytes());
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let enabled = new.enabled.unwrap_or(true);
    let db = storage::database(&ctx.env)?;
    let row = store::NewRow {
        id: &id,
        owner,
        trigger,
        url: &url,
        enabled,
        secret_sealed: &sealed,
        now: &now,
    };
    let entry = Entry::new(actor, Action::WorkflowCreated)
        .target(target(&id))
        .with("owner_kind", owner.kind.as_str())
        .with("owner_id", owner.id.as_str())
        .with("trigger", trigger.as_str())
        .with("url_host", rules::host(&url));
    let results = db
        .batch(vec![
            store::insert_statement(&db, &row, MAX_WORKFLOWS_PER_OWNER)?,
            audit::statement_if_inserted(&db, Occasion::of(&ctx.data), &entry, "rowid")?,
        ])
        .await?;
    if !store::inserted(&results)? {
        return Err(AppError::Conflict(format!(
            "at most {MAX_WORKFLOWS_PER_OWNER} workflows per owner; delete one first"
        )));
    }
    Ok((
        Workflow {
            id,
            owner: owner.clone(),
            trigger,
            url,
            enabled,
            created_at: now.clone(),
            updated_at: now,
        },
        secret,
    ))
}

/// Changes the owner's workflow `id` (only the fields sent). Disabling it fails its pending
/// deliveries (they are not retried).
pub async fn update(
    ctx: &Ctx,
    owner: &Owner,
    id: &str,
    patch: WorkflowPatch,
    actor: Actor<'_>,
) -> Result<Workflow, AppError> {
    let config = &ctx.data.config;
    let mut problems = Vec::new();
    let trigger = patch
        .trigger
        .as_deref()
        .map(|t| trigger_field(t, &mut problems));
    let url = patch
        .url
        .as_deref()
        .map(|u| url_field(config, u, &mut problems));
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    let db = storage::database(&ctx.env)?;
    let mut row = store::get(&db, owner, id).await?.ok_or_else(not_found)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let mut entry = Entry::new(actor, Action::WorkflowUpdated)
        .target(target(id))
        .with("owner_kind", owner.kind.as_str())
        .with("owner_id", owner.id.as_str());
    if let Some(Some(trigger)) = trigger {
        row.trigger = trigger;
        entry = entry.with("trigger", trigger.as_str());
    }
    if let Some(Some(url)) = url {
        entry = entry.with("url_host", rules::host(&url));
        row.url = url;
    }
    if let Some(enabled) = patch.enabled {
        row.enabled = u8::from(enabled);
        entry = entry.with("enabled", enabled);
    }
    row.updated_at = now.clone();
    let mut statements = vec![
        store::update_statement(&db, owner, &row)?,
        audit::statement(&db, Occasion::of(&ctx.data), &entry)?,
    ];
    if row.enabled == 0 {
        statements.extend(store::abandon_statements(&db, id, &now)?);
    }
    db.batch(statements).await?;
    Ok(Workflow::from_row(row))
}

/// Deletes the owner's workflow `id`; its pending deliveries fail (never retried).
pub async fn delete(ctx: &Ctx, owner: &Owner, id: &str, actor: Actor<'_>) -> Result<(), AppError> {
    let db = storage::database(&ctx.env)?;
    let row = store::get(&db, owner, id).await?.ok_or_else(not_found)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let entry = Entry::new(actor, Action::WorkflowDeleted)
        .target(target(id))
        .with("owner_kind", owner.kind.as_str())
        .with("owner_id", owner.id.as_str())
        .with("trigger", row.trigger.as_str());
    let mut statements = store::abandon_statements(&db, id, &now)?;
    statements.push(store::delete_statement(&db, owner, id)?);
    statements.push(audit::statement(&db, Occasion::of(&ctx.data), &entry)?);
    db.batch(statements).await?;
    Ok(())
}

/// One attempt at a delivery, as recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptResult {
    /// 1 for the first.
    pub attempt: u32,
    /// The receiver's status; `null` when it did not answer (network error, timeout).
    pub status_code: Option<u16>,
    /// Why it failed, as a class (never the receiver's or the network's own words); `null`
    /// when delivered.
    pub failure: Option<AttemptFailure>,
    pub duration_ms: u64,
    /// When it was made (RFC 3339).
    pub at: String,
}

impl From<store::AttemptRow> for AttemptResult {
    fn from(row: store::AttemptRow) -> Self {
        Self {
            attempt: row.attempt,
            status_code: row.status_code,
            failure: row.failure,
            duration_ms: row.duration_ms,
            at: row.at,
        }
    }
}

/// A delivery with its attempts.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `webhook-id` it is sent under (`msg_...`).
    pub id: String,
    pub event_type: String,
    /// The body exactly as sent.
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: Vec<AttemptResult>,
    /// When the next attempt is due (RFC 3339), while pending.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A page of the owner's workflow's deliveries, newest first, and the next page's cursor.
pub async fn deliveries(
    ctx: &Ctx,
    owner: &Owner,
    workflow_id: &str,
    page: &PageRequest,
) -> Result<(Vec<Delivery>, Option<String>), AppError> {
    let db = storage::database(&ctx.env)?;
    store::get(&db, owner, workflow_id)
        .await?
        .ok_or_else(not_found)?;
    let mut rows = store::deliveries(&db, workflow_id, page.after_pair()?, page.limit + 1).await?;
    let next = crate::core::page::finish(&mut rows, page.limit, |r| [&r.created_at, &r.id]);
    let list = rows
        .into_iter()
        .map(|row| Delivery {
            payload: serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null),
            status: row.status,
            attempts: serde_json::from_str::<Vec<store::AttemptRow>>(&row.attempt_list)
                .unwrap_or_default()
                .into_iter()
                .map(AttemptResult::from)
                .collect(),
            next_attempt_at: row
                .next_attempt_at_ms
                .filter(|_| row.status == DeliveryStatus::Pending)
                .map(|ms| rfc3339_from_millis(ms as u64)),
            id: row.id,
            event_type: row.event_type,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect();
    Ok((list, next))
}

/// A change of an owner's monthly usage of a meter: the counter before and after it, under
/// the limit (`None`: unlimited), in the period (`YYYY-MM`).
#[derive(Debug, Clone)]
pub struct Usage<'a> {
    pub owner: &'a Owner,
    /// `tokens`, later `voice_chars`.
    pub meter: &'a str,
    pub before: u64,
    pub after: u64,
    pub limit: Option<u64>,
    pub period: &'a str,
}

/// Called after an owner's usage changed: each threshold (80 %, 100 %) it crossed is recorded
/// once per owner, meter, period and threshold, and only the call whose record took creates
/// the deliveries (one per enabled `usage.threshold` workflow of the owner), stored before
/// they are sent in the background of this request. Never fails the request: the usage is
/// already counted; a failure here is logged.
pub async fn on_usage(env: &Env, request: &RequestCtx, usage: &Usage<'_>) {
    let crossed = rules::crossed(usage.before, usage.after, usage.limit);
    if crossed.is_empty() {
        return;
    }
    if let Err(err) = record_crossings(env, request, usage, &crossed).await {
        request.log.error(
            "usage threshold not recorded",
            json!({
                "owner": usage.owner.id,
                "meter": usage.meter,
                "period": usage.period,
                "error": err.log_detail().unwrap_or_else(|| err.public_message()),
            }),
        );
    }
}

async fn record_crossings(
    env: &Env,
    request: &RequestCtx,
    usage: &Usage<'_>,
    crossed: &[u8],
) -> Result<(), AppError> {
    let db = storage::database(env)?;
    let now = rfc3339_from_millis(request.now_ms);
    let mut outgoing = Vec::new();
    for threshold in crossed {
        let crossing = Crossing {
            owner: usage.owner,
            meter: usage.meter,
            period: usage.period,
            threshold: *threshold,
            used: usage.after,
            limit: usage.limit.unwrap_or_default(),
        };
        let payload = crossing.payload(&now);
        let created =
            store::record_crossing(&db, &crossing, &payload, &now, request.now_ms, LEASE_MS)
                .await?;
        request.log.info(
            "usage threshold crossed",
            json!({
                "owner": usage.owner.id,
                "meter": usage.meter,
                "period": usage.period,
                "threshold": threshold,
                "deliveries": created.len(),
            }),
        );
        outgoing.extend(created);
    }
    send_in_background(env, request, outgoing);
    Ok(())
}

/// A chat session an org's site started: who gets told (the org's `chat.session.started`
/// workflows) and what.
pub struct SessionStarted<'a> {
    pub org_id: &'a str,
    pub site_id: &'a str,
    pub session_id: &'a str,
    pub visitor_id: Option<&'a str>,
    pub started_at: &'a str,
}

/// Fires the org's `chat.session.started` workflows for a new session: a delivery each,
/// stored before it is sent (in the background of `request`), retried like every delivery.
/// Failures are logged: a session is never refused because a hook could not be queued.
pub async fn on_session_started(env: &Env, request: &RequestCtx, started: &SessionStarted<'_>) {
    let owner = Owner::org(started.org_id);
    let payload = json!({
        "type": Trigger::ChatSessionStarted.as_str(),
        "timestamp": started.started_at,
        "data": {
            "org_id": started.org_id,
            "site_id": started.site_id,
            "session_id": started.session_id,
            "visitor_id": started.visitor_id,
        },
    })
    .to_string();
    let event_key = format!("chat.session.started:{}", started.session_id);
    let now = rfc3339_from_millis(request.now_ms);
    let outcome = match storage::database(env) {
        Ok(db) => {
            store::record_event(
                &db,
                &owner,
                Trigger::ChatSessionStarted,
                &event_key,
                &payload,
                (&now, request.now_ms, LEASE_MS),
            )
            .await
        }
        Err(err) => Err(err),
    };
    match outcome {
        Ok(outgoing) => send_in_background(env, request, outgoing),
        Err(err) => request.log.error(
            "chat.session.started deliveries not recorded",
            json!({ "error": err.log_detail().unwrap_or_else(|| err.public_message()) }),
        ),
    }
}

/// Sends each delivery's first attempt after the answer (`wait_until`); those that fail are
/// left to the scheduled retries.
fn send_in_background(env: &Env, request: &RequestCtx, outgoing: Vec<store::Outgoing>) {
    if outgoing.is_empty() {
        return;
    }
    let (env, config, log) = (env.clone(), Rc::clone(&request.config), request.log.clone());
    request.wait_until(async move {
        let outcome = match storage::database(&env) {
            Ok(db) => send_all(&db, &config, &log, outgoing).await,
            Err(err) => Err(err),
        };
        if let Err(err) = outcome {
            log.error(
                "workflow deliveries not sent",
                json!({ "error": err.log_detail().unwrap_or_else(|| err.public_message()) }),
            );
        }
    });
}

/// What a scheduled retry run did.
#[derive(Debug, Default, Serialize)]
pub struct RetryReport {
    pub due: usize,
    pub delivered: usize,
    pub failed: usize,
    pub retrying: usize,
}

/// Deliveries due at most this many per run (each may take [`SEND_TIMEOUT_MS`]).
const RETRY_BATCH: u32 = 20;

/// Retries pending deliveries that are due (by the schedule): each is claimed first, so two
/// runs at once never send the same attempt twice.
pub async fn retry_due(
    db: &D1Database,
    config: &Config,
    log: &Logger,
    now_ms: u64,
) -> Result<RetryReport, AppError> {
    let due = store::due(db, now_ms, RETRY_BATCH).await?;
    let mut claimed = Vec::new();
    for delivery in due {
        if store::claim(db, &delivery, now_ms, now_ms + LEASE_MS).await? {
            claimed.push(delivery);
        }
    }
    let mut report = RetryReport {
        due: claimed.len(),
        ..RetryReport::default()
    };
    let keyring = config.providers.keyring();
    for delivery in claimed {
        match attempt(db, keyring.as_ref(), log, &delivery).await? {
            DeliveryStatus::Delivered => report.delivered += 1,
            DeliveryStatus::Failed => report.failed += 1,
            DeliveryStatus::Pending => report.retrying += 1,
        }
    }
    Ok(report)
}

async fn send_all(
    db: &D1Database,
    config: &Config,
    log: &Logger,
    outgoing: Vec<Outgoing>,
) -> Result<(), AppError> {
    let keyring = config.providers.keyring();
    for delivery in outgoing {
        attempt(db, keyring.as_ref(), log, &delivery).await?;
    }
    Ok(())
}

/// Makes one attempt at `delivery` (already claimed) and records it; answers its status
/// after it.
async fn attempt(
    db: &D1Database,
    keyring: Result<&Keyring, &AppError>,
    log: &Logger,
    delivery: &Outgoing,
) -> Result<DeliveryStatus, AppError> {
    let started = crate::clock::now_ms();
    let number = delivery.attempts + 1;
    let outcome = match signing_key(keyring, delivery) {
        Ok(key) => send(delivery, &key, started).await,
        Err(why) => Err(why),
    };
    let finished = crate::clock::now_ms();
    let (status_code, failure, error) = match outcome {
        Ok(code) => (Some(code), AttemptFailure::of_status(code), None),
        Err((failure, why)) => (None, Some(failure), Some(why)),
    };
    let (status, next) = if failure.is_none() {
        (DeliveryStatus::Delivered, None)
    } else {
        match rules::next_attempt_ms(number, finished) {
            Some(at) => (DeliveryStatus::Pending, Some(at)),
            None => (DeliveryStatus::Failed, None),
        }
    };
    let at = rfc3339_from_millis(finished);
    store::record_attempt(
        db,
        &delivery.id,
        &Attempt {
            number,
            status_code,
            failure,
            duration_ms: finished.saturating_sub(started),
            at: &at,
            status,
            next_attempt_at_ms: next,
        },
    )
    .await?;
    log.info(
        "workflow delivery attempted",
        json!({
            "delivery": delivery.id,
            "workflow": delivery.workflow_id,
            "attempt": number,
            "max_attempts": MAX_ATTEMPTS,
            "status_code": status_code,
            "failure": failure.map(AttemptFailure::as_str),
            "error": error,
        }),
    );
    Ok(status)
}

/// Why an attempt got no answer: its class, shown, and the cause in words, only logged.
type NoAnswer = (AttemptFailure, String);

fn signing_key(
    keyring: Result<&Keyring, &AppError>,
    delivery: &Outgoing,
) -> Result<Vec<u8>, NoAnswer> {
    let not_sent = |why: &str| (AttemptFailure::NotSent, why.to_owned());
    let keyring = keyring.map_err(|_| not_sent("KEY_ENCRYPTION_KEY is not configured"))?;
    let secret = keyring
        .open(&delivery.secret_sealed, &context_of(&delivery.workflow_id))
        .map_err(|_| not_sent("the workflow's secret could not be opened"))?;
    rules::secret_key(&secret).ok_or_else(|| not_sent("the workflow's secret is malformed"))
}

/// POSTs the delivery, signed; answers the receiver's status, or why there was none.
async fn send(delivery: &Outgoing, key: &[u8], now_ms: u64) -> Result<u16, NoAnswer> {
    let timestamp = (now_ms / 1000) as i64;
    let signature = rules::signature(key, &delivery.id, timestamp, &delivery.payload);
    let request = (|| -> Result<Request, worker::Error> {
        let headers = Headers::new();
        headers.set("Content-Type", "application/json")?;
        headers.set("User-Agent", "tollgate-webhooks/1")?;
        headers.set("webhook-id", &delivery.id)?;
        headers.set("webhook-timestamp", &timestamp.to_string())?;
        headers.set("webhook-signature", &signature)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual)
            .with_body(Some(delivery.payload.clone().into()));
        Request::new_with_init(&delivery.url, &init)
    })()
    .map_err(|e| (AttemptFailure::NotSent, format!("bad request: {e}")))?;
    match crate::upstream::fetch_within(request, Duration::from_millis(SEND_TIMEOUT_MS)).await {
        Ok(response) => Ok(response.status_code()),
        Err(NoResponse::TimedOut) => Err((
            AttemptFailure::Timeout,
            format!("no answer within {SEND_TIMEOUT_MS} ms"),
        )),
        Err(NoResponse::Failed(err)) => Err((
            AttemptFailure::ConnectionFailed,
            err.to_string().chars().take(300).collect(),
        )),
    }
}
