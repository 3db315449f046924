//! The portal's workflows: the org's automations (a trigger and a signed outgoing webhook),
//! listed with their deliveries for its members and made, changed and deleted by its admins
//! or staff, through the workflows capability, always for the org the pipeline resolved.

use worker::{Request, Response};

use crate::error::AppError;
use crate::http::{self, response, Ctx};
use crate::orgs::service::PortalCaller;
use crate::workflows::http::{
    CreatedWorkflowView, DeletedWorkflowView, DeliveryPageView, DeliveryView, WorkflowListView,
    WorkflowView,
};
use crate::workflows::rules::Owner;
use crate::workflows::service::{self as workflows, NewWorkflow, WorkflowPatch};

fn owner(caller: &PortalCaller) -> Result<Owner, AppError> {
    Ok(Owner::org(&caller.org()?.id))
}

fn workflow_id(ctx: &Ctx) -> String {
    ctx.param("id").cloned().unwrap_or_default()
}

/// `GET /portal/workflows`: the org's workflows, oldest first (never a secret).
pub async fn list(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let found = workflows::list(&ctx, &owner(&caller)?).await?;
    response::ok(&WorkflowListView {
        data: found.into_iter().map(WorkflowView::from).collect(),
    })
}

/// `POST /portal/workflows {trigger, url, enabled?}`: a workflow of the org; `201` with its
/// signing secret, shown once (`Cache-Control: no-store`).
pub async fn create(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let body: NewWorkflow = ctx.data.json()?;
    let (workflow, secret) =
        workflows::create(&ctx, &owner(&caller)?, body, caller.actor()).await?;
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

/// `PATCH /portal/workflows/:id {trigger?, url?, enabled?}` (another org's is `404`).
pub async fn update(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let patch: WorkflowPatch = ctx.data.json()?;
    let workflow = workflows::update(
        &ctx,
        &owner(&caller)?,
        &workflow_id(&ctx),
        patch,
        caller.actor(),
    )
    .await?;
    response::ok(&WorkflowView::from(workflow))
}

/// `DELETE /portal/workflows/:id` (another org's is `404`).
pub async fn delete(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let id = workflow_id(&ctx);
    workflows::delete(&ctx, &owner(&caller)?, &id, caller.actor()).await?;
    response::ok(&DeletedWorkflowView { id, deleted: true })
}

/// `GET /portal/workflows/:id/deliveries`: the workflow's deliveries, newest first, each with
/// its status and attempts.
pub async fn deliveries(
    req: Request,
    ctx: Ctx,
    caller: PortalCaller,
) -> Result<Response, AppError> {
    let page = http::page_request(&http::query_pairs(&req)?)?;
    let (list, next_cursor) =
        workflows::deliveries(&ctx, &owner(&caller)?, &workflow_id(&ctx), &page).await?;
    response::ok(&DeliveryPageView {
        data: list.into_iter().map(DeliveryView::from).collect(),
        next_cursor,
    })
}
