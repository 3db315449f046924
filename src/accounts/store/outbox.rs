//! `mail_outbox`: mail to send, kept until sent (then its bodies are cleared) and retried by
//! the scheduled event while it fails.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::accounts::rules::outbox::MailStatus;
use crate::error::AppError;

/// A mail waiting to be sent.
#[derive(Debug, Clone, Deserialize)]
pub struct Pending {
    pub id: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub attempts: f64,
}

/// The statement that queues a mail.
pub fn insert_statement(
    db: &D1Database,
    id: &str,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO mail_outbox (id, to_address, subject, text_body, html_body, status, \
                                  created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
        id,
        to,
        subject,
        text,
        html,
        now
    )?)
}

/// Records a delivery (`sent`, or `logged` when no mail API is configured): the bodies, which
/// hold a secret link, are cleared.
pub async fn mark_delivered(
    db: &D1Database,
    id: &str,
    status: MailStatus,
    provider_id: Option<&str>,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE mail_outbox SET status = ?2, provider_id = ?3, text_body = NULL, \
                html_body = NULL, attempts = attempts + 1, last_error = NULL, updated_at = ?4 \
         WHERE id = ?1 AND status IN ('pending', 'failed')",
        id,
        status.as_str(),
        provider_id,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// Records a failed attempt (`error` names the failure, never a body).
pub async fn mark_failed(
    db: &D1Database,
    id: &str,
    error: &str,
    now: &str,
) -> Result<(), AppError> {
    query!(
        db,
        "UPDATE mail_outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2, \
                updated_at = ?3 \
         WHERE id = ?1 AND status IN ('pending', 'failed')",
        id,
        error,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// Mail still to send, oldest first: failed, or pending since before `stale_before` (a send
/// that never recorded its outcome), tried fewer than `max_attempts` times.
pub async fn due(
    db: &D1Database,
    stale_before: &str,
    max_attempts: u32,
    limit: u32,
) -> Result<Vec<Pending>, AppError> {
    Ok(query!(
        db,
        "SELECT id, to_address, subject, text_body, html_body, attempts FROM mail_outbox \
         WHERE (status = 'failed' OR (status = 'pending' AND updated_at < ?1)) \
           AND attempts < ?2 AND text_body IS NOT NULL \
         ORDER BY created_at LIMIT ?3",
        stale_before,
        max_attempts,
        limit
    )?
    .all()
    .await?
    .results::<Pending>()?)
}
