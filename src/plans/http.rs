//! Sokuji's subscription endpoints: the plan catalog, the caller's plan, and how to upgrade.

use serde_json::json;
use worker::{Request, Response};

use crate::billing::http::CheckoutBody;
use crate::error::AppError;
use crate::http::{response, Ctx};
use crate::identity::service::auth;
use crate::plans::rules::upgrade_instructions;

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

/// `POST /api/subscription/upgrade` `{plan?, success_url?, cancel_url?}` (the body may be
/// empty): upgrades to `plan`, or to the next plan up in the catalog (`409` at the top).
/// With billing configured, a Stripe Checkout URL for it, as `POST
/// /api/subscriptions/checkout` answers; without it (no `STRIPE_SECRET_KEY`), Sokuji's
/// upgrade instructions: `{instructions, upgrade_url, plan, current_plan}`, where
/// `upgrade_url` is `UPGRADE_URL` (or `null`, and the instructions say to contact the
/// operator).
pub async fn upgrade(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    let body: CheckoutBody = crate::billing::http::optional_body(&ctx)?;
    let catalog = &ctx.data.config.plans;
    let current = catalog.get_or_default(&principal.user.plan);
    let target = match body.plan.as_deref() {
        Some(id) => crate::billing::http::plan(&ctx.data.config, id)?,
        None => catalog.next_up(&current.id).ok_or_else(|| {
            AppError::Conflict(format!(
                "you are on the {} plan, the highest one that can be upgraded to",
                current.name
            ))
        })?,
    };
    if target.id == current.id {
        return Err(AppError::Conflict(format!(
            "you are already on the {} plan",
            current.name
        )));
    }
    // Instructions only where billing is simply not set up; a Stripe setting that is set but
    // invalid answers `not_configured` naming it (from the checkout) instead.
    if !ctx.data.config.billing.secret_key.is_unset() {
        return crate::billing::http::start_checkout(&req, &ctx, &principal, &body, target).await;
    }
    let upgrade_url = ctx.data.config.billing.upgrade_url()?;
    response::ok(&json!({
        "instructions": upgrade_instructions(current, target, upgrade_url),
        "upgrade_url": upgrade_url,
        "plan": target.id,
        "current_plan": current.id,
    }))
}
