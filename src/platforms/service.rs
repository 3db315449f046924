//! Platforms' flows: who is calling (a platform by its key, and the end user it acts for),
//! keys for developers and public registrations, tiers, counting an end user's calls
//! exactly through the shared metering service, and a platform's numbers.
//!
//! Tenant isolation: every flow below reads the platform from the [`Tenant`] the pipeline
//! resolved from the credential; no flow takes a platform id from the request, except the
//! public tier list ([`public_tiers`]).

use worker::Request;

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::billing::rules::stripe_event::{
    Event, InvoiceOutcome, PlatformEndUser, StripeEvent, SubscriptionChange,
};
use crate::billing::service::subscriptions::{self as billing, Outcome, Urls};
use crate::core::body::FieldError;
use crate::core::form::Form;
use crate::core::random;
use crate::core::secret_key;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::{self, access, Ctx};
use crate::identity::service::auth;
use crate::metering::rules::{Period, SubjectKind, CALLS};
use crate::metering::service::{self as metering, Clock, Count, Counter, Counting, Quota};
use crate::platforms::rules::{self, Tier, KEY};
use crate::platforms::store::{self, EndUserRow, PlatformBy, PlatformRow};
use crate::storage;
use crate::upstream::stripe::{Price, Session, Stripe};

pub use crate::platforms::store::{EndUserRow as StoredEndUser, KeyRow, Numbers};

/// A key's last-used time is written at most this often.
const KEY_TOUCH_INTERVAL_MS: u64 = 60_000;

/// The header naming the end user a platform key acts for.
pub const USER_ID_HEADER: &str = "X-User-Id";
/// The header stating that end user's tier.
pub const USER_PLAN_HEADER: &str = "X-User-Plan";

/// A platform as the flows see it.
#[derive(Debug, Clone)]
pub struct Platform {
    pub id: String,
    pub owner_user_id: Option<String>,
    pub owner_email: Option<String>,
    pub name: Option<String>,
    /// Never empty; the first is where end users start.
    pub tiers: Vec<Tier>,
    pub created_at: String,
}

impl From<PlatformRow> for Platform {
    fn from(row: PlatformRow) -> Self {
        Self {
            tiers: rules::tiers_from_stored(&row.tiers),
            id: row.id,
            owner_user_id: row.owner_user_id,
            owner_email: row.owner_email,
            name: row.name,
            created_at: row.created_at,
        }
    }
}

/// How the platform's caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The platform key (`pk_live_...`) with this id.
    Key { key_id: String },
    /// An end-user token of the platform's end-user identity instance.
    EndUserToken,
}

/// The end user a call is for, within its platform only.
#[derive(Debug, Clone)]
pub struct EndUser {
    /// The platform's id for them (`X-User-Id`, or the token's subject).
    pub id: String,
    /// The tier the platform states for this call (`X-User-Plan`, or the token's `plan`),
    /// not yet checked against the platform's tiers; and where it was stated (for errors).
    pub stated_tier: Option<(String, &'static str)>,
    /// Their stored state, if they were seen before.
    pub stored: Option<EndUserRow>,
}

/// A platform caller, resolved by the pipeline: the platform, how it was proved, and (on
/// end-user routes) the end user.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub platform: Platform,
    pub via: Via,
    pub end_user: Option<EndUser>,
}

impl Tenant {
    /// The end user (end-user routes always have one).
    pub fn end_user(&self) -> Result<&EndUser, AppError> {
        self.end_user
            .as_ref()
            .ok_or_else(|| AppError::Internal("an end-user route without an end user".to_owned()))
    }

    /// Who the audit log says acted: the platform's owner when it has one.
    fn actor(&self) -> Actor<'_> {
        match &self.platform.owner_user_id {
            Some(user) => Actor::User(user),
            None => Actor::Anonymous,
        }
    }
}

