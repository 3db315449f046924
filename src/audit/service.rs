//! Recording actions and reading them back. Other capabilities record through here: with
//! [`statement`] inside the batch of the action itself (both happen or neither), or with
//! [`record`] after an action that has no batch of its own.

use worker::{D1Database, D1PreparedStatement};

use crate::audit::rules::{Entry, Filter};
use crate::audit::store;
pub use crate::audit::store::Row;
use crate::core::page::{self, PageRequest};
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;

/// Where and when an action happened: the request (or event) id and the request's clock.
#[derive(Debug, Clone, Copy)]
pub struct Occasion<'a> {
    pub request_id: Option<&'a str>,
    pub now_ms: u64,
}

/// The statement that records `entry`, for the action's own batch.
pub fn statement(
    db: &D1Database,
    at: Occasion<'_>,
    entry: &Entry<'_>,
) -> Result<D1PreparedStatement, AppError> {
    store::insert(db, entry, at.request_id, &rfc3339_from_millis(at.now_ms))
}

/// Records `entry` on its own.
pub async fn record(db: &D1Database, at: Occasion<'_>, entry: &Entry<'_>) -> Result<(), AppError> {
    statement(db, at, entry)?.run().await?;
    Ok(())
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
