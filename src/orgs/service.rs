//! Orgs' flows: which org a portal request acts on (and whether its caller may), the org's
//! overview and daily series, its configuration, its team from Clerk, and the staff's client
//! list.
//!
//! Object-level authorisation: every flow below takes the [`PortalCaller`] the pipeline
//! resolved with [`admit`]; no flow reads an org id from the request itself.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::Request;

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::core::body::FieldError;
use crate::core::random;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::{self, Ctx};
use crate::identity::rules::jwt::OrgRole;
use crate::identity::service::auth::Principal;
use crate::metering::rules::{SubjectKind, TOKENS, VOICE_CHARS};
use crate::metering::service::{self as metering, Clock, Counter, Quota};
use crate::metrics::service as metrics;
use crate::orgs::rules::{self, Asker, Lookup, Need, OrgConfig, OrgStatus, Refusal};
use crate::orgs::store::{self, NewOrgRow, OrgRow};

pub use crate::metrics::service::DayRow;
pub use crate::orgs::store::ClientRow;
use crate::plans::rules::Plan;
use crate::sites::service as sites;
use crate::storage;
use crate::upstream::clerk::{ClerkApi, ClerkError, Membership};

/// The query parameter staff name an org with (as the portal's clients send it).
pub const ORG_ID_PARAM: &str = "orgId";

/// How long a team list read from Clerk is reused.
const TEAM_CACHE_SECS: u64 = 60;

/// An org as the flows see it.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: String,
    pub clerk_org_id: Option<String>,
    pub name: String,
    pub slug: String,
    pub plan: String,
    pub status: OrgStatus,
    pub config: OrgConfig,
    /// The stored configuration text (the base a change is checked against).
    stored_config: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<OrgRow> for Org {
    fn from(row: OrgRow) -> Self {
        Self {
            id: row.id,
            clerk_org_id: row.clerk_org_id,
            name: row.name,
            slug: row.slug,
            plan: row.plan,
            status: row.status,
            config: OrgConfig::from_stored(&row.config),
            stored_config: row.config,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// How a portal caller may act on the org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PortalRole {
    /// A member of the org (Clerk role other than admin).
    Member,
    /// An admin of the org.
    Admin,
    /// Staff, acting on any org.
    Staff,
}

/// Who is calling the portal, and on which org they act (none on staff-only routes).
#[derive(Debug, Clone)]
pub struct PortalCaller {
    pub principal: Principal,
    pub org: Option<Org>,
    pub role: PortalRole,
}

impl PortalCaller {
    /// The org acted on; every route but the staff-only ones has one.
    pub fn org(&self) -> Result<&Org, AppError> {
        self.org
            .as_ref()
            .ok_or_else(|| AppError::Internal("a portal route without its org".to_owned()))
    }

    /// The audit actor: the signed-in user.
    pub fn actor(&self) -> Actor<'_> {
        Actor::User(&self.principal.user.id)
    }
}

/// Resolves the org a portal request acts on and checks its caller may: staff may name any
/// org with `?orgId=`; anyone else acts on the org their Clerk token's active organisation
/// maps to, and naming another is `403` (never answered with either org).
pub async fn admit(
    req: &Request,
    ctx: &Ctx,
    principal: Principal,
    need: Need,
) -> Result<PortalCaller, AppError> {
    let requested = http::query_pairs(req)?
        .into_iter()
        .find(|(name, _)| name == ORG_ID_PARAM)
        .map(|(_, value)| value);
    // Organisation claims are Clerk's: only a Clerk token's active organisation counts.
    let token_org = principal
        .org()
        .filter(|_| principal.kind() == "clerk")
        .map(|org| (org.id.clone(), org.role == OrgRole::Admin));
    let staff = principal.roles.staff;
    let asker = Asker {
        staff,
        token_org: token_org.as_ref().map(|(id, admin)| (id.as_str(), *admin)),
        requested: requested.as_deref(),
    };
    let refused = |refusal: Refusal| match refusal {
        Refusal::StaffMustName => AppError::invalid(ORG_ID_PARAM, refusal.message()),
        _ => AppError::Forbidden(refusal.message().to_owned()),
    };
    let lookup = rules::decide(need, &asker).map_err(refused)?;
    let db = storage::database(&ctx.env)?;
    let (org, role) = match lookup {
        Lookup::None => (None, PortalRole::Staff),
        Lookup::Named(id) => {
            let org = store::by_any_id(&db, id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("no organisation {id}")))?;
            (Some(Org::from(org)), PortalRole::Staff)
        }
        Lookup::Own {
            clerk_org_id,
            requested,
        } => {
            let org = store::by_clerk_org(&db, clerk_org_id)
                .await?
                .ok_or_else(|| {
                    AppError::Forbidden(
                        "your organisation has no portal here; ask the operator to add it"
                            .to_owned(),
                    )
                })?;
            if let Some(requested) = requested {
                if !rules::names_org(requested, &org.id, org.clerk_org_id.as_deref()) {
                    return Err(refused(Refusal::OtherOrg));
                }
            }
            let role = match (staff, token_org.as_ref().is_some_and(|(_, admin)| *admin)) {
                (true, _) => PortalRole::Staff,
                (false, true) => PortalRole::Admin,
                (false, false) => PortalRole::Member,
            };
            (Some(Org::from(org)), role)
        }
    };
    Ok(PortalCaller {
        principal,
        org,
        role,
    })
}

