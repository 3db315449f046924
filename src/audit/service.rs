//! Recording actions and reading them back. Other capabilities record through here: with
//! [`statement`] inside the batch of the action itself (both happen or neither), or with
//! [`record`] after an action that has no batch of its own.

use worker::{D1Database, D1PreparedStatement, Env};

use crate::audit::rules::{Entry, Filter};
use crate::audit::store;
pub use crate::audit::store::Row;
use crate::core::page::{self, PageRequest};
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::RequestCtx;
use crate::log::Logger;
use crate::storage;

/// Where and when an action happened: the request (or event) id and the request's clock.
#[derive(Debug, Clone, Copy)]
pub struct Occasion<'a> {
    pub request_id: Option<&'a str>,
    pub now_ms: u64,
}

impl<'a> Occasion<'a> {
    /// The request being answered.
    pub fn of(request: &'a RequestCtx) -> Self {
        Self {
            request_id: Some(&request.request_id),
            now_ms: request.now_ms,
        }
    }
}

/// The statement that records `entry`, for the action's own batch.
pub fn statement(
    db: &D1Database,
    at: Occasion<'_>,
    entry: &Entry<'_>,
) -> Result<D1PreparedStatement, AppError> {
    store::insert(db, entry, at.request_id, &rfc3339_from_millis(at.now_ms))
}

/// The statement that records `entry` right after a statement that inserts one row, in the
/// same batch: written only if that row was inserted, with its id in the detail as
/// `id_field`. For actions whose write may be a replay that inserts nothing.
pub fn statement_if_inserted(
    db: &D1Database,
    at: Occasion<'_>,
    entry: &Entry<'_>,
    id_field: &str,
) -> Result<D1PreparedStatement, AppError> {
    store::insert_if_inserted(
        db,
        entry,
        at.request_id,
        &rfc3339_from_millis(at.now_ms),
        id_field,
    )
}

/// The statement that records `entry` right after a statement that changes a row (an
/// update), in the same batch: written only if that statement changed one.
pub fn statement_if_changed(
    db: &D1Database,
    at: Occasion<'_>,
    entry: &Entry<'_>,
) -> Result<D1PreparedStatement, AppError> {
    store::insert_if_changed(db, entry, at.request_id, &rfc3339_from_millis(at.now_ms))
}

/// Records `entry` on its own.
pub async fn record(db: &D1Database, at: Occasion<'_>, entry: &Entry<'_>) -> Result<(), AppError> {
    statement(db, at, entry)?.run().await?;
    Ok(())
}

/// Records `entry` for an action that has already happened (one with no batch of its own to
/// join). The action stands whatever happens here: a failure to record is logged as an error,
/// never turned into a failed answer for something that was done.
pub async fn after(env: &Env, request: &RequestCtx, entry: Entry<'_>) {
    after_with(env, Occasion::of(request), &request.log, entry).await;
}

/// [`after`], for work outside a request (webhook processing, the schedule).
pub async fn after_with(env: &Env, at: Occasion<'_>, log: &Logger, entry: Entry<'_>) {
    let outcome = match storage::database(env) {
        Ok(db) => record(&db, at, &entry).await,
        Err(err) => Err(err),
    };
    if let Err(err) = outcome {
        log.error(
            "audit row not recorded",
            serde_json::json!({"action": entry.action.as_str(), "error": err.to_string()}),
        );
    }
}

/// A page of the log, newest first, and the cursor of the next.
pub async fn page(
    db: &D1Database,
    filter: &Filter,
    request: &PageRequest,
) -> Result<(Vec<Row>, Option<String>), AppError> {
    let before = match request.after.as_deref() {
        None => None,
        Some([id]) => Some(id.parse::<i64>().map_err(|_| bad_cursor())?),
        Some(_) => return Err(bad_cursor()),
    };
    let mut rows = store::page(db, filter, before, request.limit + 1).await?;
    let next = if rows.len() > request.limit as usize {
        rows.truncate(request.limit as usize);
        rows.last()
            .map(|r| page::encode_cursor(&[&r.id.to_string()]))
    } else {
        None
    };
    Ok((rows, next))
}

fn bad_cursor() -> AppError {
    AppError::invalid("cursor", "is not a cursor returned by this API")
}
