//! The subscription endpoints (`/api/subscriptions/*`) on Stripe: Checkout, the
//! Billing Portal, cancelling and changing a subscription, the caller's subscription and its
//! history, and the Stripe webhook with its admin retry and status.

pub mod views;

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service as audit;
use serde::Deserialize;
use worker::{Request, Response};

use crate::billing::service::stripe_events;
use crate::billing::service::subscriptions::{self as billing, Event, Urls};
use crate::clock::now;
use crate::config::Config;
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{self, header, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::metering::rules as meter;
use crate::plans::rules::Plan;
use crate::storage;
use crate::webhooks::rules::signed::SignedDelivery;
use crate::webhooks::service as inbox;
use views::{
    CheckoutView, CurrentSubscriptionView, HistoryPageView, PageQuery, PortalView, RetryView,
    StripeEventBody, SubscriptionChangeView, WebhookReceivedView, WebhookStatusView,
};

/// A URL the customer is sent back to: the request's, if it is on an allowed origin (never an
/// open redirect), else the configured one; `not_configured` naming the setting when neither.
fn return_url(
    config: &Config,
    requested: Option<&str>,
    field: &str,
    configured: Option<&String>,
    setting: &'static str,
) -> Result<String, AppError> {
    if let Some(url) = requested {
        let origin = worker::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|u| u.origin().ascii_serialization());
        return match origin {
            Some(origin) if config.cors.allows(&origin) => Ok(url.to_owned()),
            _ => Err(AppError::invalid(
                field,
                "must be an http(s) URL on an allowed origin (CORS_ALLOWED_ORIGINS)",
            )),
        };
    }
    configured.cloned().ok_or(AppError::NotConfigured {
        setting: setting.into(),
    })
}

/// Where Checkout sends the customer afterwards: each URL the request gives (on an allowed
/// origin), else the configured one (`STRIPE_SUCCESS_URL`, `STRIPE_CANCEL_URL`).
pub(crate) struct CheckoutUrls {
    success: String,
    cancel: String,
}

impl CheckoutUrls {
    pub(crate) fn resolve(
        config: &Config,
        success: Option<&str>,
        cancel: Option<&str>,
    ) -> Result<Self, AppError> {
        Ok(Self {
            success: return_url(
                config,
                success,
                "success_url",
                config.billing.success_url.as_ref(),
                "STRIPE_SUCCESS_URL",
            )?,
            cancel: return_url(
                config,
                cancel,
                "cancel_url",
                config.billing.cancel_url.as_ref(),
                "STRIPE_CANCEL_URL",
            )?,
        })
    }

    pub(crate) fn urls(&self) -> Urls<'_> {
        Urls {
            success: &self.success,
            cancel: &self.cancel,
        }
    }
}

/// Where the Billing Portal sends the customer back: the request's URL (on an allowed
/// origin), else `STRIPE_PORTAL_RETURN_URL`.
pub(crate) fn portal_return_url(
    config: &Config,
    requested: Option<&str>,
) -> Result<String, AppError> {
    return_url(
        config,
        requested,
        "return_url",
        config.billing.portal_return_url.as_ref(),
        "STRIPE_PORTAL_RETURN_URL",
    )
}

/// The plan a body names; `validation_failed` listing the plans otherwise.
pub(crate) fn plan<'c>(config: &'c Config, id: &str) -> Result<&'c Plan, AppError> {
    config.plans.get(id).ok_or_else(|| {
        let known: Vec<&str> = config.plans.plans().iter().map(|p| p.id.as_str()).collect();
        AppError::invalid(
            "plan",
            format!("unknown plan; one of: {}", known.join(", ")),
        )
    })
}