/// Resolves a platform route's caller. `end_user`: the route acts for an end user (a
/// platform key with `X-User-Id`, or an end-user token); otherwise it takes a platform key
/// alone. Unknown, revoked or malformed credentials are `401`; a platform key without
/// `X-User-Id` on an end-user route is `400`. An end user's requests then count against
/// [`rules::END_USER_REQUESTS_PER_MINUTE`] (`429`).
pub async fn authenticate(req: &Request, ctx: &Ctx, end_user: bool) -> Result<Tenant, AppError> {
    let header = req.headers().get("Authorization").ok().flatten();
    let credential = access::credential(&access::presented(header.as_deref()))?.to_owned();
    let tenant = if credential.starts_with(KEY.prefix) {
        if let Some(refusal) = rules::key_from_browser(http::header(req, "Origin").as_deref()) {
            return Err(AppError::Forbidden(refusal.to_owned()));
        }
        from_key(req, ctx, &credential, end_user).await?
    } else if end_user {
        from_end_user_token(req, ctx, &credential).await?
    } else {
        return Err(AppError::Unauthorized(
            "this route takes a platform key: Authorization: Bearer pk_live_...".to_owned(),
        ));
    };
    if let Some(person) = &tenant.end_user {
        let key = format!(
            "end_user:{}",
            rules::subject_id(&tenant.platform.id, &person.id)
        );
        auth::admit_rate(
            ctx,
            rules::END_USER_REQUESTS_PER_MINUTE,
            key,
            "a platform's end user",
        )
        .await?;
    }
    Ok(tenant)
}

/// The end user a platform key names, from `X-User-Id` and `X-User-Plan`.
fn named_end_user(req: &Request) -> Result<(String, Option<String>), AppError> {
    let id = http::header(req, USER_ID_HEADER).ok_or_else(|| {
        AppError::invalid(
            USER_ID_HEADER,
            "is required with a platform key on this route",
        )
    })?;
    let id = rules::end_user_id(&id)
        .map_err(|why| AppError::invalid(USER_ID_HEADER, why))?
        .to_owned();
    Ok((id, http::header(req, USER_PLAN_HEADER)))
}

async fn from_key(req: &Request, ctx: &Ctx, key: &str, end_user: bool) -> Result<Tenant, AppError> {
    if !KEY.looks_like(key) {
        return Err(AppError::Unauthorized("malformed platform key".to_owned()));
    }
    let hash = secret_key::hash(key);
    let db = storage::database(&ctx.env)?;
    // The end user is named by headers; they are checked once the key is known to be good.
    let named = if end_user {
        Some(named_end_user(req))
    } else {
        None
    };
    let mut statements = vec![store::by_key_statement(&db, &hash)?];
    if let Some(Ok((id, _))) = &named {
        statements.push(store::end_user_statement(
            &db,
            PlatformBy::KeyHash(&hash),
            id,
        )?);
    }
    let results = db.batch(statements).await?;
    let owner = store::key_owner_from(&results[0])?
        .ok_or_else(|| AppError::Unauthorized("unknown platform key".to_owned()))?;
    if owner.key_revoked_at.is_some() {
        return Err(AppError::Unauthorized(
            "platform key has been revoked".to_owned(),
        ));
    }
    ctx.data.set_principal("platform_key");
    let now = ctx.data.now_ms;
    let stale = owner.key_last_used_at.as_deref().is_none_or(|last| {
        last < rfc3339_from_millis(now.saturating_sub(KEY_TOUCH_INTERVAL_MS)).as_str()
    });
    if stale {
        store::touch_key(&db, &owner.key_id, &rfc3339_from_millis(now)).await?;
    }
    let end_user = match named {
        None => None,
        Some(named) => {
            let (id, plan) = named?;
            Some(EndUser {
                id,
                stated_tier: plan.map(|p| (p, USER_PLAN_HEADER)),
                stored: match results.get(1) {
                    Some(found) => store::end_user_from(found)?,
                    None => None,
                },
            })
        }
    };
    Ok(Tenant {
        platform: owner.platform.into(),
        via: Via::Key {
            key_id: owner.key_id,
        },
        end_user,
    })
}

