//! The plan endpoints: the plan catalog, the caller's plan, and how to upgrade.

use serde::Serialize;
use worker::{Request, Response};

use crate::billing::http::views::CheckoutView;
use crate::billing::http::CheckoutBody;
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::identity::service::auth::Principal;
use crate::plans::rules::{upgrade_instructions, Plan};

/// Every plan, and the one new users start on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanCatalogView {
    /// Every plan, in catalog order.
    pub data: Vec<Plan>,
    /// The id of the plan new users start on.
    pub default_plan: String,
}

/// Whether a plan is in force (a plan on the `/api/subscription/*` endpoints always is).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Active,
}

/// Who changes the caller's plan: Clerk (users signed in with Clerk, whose plan is synced to
/// Clerk's metadata) or Tollgate.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManagedBy {
    Clerk,
    Tollgate,
}

/// The caller's plan and what it allows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CurrentPlanView {
    pub plan: Plan,
    pub status: PlanStatus,
    pub managed_by: ManagedBy,
}

/// How to upgrade when billing is not configured here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpgradeInstructionsView {
    /// What to do, in a sentence.
    pub instructions: String,
    /// Where to upgrade (`UPGRADE_URL`), or `null`: contact the operator.
    #[schema(required = true)]
    pub upgrade_url: Option<String>,
    /// The plan to upgrade to.
    pub plan: String,
    /// The caller's plan now.
    pub current_plan: String,
}

/// An upgrade: a Stripe Checkout to pay for it where billing is configured, else the
/// instructions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum UpgradeView {
    Checkout(CheckoutView),
    Instructions(UpgradeInstructionsView),
}

/// `GET /api/subscription/plans`: every plan (public).
pub async fn plans(_req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let catalog = &ctx.data.config.plans;
    response::ok(&PlanCatalogView {
        data: catalog.plans().to_vec(),
        default_plan: catalog.default_plan().id.clone(),
    })
}

/// What `/openapi.json` says of `GET /api/subscription/plans` and `GET /api/subscriptions/plans`.
pub fn plans_doc() -> Doc {
    Doc::new("Every plan, and the one new users start on").ok::<PlanCatalogView>(200)
}

/// `GET /api/subscription/current`: the caller's plan and what it allows.
pub async fn current(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let plan = ctx.data.config.plans.get_or_default(&principal.user.plan);
    response::ok(&CurrentPlanView {
        plan: plan.clone(),
        status: PlanStatus::Active,
        managed_by: if principal.user.auth_source
            == crate::identity::rules::status::AuthSource::Clerk
        {
            ManagedBy::Clerk
        } else {
            ManagedBy::Tollgate
        },
    })
}

/// What `/openapi.json` says of `GET /api/subscription/current`.
pub fn current_doc() -> Doc {
    Doc::new("The caller's plan and what it allows").ok::<CurrentPlanView>(200)
}

/// `POST /api/subscription/upgrade` `{plan?, success_url?, cancel_url?}` (the body may be
/// empty): upgrades to `plan`, or to the next plan up in the catalog (`409` at the top).
/// With billing configured, a Stripe Checkout URL for it, as `POST
/// /api/subscriptions/checkout` answers; without it (no `STRIPE_SECRET_KEY`), the original
/// upgrade instructions: `{instructions, upgrade_url, plan, current_plan}`, where
/// `upgrade_url` is `UPGRADE_URL` (or `null`, and the instructions say to contact the
/// operator).
pub async fn upgrade(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
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
        let checkout =
            crate::billing::http::start_checkout(&req, &ctx, &principal, &body, target).await?;
        return response::ok(&UpgradeView::Checkout(checkout));
    }
    let upgrade_url = ctx.data.config.billing.upgrade_url()?;
    response::ok(&UpgradeView::Instructions(UpgradeInstructionsView {
        instructions: upgrade_instructions(current, target, upgrade_url),
        upgrade_url: upgrade_url.map(str::to_owned),
        plan: target.id.clone(),
        current_plan: current.id.clone(),
    }))
}

/// What `/openapi.json` says of `POST /api/subscription/upgrade`.
pub fn upgrade_doc() -> Doc {
    Doc::new("Upgrade a plan: a Stripe Checkout, or how to upgrade where billing is off")
        .optional_body::<CheckoutBody>()
        .ok::<UpgradeView>(200)
        .errors(&["conflict", "upstream_error"])
}
