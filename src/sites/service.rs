//! Sites' flows: an org's sites (list, create, change, rotate a key), who is calling with a
//! site key ([`admit`]), and whether a browser origin belongs to some active site (CORS
//! preflights).
//!
//! Every flow about an org's sites takes the org id already resolved by its caller (the
//! portal decides who may act on which org); none reads an org id from a request. A site of
//! another org is `404 not_found`, exactly as a missing one.

use worker::{Env, Request};

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service::{self as audit, Occasion};
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::{self, Ctx};
use crate::identity::service::auth;
use crate::sites::rules::{self, NewSite, NewSiteBody, SitePatch, SitePatchBody};
use crate::sites::store::{self, Change, NewRow, SiteRow};
use crate::storage;

pub use crate::sites::rules::KEY_HEADER;

/// A site as the flows (and the portal) see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub kind: rules::Kind,
    pub status: rules::Status,
    /// Public: it sits in the org's web pages.
    pub site_key: String,
    pub env: rules::Env,
    pub allow_server_calls: bool,
    /// Normalised, in the order they were added.
    pub origins: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub key_rotated_at: Option<String>,
}

impl TryFrom<SiteRow> for Site {
    type Error = AppError;

    fn try_from(row: SiteRow) -> Result<Self, AppError> {
        let origins: Vec<String> = serde_json::from_str(&row.origins)
            .map_err(|e| AppError::Internal(format!("site origins of {}: {e}", row.id)))?;
        Ok(Self {
            id: row.id,
            org_id: row.org_id,
            name: row.name,
            kind: row.kind,
            status: row.status,
            site_key: row.site_key,
            env: row.env,
            allow_server_calls: row.allow_server_calls != 0.0,
            origins,
            created_at: row.created_at,
            updated_at: row.updated_at,
            key_rotated_at: row.key_rotated_at,
        })
    }
}

/// A caller admitted by its site key: the site and its org, resolved by the pipeline.
#[derive(Debug, Clone)]
pub struct SiteCaller {
    pub site: Site,
    pub org_id: String,
    pub org_slug: String,
    pub org_name: String,
    /// The org's plan (a plan id of the catalog).
    pub org_plan: String,
    /// The request's `Origin` exactly as sent, when it had one (it is on the site's list).
    pub origin: Option<String>,
    /// Whether it came in legacy mode: no `X-Site-Key`, served as `CHAT_LEGACY_SITE`.
    pub legacy: bool,
    /// The client's address its rates count against (see [`rules::client_address`]).
    pub address: String,
}

/// Counts a visitor's request to `product` (`chat`, `voice`): `per_visitor` a minute for the
/// visitor (by `visitor`, their label, else by address) and twice that for the address,
/// within the caller's site; `429 rate_limited` when either is used up. Keyless (legacy)
/// callers count the same way, so a fresh label per request never escapes the address's rate.
pub async fn admit_visitor(
    ctx: &Ctx,
    caller: &SiteCaller,
    product: &str,
    per_visitor: u32,
    visitor: Option<&str>,
) -> Result<(), AppError> {
    let (visitor_key, address_key) =
        rules::visitor_rate_keys(product, &caller.site.id, visitor, &caller.address);
    auth::admit_rate(ctx, per_visitor, visitor_key, product).await?;
    let per_address = rules::per_address(per_visitor);
    auth::admit_rate(ctx, per_address, address_key, product).await
}

/// Whether the deployment is local (plain http origins allowed anywhere).
fn is_local(ctx: &Ctx) -> bool {
    ctx.data.config.environment == "local"
}

fn invalid(problems: Vec<crate::core::body::FieldError>) -> AppError {
    AppError::Validation(problems)
}

/// A new site's body, validated (`400 validation_failed`, every problem under its field).
pub fn new_site(ctx: &Ctx, body: NewSiteBody) -> Result<NewSite, AppError> {
    rules::new_site(body, is_local(ctx)).map_err(invalid)
}

/// A site change's body, validated (`400 validation_failed`, every problem under its field).
pub fn site_patch(ctx: &Ctx, body: SitePatchBody) -> Result<SitePatch, AppError> {
    rules::site_patch(body, is_local(ctx)).map_err(invalid)
}

