//! The platform endpoints: developer credentials and registration, tiers, the dashboard,
//! and counting and reading an end user's calls.

pub mod developer;
pub mod views;

use worker::{Request, Response};

use crate::billing::http::{client_key, portal_return_url, CheckoutUrls};
use crate::error::AppError;
use crate::http::doc::{Doc, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC, REPLAYED, REPLAYED_DOC};
use crate::http::{self, header, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::metering::rules as meter;
use crate::metering::service::Count;
use crate::platforms::rules::{self, MAX_AMOUNT};
use crate::platforms::service::{self as platforms, Tenant, USER_ID_HEADER, USER_PLAN_HEADER};
use views::{
    CallCountsView, CallUsageAnswer, CredentialsView, DashboardView, DataBody, EndUserCheckoutBody,
    EndUserCheckoutView, EndUserCountsView, EndUserPortalBody, EndUserPortalView,
    IssuedCredentialsView, RegisterBody, RegisteredView, RevenueView, TiersBody, TiersQuery,
    TiersView,
};

/// What `/openapi.json` says of [`USER_ID_HEADER`].
const USER_ID_DOC: &str =
    "With a platform key: the end user this call is for, as the platform names them (1 to 128 \
     visible ASCII characters). Required with a platform key; ignored with an end-user token.";
/// What `/openapi.json` says of [`USER_PLAN_HEADER`].
const USER_PLAN_DOC: &str =
    "With a platform key: the end user's tier for this call, chosen among the platform's \
     unpaid tiers (price 0); a tier the platform lacks, or a paid one the end user has not \
     paid for, is 400 and counts nothing. Once the end user has paid, the tier they paid for \
     applies whatever this says. Without it: the paid tier, else the platform's first unpaid \
     one.";

/// `402 quota_exceeded` in the error envelope, with the usage beside it (as the answer of an
/// admitted call shows it), so a client sees how far over it is without another call.
fn quota_refusal(
    ctx: &Ctx,
    usage: &CallUsageAnswer,
    message: String,
) -> Result<Response, AppError> {
    let err = AppError::QuotaExceeded(message);
    ctx.data.set_error_code(err.code());
    let mut body = err.envelope(&ctx.data.request_id);
    let extra =
        serde_json::to_value(usage).map_err(|e| AppError::Internal(format!("usage view: {e}")))?;
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    response::json(402, &body)
}

/// `POST /api/data`: counts calls for the end user against their tier's monthly limit,
/// exactly; `402` with the usage when they do not fit (nothing counted).
pub async fn data(req: Request, ctx: Ctx, tenant: Tenant) -> Result<Response, AppError> {
    let body: DataBody = if ctx.data.raw_body().iter().all(u8::is_ascii_whitespace) {
        DataBody::default()
    } else {
        ctx.data.json()?
    };
    let amount = body.amount.unwrap_or(1);
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(AppError::invalid(
            "amount",
            format!("must be a whole number from 1 to {MAX_AMOUNT}"),
        ));
    }
    let key = meter::idempotency_key(
        header(&req, IDEMPOTENCY_KEY).as_deref(),
        body.request_id.as_deref(),
        false,
    )?;
    let counted = platforms::count_calls(&ctx, &tenant, amount, key.as_deref()).await?;
    match counted.count {
        Count::Admitted {
            replayed,
            period,
            quota,
            ..
        } => {
            let answer = CallUsageAnswer::new(true, &counted.tier.id, &quota, &period);
            let resp = response::ok(&answer)?;
            if replayed {
                response::set(resp.headers(), "Idempotent-Replayed", "true");
            }
            Ok(resp)
        }
        Count::Refused { period, quota } => {
            let answer = CallUsageAnswer::new(false, &counted.tier.id, &quota, &period);
            let message = format!(
                "{amount} call(s) do not fit the {} tier: {} of {} remain this period",
                counted.tier.id,
                quota.remaining().unwrap_or_default(),
                quota.limit.unwrap_or_default()
            );
            quota_refusal(&ctx, &answer, message)
        }
    }
}

/// What `/openapi.json` says of `POST /api/data`.
pub fn data_doc() -> Doc {
    Doc::new(
        "Count an end user's calls against their tier's monthly limit (exactly; 402 \
         with the usage when they do not fit)",
    )
    .optional_body::<DataBody>()
    .ok::<CallUsageAnswer>(200)
    .response_header(REPLAYED, REPLAYED_DOC)
    .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
    .header(USER_ID_HEADER, USER_ID_DOC)
    .header(USER_PLAN_HEADER, USER_PLAN_DOC)
    .errors(&["quota_exceeded"])
}

/// `GET /api/usage`: the end user's calls this period, counting nothing; `allowed` says
/// whether one more call would be admitted.
pub async fn usage(_req: Request, ctx: Ctx, tenant: Tenant) -> Result<Response, AppError> {
    let (tier, quota) = platforms::usage(&ctx, &tenant).await?;
    let allowed = quota.quota.admits(1);
    response::ok(&CallUsageAnswer::new(
        allowed,
        &tier.id,
        &quota.quota,
        &quota.period,
    ))
}

