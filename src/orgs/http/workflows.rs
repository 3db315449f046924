//! The portal's workflows: the org's automations (a trigger and a signed outgoing webhook),
//! listed with their deliveries for its members and made, changed and deleted by its admins
//! or staff, through the workflows capability, always for the org the pipeline resolved.

use worker::{Request, Response};

use super::views::{PortalPageQuery, PortalQuery};
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::orgs::service::PortalCaller;
use crate::workflows::http::{
    self as shared, CreatedWorkflowView, DeletedWorkflowView, DeliveryPageView, WorkflowListView,
    WorkflowView,
};
use crate::workflows::rules::Owner;
use crate::workflows::service::{self as workflows, NewWorkflow, WorkflowPatch};

fn owner(caller: &PortalCaller) -> Result<Owner, AppError> {
    Ok(Owner::org(&caller.org()?.id))
}

/// `GET /portal/workflows`: the org's workflows, oldest first (never a secret).
pub async fn list(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    shared::list_for(&ctx, &owner(&caller)?).await
}

/// What `/openapi.json` says of `GET /portal/workflows`.
pub fn list_doc() -> Doc {
    Doc::new("The org's workflows: triggers and their signed outgoing webhooks")
        .query::<PortalQuery>()
        .ok::<WorkflowListView>(200)
}

/// `POST /portal/workflows {trigger, url, enabled?}`: a workflow of the org; `201` with its
/// signing secret, shown once (`Cache-Control: no-store`).
pub async fn create(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let body: NewWorkflow = ctx.data.json()?;
    shared::create_for(&ctx, &owner(&caller)?, body, caller.actor()).await
}

/// What `/openapi.json` says of `POST /portal/workflows`.
pub fn create_doc() -> Doc {
    Doc::new("A new workflow of the org; its signing secret is shown once")
        .query::<PortalQuery>()
        .body::<NewWorkflow>()
        .ok::<CreatedWorkflowView>(201)
        .errors(&["conflict"])
}

/// `PATCH /portal/workflows/:id {trigger?, url?, enabled?}` (another org's is `404`).
pub async fn update(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let patch: WorkflowPatch = ctx.data.json()?;
    let id = shared::route_id(&ctx);
    let workflow = workflows::update(&ctx, &owner(&caller)?, &id, patch, caller.actor()).await?;
    response::ok(&WorkflowView::from(workflow))
}

/// What `/openapi.json` says of `PATCH /portal/workflows/:id`.
pub fn update_doc() -> Doc {
    Doc::new("Change a workflow of the org: its trigger, URL, or whether it is enabled")
        .query::<PortalQuery>()
        .body::<WorkflowPatch>()
        .ok::<WorkflowView>(200)
}

/// `DELETE /portal/workflows/:id` (another org's is `404`).
pub async fn delete(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    shared::delete_for(&ctx, &owner(&caller)?, caller.actor()).await
}

/// What `/openapi.json` says of `DELETE /portal/workflows/:id`.
pub fn delete_doc() -> Doc {
    Doc::new("Delete a workflow of the org; its pending deliveries fail")
        .query::<PortalQuery>()
        .ok::<DeletedWorkflowView>(200)
        .errors(&["payload_too_large"])
}

/// `GET /portal/workflows/:id/deliveries`: the workflow's deliveries, newest first, each with
/// its status and attempts.
pub async fn deliveries(
    req: Request,
    ctx: Ctx,
    caller: PortalCaller,
) -> Result<Response, AppError> {
    shared::deliveries_for(&req, &ctx, &owner(&caller)?).await
}

/// What `/openapi.json` says of `GET /portal/workflows/:id/deliveries`.
pub fn deliveries_doc() -> Doc {
    Doc::new("A workflow's deliveries, newest first, with their status and attempts")
        .query::<PortalPageQuery>()
        .ok::<DeliveryPageView>(200)
}