fn not_found() -> AppError {
    AppError::NotFound("no such site".to_owned())
}

fn occasion(ctx: &Ctx) -> Occasion<'_> {
    Occasion::of(&ctx.data)
}

/// An org's sites, with their keys and origins, oldest first.
pub async fn list(ctx: &Ctx, org_id: &str) -> Result<Vec<Site>, AppError> {
    let db = storage::database(&ctx.env)?;
    store::list(&db, org_id)
        .await?
        .into_iter()
        .map(Site::try_from)
        .collect()
}

/// One site of an org (`404` for a site of another org, as for a missing one).
pub async fn get(ctx: &Ctx, org_id: &str, site_id: &str) -> Result<Site, AppError> {
    let db = storage::database(&ctx.env)?;
    store::one(&db, org_id, site_id)
        .await?
        .ok_or_else(not_found)?
        .try_into()
}

/// Creates a site of `org_id` (whose slug is `org_slug`, the `{slug}` of its key): the
/// site, its origins and its audit row in one batch.
pub async fn create(
    ctx: &Ctx,
    org_id: &str,
    org_slug: &str,
    site: NewSite,
    actor: Actor<'_>,
) -> Result<Site, AppError> {
    if !rules::is_slug(org_slug) {
        return Err(AppError::Internal(format!(
            "org {org_id} has a slug that cannot name a site key"
        )));
    }
    let db = storage::database(&ctx.env)?;
    let id = rules::new_id();
    let key = rules::generate_key(org_slug, site.env);
    let entry = Entry::new(actor, Action::SiteCreated)
        .target(Target::new("site", &id))
        .with("org_id", org_id)
        .with("type", site.kind.as_str())
        .with("env", site.env.as_str())
        .with("origins", site.origins.len())
        .with("allow_server_calls", site.allow_server_calls);
    let row = NewRow {
        id: &id,
        org_id,
        name: &site.name,
        kind: site.kind,
        site_key: &key,
        env: site.env,
        allow_server_calls: site.allow_server_calls,
        origins: &site.origins,
    };
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let audit = audit::statement(&db, occasion(ctx), &entry)?;
    store::create(&db, &row, &now, audit)
        .await?
        .ok_or_else(|| AppError::Internal(format!("site {id} missing after its insert")))?
        .try_into()
}

/// Changes a site of `org_id` (`404` for a site of another org, changing nothing).
pub async fn update(
    ctx: &Ctx,
    org_id: &str,
    site_id: &str,
    patch: SitePatch,
    actor: Actor<'_>,
) -> Result<Site, AppError> {
    let db = storage::database(&ctx.env)?;
    let before: Site = store::one(&db, org_id, site_id)
        .await?
        .ok_or_else(not_found)?
        .try_into()?;
    let mut entry = Entry::new(actor, Action::SiteUpdated)
        .target(Target::new("site", &before.id))
        .with("org_id", org_id);
    if let Some(name) = &patch.name {
        entry = entry.with("name", name.as_str());
    }
    if let Some(status) = patch.status {
        entry = entry
            .with("status", status.as_str())
            .with("status_before", before.status.as_str());
    }
    if let Some(origins) = &patch.origins {
        entry = entry.with("origins", origins.clone());
    }
    if let Some(allow) = patch.allow_server_calls {
        entry = entry.with("allow_server_calls", allow);
    }
    let change = Change {
        name: patch.name.as_deref(),
        status: patch.status,
        allow_server_calls: patch.allow_server_calls,
        origins: patch.origins.as_deref(),
    };
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let audit = audit::statement(&db, occasion(ctx), &entry)?;
    store::update(&db, org_id, site_id, &change, &now, audit)
        .await?
        .ok_or_else(not_found)?
        .try_into()
}

