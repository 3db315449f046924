//! The token endpoints (`/api/tokens/*`): balance, transactions, analytics, the pack catalog
//! and buying a pack through Stripe Checkout, spending, admin grants, and social tasks; and
//! the views they answer with.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use worker::{Request, Response};

use crate::audit::service::Occasion;
use crate::billing::http::{client_key, CheckoutUrls};
use crate::core::time::{millis_from_rfc3339, rfc3339_from_millis};
use crate::error::AppError;
use crate::http::doc::{Doc, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC, REPLAYED, REPLAYED_DOC};
use crate::http::{self, header, response, Ctx};
use crate::identity::service::auth::Principal;
use crate::ledger::rules::{self, Kind};
use crate::ledger::service::{self as ledger, DayKind, Entry, Filter, Grant, Recorded, Spend};
use crate::metering::rules as meter;
use crate::storage;

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TokenEntryView)]
pub struct EntryView {
    /// Increases with every entry.
    pub id: i64,
    pub kind: Kind,
    /// Signed: credits are positive, debits negative.
    pub amount: i64,
    /// The balance right after this entry.
    pub balance_after: i64,
    /// For a refund or dispute: the tokens it should have taken back but could not (they were
    /// spent); they are owed as debt.
    pub shortfall: i64,
    /// For a credit: how much of `amount` repaid debt instead of reaching the balance
    /// (`balance_after` is the previous balance plus `amount` less `repaid`).
    pub repaid: i64,
    /// The debt right after this entry.
    pub debt_after: i64,
    #[schema(required = true)]
    pub reason: Option<String>,
    /// A client's reference, a pack's payment intent, or a social task's id.
    #[schema(required = true)]
    pub reference: Option<String>,
    /// Who made it: a user id, or `system:stripe`.
    pub actor: String,
    pub created_at: String,
}

impl From<Entry> for EntryView {
    fn from(e: Entry) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            amount: e.amount,
            balance_after: e.balance_after,
            shortfall: e.shortfall,
            repaid: e.repaid,
            debt_after: e.debt_after,
            reason: e.reason,
            reference: e.reference,
            actor: e.actor,
            created_at: e.created_at,
        }
    }
}

/// The caller's balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBalanceView {
    pub balance: i64,
    /// Tokens owed: what refunds and disputes could not take back because they were spent;
    /// every credit repays it first. 0 when none.
    pub debt: i64,
    /// When it last changed; absent before the first entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `GET /api/tokens/balance`.
pub async fn balance(_req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let db = storage::database(&ctx.env)?;
    let standing = ledger::balance(&db, &principal.user.id).await?;
    response::ok(&TokenBalanceView {
        balance: standing.balance,
        debt: standing.debt,
        updated_at: standing.updated_at,
    })
}

/// What `/openapi.json` says of `GET /api/tokens/balance`.
pub fn balance_doc() -> Doc {
    Doc::new("The caller's token balance").ok::<TokenBalanceView>(200)
}

/// `?limit=&cursor=&kind=&from=&to=`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionsQuery {
    /// Entries per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Only entries of this kind.
    pub kind: Option<Kind>,
    /// Entries made at or after this RFC 3339 UTC time.
    pub from: Option<String>,
    /// Entries made before this RFC 3339 UTC time.
    pub to: Option<String>,
}

/// A page of entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenTransactionsView {
    pub data: Vec<EntryView>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An RFC 3339 time from the query, normalised; `validation_failed` otherwise.
fn time(field: &str, value: &str) -> Result<u64, AppError> {
    millis_from_rfc3339(value)
        .ok_or_else(|| AppError::invalid(field, "must be an RFC 3339 UTC time"))
}

