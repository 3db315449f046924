//! The `auth_sessions` table: which sign-in sessions (devices) have started or ended.
//!
//! A session is known by its source, its user and its id together: an HMAC token chooses its
//! own `sid`, so an id alone could name another user's session.

use worker::{query, D1Database};

use crate::error::AppError;

/// A session's identity: its id at its source, and whose it is.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef<'a> {
    /// Clerk's `sess_...`, or an HMAC token's `sid`/`jti`.
    pub id: &'a str,
    pub auth_source: &'a str,
    pub external_user_id: &'a str,
}

/// Records a session start; a session already known (even ended) is left as it is, so a
/// late `session.created` never revives an ended session.
pub async fn start(db: &D1Database, session: SessionRef<'_>, now: &str) -> Result<(), AppError> {
    query!(
        db,
        "INSERT INTO auth_sessions (id, auth_source, external_user_id, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 'active', ?4, ?4) \
         ON CONFLICT (auth_source, external_user_id, id) DO NOTHING",
        session.id,
        session.auth_source,
        session.external_user_id,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// Ends a session (idempotent: the first reason is kept). Tokens of an ended session are
/// refused from the next request on.
pub async fn end(
    db: &D1Database,
    session: SessionRef<'_>,
    reason: &str,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "INSERT INTO auth_sessions (id, auth_source, external_user_id, status, ended_reason, \
                                    created_at, updated_at) \
         VALUES (?1, ?2, ?3, 'ended', ?4, ?5, ?5) \
         ON CONFLICT (auth_source, external_user_id, id) DO UPDATE SET \
           status = 'ended', ended_reason = excluded.ended_reason, updated_at = excluded.updated_at \
         WHERE auth_sessions.status = 'active'",
        session.id,
        session.auth_source,
        session.external_user_id,
        reason,
        now
    )?
    .run()
    .await?;
    Ok(())
}