/// The client's idempotency key for a call that creates something at Stripe
/// (`Idempotency-Key` or `request_id`), if it sent one. It is never sent to Stripe as it is:
/// the service derives Stripe's key from it, the user and the operation.
pub(crate) fn client_key(
    req: &Request,
    body_key: Option<&str>,
) -> Result<Option<String>, AppError> {
    Ok(meter::idempotency_key(
        header(req, "Idempotency-Key").as_deref(),
        body_key,
        false,
    )?)
}

/// A checkout body (`POST /api/subscriptions/checkout`, `POST /api/subscription/upgrade`,
/// where `plan` may be left out).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// The plan to buy (a plan id with a Stripe price); required by
    /// `/api/subscriptions/checkout`, the next plan up when left out of an upgrade.
    #[serde(default)]
    pub plan: Option<String>,
    /// Where Stripe sends the customer after paying: an http(s) URL on an allowed origin
    /// (`STRIPE_SUCCESS_URL` when left out).
    #[serde(default)]
    success_url: Option<String>,
    /// Where Stripe sends the customer who gives up (`STRIPE_CANCEL_URL` when left out).
    #[serde(default)]
    cancel_url: Option<String>,
    /// The client's idempotency key (or send `Idempotency-Key`): 1 to 128 of
    /// `[A-Za-z0-9._:-]`.
    #[serde(default)]
    #[schema(pattern = r"^\s*[A-Za-z0-9._:-]{1,128}\s*$")]
    request_id: Option<String>,
}

/// `POST /api/subscriptions/checkout` `{plan, success_url?, cancel_url?}`: a Stripe Checkout
/// URL for the plan's price (the Stripe customer is created on first use).
pub async fn checkout(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: CheckoutBody = ctx.data.json()?;
    let id = body
        .plan
        .as_deref()
        .ok_or_else(|| AppError::invalid("plan", "is required"))?;
    let plan = plan(&ctx.data.config, id)?;
    response::ok(&start_checkout(&req, &ctx, &principal, &body, plan).await?)
}

/// What `/openapi.json` says of `POST /api/subscriptions/checkout`.
pub fn checkout_doc() -> Doc {
    Doc::new("A Stripe Checkout to subscribe to a plan")
        .body::<CheckoutBody>()
        .ok::<CheckoutView>(200)
        .errors(&["conflict", "upstream_error"])
}

/// A checkout of `plan` for the authenticated caller (shared with `POST /api/subscription/upgrade`).
pub async fn start_checkout(
    req: &Request,
    ctx: &Ctx,
    principal: &Principal,
    body: &CheckoutBody,
    plan: &Plan,
) -> Result<CheckoutView, AppError> {
    let config = &ctx.data.config;
    if plan.id == principal.user.plan {
        return Err(AppError::Conflict(format!(
            "you are already on the {} plan",
            plan.name
        )));
    }
    billing::price_of(plan)?;
    let urls = CheckoutUrls::resolve(
        config,
        body.success_url.as_deref(),
        body.cancel_url.as_deref(),
    )?;
    let key = client_key(req, body.request_id.as_deref())?;
    let db = storage::database(&ctx.env)?;
    let session = billing::checkout(
        &db,
        config,
        &principal.user,
        plan,
        urls.urls(),
        key.as_deref(),
    )
    .await?;
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(
            Actor::User(&principal.user.id),
            Action::SubscriptionCheckoutCreated,
        )
        .target(Target::new("checkout_session", &session.id))
        .with("plan", plan.id.as_str()),
    )
    .await;
    Ok(CheckoutView::new(session, plan))
}

/// A `POST /api/subscriptions/portal` body (it may be empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalBody {
    /// Where the portal sends the customer back: an http(s) URL on an allowed origin
    /// (`STRIPE_PORTAL_RETURN_URL` when left out).
    #[serde(default)]
    return_url: Option<String>,
}

/// Bodies that may be empty.
pub(crate) fn optional_body<T: Default + serde::de::DeserializeOwned>(
    ctx: &Ctx,
) -> Result<T, AppError> {
    if ctx.data.raw_body().iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        ctx.data.json()
    }
}

