//! A user's own usage alerts (`/api/user/webhooks`: `usage.threshold` workflows owned by the
//! caller), and the views of workflows and their deliveries (the portal's workflow routes
//! render the same views).

use serde::{Deserialize, Serialize};
use worker::{Request, Response};

use crate::audit::rules::Actor;
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{self, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::workflows::rules::{DeliveryStatus, Owner, OwnerKind, Trigger};
use crate::workflows::service::{
    self, AttemptResult, Delivery, NewWorkflow, Workflow, WorkflowPatch,
};

/// A workflow (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    /// `wf_...`
    pub id: String,
    pub owner_kind: OwnerKind,
    /// `org_...` or `usr_...`
    pub owner_id: String,
    pub trigger: Trigger,
    pub url: String,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Workflow> for WorkflowView {
    fn from(w: Workflow) -> Self {
        Self {
            id: w.id,
            owner_kind: w.owner.kind,
            owner_id: w.owner.id,
            trigger: w.trigger,
            url: w.url,
            enabled: w.enabled,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A workflow just created, with its signing secret: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedWorkflowView {
    #[serde(flatten)]
    pub workflow: WorkflowView,
    /// `whsec_` + base64: the Standard Webhooks signing secret. Shown only in this answer.
    pub secret: String,
}

/// Workflows, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowListView {
    pub data: Vec<WorkflowView>,
}

/// A workflow deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedWorkflowView {
    pub id: String,
    pub deleted: bool,
}

/// One delivery and its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// `msg_...`, the `webhook-id` it is sent under.
    pub id: String,
    /// `usage.threshold`, ...
    pub event_type: String,
    /// The body exactly as sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    /// How many attempts were made (at most 8).
    pub attempt_count: u32,
    /// Each attempt, oldest first.
    pub attempts: Vec<AttemptResult>,
    /// When the schedule tries again, while pending.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_type: d.event_type,
            payload: d.payload,
            status: d.status,
            attempt_count: d.attempts.len() as u32,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A page of a workflow's deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPageView {
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page request: at most `limit` deliveries after `cursor`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryPageQuery {
    /// Deliveries per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `POST /api/user/webhooks` body: where the caller's usage alerts go.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserWebhookBody {
    /// An https URL of a public host, at most 2048 bytes: not an IP address in a loopback,
    /// private, link-local, CGNAT, unique-local or unspecified range (nor an IPv4-mapped form of
    /// one, nor a number spelled other than a.b.c.d), not `localhost`, `*.localhost`, `*.local`
    /// or `*.internal`. Plain http and local hosts only in local development.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 2048)]
    pub url: Option<String>,
}

/// `PATCH /api/user/webhooks/:id` body: only the fields sent change (unknown fields refused;
/// a user's webhook is always `usage.threshold`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserWebhookPatchBody {
    /// A new URL, checked as at creation: https, a public host (never an internal
    /// address or name), at most 2048 bytes; plain http and local hosts only in local
    /// development.
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// `false` stops its alerts (its pending deliveries fail); `true` resumes them.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Makes `new` for `owner` and answers `201` with the workflow and its signing secret,
/// shown once (`Cache-Control: no-store`): the user's and the portal's create answer alike.
pub async fn create_for(
    ctx: &Ctx,
    owner: &Owner,
    new: NewWorkflow,
    actor: Actor<'_>,
) -> Result<Response, AppError> {
    let (workflow, secret) = service::create(ctx, owner, new, actor).await?;
    let mut resp = response::json(
        201,
        &CreatedWorkflowView {
            workflow: workflow.into(),
            secret,
        },
    )?;
    response::set(resp.headers_mut(), "Cache-Control", "no-store");
    Ok(resp)
}

/// Lists `owner`'s workflows, oldest first (never a secret).
pub async fn list_for(ctx: &Ctx, owner: &Owner) -> Result<Response, AppError> {
    let workflows = service::list(ctx, owner).await?;
    response::ok(&WorkflowListView {
        data: workflows.into_iter().map(WorkflowView::from).collect(),
    })
}

/// Deletes `owner`'s workflow named by the route's `:id` (another owner's is `404`).
pub async fn delete_for(ctx: &Ctx, owner: &Owner, actor: Actor<'_>) -> Result<Response, AppError> {
    let id = route_id(ctx);
    service::delete(ctx, owner, &id, actor).await?;
    response::ok(&DeletedWorkflowView { id, deleted: true })
}

/// A page of the deliveries of `owner`'s workflow named by the route's `:id`, newest first.
pub async fn deliveries_for(req: &Request, ctx: &Ctx, owner: &Owner) -> Result<Response, AppError> {
    let page = http::page_request(&http::query_pairs(req)?)?;
    let (list, next_cursor) = service::deliveries(ctx, owner, &route_id(ctx), &page).await?;
    response::ok(&DeliveryPageView {
        data: list.into_iter().map(DeliveryView::from).collect(),
        next_cursor,
    })
}

/// The route's `:id`.
pub fn route_id(ctx: &Ctx) -> String {
    ctx.param("id").cloned().unwrap_or_default()
}

fn owner_of(principal: &Principal) -> Owner {
    Owner::user(&principal.user.id)
}

/// `POST /api/user/webhooks {url}`: a `usage.threshold` workflow for the caller (their 80 %
/// and 100 % of monthly tokens); `201` with its secret, shown once (`Cache-Control:
/// no-store`).
pub async fn create(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: NewUserWebhookBody = ctx.data.json()?;
    let new = NewWorkflow {
        trigger: Some(Trigger::UsageThreshold.as_str().to_owned()),
        url: body.url,
        enabled: Some(true),
    };
    let actor = Actor::User(&principal.user.id);
    create_for(&ctx, &owner_of(&principal), new, actor).await
}

/// What `/openapi.json` says of `POST /api/user/webhooks`.
pub fn create_doc() -> Doc {
    Doc::new(
        "Register a webhook for the caller's 80 % and 100 % of monthly tokens; its \
         signing secret is shown once",
    )
    .body::<NewUserWebhookBody>()
    .ok::<CreatedWorkflowView>(201)
    .errors(&["conflict", "not_configured"])
}

/// `GET /api/user/webhooks`: the caller's webhooks, oldest first (never a secret).
pub async fn list(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    list_for(&ctx, &owner_of(&principal)).await
}

/// What `/openapi.json` says of `GET /api/user/webhooks`.
pub fn list_doc() -> Doc {
    Doc::new("The caller's webhooks, oldest first (never a secret)").ok::<WorkflowListView>(200)
}

/// `PATCH /api/user/webhooks/:id {url?, enabled?}`: changes one of the caller's webhooks
/// (another user's is `404`, as a missing one).
pub async fn update(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: UserWebhookPatchBody = ctx.data.json()?;
    let patch = WorkflowPatch {
        trigger: None,
        url: body.url,
        enabled: body.enabled,
    };
    let actor = Actor::User(&principal.user.id);
    let workflow =
        service::update(&ctx, &owner_of(&principal), &route_id(&ctx), patch, actor).await?;
    response::ok(&WorkflowView::from(workflow))
}

/// What `/openapi.json` says of `PATCH /api/user/webhooks/:id`.
pub fn update_doc() -> Doc {
    Doc::new("Change one of the caller's webhooks: its URL, or whether it is enabled")
        .body::<UserWebhookPatchBody>()
        .ok::<WorkflowView>(200)
        .errors(&["not_found"])
}

/// `DELETE /api/user/webhooks/:id`: deletes one of the caller's webhooks (another user's is
/// `404`, as a missing one).
pub async fn delete(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    delete_for(&ctx, &owner_of(&principal), Actor::User(&principal.user.id)).await
}

/// What `/openapi.json` says of `DELETE /api/user/webhooks/:id`.
pub fn delete_doc() -> Doc {
    Doc::new("Delete one of the caller's webhooks; its pending deliveries fail")
        .ok::<DeletedWorkflowView>(200)
        .errors(&["not_found", "payload_too_large"])
}

/// `GET /api/user/webhooks/:id/deliveries`: the webhook's deliveries, newest first, each with
/// its status and attempts.
pub async fn deliveries(
    req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    deliveries_for(&req, &ctx, &owner_of(&principal)).await
}

/// What `/openapi.json` says of `GET /api/user/webhooks/:id/deliveries`.
pub fn deliveries_doc() -> Doc {
    Doc::new("A webhook's deliveries, newest first, with their status and attempts")
        .query::<DeliveryPageQuery>()
        .ok::<DeliveryPageView>(200)
        .errors(&["not_found"])
}