async fn from_end_user_token(_req: &Request, ctx: &Ctx, token: &str) -> Result<Tenant, AppError> {
    let verified = auth::verify_end_user(ctx, token).await?;
    let platform_id = verified.platform_id.ok_or_else(|| {
        AppError::Unauthorized(
            "the end-user token names no platform (publicMetadata.platformId)".to_owned(),
        )
    })?;
    if !rules::looks_like_platform_id(&platform_id) {
        return Err(AppError::Unauthorized(
            "the end-user token names no known platform".to_owned(),
        ));
    }
    let id = rules::end_user_id(&verified.subject)
        .map_err(|_| AppError::Unauthorized("the end-user token's subject is unusable".to_owned()))?
        .to_owned();
    let db = storage::database(&ctx.env)?;
    let results = db
        .batch(vec![
            store::by_id_statement(&db, &platform_id)?,
            store::end_user_statement(&db, PlatformBy::Id(&platform_id), &id)?,
        ])
        .await?;
    let platform = store::platform_from(&results[0])?.ok_or_else(|| {
        AppError::Unauthorized("the end-user token names no known platform".to_owned())
    })?;
    Ok(Tenant {
        platform: platform.into(),
        via: Via::EndUserToken,
        end_user: Some(EndUser {
            stated_tier: verified.plan.map(|p| (p, "plan")),
            stored: store::end_user_from(&results[1])?,
            id,
        }),
    })
}

/// The tier that applies to the end user's call (see [`rules::applicable_tier`]): the one
/// they paid for, else an unpaid one stated for them, else the platform's first unpaid one. A
/// stated tier the platform lacks, or a paid one not paid for, is `400` naming where it was
/// stated; no unpaid tier to fall back on is `402`.
pub fn tier_of(tenant: &Tenant) -> Result<&Tier, AppError> {
    let person = tenant.end_user()?;
    let stated = person.stated_tier.as_ref();
    let field = stated.map_or("tier", |(_, field)| *field);
    rules::applicable_tier(
        &tenant.platform.tiers,
        stated.map(|(tier, _)| tier.as_str()),
        person.stored.as_ref().and_then(|s| s.tier.as_deref()),
    )
    .map_err(|refusal| match refusal {
        rules::TierRefusal::Unknown(why) | rules::TierRefusal::NotPaid(why) => {
            AppError::invalid(field, why)
        }
        rules::TierRefusal::NoUnpaidTier => AppError::QuotaExceeded(
            "this platform has no free tier: subscribe to one of its tiers first \
             (POST /api/create-checkout)"
                .to_owned(),
        ),
    })
}

fn counter<'a>(subject: &'a str, tier: &Tier) -> Counter<'a> {
    Counter {
        kind: SubjectKind::EndUser,
        id: subject,
        meter: CALLS,
        limit: tier.calls_per_month,
    }
}

/// How counting an end user's calls ended.
pub struct Counted {
    pub tier: Tier,
    pub count: Count,
}

/// Counts `amount` calls for the tenant's end user against their tier's monthly limit,
/// exactly (one conditional D1 batch; nothing counted when it does not fit), idempotent on
/// `key`. The end user is recorded as seen in the same batch.
pub async fn count_calls(
    ctx: &Ctx,
    tenant: &Tenant,
    amount: u64,
    key: Option<&str>,
) -> Result<Counted, AppError> {
    let tier = tier_of(tenant)?.clone();
    let person = tenant.end_user()?;
    let subject = rules::subject_id(&tenant.platform.id, &person.id);
    let clock = Clock::at(ctx.data.now_ms);
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let platform_id = &tenant.platform.id;
    let count = metering::count(
        &ctx.env,
        &counter(&subject, &tier),
        &clock,
        &Counting {
            amount,
            key,
            labels: ("platform", "calls"),
        },
        &|db, record_id| {
            Ok(vec![store::seen_statement(
                db,
                platform_id,
                &person.id,
                record_id,
                &now,
            )?])
        },
    )
    .await?;
    Ok(Counted { tier, count })
}