/// `GET /api/tokens/transactions`.
pub async fn transactions(
    req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let pairs = http::query_pairs(&req)?;
    let page = http::page_request(&pairs)?;
    let (mut kind, mut from, mut to) = (None, None, None);
    for (name, value) in &pairs {
        match name.as_str() {
            "kind" => {
                kind = Some(Kind::from_name(value).ok_or_else(|| {
                    AppError::invalid(
                        "kind",
                        "must be one of purchase, use, grant, social_reward, refund, adjustment",
                    )
                })?)
            }
            "from" => from = Some(rfc3339_from_millis(time("from", value)?)),
            "to" => to = Some(rfc3339_from_millis(time("to", value)?)),
            _ => {}
        }
    }
    let filter = Filter {
        kind,
        from: from.as_deref(),
        to: to.as_deref(),
    };
    let db = storage::database(&ctx.env)?;
    let (rows, next_cursor) = ledger::transactions(&db, &principal.user.id, &filter, &page).await?;
    response::ok(&TokenTransactionsView {
        data: rows.into_iter().map(EntryView::from).collect(),
        next_cursor,
    })
}

/// What `/openapi.json` says of `GET /api/tokens/transactions`.
pub fn transactions_doc() -> Doc {
    Doc::new("The caller's ledger entries, newest first")
        .query::<TransactionsQuery>()
        .ok::<TokenTransactionsView>(200)
}

/// `?from=&to=`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// RFC 3339 UTC, inclusive; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339 UTC, exclusive; default now. At most 366 days after `from`.
    pub to: Option<String>,
}

/// Earned and spent tokens.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct TokenSumsView {
    /// The sum of credits.
    pub earned: i64,
    /// The sum of debits, as a positive number.
    pub spent: i64,
}

/// One kind's sums.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenKindSumsView {
    pub kind: Kind,
    pub earned: i64,
    pub spent: i64,
}

/// One UTC day's sums, overall and per kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDayView {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub earned: i64,
    pub spent: i64,
    pub by_kind: Vec<TokenKindSumsView>,
}

/// The caller's tokens earned and spent per day and kind in a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnalyticsView {
    pub from: String,
    pub to: String,
    /// Days with entries, oldest first.
    pub days: Vec<TokenDayView>,
    /// Per kind over the range.
    pub by_kind: Vec<TokenKindSumsView>,
    pub totals: TokenSumsView,
}

impl TokenAnalyticsView {
    fn new(from: String, to: String, rows: Vec<DayKind>) -> Self {
        let mut days: Vec<TokenDayView> = Vec::new();
        let mut by_kind: Vec<TokenKindSumsView> = Vec::new();
        let mut totals = TokenSumsView::default();
        for row in rows {
            let kind = row.kind;
            if days.last().map(|d| d.date.as_str()) != Some(row.day.as_str()) {
                days.push(TokenDayView {
                    date: row.day.clone(),
                    earned: 0,
                    spent: 0,
                    by_kind: Vec::new(),
                });
            }
            if let Some(day) = days.last_mut() {
                day.earned += row.earned;
                day.spent += row.spent;
                day.by_kind.push(TokenKindSumsView {
                    kind,
                    earned: row.earned,
                    spent: row.spent,
                });
            }
            match by_kind.iter_mut().find(|k| k.kind == kind) {
                Some(sums) => {
                    sums.earned += row.earned;
                    sums.spent += row.spent;
                }
                None => by_kind.push(TokenKindSumsView {
                    kind,
                    earned: row.earned,
                    spent: row.spent,
                }),
            }
            totals.earned += row.earned;
            totals.spent += row.spent;
        }
        Self {
            from,
            to,
            days,
            by_kind,
            totals,
        }
    }
}

/// `GET /api/tokens/analytics`.
pub async fn analytics(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let (mut from, mut to) = (None, None);
    for (name, value) in http::query_pairs(&req)? {
        match name.as_str() {
            "from" => from = Some(time("from", &value)?),
            "to" => to = Some(time("to", &value)?),
            _ => {}
        }
    }
    let (from, to) = rules::analytics_range(from, to, ctx.data.now_ms)?;
    let db = storage::database(&ctx.env)?;
    let rows = ledger::analytics(&db, &principal.user.id, from, to).await?;
    response::ok(&TokenAnalyticsView::new(
        rfc3339_from_millis(from),
        rfc3339_from_millis(to),
        rows,
    ))
}

