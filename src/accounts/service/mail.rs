//! Mail: written to the outbox in the batch of the action whose link it carries, sent after
//! the answer (the worker's `wait_until`, so neither a slow mail API nor its failure shows
//! in the answer or its timing), and retried by the scheduled event while it fails. Without
//! `MAIL_API_KEY` a mail is written to the log instead, where `ENVIRONMENT` is `local` only;
//! anywhere else the routes that mail answer `not_configured` before they change anything.

use serde::Serialize;
use serde_json::json;
use worker::{D1Database, D1PreparedStatement};

use crate::accounts::config::AccountsConfig;
use crate::accounts::rules::outbox::MailStatus;
use crate::accounts::store::outbox;
use crate::core::random;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::Ctx;
use crate::log::Logger;
use crate::upstream::mail::{self, Message};

/// Tries before a mail is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// A pending mail untouched this long is taken as a send that never finished.
const STALE_MS: u64 = 5 * 60 * 1000;

/// A mail ready to queue.
#[derive(Debug, Clone)]
pub struct Mail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The verification mail for `to`, carrying `token`.
    pub fn verify_email(config: &AccountsConfig, to: &str, token: &str) -> Self {
        let link = format!("{}/verify-email?token={token}", config.app_url);
        Self::with_link(
            to,
            "Confirm your email address",
            "Confirm your email address by opening this link:",
            &link,
        )
    }

    /// The notice to the address an account had (`to`) that its email is changing to `new`.
    pub fn email_change_notice(config: &AccountsConfig, to: &str, new: &str) -> Self {
        let link = format!("{}/reset-password", config.app_url);
        Self::with_link(
            to,
            "Your account's email is changing",
            &format!(
                "Someone signed in to your account asked to change its email to {new}. It \
                 changes once that address is confirmed. If it was not you, reset your \
                 password now (the reset link comes to this address):"
            ),
            &link,
        )
    }

    /// The password reset mail for `to`, carrying `token`.
    pub fn reset_password(config: &AccountsConfig, to: &str, token: &str) -> Self {
        let link = format!("{}/reset-password?token={token}", config.app_url);
        Self::with_link(
            to,
            "Reset your password",
            "Someone asked to reset your password. If it was you, open this link \
             (it works once); otherwise ignore this mail:",
            &link,
        )
    }

    fn with_link(to: &str, subject: &str, intro: &str, link: &str) -> Self {
        let escaped = html_escape(link);
        Self {
            id: random::id::<12>("mail_"),
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: format!("{intro}\n\n{link}\n"),
            html: format!(
                "<p>{}</p><p><a href=\"{escaped}\">{escaped}</a></p>",
                html_escape(intro)
            ),
        }
    }

    /// The statement that queues it, for the action's own batch.
    pub fn queue(&self, db: &D1Database, now: &str) -> Result<D1PreparedStatement, AppError> {
        outbox::insert_statement(
            db,
            &self.id,
            &self.to,
            &self.subject,
            &self.text,
            &self.html,
            now,
        )
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether mail can go out: through the mail API, or (where `ENVIRONMENT` is `local`) to the
/// log. `not_configured` otherwise, naming the setting to fix; a route that mails checks this
/// before it changes anything.
pub fn ready(config: &AccountsConfig) -> Result<(), AppError> {
    if config.log_mail && config.mail_api_key.is_unset() {
        return Ok(());
    }
    config.mail_api_key.require().map(|_| ())
}

/// Sends queued mail after the answer (`wait_until`), then records the outcome.
pub fn send_later(ctx: &Ctx, mails: Vec<Mail>) {
    if mails.is_empty() {
        return;
    }
    let env = ctx.env.clone();
    let config = std::rc::Rc::clone(&ctx.data.config);
    let log = ctx.data.log.clone();
    ctx.data.wait_until(async move {
        match crate::storage::database(&env) {
            Ok(db) => {
                for mail in &mails {
                    deliver(&db, &config.accounts, &log, mail).await;
                }
            }
            Err(err) => log.error(
                "mail not sent; the scheduled event retries it",
                json!({ "code": err.code(), "detail": err.log_detail() }),
            ),
        }
    });
}

/// Sends a queued mail and records the outcome. A failure is logged and left for the
/// scheduled retry; it is never the request's error (it must not tell whether an address
/// has an account).
async fn deliver(db: &D1Database, config: &AccountsConfig, log: &Logger, mail: &Mail) {
    let outcome = attempt(db, config, log, mail, now_ms_text()).await;
    if let Err(err) = outcome {
        log.error(
            "mail not sent; the scheduled event retries it",
            json!({ "mail_id": mail.id, "code": err.code(), "detail": err.log_detail() }),
        );
    }
}

fn now_ms_text() -> String {
    rfc3339_from_millis(crate::clock::now_ms())
}

async fn attempt(
    db: &D1Database,
    config: &AccountsConfig,
    log: &Logger,
    mail: &Mail,
    now: String,
) -> Result<(), AppError> {
    if config.log_mail && config.mail_api_key.is_unset() {
        // Local development: the mail, link included, goes to the log.
        log.info(
            "mail (MAIL_API_KEY unset, not sent)",
            json!({ "mail_id": mail.id, "to": mail.to, "subject": mail.subject, "text": mail.text }),
        );
        return outbox::mark_delivered(db, &mail.id, MailStatus::Logged, None, &now).await;
    }
    let key = config.mail_api_key.require()?;
    let message = Message {
        from: &config.mail_from,
        to: [&mail.to],
        subject: &mail.subject,
        text: &mail.text,
        html: &mail.html,
    };
    match mail::send(&config.mail_api_url, key, &mail.id, &message).await {
        Ok(provider_id) => {
            outbox::mark_delivered(db, &mail.id, MailStatus::Sent, provider_id.as_deref(), &now)
                .await
        }
        Err(err) => {
            let reason = err.log_detail().unwrap_or_else(|| err.public_message());
            outbox::mark_failed(db, &mail.id, &reason, &now).await?;
            Err(err)
        }
    }
}

/// What a scheduled retry did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RetryReport {
    pub attempted: usize,
    pub sent: usize,
    pub failed: usize,
}

/// Retries mail that failed (or never recorded an outcome), oldest first, a bounded number
/// per run.
pub async fn retry_due(
    db: &D1Database,
    config: &AccountsConfig,
    log: &Logger,
    now_ms: u64,
) -> Result<RetryReport, AppError> {
    let stale_before = rfc3339_from_millis(now_ms.saturating_sub(STALE_MS));
    let due = outbox::due(db, &stale_before, MAX_ATTEMPTS, 50).await?;
    let mut report = RetryReport::default();
    for pending in due {
        report.attempted += 1;
        let mail = Mail {
            id: pending.id,
            to: pending.to_address,
            subject: pending.subject,
            text: pending.text_body,
            html: pending.html_body,
        };
        match attempt(db, config, log, &mail, rfc3339_from_millis(now_ms)).await {
            Ok(()) => report.sent += 1,
            Err(_) => report.failed += 1,
        }
    }
    Ok(report)
}