/// The end user's calls this period, counting nothing.
pub async fn usage(ctx: &Ctx, tenant: &Tenant) -> Result<(Tier, Quota), AppError> {
    let tier = tier_of(tenant)?.clone();
    let person = tenant.end_user()?;
    let subject = rules::subject_id(&tenant.platform.id, &person.id);
    let clock = Clock::at(ctx.data.now_ms);
    let counter = counter(&subject, &tier);
    let db = storage::database(&ctx.env)?;
    let found = metering::counter_read(&db, &counter, &clock)?.all().await?;
    let quota = metering::counter_reading(&found, &counter, &clock)?;
    Ok((tier, quota))
}

/// Replaces the tenant's tier list (validated by the caller) and records it, once every
/// Stripe price it names is checked at Stripe ([`check_prices`]).
pub async fn set_tiers(ctx: &Ctx, tenant: &Tenant, tiers: &[Tier]) -> Result<(), AppError> {
    check_prices(|| billing::stripe(&ctx.data.config), tiers).await?;
    let db = storage::database(&ctx.env)?;
    let json = serde_json::to_string(tiers)
        .map_err(|err| AppError::Internal(format!("tiers do not serialise: {err}")))?;
    let ids: Vec<&str> = tiers.iter().map(|t| t.id.as_str()).collect();
    let entry = Entry::new(tenant.actor(), Action::PlatformTiersUpdated)
        .target(Target::new("platform", &tenant.platform.id))
        .with("tiers", ids.join(","))
        .with("credential", "platform_key");
    let audit = audit::statement(&db, Occasion::of(&ctx.data), &entry)?;
    store::set_tiers(
        &db,
        &tenant.platform.id,
        &json,
        &rfc3339_from_millis(ctx.data.now_ms),
        audit,
    )
    .await
}