/// What `/openapi.json` says of `GET /api/tokens/analytics`.
pub fn analytics_doc() -> Doc {
    Doc::new("Tokens earned and spent per UTC day and kind in a range (default 30 days)")
        .query::<AnalyticsQuery>()
        .ok::<TokenAnalyticsView>(200)
}

/// A pack for sale.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPackView {
    pub id: String,
    pub name: String,
    pub tokens: i64,
    /// In the currency's smallest unit.
    pub price_cents: i64,
    pub currency: String,
}

/// The packs for sale.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPacksView {
    pub data: Vec<TokenPackView>,
}

/// `GET /api/tokens/packs`: `TOKEN_PACKS`.
pub async fn packs(_req: Request, ctx: Ctx) -> Result<Response, AppError> {
    let packs = ctx.data.config.ledger.packs()?;
    response::ok(&TokenPacksView {
        data: packs
            .iter()
            .map(|p| TokenPackView {
                id: p.id.clone(),
                name: p.name.clone(),
                tokens: p.tokens,
                price_cents: p.price_cents,
                currency: p.currency.clone(),
            })
            .collect(),
    })
}

/// What `/openapi.json` says of `GET /api/tokens/packs`.
pub fn packs_doc() -> Doc {
    Doc::new("The token packs for sale")
        .ok::<TokenPacksView>(200)
        .errors(&["not_configured"])
}

/// A `POST /api/tokens/purchase` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// The pack's id (see `GET /api/tokens/packs`).
    pack: String,
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

/// Where to pay for a pack.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCheckoutView {
    /// Stripe's hosted Checkout page.
    pub url: String,
    pub session_id: String,
}

/// `POST /api/tokens/purchase` `{pack}`: a Stripe Checkout in `payment` mode for the pack;
/// the tokens are credited when Stripe reports the payment.
pub async fn purchase(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: PurchaseBody = ctx.data.json()?;
    let config = &ctx.data.config;
    let packs = config.ledger.packs()?;
    let pack = packs.iter().find(|p| p.id == body.pack).ok_or_else(|| {
        let known: Vec<&str> = packs.iter().map(|p| p.id.as_str()).collect();
        AppError::invalid(
            "pack",
            format!("unknown pack; one of: {}", known.join(", ")),
        )
    })?;
    let urls = CheckoutUrls::resolve(
        config,
        body.success_url.as_deref(),
        body.cancel_url.as_deref(),
    )?;
    let key = client_key(&req, body.request_id.as_deref())?;
    let db = storage::database(&ctx.env)?;
    let session = ledger::checkout_pack(
        &db,
        config,
        occasion(&ctx),
        &principal.user,
        pack,
        urls.urls(),
        key.as_deref(),
    )
    .await?;
    let url = session.url.ok_or_else(|| AppError::Upstream {
        service: "stripe",
        detail: "the Checkout Session has no url".to_owned(),
    })?;
    response::ok(&TokenCheckoutView {
        url,
        session_id: session.id,
    })
}

/// What `/openapi.json` says of `POST /api/tokens/purchase`.
pub fn purchase_doc() -> Doc {
    Doc::new("A Stripe Checkout to buy a pack; credited once Stripe reports it paid")
        .body::<PurchaseBody>()
        .ok::<TokenCheckoutView>(200)
        .errors(&["upstream_error"])
}

fn occasion(ctx: &Ctx) -> Occasion<'_> {
    Occasion {
        request_id: Some(&ctx.data.request_id),
        now_ms: ctx.data.now_ms,
    }
}

/// The client's idempotency key: `Idempotency-Key` or `request_id`, one of them required.
fn required_key(req: &Request, body_key: Option<&str>) -> Result<String, AppError> {
    meter::idempotency_key(header(req, "Idempotency-Key").as_deref(), body_key, true)?
        .ok_or_else(|| AppError::invalid("request_id", "is required"))
}