/// `POST /api/subscriptions/portal` `{return_url?}`: a Stripe Billing Portal URL.
pub async fn portal(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: PortalBody = optional_body(&ctx)?;
    let config = &ctx.data.config;
    let url = portal_return_url(config, body.return_url.as_deref())?;
    let key = client_key(&req, None)?;
    let db = storage::database(&ctx.env)?;
    let session = billing::portal(&db, config, &principal.user, &url, key.as_deref()).await?;
    response::ok(&PortalView::from(session))
}

/// What `/openapi.json` says of `POST /api/subscriptions/portal`.
pub fn portal_doc() -> Doc {
    Doc::new("A Stripe Billing Portal session for the caller")
        .optional_body::<PortalBody>()
        .ok::<PortalView>(200)
        .errors(&["conflict", "upstream_error"])
}

/// A `POST /api/subscriptions/cancel` body (it may be empty).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// `true` (the default): the plan lasts until the period ends; `false` cancels now.
    #[serde(default = "yes")]
    #[schema(default = true)]
    at_period_end: bool,
}

impl Default for CancelBody {
    fn default() -> Self {
        Self {
            at_period_end: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// `POST /api/subscriptions/cancel` `{at_period_end?}` (default true: the plan lasts until
/// the period ends; false cancels now and moves the user to the default plan).
pub async fn cancel(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: CancelBody = optional_body(&ctx)?;
    let db = storage::database(&ctx.env)?;
    let config = &ctx.data.config;
    let subscription = billing::cancel(
        &db,
        config,
        &principal.user,
        body.at_period_end,
        &ctx.data.request_id,
    )
    .await?;
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(
            Actor::User(&principal.user.id),
            Action::SubscriptionCancelled,
        )
        .target(Target::new("subscription", &subscription.id))
        .with("at_period_end", body.at_period_end),
    )
    .await;
    response::ok(&SubscriptionChangeView::try_from(subscription)?)
}

/// What `/openapi.json` says of `POST /api/subscriptions/cancel`.
pub fn cancel_doc() -> Doc {
    Doc::new("Cancel the caller's subscription, at the period's end or now")
        .optional_body::<CancelBody>()
        .ok::<SubscriptionChangeView>(200)
        .errors(&["not_found", "conflict", "upstream_error"])
}

/// A `PUT /api/subscriptions/update` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The plan to move to (a plan id with a Stripe price).
    plan: String,
}

/// `PUT /api/subscriptions/update` `{plan}`: moves the subscription to that plan's price
/// (prorated); the plan changes at once.
pub async fn update(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: UpdateBody = ctx.data.json()?;
    let config = &ctx.data.config;
    let plan = plan(config, &body.plan)?;
    billing::price_of(plan)?;
    let db = storage::database(&ctx.env)?;
    let subscription =
        billing::change_plan(&db, config, &principal.user, plan, &ctx.data.request_id).await?;
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(Actor::User(&principal.user.id), Action::SubscriptionUpdated)
            .target(Target::new("subscription", &subscription.id))
            .with("plan", plan.id.as_str()),
    )
    .await;
    response::ok(&SubscriptionChangeView::try_from(subscription)?)
}

/// What `/openapi.json` says of `PUT /api/subscriptions/update`.
pub fn update_doc() -> Doc {
    Doc::new("Move the caller's subscription to another plan (prorated)")
        .body::<UpdateBody>()
        .ok::<SubscriptionChangeView>(200)
        .errors(&["not_found", "conflict", "upstream_error"])
}

/// `GET /api/subscriptions/current`: the caller's plan and subscription (or `null`).
pub async fn current(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let db = storage::database(&ctx.env)?;
    let subscription = billing::current(&db, &principal.user.id).await?;
    let plan = ctx.data.config.plans.get_or_default(&principal.user.plan);
    response::ok(&CurrentSubscriptionView {
        plan: plan.clone(),
        subscription: subscription.map(TryInto::try_into).transpose()?,
    })
}