/// The org's plan from the catalog (a plan since removed from the catalog reads as the
/// catalog's first, as for users).
pub fn plan<'a>(ctx: &'a Ctx, org: &Org) -> &'a Plan {
    ctx.data.config.plans.get_or_default(&org.plan)
}

/// The org `org_id` names (its Tollgate id), if any: what its sites' flows read its name
/// and configuration from.
pub async fn get(ctx: &Ctx, org_id: &str) -> Result<Option<Org>, AppError> {
    let db = storage::database(&ctx.env)?;
    Ok(store::by_any_id(&db, org_id)
        .await?
        .filter(|row| row.id == org_id)
        .map(Org::from))
}

/// This month's tokens and voice characters of the org, against its plan.
pub async fn usage(ctx: &Ctx, org: &Org) -> Result<(Quota, Quota), AppError> {
    let plan = plan(ctx, org);
    let clock = Clock::at(ctx.data.now_ms);
    let tokens = Counter {
        kind: SubjectKind::Org,
        id: &org.id,
        meter: TOKENS,
        limit: plan.tokens_per_month,
    };
    let voice = Counter {
        kind: SubjectKind::Org,
        id: &org.id,
        meter: VOICE_CHARS,
        limit: plan.voice_chars_per_month,
    };
    let db = storage::database(&ctx.env)?;
    let results = db
        .batch(vec![
            metering::counter_read(&db, &tokens, &clock)?,
            metering::counter_read(&db, &voice, &clock)?,
        ])
        .await?;
    let [tokens_found, voice_found] = results.as_slice() else {
        return Err(AppError::Internal("two reads, not two results".to_owned()));
    };
    Ok((
        metering::counter_reading(tokens_found, &tokens, &clock)?,
        metering::counter_reading(voice_found, &voice, &clock)?,
    ))
}

/// `YYYY-MM-DD` of the UTC day `days_ago` days before `now_ms`.
pub fn day(now_ms: u64, days_ago: u64) -> String {
    let at = now_ms.saturating_sub(days_ago * 86_400_000);
    rfc3339_from_millis(at)[..10].to_owned()
}

/// The org's days from `from` to `to` (inclusive), all sites or one of the org's: past days
/// as the schedule rolled them up, today (UTC) live from the chat and voice logs.
pub async fn days(
    ctx: &Ctx,
    org: &Org,
    from: &str,
    to: &str,
    site_id: Option<&str>,
) -> Result<Vec<DayRow>, AppError> {
    if let Some(site_id) = site_id {
        // Another org's site reads as a missing one.
        sites::get(ctx, &org.id, site_id).await?;
    }
    let db = storage::database(&ctx.env)?;
    metrics::days(&db, &org.id, from, to, site_id, ctx.data.now_ms).await
}

/// Changes the org's configuration by a `PATCH` body: every field validated, unknown fields
/// refused, nothing changed on any problem; the change and its audit row are one batch.
pub async fn patch_config(
    ctx: &Ctx,
    caller: &PortalCaller,
    patch: &Value,
) -> Result<OrgConfig, AppError> {
    let org = caller.org()?;
    let models = &ctx.data.config.chat.models;
    let (next, changed) =
        rules::apply_patch(&org.config, patch, models).map_err(AppError::Validation)?;
    let db = storage::database(&ctx.env)?;
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let entry = Entry::new(caller.actor(), Action::OrgConfigUpdated)
        .target(Target::new("org", &org.id))
        .with("fields", json!(changed))
        .with("as", json!(role_name(caller.role)));
    let results = store::batch(
        &db,
        vec![
            store::set_config(&db, &org.id, &org.stored_config, &next.to_stored(), &now)?,
            audit::statement_if_changed(&db, Occasion::of(&ctx.data), &entry)?,
        ],
    )
    .await?;
    if results.first().copied().unwrap_or(0) == 0 {
        return Err(AppError::Conflict(
            "the configuration changed meanwhile; read it again and retry".to_owned(),
        ));
    }
    Ok(next)
}

fn role_name(role: PortalRole) -> &'static str {
    match role {
        PortalRole::Member => "member",
        PortalRole::Admin => "admin",
        PortalRole::Staff => "staff",
    }
}