/// A `POST /api/tokens/use` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseBody {
    /// Tokens to spend: a whole number from 1 to 1000000000.
    #[serde(default)]
    #[schema(value_type = i64, minimum = 1, maximum = 1_000_000_000, required = true)]
    amount: Value,
    /// What for: 1 to 200 printable characters.
    #[schema(min_length = 1, max_length = 200)]
    reason: String,
    /// The caller's own reference (1 to 200 printable characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    reference: Option<String>,
    /// The client's idempotency key (or send `Idempotency-Key`; one is required): 1 to 128
    /// of `[A-Za-z0-9._:-]`.
    #[serde(default)]
    #[schema(pattern = r"^\s*[A-Za-z0-9._:-]{1,128}\s*$")]
    request_id: Option<String>,
}

/// A balance change: the new balance and the entry that made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenChangeView {
    pub user_id: String,
    /// The balance right after the entry.
    pub balance: i64,
    pub entry: EntryView,
}

fn change(recorded: Recorded) -> Result<Response, AppError> {
    let replayed = recorded.replayed;
    let entry = recorded.entry;
    let mut resp = response::ok(&TokenChangeView {
        user_id: entry.user_id.clone(),
        balance: entry.balance_after,
        entry: entry.into(),
    })?;
    if replayed {
        response::set(resp.headers_mut(), "Idempotent-Replayed", "true");
    }
    Ok(resp)
}

/// `POST /api/tokens/use` `{amount, reason, reference?, request_id}`: spends tokens;
/// `402 insufficient_credits` (nothing recorded) when the balance is short.
pub async fn spend(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: UseBody = ctx.data.json()?;
    let amount = rules::positive_amount("amount", &body.amount)?;
    let reason = rules::text("reason", &body.reason)?;
    let reference = body
        .reference
        .as_deref()
        .map(|r| rules::text("reference", r))
        .transpose()?;
    let key = required_key(&req, body.request_id.as_deref())?;
    let db = storage::database(&ctx.env)?;
    let spend = Spend {
        amount,
        reason: &reason,
        reference: reference.as_deref(),
        key: &key,
    };
    change(ledger::spend(&db, occasion(&ctx), &principal.user.id, spend).await?)
}

/// What `/openapi.json` says of `POST /api/tokens/use`.
pub fn spend_doc() -> Doc {
    Doc::new("Spend tokens; refused (nothing recorded) when the balance is short")
        .body::<UseBody>()
        .ok::<TokenChangeView>(200)
        .response_header(REPLAYED, REPLAYED_DOC)
        .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
        .errors(&["insufficient_credits", "conflict"])
}

/// A `POST /api/tokens/add` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// The user (`usr_...`).
    #[schema(min_length = 1, max_length = 128)]
    user_id: String,
    /// Tokens to give; negative to take away (never below zero). Not zero, at most
    /// 1000000000 either way.
    #[serde(default)]
    #[schema(value_type = i64, minimum = -1_000_000_000, maximum = 1_000_000_000, required = true)]
    amount: Value,
    /// Why: 1 to 200 printable characters.
    #[schema(min_length = 1, max_length = 200)]
    reason: String,
    /// The admin's idempotency key (or send `Idempotency-Key`; one is required): 1 to 128 of
    /// `[A-Za-z0-9._:-]`.
    #[serde(default)]
    #[schema(pattern = r"^\s*[A-Za-z0-9._:-]{1,128}\s*$")]
    request_id: Option<String>,
}

/// `POST /api/tokens/add` `{user_id, amount, reason, request_id}` (admins): a grant, or with a
/// negative amount an adjustment.
pub async fn add(req: Request, ctx: Ctx, principal: Principal) -> Result<Response, AppError> {
    let body: AddBody = ctx.data.json()?;
    let amount = rules::signed_amount("amount", &body.amount)?;
    let reason = rules::text("reason", &body.reason)?;
    let key = required_key(&req, body.request_id.as_deref())?;
    let user_id = body.user_id.trim();
    if user_id.is_empty() || user_id.len() > 128 {
        return Err(AppError::invalid("user_id", "must be 1 to 128 characters"));
    }
    let db = storage::database(&ctx.env)?;
    let grant = Grant {
        amount,
        reason: &reason,
        key: &key,
    };
    change(ledger::grant(&db, occasion(&ctx), &principal.user.id, user_id, grant).await?)
}

