//! `GET /api/admin/audit-log`: the audit log, newest first, for admins.

use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use worker::{Request, Response};

use crate::audit::rules::{Action, Filter};
use crate::audit::service::{self, Row};
use crate::core::time::{millis_from_rfc3339, rfc3339_from_millis};
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{self, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::storage;

/// `?actor=&action=&target=&from=&to=&limit=&cursor=`.
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Rows per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Only actions by this actor: a user id (`usr_...`) or `stripe`, `clerk`, `scheduler`.
    #[param(max_length = 128)]
    pub actor: Option<String>,
    /// Only this action (`tokens.used`, `account.registered`, ...).
    pub action: Option<Action>,
    /// Only actions on this target id (a user, key, session, event ...).
    #[param(max_length = 128)]
    pub target: Option<String>,
    /// Rows recorded at or after this RFC 3339 UTC time.
    pub from: Option<String>,
    /// Rows recorded before this RFC 3339 UTC time.
    pub to: Option<String>,
}

/// Who acted.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActorView {
    /// `user`, `system` or `anonymous`.
    pub kind: String,
    /// The user's id, or the system part that acted (`stripe`, `clerk`, `scheduler`).
    #[schema(required = true)]
    pub id: Option<String>,
}

/// What was acted on.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditTargetView {
    /// `user`, `api_key`, `session`, `provider_key`, `webhook_event`, ...
    pub kind: String,
    pub id: String,
}

/// One recorded action.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Increases with every row: the order actions were recorded in.
    pub id: i64,
    pub actor: AuditActorView,
    /// What was done (`tokens.used`, ...).
    pub action: String,
    #[schema(required = true)]
    pub target: Option<AuditTargetView>,
    /// The request (or provider event) that caused it.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// Amounts, plan ids, reasons: never a secret.
    #[schema(value_type = Object)]
    pub detail: Value,
    pub created_at: String,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogPageView {
    pub data: Vec<AuditEntryView>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Row> for AuditEntryView {
    fn from(row: Row) -> Self {
        let target = match (row.target_kind, row.target_id) {
            (Some(kind), Some(id)) => Some(AuditTargetView { kind, id }),
            _ => None,
        };
        Self {
            id: row.id,
            actor: AuditActorView {
                kind: row.actor_kind.to_string(),
                id: row.actor_id,
            },
            action: row.action,
            target,
            request_id: row.request_id,
            detail: serde_json::from_str(&row.detail).unwrap_or(Value::Null),
            created_at: row.created_at,
        }
    }
}

/// The query's filters; an unknown action or a time that is not RFC 3339 is
/// `validation_failed`.
fn filter(pairs: &[(String, String)]) -> Result<Filter, AppError> {
    let mut filter = Filter::default();
    for (name, value) in pairs {
        let text = |field: &str| {
            if value.is_empty() || value.len() > 128 {
                Err(AppError::invalid(field, "must be 1 to 128 characters"))
            } else {
                Ok(value.clone())
            }
        };
        let time = |field: &str| {
            millis_from_rfc3339(value)
                .map(rfc3339_from_millis)
                .ok_or_else(|| AppError::invalid(field, "must be an RFC 3339 UTC time"))
        };
        match name.as_str() {
            "actor" => filter.actor = Some(text("actor")?),
            "target" => filter.target = Some(text("target")?),
            "action" => {
                let action = Action::from_name(value).ok_or_else(|| {
                    AppError::invalid("action", "is not an action this log records")
                })?;
                filter.action = Some(action.as_str().to_owned());
            }
            "from" => filter.from = Some(time("from")?),
            "to" => filter.to = Some(time("to")?),
            _ => {}
        }
    }
    Ok(filter)
}

/// `GET /api/admin/audit-log`: the log, newest first, filtered and paginated.
pub async fn list(req: Request, ctx: Ctx, _principal: Principal) -> Result<Response, AppError> {
    let pairs = http::query_pairs(&req)?;
    let filter = filter(&pairs)?;
    let page = http::page_request(&pairs)?;
    let db = storage::database(&ctx.env)?;
    let (rows, next_cursor) = service::page(&db, &filter, &page).await?;
    response::ok(&AuditLogPageView {
        data: rows.into_iter().map(AuditEntryView::from).collect(),
        next_cursor,
    })
}

/// What `/openapi.json` says of `GET /api/admin/audit-log`.
pub fn list_doc() -> Doc {
    Doc::new("The audit log: every state-changing action, newest first")
        .query::<AuditLogQuery>()
        .ok::<AuditLogPageView>(200)
}
