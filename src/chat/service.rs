//! The chat flow: admit the visitor (rate), find or start the session, build what the model
//! is sent from the org's configuration and the session's recent messages, and, once the
//! proxy has answered, log the exchange and fire the org's `chat.session.started` workflows.

use crate::chat::rules::{self, ChatMessage, Turn};
use crate::chat::store::{self, Exchange};
use crate::core::random;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::{Ctx, RequestCtx};
use crate::orgs::service as orgs;
use crate::sites::service::{self as sites, SiteCaller};
use crate::storage;
use crate::workflows::service::{self as workflows, SessionStarted};

/// A message ready for the model: its session, the conversation and the org's limits.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub session_id: String,
    pub new_session: bool,
    pub visitor_id: Option<String>,
    pub turns: Vec<Turn>,
    /// The model to call (the org's `default_model`, else the operator's `CHAT_MODEL`).
    pub model: String,
    pub max_reply_tokens: u64,
    pub temperature: Option<f64>,
}

/// Admits the message (per site and visitor, and per site and address: `rate_limited`),
/// checks the org's model is still offered (`not_configured` naming `default_model` if
/// `CHAT_MODELS` dropped it), finds its session (one of this site's, else `not_found`) or
/// names a new one, and builds the conversation. Nothing is written: a message is logged
/// only once it is answered.
pub async fn prepare(
    ctx: &Ctx,
    caller: &SiteCaller,
    message: &ChatMessage,
) -> Result<Prepared, AppError> {
    sites::admit_visitor(
        ctx,
        caller,
        "chat",
        rules::MESSAGES_PER_MINUTE,
        message.visitor_id.as_deref(),
    )
    .await?;
    let org = orgs::get(ctx, &caller.org_id)
        .await?
        .ok_or_else(|| AppError::Forbidden("the site's org is gone".to_owned()))?;
    let chat = &ctx.data.config.chat;
    let model = rules::model_for(
        org.config.default_model.as_deref(),
        &chat.model,
        &chat.models,
    )
    .ok_or(AppError::NotConfigured {
        setting: "default_model".into(),
    })?;
    let (session_id, new_session, visitor_id, history) = match &message.session_id {
        Some(id) => {
            let db = storage::database(&ctx.env)?;
            let (session, history) =
                store::session(&db, &caller.site.id, id, rules::HISTORY_MESSAGES)
                    .await?
                    .ok_or_else(|| {
                        AppError::NotFound(
                            "no session of this site has that id; send the message without \
                             session_id to start one"
                                .to_owned(),
                        )
                    })?;
            let visitor = message.visitor_id.clone().or(session.visitor_id);
            (session.id, false, visitor, history)
        }
        None => (
            random::id::<12>(rules::SESSION_ID_PREFIX),
            true,
            message.visitor_id.clone(),
            Vec::new(),
        ),
    };
    let config = &org.config;
    let system = config
        .system_prompt
        .clone()
        .unwrap_or_else(|| rules::default_system_prompt(&org.name, config));
    Ok(Prepared {
        turns: rules::conversation(
            system,
            history.into_iter().map(|m| (m.role, m.content)),
            &message.message,
        ),
        session_id,
        new_session,
        visitor_id,
        model,
        max_reply_tokens: config
            .max_reply_tokens
            .map(u64::from)
            .unwrap_or(rules::DEFAULT_MAX_REPLY_TOKENS),
        temperature: config.temperature,
    })
}

/// What the model answered, as the exchange is logged.
pub struct Answered<'a> {
    pub reply: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: u64,
}

/// Logs an answered exchange (and the session, when it is new) and, for a new session, fires
/// the org's `chat.session.started` workflows. Failures are logged, never answered: the
/// visitor has their answer, and its tokens are already settled.
pub async fn log(
    env: &worker::Env,
    request: &RequestCtx,
    caller: &SiteCaller,
    prepared: &Prepared,
    answered: &Answered<'_>,
) {
    let asked_at = rfc3339_from_millis(request.now_ms);
    let answered_at = rfc3339_from_millis(request.now_ms + answered.latency_ms);
    let message = prepared
        .turns
        .last()
        .map(|turn| turn.content.as_str())
        .unwrap_or_default();
    let exchange = Exchange {
        session_id: &prepared.session_id,
        new_session: prepared.new_session,
        org_id: &caller.org_id,
        site_id: &caller.site.id,
        visitor_id: prepared.visitor_id.as_deref(),
        message,
        reply: answered.reply,
        input_tokens: answered.input_tokens,
        output_tokens: answered.output_tokens,
        latency_ms: answered.latency_ms,
        asked_at: &asked_at,
        answered_at: &answered_at,
    };
    let logged = match storage::database(env) {
        Ok(db) => store::log(&db, &exchange).await,
        Err(err) => Err(err),
    };
    if let Err(err) = logged {
        request.log.error(
            "chat exchange not logged",
            serde_json::json!({
                "session_id": prepared.session_id,
                "error": err.log_detail().unwrap_or_else(|| err.public_message()),
            }),
        );
        return;
    }
    if prepared.new_session {
        let started = SessionStarted {
            org_id: &caller.org_id,
            site_id: &caller.site.id,
            session_id: &prepared.session_id,
            visitor_id: prepared.visitor_id.as_deref(),
            started_at: &asked_at,
        };
        workflows::on_session_started(env, request, &started).await;
    }
}