/// Gives a site of `org_id` a new key (`404` for a site of another org): the old value
/// names no site from then on, so it is refused at once.
pub async fn rotate_key(
    ctx: &Ctx,
    org_id: &str,
    site_id: &str,
    actor: Actor<'_>,
) -> Result<Site, AppError> {
    let db = storage::database(&ctx.env)?;
    let before: Site = store::one(&db, org_id, site_id)
        .await?
        .ok_or_else(not_found)?
        .try_into()?;
    // The slug and env of the key it replaces: the org's slug never changes under a key.
    let parsed = rules::parse_key(&before.site_key)
        .map_err(|why| AppError::Internal(format!("stored key of {site_id}: {why}")))?;
    let key = rules::generate_key(parsed.slug, parsed.env);
    let entry = Entry::new(actor, Action::SiteKeyRotated)
        .target(Target::new("site", &before.id))
        .with("org_id", org_id);
    let now = rfc3339_from_millis(ctx.data.now_ms);
    let audit = audit::statement(&db, occasion(ctx), &entry)?;
    store::rotate_key(&db, org_id, site_id, &key, &now, audit)
        .await?
        .ok_or_else(not_found)?
        .try_into()
}

/// Resolves a site-key route's caller from `X-Site-Key` and `Origin`, in one D1 round
/// trip. No key: `401`, unless `legacy` (the route takes [`crate::http::access::SiteKeyOrLegacy`])
/// and `CHAT_LEGACY_SITE` names a site: then the request is that site's, admitted from one of
/// its origins or with no `Origin` at all (the seed's clients call from servers and apps
/// without one), whatever its `allow_server_calls`. A malformed key, one that names no site
/// (a rotated key's old value too), a paused site, an org that is not active, an `Origin`
/// not on the site's list, or no `Origin` where the site takes no server calls: `403`,
/// nothing changed. A `CHAT_LEGACY_SITE` naming no site is `403` too.
pub async fn admit(req: &Request, ctx: &Ctx, legacy: bool) -> Result<SiteCaller, AppError> {
    let key = http::header(req, KEY_HEADER).filter(|k| !k.trim().is_empty());
    let legacy_site = ctx.data.config.legacy_site.as_deref().filter(|_| legacy);
    let db = storage::database(&ctx.env)?;
    let (found, in_legacy) = match (key, legacy_site) {
        (Some(key), _) => {
            let parsed =
                rules::parse_key(&key).map_err(|why| AppError::Forbidden(why.to_owned()))?;
            let found = store::by_key(&db, &key)
                .await?
                .filter(|found| found.org_slug == parsed.slug)
                .ok_or_else(|| AppError::Forbidden("unknown site key".to_owned()))?;
            (found, false)
        }
        (None, Some(site_id)) => {
            let found = store::by_id(&db, site_id)
                .await?
                .ok_or_else(|| AppError::Forbidden("the legacy site does not exist".to_owned()))?;
            (found, true)
        }
        (None, None) => {
            return Err(AppError::Unauthorized(format!(
                "missing site key: send it in {KEY_HEADER}"
            )))
        }
    };
    let site = Site::try_from(found.site)?;
    let origin = http::header(req, "Origin");
    rules::admit(
        site.status,
        found.org_active != 0.0,
        &site.origins,
        // Legacy mode: a call without Origin is how the seed's clients call.
        site.allow_server_calls || in_legacy,
        origin.as_deref(),
    )
    .map_err(|refusal| AppError::Forbidden(refusal.message().to_owned()))?;
    ctx.data
        .set_principal(if in_legacy { "legacy_site" } else { "site_key" });
    Ok(SiteCaller {
        org_id: site.org_id.clone(),
        site,
        org_slug: found.org_slug,
        org_name: found.org_name,
        org_plan: found.org_plan,
        origin,
        legacy: in_legacy,
        address: rules::client_address(http::header(req, "CF-Connecting-IP").as_deref()),
    })
}

/// Whether a browser `origin` is on some active site's list (of an active org): a CORS
/// preflight to a site-key route from it is answered. A lookup failure answers no (and
/// is logged), so the preflight is refused rather than failing.
pub async fn origin_on_a_site(env: &Env, origin: &str) -> bool {
    let Ok(origin) = rules::normalize_origin(origin, true) else {
        return false;
    };
    let lookup = async {
        let db = storage::database(env)?;
        store::origin_on_an_active_site(&db, &origin).await
    };
    match lookup.await {
        Ok(found) => found,
        Err(err) => {
            crate::log::Logger::isolate().error(
                "site origin lookup failed; preflight refused",
                serde_json::json!({ "error": err.log_detail().unwrap_or_else(|| err.code().to_owned()) }),
            );
            false
        }
    }
}
