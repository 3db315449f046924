//! Sokuji's subscription endpoints: the plan catalog, the caller's plan, and how to upgrade.

use serde_json::json;
use worker::{Request, Response};

use crate::auth;
use crate::error::AppError;
use crate::http::{response, Ctx};

/// `GET /api/subscription/plans`: every plan (public).
pub async fn plans(_req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let catalog = &ctx.data.config.plans;
    response::ok(&json!({
        "data": catalog.plans(),
        "default_plan": catalog.default_plan().id,
    }))
}

/// `GET /api/subscription/current`: the caller's plan and what it allows.
pub async fn current(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let plan = ctx.data.config.plans.get_or_default(&principal.user.plan);
    response::ok(&json!({
        "plan": plan,
        "status": "active",
        "managed_by": if principal.user.auth_source == "clerk" { "clerk" } else { "tollgate" },
    }))
}

/// `POST /api/subscription/upgrade` `{plan, success_url?, cancel_url?}`: a Stripe Checkout
/// URL for the plan, as `POST /api/subscriptions/checkout` answers it.
pub async fn upgrade(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    super::billing::start_checkout(&req, &ctx, &principal).await
}