/// What `/openapi.json` says of `GET /api/usage`.
pub fn usage_doc() -> Doc {
    Doc::new("An end user's calls this period, counting nothing")
        .ok::<CallUsageAnswer>(200)
        .header(USER_ID_HEADER, USER_ID_DOC)
        .header(USER_PLAN_HEADER, USER_PLAN_DOC)
}

/// `GET /api/tiers`: a platform's tiers, by `?platform_id=` (public) or by the caller's
/// platform key.
pub async fn tiers(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let platform_id = http::query_pairs(&req)?
        .into_iter()
        .find(|(name, _)| name == "platform_id")
        .map(|(_, value)| value);
    let platform = match platform_id {
        Some(id) => platforms::public_tiers(&ctx, &id).await?,
        None if header(&req, "Authorization").is_some() => {
            platforms::authenticate(&req, &ctx, false).await?.platform
        }
        None => {
            return Err(AppError::invalid(
                "platform_id",
                "is required without a platform key",
            ))
        }
    };
    response::ok(&TiersView {
        platform_id: platform.id,
        tiers: platform.tiers,
    })
}

/// What `/openapi.json` says of `GET /api/tiers`.
pub fn tiers_doc() -> Doc {
    Doc::new("A platform's tiers: by platform_id, or the calling platform key's")
        .query::<TiersQuery>()
        .ok::<TiersView>(200)
        .errors(&["not_found", "unauthorized"])
}

/// `PUT /api/developer/tiers`: replaces the calling platform's tier list.
pub async fn put_tiers(_req: Request, ctx: Ctx, tenant: Tenant) -> Result<Response, AppError> {
    let body: TiersBody = ctx.data.json()?;
    let tiers = rules::validate_tiers(body.tiers).map_err(AppError::Validation)?;
    platforms::set_tiers(&ctx, &tenant, &tiers).await?;
    response::ok(&TiersView {
        platform_id: tenant.platform.id,
        tiers,
    })
}

/// What `/openapi.json` says of `PUT /api/developer/tiers`.
pub fn put_tiers_doc() -> Doc {
    Doc::new(
        "Replace the calling platform's tiers; each stripe_price_id is checked at \
         Stripe once, here, and must be an active monthly price of the tier's \
         price_cents and currency",
    )
    .body::<TiersBody>()
    .ok::<TiersView>(200)
    .errors(&["upstream_error", "not_configured"])
}

/// `GET /api/developer/dashboard`: the calling platform's end users, calls, revenue and
/// tiers.
pub async fn dashboard(_req: Request, ctx: Ctx, tenant: Tenant) -> Result<Response, AppError> {
    let (period, numbers) = platforms::numbers(&ctx, &tenant).await?;
    response::ok(&DashboardView {
        platform_id: tenant.platform.id,
        period: (&period).into(),
        end_users: EndUserCountsView {
            total: numbers.end_users,
            active_this_period: numbers.active_end_users,
        },
        calls: CallCountsView {
            this_period: numbers.calls_this_period,
            all_time: numbers.calls_all_time,
        },
        revenue: RevenueView {
            this_period_cents: numbers.revenue_this_period_cents,
            all_time_cents: numbers.revenue_all_time_cents,
            payments: numbers.payments,
        },
        tiers: tenant.platform.tiers,
    })
}

/// What `/openapi.json` says of `GET /api/developer/dashboard`.
pub fn dashboard_doc() -> Doc {
    Doc::new("The calling platform's end users, calls, revenue and tiers").ok::<DashboardView>(200)
}

/// `POST /api/developer/register`: a platform for an email, with its first key (shown
/// once). `409` for an email that has one; `429` past 5 registrations per IP per hour.
pub async fn register(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let body: RegisterBody = ctx.data.json()?;
    let email = crate::accounts::rules::email::normalise(&body.email)
        .map_err(|why| AppError::invalid("email", why))?;
    let name = match body.name.as_deref().map(str::trim) {
        Some(name) if name.is_empty() || name.chars().count() > 100 => {
            return Err(AppError::invalid("name", "must be 1 to 100 characters"))
        }
        Some(name) if name.chars().any(char::is_control) => {
            return Err(AppError::invalid(
                "name",
                "must not hold control characters",
            ))
        }
        other => other,
    };
    let ip = header(&req, "CF-Connecting-IP")
        .map(|ip| ip.trim().to_owned())
        .filter(|ip| !ip.is_empty() && ip.len() <= 64)
        .unwrap_or_else(|| "unknown".to_owned());
    let (platform, key) = platforms::register(&ctx, &ip, &email, name).await?;
    let view = RegisteredView {
        platform_id: platform.id,
        api_key: key.key,
        key_id: key.id,
        name: platform.name,
        tiers: platform.tiers,
        created_at: platform.created_at,
    };
    let resp = response::json(201, &view)?;
    response::set(resp.headers(), "Cache-Control", "no-store");
    Ok(resp)
}

