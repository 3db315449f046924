//! The `audit_log` table: rows are inserted, read by the admin, never changed.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::audit::rules::{detail_text, ActorKind, Entry, Filter};
use crate::error::AppError;

/// When an entry is written, relative to the statement before it in the same batch.
#[derive(Clone, Copy)]
enum When<'a> {
    /// Always.
    Always,
    /// Only if that statement changed a row.
    Changed,
    /// Only if it inserted a row, whose id goes in the detail under this field.
    Inserted(&'a str),
}

/// The one statement every entry is written by (see [`When`]).
fn entry_statement(
    db: &D1Database,
    entry: &Entry<'_>,
    (request_id, at): (Option<&str>, &str),
    when: When<'_>,
) -> Result<D1PreparedStatement, AppError> {
    let (actor_kind, actor_id) = entry.actor.stored();
    let (target_kind, target_id) = entry.target.map(|t| (t.kind, t.id)).unzip();
    let (always, id_field) = match when {
        When::Always => (true, None),
        When::Changed => (false, None),
        When::Inserted(field) => (false, Some(field)),
    };
    Ok(query!(
        db,
        "INSERT INTO audit_log (actor_kind, actor_id, action, target_kind, target_id, \
                                request_id, detail, created_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, \
                CASE WHEN ?9 IS NULL THEN ?7 \
                     ELSE json_set(?7, '$.' || ?9, last_insert_rowid()) END, ?8 \
         WHERE ?10 OR changes() > 0",
        actor_kind.as_str(),
        actor_id,
        entry.action.as_str(),
        target_kind,
        target_id,
        request_id,
        detail_text(&entry.detail),
        at,
        id_field,
        i32::from(always),
    )?)
}

/// The statement that records `entry` (to run alone, or inside the batch of the action it
/// records, so both happen or neither).
pub fn insert(
    db: &D1Database,
    entry: &Entry<'_>,
    request_id: Option<&str>,
    at: &str,
) -> Result<D1PreparedStatement, AppError> {
    entry_statement(db, entry, (request_id, at), When::Always)
}

/// The statement that records `entry` only if the statement before it in the same batch
/// inserted a row (SQLite's `changes()`), with that row's id added to the detail as
/// `id_field` (`last_insert_rowid()`). The action and its audit row are then one
/// transaction, and an action that wrote nothing (a replay) records nothing.
pub fn insert_if_inserted(
    db: &D1Database,
    entry: &Entry<'_>,
    request_id: Option<&str>,
    at: &str,
    id_field: &str,
) -> Result<D1PreparedStatement, AppError> {
    entry_statement(db, entry, (request_id, at), When::Inserted(id_field))
}

/// [`insert`], only if the statement just before it in the same batch changed a row (an
/// update that found nothing to change writes no entry).
pub fn insert_if_changed(
    db: &D1Database,
    entry: &Entry<'_>,
    request_id: Option<&str>,
    at: &str,
) -> Result<D1PreparedStatement, AppError> {
    entry_statement(db, entry, (request_id, at), When::Changed)
}

/// One stored row.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub id: i64,
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
    pub created_at: String,
}

/// Rows matching `filter`, newest first, after the row `before_id` (exclusive), at most
/// `limit`.
pub async fn page(
    db: &D1Database,
    filter: &Filter,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<Row>, AppError> {
    Ok(query!(
        db,
        "SELECT id, actor_kind, actor_id, action, target_kind, target_id, request_id, detail, \
                created_at \
         FROM audit_log \
         WHERE (?1 IS NULL OR actor_id = ?1) AND (?2 IS NULL OR action = ?2) \
           AND (?3 IS NULL OR target_id = ?3) AND (?4 IS NULL OR created_at >= ?4) \
           AND (?5 IS NULL OR created_at < ?5) AND (?6 IS NULL OR id < ?6) \
         ORDER BY id DESC LIMIT ?7",
        filter.actor,
        filter.action,
        filter.target,
        filter.from,
        filter.to,
        before_id,
        limit,
    )?
    .all()
    .await?
    .results::<Row>()?)
}