/// The organisation's members, from Clerk's Backend API (reused from KV for a minute).
/// `not_configured` without `CLERK_SECRET_KEY`; an org mapped to no Clerk organisation has
/// no members to list.
pub async fn team(ctx: &Ctx, org: &Org) -> Result<Vec<Membership>, AppError> {
    let secret_key = ctx.data.config.auth.clerk_secret_key.require()?;
    let Some(clerk_org_id) = org.clerk_org_id.as_deref() else {
        return Ok(Vec::new());
    };
    let kv = storage::cache(&ctx.env)?;
    let key = format!("portal_team:{clerk_org_id}");
    if let Ok(Some(cached)) = kv.get(&key).json::<Vec<Membership>>().await {
        return Ok(cached);
    }
    let api = ClerkApi {
        base_url: &ctx.data.config.upstreams.clerk_api,
        secret_key,
    };
    let members = match api.organization_memberships(clerk_org_id).await {
        Ok(members) => members,
        // Clerk no longer knows the organisation: nobody is a member.
        Err(ClerkError::NotFound) => Vec::new(),
        Err(ClerkError::Failed(err)) => return Err(err),
    };
    // Sharing through KV saves Clerk a call; failing to share is not an error.
    if let Ok(put) = kv.put(&key, &members) {
        let _ = put.expiration_ttl(TEAM_CACHE_SECS).execute().await;
    }
    Ok(members)
}

/// Every org with its plan, status, number of sites and last 30 days' messages (staff).
pub async fn clients(ctx: &Ctx) -> Result<Vec<ClientRow>, AppError> {
    let db = storage::database(&ctx.env)?;
    store::clients(&db, &day(ctx.data.now_ms, 29)).await
}

/// What staff give to make an org.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    /// 1–100 characters.
    pub name: String,
    /// 2–32 lowercase letters or digits: the `{client}` of its site keys. Unique.
    pub slug: String,
    /// A plan id of the catalog (default: the catalog's first).
    #[serde(default)]
    pub plan: Option<String>,
    /// The Clerk organisation its members sign in with (`org_...`). Unique.
    #[serde(default)]
    pub clerk_org_id: Option<String>,
    /// Default `active`.
    #[serde(default)]
    pub status: Option<OrgStatus>,
}

/// Makes an org (staff): every field checked, a taken slug or Clerk organisation is `409`,
/// the org and its audit row are one batch.
pub async fn create(ctx: &Ctx, caller: &PortalCaller, new: NewOrg) -> Result<Org, AppError> {
    let mut problems = Vec::new();
    let name = rules::name(&new.name)
        .map_err(|why| problems.push(FieldError::new("name", why)))
        .ok();
    let slug = rules::slug(&new.slug)
        .map_err(|why| problems.push(FieldError::new("slug", why)))
        .ok();
    let clerk_org_id = match new.clerk_org_id.as_deref() {
        Some(id) => rules::clerk_org_id(id)
            .map_err(|why| problems.push(FieldError::new("clerk_org_id", why)))
            .ok(),
        None => None,
    };
    let plans = &ctx.data.config.plans;
    let plan = match new.plan.as_deref() {
        Some(id) => match plans.get(id) {
            Some(plan) => Some(plan.id.clone()),
            None => {
                problems.push(FieldError::new(
                    "plan",
                    format!(
                        "is not a plan of the catalog: {}",
                        plans
                            .plans()
                            .iter()
                            .map(|p| p.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                None
            }
        },
        None => Some(plans.default_plan().id.clone()),
    };
    let (Some(name), Some(slug), Some(plan), true) = (name, slug, plan, problems.is_empty()) else {
        return Err(AppError::Validation(problems));
    };
    let db = storage::database(&ctx.env)?;
    let id = random::id::<12>("org_");
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let status = new.status.unwrap_or(OrgStatus::Active);
    let row = NewOrgRow {
        id: &id,
        clerk_org_id,
        name,
        slug,
        plan: &plan,
        status,
        config: "{}",
        now: &now,
    };
    let entry = Entry::new(caller.actor(), Action::OrgCreated)
        .target(Target::new("org", &id))
        .with("slug", json!(slug))
        .with("plan", json!(plan));
    let results = store::batch(
        &db,
        vec![
            store::insert(&db, &row)?,
            audit::statement_if_changed(&db, Occasion::of(&ctx.data), &entry)?,
        ],
    )
    .await?;
    if results.first().copied().unwrap_or(0) == 0 {
        let (slug_taken, clerk_taken) = store::taken(&db, slug, clerk_org_id).await?;
        return Err(AppError::Conflict(match (slug_taken, clerk_taken) {
            (true, _) => format!("the slug {slug} is taken"),
            (false, true) => "that Clerk organisation already has an org".to_owned(),
            _ => "the org could not be made; retry".to_owned(),
        }));
    }
    Ok(Org {
        id,
        clerk_org_id: clerk_org_id.map(str::to_owned),
        name: name.to_owned(),
        slug: slug.to_owned(),
        plan,
        status,
        config: OrgConfig::default(),
        stored_config: "{}".to_owned(),
        created_at: now.clone(),
        updated_at: now,
    })
}

/// An org's stored row as the flows see it (for the client list).
pub fn from_row(row: OrgRow) -> Org {
    Org::from(row)
}