/// Checks each tier's `stripe_price_id` at Stripe (`GET /v1/prices/{id}`, each price once):
/// `400` naming `tiers[i].stripe_price_id` for a price that does not exist or does not
/// match the tier ([`rules::price_problem`]); `not_configured` when a tier names a price
/// and Stripe is not set up; `upstream_error` when Stripe cannot answer. A list without
/// Stripe prices needs no Stripe: `stripe` makes the client only when a tier names a price.
async fn check_prices<'c>(
    stripe: impl FnOnce() -> Result<Stripe<'c>, AppError>,
    tiers: &[Tier],
) -> Result<(), AppError> {
    let sold: Vec<(usize, &Tier, &str)> = tiers
        .iter()
        .enumerate()
        .filter_map(|(i, tier)| Some((i, tier, tier.stripe_price_id.as_deref()?)))
        .collect();
    if sold.is_empty() {
        return Ok(());
    }
    let stripe = stripe()?;
    let mut fetched: Vec<(&str, Option<Price>)> = Vec::new();
    let mut problems = Vec::new();
    for (i, tier, price_id) in sold {
        if !fetched.iter().any(|(id, _)| *id == price_id) {
            fetched.push((price_id, stripe.price(price_id).await?));
        }
        let price = fetched
            .iter()
            .find(|(id, _)| *id == price_id)
            .and_then(|(_, price)| price.as_ref());
        if let Some(problem) = rules::price_problem(tier, price) {
            problems.push(FieldError::new(
                format!("tiers[{i}].stripe_price_id"),
                format!("`{price_id}`: {problem}"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(problems))
    }
}

/// The tiers of the platform `id` names (the public list): `404` when there is none.
pub async fn public_tiers(ctx: &Ctx, id: &str) -> Result<Platform, AppError> {
    let not_found = || AppError::NotFound("no platform has this id".to_owned());
    if !rules::looks_like_platform_id(id) {
        return Err(not_found());
    }
    let db = storage::database(&ctx.env)?;
    let found = store::by_id_statement(&db, id)?.all().await?;
    Ok(store::platform_from(&found)?.ok_or_else(not_found)?.into())
}

/// A key just made: the only time it is seen whole.
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub masked: String,
}

fn new_key() -> NewKey {
    let key = KEY.generate();
    NewKey {
        id: random::id::<12>("pkey_"),
        masked: KEY.mask(&key),
        key,
    }
}

/// What issuing a developer's credentials did.
pub struct Credentials {
    pub platform: Platform,
    pub key: NewKey,
    pub created: bool,
    pub revoked_previous: bool,
}

fn default_tiers_json() -> Result<String, AppError> {
    serde_json::to_string(&rules::default_tiers())
        .map_err(|err| AppError::Internal(format!("tiers do not serialise: {err}")))
}

/// Makes the developer's platform if they have none, and issues it a new key (shown once);
/// the key before, if any, is revoked in the same batch.
pub async fn issue_credentials(ctx: &Ctx, user_id: &str) -> Result<Credentials, AppError> {
    let db = storage::database(&ctx.env)?;
    let key = new_key();
    let hash = secret_key::hash(&key.key);
    let new_id = random::id::<12>(rules::ID_PREFIX);
    let at = Occasion::of(&ctx.data);
    let entry = Entry::new(Actor::User(user_id), Action::PlatformKeyIssued)
        .target(Target::new("platform_key", &key.id))
        .with("masked", key.masked.as_str());
    let audit = vec![audit::statement_if_inserted(&db, at, &entry, "entry_id")?];
    let issued = store::issue_for_owner(
        &db,
        user_id,
        &new_id,
        &default_tiers_json()?,
        store::NewKey {
            id: &key.id,
            hash: &hash,
            masked: &key.masked,
        },
        &rfc3339_from_millis(ctx.data.now_ms),
        audit,
    )
    .await?;
    if issued.created {
        audit::after(
            &ctx.env,
            &ctx.data,
            Entry::new(Actor::User(user_id), Action::PlatformCreated)
                .target(Target::new("platform", &issued.platform.id)),
        )
        .await;
    }
    Ok(Credentials {
        platform: issued.platform.into(),
        key,
        created: issued.created,
        revoked_previous: issued.revoked > 0,
    })
}

/// The developer's platform and its live key (masked): `404` when they have no platform.
pub async fn credentials(
    ctx: &Ctx,
    user_id: &str,
) -> Result<(Platform, Option<store::KeyRow>), AppError> {
    let db = storage::database(&ctx.env)?;
    let platform = store::of_owner(&db, user_id).await?.ok_or_else(|| {
        AppError::NotFound(
            "you have no platform yet; POST /generate-credentials makes one".to_owned(),
        )
    })?;
    let key = store::live_key(&db, &platform.id).await?;
    Ok((platform.into(), key))
}

/// A public registration: a platform owned by `email`, with its first key (shown once).
/// `409` when the email has a platform; `429` past [`rules::SIGNUPS_PER_WINDOW`] per IP
/// per hour.
pub async fn register(
    ctx: &Ctx,
    ip: &str,
    email: &str,
    name: Option<&str>,
) -> Result<(Platform, NewKey), AppError> {
    let db = storage::database(&ctx.env)?;
    let key = new_key();
    let hash = secret_key::hash(&key.key);
    let new_id = random::id::<12>(rules::ID_PREFIX);
    let at = Occasion::of(&ctx.data);
    let entry = Entry::new(Actor::Anonymous, Action::PlatformCreated)
        .target(Target::new("platform", &new_id))
        .with("registration", "public");
    let audit = vec![audit::statement_if_inserted(&db, at, &entry, "entry_id")?];
    let now_ms = ctx.data.now_ms;
    let outcome = store::register(
        &db,
        ip,
        (rules::SIGNUPS_PER_WINDOW, rules::SIGNUP_WINDOW_MS),
        &new_id,
        email,
        name,
        &default_tiers_json()?,
        store::NewKey {
            id: &key.id,
            hash: &hash,
            masked: &key.masked,
        },
        (&rfc3339_from_millis(now_ms), now_ms),
        audit,
    )
    .await?;
    match outcome {
        store::Registered::Created(platform) => Ok((platform.into(), key)),
        store::Registered::EmailTaken => Err(AppError::Conflict(
            "this email already has a platform".to_owned(),
        )),
        store::Registered::Throttled { window_start_ms } => Err(AppError::RateLimited {
            retry_after_secs: (window_start_ms + rules::SIGNUP_WINDOW_MS)
                .saturating_sub(now_ms)
                .div_ceil(1000)
                .max(1),
        }),
    }
}

/// The tenant's numbers in the current period.
pub async fn numbers(ctx: &Ctx, tenant: &Tenant) -> Result<(Period, store::Numbers), AppError> {
    let period = Period::containing(ctx.data.now_ms);
    let db = storage::database(&ctx.env)?;
    let numbers = store::numbers(
        &db,
        &tenant.platform.id,
        &period.key(),
        &rfc3339_from_millis(period.start_ms()),
    )
    .await?;
    Ok((period, numbers))
}

/// The end user's Stripe customer, made at Stripe on first use (its idempotency key names the
/// platform and end user, so concurrent first checkouts make one customer), and whether it is
/// stored yet: a new one is stored only once its checkout exists.
async fn customer_of(
    ctx: &Ctx,
    tenant: &Tenant,
    person: &EndUser,
) -> Result<(String, bool), AppError> {
    if let Some(id) = person
        .stored
        .as_ref()
        .and_then(|s| s.stripe_customer_id.clone())
    {
        return Ok((id, true));
    }
    let stripe = billing::stripe(&ctx.data.config)?;
    let form = Form::new()
        .field("metadata[platform_id]", &tenant.platform.id)
        .field("metadata[end_user_id]", &person.id);
    let subject = rules::subject_id(&tenant.platform.id, &person.id);
    let id = stripe
        .create_customer(&form, &format!("tollgate-end-user-customer-{subject}"))
        .await?;
    Ok((id, false))
}

/// A Stripe Checkout Session for the end user to subscribe to `tier_id` (a tier of the
/// platform with a Stripe price), with the platform, end user and tier in its metadata and
/// its subscription's, so the webhook can apply it.
pub async fn checkout(
    ctx: &Ctx,
    tenant: &Tenant,
    tier_id: &str,
    urls: Urls<'_>,
    client_key: Option<&str>,
) -> Result<(Session, Tier), AppError> {
    let person = tenant.end_user()?;
    let tier = tenant
        .platform
        .tiers
        .iter()
        .find(|t| t.id == tier_id)
        .ok_or_else(|| {
            let ids: Vec<&str> = tenant
                .platform
                .tiers
                .iter()
                .map(|t| t.id.as_str())
                .collect();
            AppError::invalid("tier", format!("unknown tier; one of: {}", ids.join(", ")))
        })?;
    let price = tier.stripe_price_id.as_deref().ok_or_else(|| {
        AppError::invalid(
            "tier",
            format!(
                "the {} tier has no Stripe price and cannot be bought",
                tier.id
            ),
        )
    })?;
    let stripe = billing::stripe(&ctx.data.config)?;
    let (customer, stored) = customer_of(ctx, tenant, person).await?;
    let platform = &tenant.platform.id;
    let form = Form::new()
        .field("mode", "subscription")
        .field("customer", &customer)
        .field("line_items[0][price]", price)
        .field("line_items[0][quantity]", 1)
        .field("success_url", urls.success)
        .field("cancel_url", urls.cancel)
        .field("metadata[platform_id]", platform)
        .field("metadata[end_user_id]", &person.id)
        .field("metadata[tier]", &tier.id)
        .field("subscription_data[metadata][platform_id]", platform)
        .field("subscription_data[metadata][end_user_id]", &person.id)
        .field("subscription_data[metadata][tier]", &tier.id);
    let subject = rules::subject_id(platform, &person.id);
    let key = billing::stripe_idempotency_key(&subject, "end-user-checkout", client_key);
    let session = stripe.create_checkout_session(&form, &key).await?;
    if !stored {
        let db = storage::database(&ctx.env)?;
        let now = rfc3339_from_millis(ctx.data.now_ms);
        store::save_customer(&db, platform, &person.id, &customer, &now).await?;
    }
    Ok((session, tier.clone()))
}

/// A Billing Portal session for the end user's Stripe customer: `409` before their first
/// checkout (there is no customer yet).
pub async fn portal(
    ctx: &Ctx,
    tenant: &Tenant,
    return_url: &str,
    client_key: Option<&str>,
) -> Result<Session, AppError> {
    let person = tenant.end_user()?;
    let customer = person
        .stored
        .as_ref()
        .and_then(|s| s.stripe_customer_id.clone())
        .ok_or_else(|| {
            AppError::Conflict("this end user has no billing account yet; check out first".into())
        })?;
    let stripe = billing::stripe(&ctx.data.config)?;
    let form = Form::new()
        .field("customer", &customer)
        .field("return_url", return_url);
    let subject = rules::subject_id(&tenant.platform.id, &person.id);
    let key = billing::stripe_idempotency_key(&subject, "end-user-portal", client_key);
    stripe.create_portal_session(&form, &key).await
}

/// Applies a Stripe event about a platform's end user (`end_user`, named by the metadata
/// this flow wrote): a paid Checkout moves them to its tier (once per session, never over a
/// later change) and counts the payment in the platform's revenue; a subscription that ended
/// moves them back to the platform's first tier.
/// `current_status` is the subscription's status as Stripe has it now (fetched for a
/// `customer.subscription.*` event): when known it decides whether the subscription ended,
/// not the event's object, so an older event delivered after a newer one in the same second
/// cannot end a live subscription's tier. The change is still ordered by the event's
/// `created`, so a late event about an old subscription never undoes a newer checkout.
pub async fn apply_stripe_event(
    db: &worker::D1Database,
    event: &Event,
    end_user: &PlatformEndUser,
    current_status: Option<&str>,
) -> Result<Outcome, AppError> {
    let platform_id = end_user.platform_id.as_str();
    let end_user_id = end_user.end_user_id.as_str();
    let at_ms = event.created.max(0) as u64 * 1000;
    let now_ms = crate::clock::now_ms();
    match &event.data {
        StripeEvent::CheckoutCompleted(checkout)
        | StripeEvent::CheckoutAsyncPaymentSucceeded(checkout) => {
            if !checkout.is_settled() {
                return Ok(Outcome::Ignored("the checkout is not paid"));
            }
            let (Some(session), Some(tier)) = (checkout.id.as_deref(), end_user.tier.as_deref())
            else {
                return Ok(Outcome::Ignored("the checkout names no tier"));
            };
            let now = rfc3339_from_millis(now_ms);
            let entry = Entry::new(Actor::System("stripe"), Action::PlatformEndUserTierChanged)
                .target(Target::new("platform", platform_id))
                .with("end_user_id", end_user_id)
                .with("tier", tier)
                .with("checkout_session", session);
            let at = Occasion {
                request_id: Some(&event.id),
                now_ms,
            };
            let audit = vec![audit::statement_if_inserted(db, at, &entry, "entry_id")?];
            let payment = store::Payment {
                id: session,
                platform_id,
                end_user_id,
                tier,
                amount_cents: checkout.amount_total.unwrap_or(0),
                currency: checkout.currency.as_deref().unwrap_or("usd"),
                at_ms,
                now: &now,
            };
            let applied = store::apply_payment(db, &payment, audit).await?;
            Ok(if applied.counted {
                Outcome::Processed
            } else {
                Outcome::Ignored("the checkout was applied already, or its platform is gone")
            })
        }
        // A renewal: its payment counts in the platform's revenue, once per invoice. The
        // first invoice of a subscription is its Checkout's payment, counted above.
        StripeEvent::InvoicePayment {
            outcome: InvoiceOutcome::Paid | InvoiceOutcome::PaymentSucceeded,
            invoice,
        } => {
            if invoice.billing_reason.as_deref() == Some("subscription_create") {
                return Ok(Outcome::Ignored(
                    "the first invoice is counted with its checkout",
                ));
            }
            let (Some(id), Some(amount)) = (
                invoice.id.as_deref(),
                invoice.amount_paid.filter(|a| *a > 0),
            ) else {
                return Ok(Outcome::Ignored("the invoice paid nothing"));
            };
            let now = rfc3339_from_millis(now_ms);
            let payment = store::Payment {
                id,
                platform_id,
                end_user_id,
                tier: end_user.tier.as_deref().unwrap_or(""),
                amount_cents: amount,
                currency: invoice.currency.as_deref().unwrap_or("usd"),
                at_ms,
                now: &now,
            };
            Ok(if store::count_payment(db, &payment).await? {
                Outcome::Processed
            } else {
                Outcome::Ignored("the invoice was counted already, or its platform is gone")
            })
        }
        StripeEvent::SubscriptionChanged {
            change: change @ (SubscriptionChange::Deleted | SubscriptionChange::Updated),
            subscription,
        } => {
            let ended_status =
                |s: Option<&str>| matches!(s, Some("canceled" | "unpaid" | "incomplete_expired"));
            let ended = match current_status {
                Some(status) => ended_status(Some(status)),
                None => {
                    *change == SubscriptionChange::Deleted
                        || ended_status(subscription.status.as_deref())
                }
            };
            if !ended {
                return Ok(Outcome::Ignored("the subscription is still live"));
            }
            let now = rfc3339_from_millis(now_ms);
            Ok(
                if store::end_tier(db, platform_id, end_user_id, at_ms, &now).await? {
                    Outcome::Processed
                } else {
                    Outcome::Ignored("a later change was applied already")
                },
            )
        }
        _ => Ok(Outcome::Ignored("event type not handled for platforms")),
    }
}

/// How counting a developer's own call ended, on their plan.
pub struct DeveloperCounted {
    pub plan: crate::plans::rules::Plan,
    pub count: Count,
}

/// Counts one call of the developer (a Tollgate user) against their plan's
/// `calls_per_month` (`null`: unlimited), exactly: the same conditional batch as an end
/// user's calls, under subject `user` and meter `calls`; idempotent on `key`.
pub async fn count_developer_call(
    ctx: &Ctx,
    user: &crate::identity::service::users::User,
    key: Option<&str>,
) -> Result<DeveloperCounted, AppError> {
    let plan = ctx.data.config.plans.get_or_default(&user.plan).clone();
    let clock = Clock::at(ctx.data.now_ms);
    let counter = Counter {
        kind: SubjectKind::User,
        id: &user.id,
        meter: CALLS,
        limit: plan.calls_per_month,
    };
    let count = metering::count(
        &ctx.env,
        &counter,
        &clock,
        &Counting {
            amount: 1,
            key,
            labels: ("developer", "verify-auth"),
        },
        &|_, _| Ok(Vec::new()),
    )
    .await?;
    Ok(DeveloperCounted { plan, count })
}
