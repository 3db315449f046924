//! Sokuji's subscription endpoints: the plan catalog, the caller's plan, and how to upgrade.

use serde::Deserialize;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeRequest {
    plan: String,
}

/// `POST /api/subscription/upgrade` `{plan}`: a checkout needs Stripe billing, which answers
/// `not_configured` until `STRIPE_SECRET_KEY` is set (checkout itself lands with billing).
pub async fn upgrade(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let body: UpgradeRequest = ctx.data.json()?;
    let catalog = &ctx.data.config.plans;
    let Some(plan) = catalog.get(&body.plan) else {
        let known: Vec<&str> = catalog.plans().iter().map(|p| p.id.as_str()).collect();
        return Err(AppError::invalid(
            "plan",
            format!("unknown plan; one of: {}", known.join(", ")),
        ));
    };
    if plan.id == principal.user.plan {
        return Err(AppError::Conflict(format!(
            "you are already on the {} plan",
            plan.name
        )));
    }
    Err(AppError::NotConfigured {
        setting: "STRIPE_SECRET_KEY".into(),
    })
}