/// What `/openapi.json` says of `POST /api/developer/register`.
pub fn register_doc() -> Doc {
    Doc::new("Register a platform for an email: its id and first key, shown once")
        .body::<RegisterBody>()
        .ok::<RegisteredView>(201)
        .errors(&["conflict", "rate_limited"])
}

/// `POST /generate-credentials`: the developer's platform (made if they have none) and a new
/// key, shown once; the key before is revoked.
pub async fn generate_credentials(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let issued = platforms::issue_credentials(&ctx, &principal.user.id).await?;
    let view = IssuedCredentialsView {
        platform_id: issued.platform.id,
        api_key: issued.key.key,
        key_id: issued.key.id,
        platform_created: issued.created,
        revoked_previous_key: issued.revoked_previous,
    };
    let resp = response::json(if issued.created { 201 } else { 200 }, &view)?;
    response::set(resp.headers(), "Cache-Control", "no-store");
    Ok(resp)
}

/// What `/openapi.json` says of `POST /generate-credentials`.
pub fn generate_credentials_doc() -> Doc {
    Doc::new(
        "The caller's platform (made if they have none) and a new platform key, shown \
         once; the key before is revoked",
    )
    .ok::<IssuedCredentialsView>(200)
    .ok::<IssuedCredentialsView>(201)
}

/// `GET /get-credentials`: the developer's platform and its live key, masked.
pub async fn get_credentials(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let (platform, key) = platforms::credentials(&ctx, &principal.user.id).await?;
    response::ok(&CredentialsView {
        platform_id: platform.id,
        created_at: platform.created_at,
        api_key: key.as_ref().map(|k| k.masked.clone()),
        key_id: key.as_ref().map(|k| k.id.clone()),
        key_created_at: key.as_ref().map(|k| k.created_at.clone()),
        last_used_at: key.and_then(|k| k.last_used_at),
    })
}

/// What `/openapi.json` says of `GET /get-credentials`.
pub fn get_credentials_doc() -> Doc {
    Doc::new("The caller's platform and its live key, masked")
        .ok::<CredentialsView>(200)
        .errors(&["not_found"])
}

/// `POST /api/create-checkout` `{tier}`: a Stripe Checkout for the end user to subscribe to
/// one of the platform's tiers; the webhook moves them to it once paid.
pub async fn create_checkout(req: Request, ctx: Ctx, tenant: Tenant) -> Result<Response, AppError> {
    let body: EndUserCheckoutBody = ctx.data.json()?;
    let config = &ctx.data.config;
    let urls = CheckoutUrls::resolve(
        config,
        body.success_url.as_deref(),
        body.cancel_url.as_deref(),
    )?;
    let key = client_key(&req, body.request_id.as_deref())?;
    let (session, tier) =
        platforms::checkout(&ctx, &tenant, &body.tier, urls.urls(), key.as_deref()).await?;
    response::ok(&EndUserCheckoutView {
        url: session.url,
        session_id: session.id,
        tier: tier.id,
    })
}

/// What `/openapi.json` says of `POST /api/create-checkout`.
pub fn create_checkout_doc() -> Doc {
    Doc::new("A Stripe Checkout for an end user to subscribe to one of the platform's tiers")
        .body::<EndUserCheckoutBody>()
        .ok::<EndUserCheckoutView>(200)
        .header(USER_ID_HEADER, USER_ID_DOC)
        .errors(&["upstream_error"])
}

/// `POST /api/customer-portal` `{return_url?}`: a Stripe Billing Portal URL for the end
/// user's customer.
pub async fn customer_portal(req: Request, ctx: Ctx, tenant: Tenant) -> Result<Response, AppError> {
    let body: EndUserPortalBody = if ctx.data.raw_body().iter().all(u8::is_ascii_whitespace) {
        EndUserPortalBody::default()
    } else {
        ctx.data.json()?
    };
    let config = &ctx.data.config;
    let url = portal_return_url(config, body.return_url.as_deref())?;
    let key = client_key(&req, None)?;
    let session = platforms::portal(&ctx, &tenant, &url, key.as_deref()).await?;
    response::ok(&EndUserPortalView {
        url: session.url,
        session_id: session.id,
    })
}

/// What `/openapi.json` says of `POST /api/customer-portal`.
pub fn customer_portal_doc() -> Doc {
    Doc::new("A Stripe Billing Portal session for an end user")
        .optional_body::<EndUserPortalBody>()
        .ok::<EndUserPortalView>(200)
        .header(USER_ID_HEADER, USER_ID_DOC)
        .errors(&["conflict", "upstream_error"])
}