/// What `/openapi.json` says of `GET /api/subscriptions/current`.
pub fn current_doc() -> Doc {
    Doc::new("The caller's plan and Stripe subscription").ok::<CurrentSubscriptionView>(200)
}

/// `GET /api/subscriptions/history`: every change of the caller's subscriptions, newest
/// first, paginated.
pub async fn history(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let page = http::page_request(&http::query_pairs(&req)?)?;
    let db = storage::database(&ctx.env)?;
    let (lines, next_cursor) = billing::history(&db, &principal.user.id, &page).await?;
    response::ok(&HistoryPageView {
        data: lines
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// What `/openapi.json` says of `GET /api/subscriptions/history`.
pub fn history_doc() -> Doc {
    Doc::new("Every change of the caller's subscriptions, newest first")
        .query::<PageQuery>()
        .ok::<HistoryPageView>(200)
}

/// `POST /api/webhooks/stripe` and `POST /webhook/stripe`: Stripe's events. The pipeline has
/// checked the signature over the raw body (any `v1`, 300 s tolerance; the route is
/// `Signed(Stripe)`); the event is stored before it is answered; a duplicate changes
/// nothing; a failure to apply it is recorded and retried, and still answered 200 (the event
/// is safe).
pub async fn webhook(
    _req: Request,
    ctx: Ctx,
    delivery: SignedDelivery,
) -> Result<Response, AppError> {
    let config = &ctx.data.config;
    let body = delivery.body.as_slice();
    let payload =
        std::str::from_utf8(body).map_err(|_| AppError::invalid("body", "is not UTF-8"))?;
    let event = Event::parse(body).map_err(|problem| AppError::invalid("body", problem))?;
    let db = storage::database(&ctx.env)?;
    let receipt = stripe_events::receive(&db, config, &event, payload, &ctx.data.log).await?;
    response::ok(&WebhookReceivedView::try_from(receipt)?)
}

/// What `/openapi.json` says of `POST /api/webhooks/stripe`.
pub fn webhook_doc() -> Doc {
    Doc::new("Stripe's events (signed)")
        .body::<StripeEventBody>()
        .ok::<WebhookReceivedView>(200)
        .errors(&["unauthorized"])
}

/// What `/openapi.json` says of `POST /webhook/stripe`.
pub fn platform_webhook_doc() -> Doc {
    Doc::new("Stripe's events (signed; the platform API's path)")
        .body::<StripeEventBody>()
        .ok::<WebhookReceivedView>(200)
        .errors(&["unauthorized"])
}

/// `POST /api/webhooks/retry` (admin): retries failed events now.
pub async fn retry(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let db = storage::database(&ctx.env)?;
    let report = inbox::retry_every_provider(&db, &ctx.data.config, &ctx.data.log).await?;
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(Actor::User(&principal.user.id), Action::WebhookRetried)
            .with("retried", report.retried)
            .with("processed", report.processed)
            .with("failed", report.failed),
    )
    .await;
    response::ok(&RetryView::new(report, now()))
}

/// What `/openapi.json` says of `POST /api/webhooks/retry`.
pub fn retry_doc() -> Doc {
    Doc::new("Retry failed Stripe events now").ok::<RetryView>(200)
}

/// `GET /api/webhooks/status` (admin): deliveries by provider and status, the latest failures.
pub async fn status(_req: Request, ctx: Ctx, _principal: Principal) -> Result<Response, AppError> {
    let db = storage::database(&ctx.env)?;
    let (counts, failures) = inbox::status(&db).await?;
    response::ok(&WebhookStatusView::new(counts, failures)?)
}

/// What `/openapi.json` says of `GET /api/webhooks/status`.
pub fn status_doc() -> Doc {
    Doc::new("Webhook deliveries by provider and status, and the latest failures")
        .ok::<WebhookStatusView>(200)
}
