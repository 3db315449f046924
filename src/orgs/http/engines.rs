//! The portal's engines: the org's sites (chat widgets and voice endpoints), listed for its
//! members and made, changed and re-keyed by its admins or staff, through the sites
//! capability, always for the org the pipeline resolved.

use worker::{Request, Response};

use super::views::PortalQuery;
use crate::error::AppError;
use crate::http::doc::Doc;
use crate::http::{response, Ctx};
use crate::orgs::service::PortalCaller;
use crate::sites::http::views::{NewSiteBody, SitePatchBody, SiteView, SitesView};
use crate::sites::service as sites;

fn site_id(ctx: &Ctx) -> String {
    ctx.param("id").cloned().unwrap_or_default()
}

/// `GET /portal/engines`: the org's sites with their keys and origins.
pub async fn list(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let org = caller.org()?;
    let found = sites::list(&ctx, &org.id).await?;
    response::ok(&SitesView {
        sites: found.into_iter().map(SiteView::from).collect(),
    })
}

/// What `/openapi.json` says of `GET /portal/engines`.
pub fn list_doc() -> Doc {
    Doc::new("The org's sites (engines) with their site keys and origins")
        .query::<PortalQuery>()
        .ok::<SitesView>(200)
}

/// `POST /portal/engines`: a new site of the org, with a new key (`201`).
pub async fn create(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let org = caller.org()?;
    let body: NewSiteBody = ctx.data.json()?;
    let site = sites::new_site(&ctx, body)?;
    let made = sites::create(&ctx, &org.id, &org.slug, site, caller.actor()).await?;
    response::json(201, &SiteView::from(made))
}

/// What `/openapi.json` says of `POST /portal/engines`.
pub fn create_doc() -> Doc {
    Doc::new("A new site of the org, with a new site key")
        .query::<PortalQuery>()
        .body::<NewSiteBody>()
        .ok::<SiteView>(201)
}

/// `PATCH /portal/engines/:id`: changes a site of the org (`404` for another org's).
pub async fn update(_req: Request, ctx: Ctx, caller: PortalCaller) -> Result<Response, AppError> {
    let org = caller.org()?;
    let body: SitePatchBody = ctx.data.json()?;
    let patch = sites::site_patch(&ctx, body)?;
    let site = sites::update(&ctx, &org.id, &site_id(&ctx), patch, caller.actor()).await?;
    response::ok(&SiteView::from(site))
}

/// What `/openapi.json` says of `PATCH /portal/engines/:id`.
pub fn update_doc() -> Doc {
    Doc::new("Change a site of the org: name, status, origins, server calls")
        .query::<PortalQuery>()
        .body::<SitePatchBody>()
        .ok::<SiteView>(200)
}

/// `POST /portal/engines/:id/rotate-key`: a new key for a site of the org; the old one is
/// refused at once.
pub async fn rotate_key(
    _req: Request,
    ctx: Ctx,
    caller: PortalCaller,
) -> Result<Response, AppError> {
    let org = caller.org()?;
    let site = sites::rotate_key(&ctx, &org.id, &site_id(&ctx), caller.actor()).await?;
    response::ok(&SiteView::from(site))
}

/// What `/openapi.json` says of `POST /portal/engines/:id/rotate-key`.
pub fn rotate_key_doc() -> Doc {
    Doc::new("A new site key for a site of the org; the old one is refused at once")
        .query::<PortalQuery>()
        .ok::<SiteView>(200)
}
