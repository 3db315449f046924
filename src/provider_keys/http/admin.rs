//! The admin API (admin role only): users with their plan, credits and key state, credit
//! adjustments with a reason, forced key rotation.

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service as audit;
use serde::Deserialize;
use worker::{Request, Response};

use crate::billing::http::views::PageQuery;
use crate::error::AppError;
use crate::http::doc::{Doc, REPLAYED, REPLAYED_DOC};
use crate::http::{self, header, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::metering::rules as meter;
use crate::provider_keys::http::views::{
    AdminUserPageView, CreditAdjustmentView, RotatedUserKeyView,
};
use crate::provider_keys::rules::{micros_from_usd, MICROS_PER_USD};
use crate::provider_keys::service::admin;
use crate::provider_keys::service::credits::Adjustment;
use crate::storage;

/// `GET /api/admin/users`: every user, oldest first, paginated.
pub async fn list_users(
    req: Request,
    ctx: Ctx,
    _principal: Principal,
) -> Result<Response, AppError> {
    let page = http::page_request(&http::query_pairs(&req)?)?;
    let db = storage::database(&ctx.env)?;
    let (rows, next_cursor) = admin::users_page(&db, &page).await?;
    response::ok(&AdminUserPageView {
        data: rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// What `/openapi.json` says of `GET /api/admin/users`.
pub fn list_users_doc() -> Doc {
    Doc::new("Every user with their plan, credits and key state, oldest first")
        .query::<PageQuery>()
        .ok::<AdminUserPageView>(200)
}

/// The id in the path (`:id`).
fn target_id(ctx: &Ctx) -> String {
    ctx.param("id").cloned().unwrap_or_default()
}

/// A `POST /api/admin/users/:id/credits` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditsBody {
    /// Credits (USD) to add; negative to take away. Not zero, at most 1000000 either way.
    #[schema(minimum = -1000000, maximum = 1000000)]
    amount: f64,
    /// Why: 1 to 500 printable characters.
    #[schema(min_length = 1)]
    reason: String,
    /// The client's idempotency key (or send `Idempotency-Key`): 1 to 128 of
    /// `[A-Za-z0-9._:-]`.
    #[serde(default)]
    #[schema(pattern = r"^\s*[A-Za-z0-9._:-]{1,128}\s*$")]
    request_id: Option<String>,
}

/// The largest adjustment accepted at once: a million credits.
const MAX_ADJUSTMENT: i64 = 1_000_000 * MICROS_PER_USD;

/// `POST /api/admin/users/:id/credits` `{amount, reason, request_id?}`: adds (or with a
/// negative amount, takes) credits, recorded in the ledger with the reason and the admin.
/// Idempotent on `request_id` / `Idempotency-Key`.
pub async fn adjust_credits(
    req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: CreditsBody = ctx.data.json()?;
    let amount = micros_from_usd(body.amount)
        .filter(|a| *a != 0 && a.abs() <= MAX_ADJUSTMENT)
        .ok_or_else(|| {
            AppError::invalid(
                "amount",
                "must be a non-zero number of credits, at most 1000000 either way",
            )
        })?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "reason",
            "must be 1 to 500 printable characters",
        ));
    }
    let key = meter::idempotency_key(
        header(&req, "Idempotency-Key").as_deref(),
        body.request_id.as_deref(),
        false,
    )?;
    let db = storage::database(&ctx.env)?;
    let adjustment = Adjustment {
        amount,
        reason,
        actor_id: &principal.user.id,
        idempotency_key: key.as_deref(),
    };
    let (user_id, line, replayed) =
        admin::adjust_credits(&db, &target_id(&ctx), adjustment).await?;
    if !replayed {
        audit::after(
            &ctx.env,
            &ctx.data,
            Entry::new(Actor::User(&principal.user.id), Action::CreditsAdjusted)
                .target(Target::user(&user_id))
                .with("amount_micros", amount)
                .with("reason", reason),
        )
        .await;
    }
    let mut resp = response::ok(&CreditAdjustmentView {
        user_id,
        adjustment: line.try_into()?,
    })?;
    if replayed {
        response::set(resp.headers_mut(), "Idempotent-Replayed", "true");
    }
    Ok(resp)
}

/// What `/openapi.json` says of `POST /api/admin/users/:id/credits`.
pub fn adjust_credits_doc() -> Doc {
    Doc::new("Add or take a user's credits, with a reason")
        .body::<CreditsBody>()
        .ok::<CreditAdjustmentView>(200)
        .response_header(REPLAYED, REPLAYED_DOC)
        .errors(&["not_found", "conflict"])
}

/// `POST /api/admin/users/:id/rotate-key`: the user's spend so far is deducted and their
/// OpenRouter key replaced (the old one deleted). The new key is not shown to the admin.
pub async fn rotate_user_key(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let db = storage::database(&ctx.env)?;
    let config = &ctx.data.config;
    let (user_id, answer) = admin::rotate_key(&db, config, &target_id(&ctx)).await?;
    audit::after(
        &ctx.env,
        &ctx.data,
        Entry::new(Actor::User(&principal.user.id), Action::ProviderKeyRotated)
            .target(Target::user(&user_id)),
    )
    .await;
    response::ok(&RotatedUserKeyView::new(config, user_id, &answer))
}

/// What `/openapi.json` says of `POST /api/admin/users/:id/rotate-key`.
pub fn rotate_user_key_doc() -> Doc {
    Doc::new("Replace a user's OpenRouter key, deducting its spend")
        .ok::<RotatedUserKeyView>(200)
        .errors(&["not_found", "conflict", "upstream_error"])
}