/// What `/openapi.json` says of `POST /api/tokens/add`.
pub fn add_doc() -> Doc {
    Doc::new("Give a user tokens, or take some (never below zero), with a reason")
        .body::<AddBody>()
        .ok::<TokenChangeView>(200)
        .response_header(REPLAYED, REPLAYED_DOC)
        .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
        .errors(&["not_found", "insufficient_credits", "conflict"])
}

/// A social task and whether the caller has done it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialTaskView {
    pub id: String,
    pub title: String,
    pub platform: String,
    pub url: String,
    pub reward: i64,
    pub completed: bool,
    /// When the caller was rewarded for it.
    #[schema(required = true)]
    pub completed_at: Option<String>,
}

/// The social tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialTasksView {
    pub data: Vec<SocialTaskView>,
}

/// `GET /api/tokens/social`: `SOCIAL_TASKS`, with the caller's completions.
pub async fn social_tasks(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let tasks = ctx.data.config.ledger.tasks()?;
    let db = storage::database(&ctx.env)?;
    let done = ledger::completed_tasks(&db, &principal.user.id).await?;
    response::ok(&SocialTasksView {
        data: tasks
            .iter()
            .map(|t| {
                let at = done.iter().find(|(id, _)| *id == t.id).map(|(_, at)| at);
                SocialTaskView {
                    id: t.id.clone(),
                    title: t.title.clone(),
                    platform: t.platform.clone(),
                    url: t.url.clone(),
                    reward: t.reward,
                    completed: at.is_some(),
                    completed_at: at.cloned(),
                }
            })
            .collect(),
    })
}

/// What `/openapi.json` says of `GET /api/tokens/social`.
pub fn social_tasks_doc() -> Doc {
    Doc::new("The social tasks and whether the caller has done each")
        .ok::<SocialTasksView>(200)
        .errors(&["not_configured"])
}

/// A `POST /api/tokens/social` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialClaimBody {
    /// The task's id (see `GET /api/tokens/social`).
    task_id: String,
    /// Where the task was done: an https URL of at most 2048 bytes.
    #[serde(default)]
    #[schema(max_length = 2048)]
    proof_url: Option<String>,
}

/// A social task's reward.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialRewardView {
    pub task_id: String,
    pub reward: i64,
    /// The balance right after the reward.
    pub balance: i64,
    pub entry: EntryView,
}

/// `POST /api/tokens/social` `{task_id, proof_url?}`: rewards the task once per user; a
/// second claim is `409 conflict`.
pub async fn claim_social(
    _req: Request,
    ctx: Ctx,
    principal: Principal,
) -> Result<Response, AppError> {
    let body: SocialClaimBody = ctx.data.json()?;
    let tasks = ctx.data.config.ledger.tasks()?;
    let task = tasks.iter().find(|t| t.id == body.task_id).ok_or_else(|| {
        let known: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        AppError::invalid(
            "task_id",
            format!("unknown task; one of: {}", known.join(", ")),
        )
    })?;
    let proof = body
        .proof_url
        .as_deref()
        .map(rules::proof_url)
        .transpose()?;
    let db = storage::database(&ctx.env)?;
    let entry = ledger::claim_task(
        &db,
        occasion(&ctx),
        &principal.user.id,
        task,
        proof.as_deref(),
    )
    .await?;
    response::ok(&SocialRewardView {
        task_id: task.id.clone(),
        reward: task.reward,
        balance: entry.balance_after,
        entry: entry.into(),
    })
}

/// What `/openapi.json` says of `POST /api/tokens/social`.
pub fn claim_social_doc() -> Doc {
    Doc::new("Claim a social task's reward: once per user and task")
        .body::<SocialClaimBody>()
        .ok::<SocialRewardView>(200)
        .errors(&["conflict", "not_configured"])
}
