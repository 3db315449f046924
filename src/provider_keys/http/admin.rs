//! The admin API (admin role only): users with their plan, credits and key state, credit
//! adjustments with a reason, forced key rotation.

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Request, Response};

use crate::core::page;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::{self, header, response, Ctx};
use crate::identity::service::auth;
use crate::identity::store::users;
use crate::metering::rules as meter;
use crate::provider_keys::http::keys::key_answer_body;
use crate::provider_keys::rules::{micros_from_usd, usd, MICROS_PER_USD};
use crate::provider_keys::service::credits::{self as credit_service, Adjustment};
use crate::provider_keys::store::credit_accounts::{self as accounts, LedgerLine, UserWithAccount};
use crate::storage as store;

fn user_item(u: &UserWithAccount) -> Value {
    let key = u.key_hash.as_ref().map(|hash| {
        json!({
            "hash": hash,
            "label": u.key_label,
            "limit": u.key_limit.map(usd),
            "usage": u.key_usage.map(usd),
            "remaining": u.key_remaining.map(usd),
            "checked_at": u.checked_ms.map(|ms| rfc3339_from_millis(ms as u64)),
        })
    });
    json!({
        "id": u.id,
        "email": u.email,
        "username": u.username,
        "plan": u.plan,
        "status": u.status,
        "created_at": u.created_at,
        // Credits exist once the user has had a key.
        "credits": u.key_hash.as_ref().and(u.credits).map(usd),
        "key": key,
        "resets": u.resets.unwrap_or(0),
        "rotations": u.rotations.unwrap_or(0),
        "pending_key_deletions": u.pending_deletions,
    })
}

/// `GET /api/admin/users`: every user, oldest first, paginated.
pub async fn list_users(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    principal.require_admin()?;
    let page = http::page_request(&http::query_pairs(&req)?)?;
    let db = store::database(&ctx.env)?;
    let mut rows = accounts::page_users(&db, page.after_pair()?, page.limit + 1).await?;
    let next_cursor = page::finish(&mut rows, page.limit, |u| [&u.created_at, &u.id]);
    let data: Vec<Value> = rows.iter().map(user_item).collect();
    response::ok(&json!({ "data": data, "next_cursor": next_cursor }))
}

/// The user named by `:id`; `not_found` if there is none.
async fn target_user(ctx: &Ctx, db: &worker::D1Database) -> Result<users::User, AppError> {
    let id = ctx.param("id").cloned().unwrap_or_default();
    users::get(db, &id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".to_owned()))
}

/// A `POST /api/admin/users/:id/credits` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditsBody {
    /// Credits (USD) to add; negative to take away.
    amount: f64,
    reason: String,
    #[serde(default)]
    request_id: Option<String>,
}

/// The largest adjustment accepted at once: a million credits.
const MAX_ADJUSTMENT: i64 = 1_000_000 * MICROS_PER_USD;

fn ledger_line(line: &LedgerLine) -> Value {
    json!({
        "id": line.id,
        "kind": line.kind,
        "amount": usd(line.amount),
        "balance_after": usd(line.balance_after),
        "reason": line.reason,
        "actor_id": line.actor_id,
        "request_id": line.idempotency_key,
        "created_at": line.created_at,
    })
}

/// `POST /api/admin/users/:id/credits` `{amount, reason, request_id?}`: adds (or with a
/// negative amount, takes) credits, recorded in the ledger with the reason and the admin.
/// Idempotent on `request_id` / `Idempotency-Key`.
pub async fn adjust_credits(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    principal.require_admin()?;
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
    let db = store::database(&ctx.env)?;
    let user = target_user(&ctx, &db).await?;
    let adjustment = Adjustment {
        amount,
        reason,
        actor_id: &principal.user.id,
        idempotency_key: key.as_deref(),
    };
    let (line, replayed) = credit_service::adjust(&db, &user.id, adjustment).await?;
    let mut resp = response::ok(&json!({ "user_id": user.id, "adjustment": ledger_line(&line) }))?;
    if replayed {
        response::set(resp.headers_mut(), "Idempotent-Replayed", "true");
    }
    Ok(resp)
}

/// `POST /api/admin/users/:id/rotate-key`: the user's spend so far is deducted and their
/// OpenRouter key replaced (the old one deleted). The new key is not shown to the admin.
pub async fn rotate_user_key(req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let principal = auth::authenticate(&req, &ctx).await?;
    principal.require_admin()?;
    let db = store::database(&ctx.env)?;
    let user = target_user(&ctx, &db).await?;
    let config = &ctx.data.config;
    let answer = credit_service::force_rotation(&db, config, &user.id).await?;
    let mut body = key_answer_body(config, &answer);
    if let Some(fields) = body.as_object_mut() {
        fields.remove("key");
        fields.insert("user_id".to_owned(), json!(user.id));
    }
    response::ok(&body)
}
