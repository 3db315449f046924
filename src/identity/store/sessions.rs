//! The `auth_sessions` table: which sign-in sessions (devices) have started or ended.
//!
//! A session is known by its source, its user and its id together: an HMAC token chooses its
//! own `sid`, so an id alone could name another user's session.

use worker::{query, D1Database, D1PreparedStatement};

use crate::error::AppError;
use crate::identity::rules::status::AuthSource;

/// A session's identity: its id at its source, and whose it is.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef<'a> {
    /// Clerk's `sess_...`, or an HMAC token's `sid`/`jti`.
    pub id: &'a str,
    pub auth_source: AuthSource,
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
        session.auth_source.as_str(),
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
        session.auth_source.as_str(),
        session.external_user_id,
        reason,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// The statement that records a new active session (an account sign-in); a session id is
/// random, so it never meets an existing row.
pub fn start_statement(
    db: &D1Database,
    session: SessionRef<'_>,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO auth_sessions (id, auth_source, external_user_id, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
        session.id,
        session.auth_source.as_str(),
        session.external_user_id,
        now
    )?)
}

/// The statement that ends one active session with `reason` (an ended one keeps its first
/// reason).
pub fn end_statement(
    db: &D1Database,
    session: SessionRef<'_>,
    reason: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE auth_sessions SET status = 'ended', ended_reason = ?4, updated_at = ?5 \
         WHERE auth_source = ?2 AND external_user_id = ?3 AND id = ?1 AND status = 'active'",
        session.id,
        session.auth_source.as_str(),
        session.external_user_id,
        reason,
        now
    )?)
}

/// The statement that ends every active session of a user but `except` (if given).
pub fn end_others_statement(
    db: &D1Database,
    auth_source: AuthSource,
    external_user_id: &str,
    except: Option<&str>,
    reason: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE auth_sessions SET status = 'ended', ended_reason = ?4, updated_at = ?5 \
         WHERE auth_source = ?1 AND external_user_id = ?2 AND status = 'active' \
           AND (?3 IS NULL OR id != ?3)",
        auth_source.as_str(),
        external_user_id,
        except,
        reason,
        now
    )?)
}
