//! The developer's own plan (`/verify-auth` and `/create-checkout`): a developer
//! signed in with Tollgate (any user token, or a usage API key) has their own calls counted
//! against their plan's `calls_per_month`, and buys a bigger plan through Stripe Checkout.

use serde::Deserialize;
use worker::{Request, Response};

use super::quota_refusal;
use super::views::CallUsageAnswer;
use crate::billing::http::views::CheckoutView;
use crate::billing::http::{self as billing, CheckoutBody};
use crate::error::AppError;
use crate::http::doc::{Doc, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC, REPLAYED, REPLAYED_DOC};
use crate::http::{header, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::metering::rules as meter;
use crate::metering::service::Count;
use crate::platforms::service as platforms;

/// A `POST /verify-auth` body (optional: without one, one call is counted). Other fields a
/// client sends along are ignored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct VerifyAuthBody {
    /// An idempotency key (or send `Idempotency-Key`): a retry with it counts nothing again.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `POST /verify-auth`: counts one call of the caller against their plan's monthly
/// `calls_per_month`, exactly, and answers as `POST /api/data` does (the `tier` is the plan);
/// `402` with the usage when it does not fit (nothing counted).
pub async fn verify_auth(
    req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: VerifyAuthBody = billing::optional_body(&ctx)?;
    let key = meter::idempotency_key(
        header(&req, IDEMPOTENCY_KEY).as_deref(),
        body.request_id.as_deref(),
        false,
    )?;
    let counted = platforms::count_developer_call(&ctx, &principal.user, key.as_deref()).await?;
    let plan = &counted.plan.id;
    match counted.count {
        Count::Admitted {
            replayed,
            period,
            quota,
            ..
        } => {
            let resp = response::ok(&CallUsageAnswer::new(true, plan, &quota, &period))?;
            if replayed {
                response::set(resp.headers(), "Idempotent-Replayed", "true");
            }
            Ok(resp)
        }
        Count::Refused { period, quota } => {
            let answer = CallUsageAnswer::new(false, plan, &quota, &period);
            let message = format!(
                "the {plan} plan's {} calls this period are used up",
                quota.limit.unwrap_or_default()
            );
            quota_refusal(&ctx, &answer, message)
        }
    }
}

/// What `/openapi.json` says of `POST /verify-auth`.
pub fn verify_auth_doc() -> Doc {
    Doc::new(
        "Count one of the caller's calls against their plan's monthly calls (exactly; \
         402 with the usage when it does not fit)",
    )
    .optional_body::<VerifyAuthBody>()
    .ok::<CallUsageAnswer>(200)
    .response_header(REPLAYED, REPLAYED_DOC)
    .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
    .errors(&["quota_exceeded"])
}

/// `POST /create-checkout` `{plan?, success_url?, cancel_url?, request_id?}` (the body may be
/// empty): a Stripe Checkout for the caller's upgrade to `plan`, by default
/// `PLATFORM_UPGRADE_PLAN`, as `POST /api/subscriptions/checkout` answers.
pub async fn create_checkout(
    req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: CheckoutBody = billing::optional_body(&ctx)?;
    let config = &ctx.data.config;
    let id = match body.plan.as_deref() {
        Some(id) => id,
        None => config.billing.platform_upgrade_plan()?,
    };
    let plan = billing::plan(config, id)?;
    response::ok(&billing::start_checkout(&req, &ctx, &principal, &body, plan).await?)
}

/// What `/openapi.json` says of `POST /create-checkout`.
pub fn create_checkout_doc() -> Doc {
    Doc::new(
        "A Stripe Checkout for the caller's upgrade (by default to \
         PLATFORM_UPGRADE_PLAN)",
    )
    .optional_body::<CheckoutBody>()
    .ok::<CheckoutView>(200)
    .errors(&["conflict", "upstream_error"])
}
