//! Chat sessions and their messages (`chat_sessions`, `chat_messages`): read a session with
//! its latest messages, log an answered exchange in one batch.

use serde::Deserialize;
use worker::{query, D1Database};

use crate::chat::rules::MessageRole;
use crate::error::AppError;

/// A session as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionRow {
    pub id: String,
    pub visitor_id: Option<String>,
}

/// One logged message, as the model is sent it again.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageRow {
    pub role: MessageRole,
    pub content: String,
}

/// The session `session_id` of the site `site_id` (none for another site's) and its latest
/// `limit` messages, oldest first: one round trip.
pub async fn session(
    db: &D1Database,
    site_id: &str,
    session_id: &str,
    limit: u32,
) -> Result<Option<(SessionRow, Vec<MessageRow>)>, AppError> {
    let results = db
        .batch(vec![
            query!(
                db,
                "SELECT id, visitor_id FROM chat_sessions WHERE id = ?1 AND site_id = ?2",
                session_id,
                site_id
            )?,
            query!(
                db,
                "SELECT role, content FROM ( \
                     SELECT role, content, created_at, rowid AS n FROM chat_messages \
                     WHERE session_id = ?1 AND site_id = ?2 \
                     ORDER BY created_at DESC, n DESC LIMIT ?3) \
                 ORDER BY created_at, n",
                session_id,
                site_id,
                limit
            )?,
        ])
        .await?;
    let Some(session) = results[0].results::<SessionRow>()?.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some((session, results[1].results::<MessageRow>()?)))
}

/// An answered exchange: the visitor's message and the model's reply, in their session
/// (made by this exchange when `new_session`).
pub struct Exchange<'a> {
    pub session_id: &'a str,
    pub new_session: bool,
    pub org_id: &'a str,
    pub site_id: &'a str,
    pub visitor_id: Option<&'a str>,
    pub message: &'a str,
    pub reply: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: u64,
    /// When the message arrived and when the answer was complete, RFC 3339.
    pub asked_at: &'a str,
    pub answered_at: &'a str,
}

/// Logs `exchange` in one batch: the session (if new), both messages, the session's last
/// message time.
pub async fn log(db: &D1Database, exchange: &Exchange<'_>) -> Result<(), AppError> {
    let e = exchange;
    let mut statements = Vec::with_capacity(4);
    if e.new_session {
        statements.push(query!(
            db,
            "INSERT INTO chat_sessions (id, org_id, site_id, visitor_id, started_at, \
                 last_message_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            e.session_id,
            e.org_id,
            e.site_id,
            e.visitor_id,
            e.asked_at
        )?);
    }
    statements.push(query!(
        db,
        "INSERT INTO chat_messages (id, session_id, org_id, site_id, role, content, created_at) \
         VALUES ('msg_' || lower(hex(randomblob(12))), ?1, ?2, ?3, 'user', ?4, ?5)",
        e.session_id,
        e.org_id,
        e.site_id,
        e.message,
        e.asked_at
    )?);
    statements.push(query!(
        db,
        "INSERT INTO chat_messages (id, session_id, org_id, site_id, role, content, \
             input_tokens, output_tokens, latency_ms, created_at) \
         VALUES ('msg_' || lower(hex(randomblob(12))), ?1, ?2, ?3, 'assistant', ?4, ?5, ?6, ?7, ?8)",
        e.session_id,
        e.org_id,
        e.site_id,
        e.reply,
        e.input_tokens as f64,
        e.output_tokens as f64,
        e.latency_ms as f64,
        e.answered_at
    )?);
    statements.push(query!(
        db,
        "UPDATE chat_sessions SET last_message_at = ?2 WHERE id = ?1",
        e.session_id,
        e.answered_at
    )?);
    db.batch(statements).await?;
    Ok(())
}
