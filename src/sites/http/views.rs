//! What the site endpoints take and answer.

use serde::Serialize;
use utoipa::ToSchema;

use crate::sites::service::{Site, SiteCaller};

pub use crate::sites::rules::{NewSiteBody, SitePatchBody};

/// A site as its org's members see it, key and origins included (the key is public: it
/// sits in the org's web pages).
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteView {
    /// `site_...`
    pub id: String,
    pub name: String,
    /// `chatbot` or `voice`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `active` or `paused` (a paused site's key is refused).
    pub status: String,
    /// `sk_{slug}_{env}_{random}`, sent by the widget as `X-Site-Key`.
    pub site_key: String,
    /// `live`, `test` or `dev`.
    pub env: String,
    /// The origins the key is accepted from (`https://host[:port]`).
    pub origins: Vec<String>,
    /// Whether requests without `Origin` (servers) are accepted.
    pub allow_server_calls: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub updated_at: String,
    /// When the key was last replaced, if ever.
    #[schema(required = true)]
    pub key_rotated_at: Option<String>,
}

impl From<Site> for SiteView {
    fn from(site: Site) -> Self {
        Self {
            id: site.id,
            name: site.name,
            kind: site.kind.to_string(),
            status: site.status.to_string(),
            site_key: site.site_key,
            env: site.env.to_string(),
            origins: site.origins,
            allow_server_calls: site.allow_server_calls,
            created_at: site.created_at,
            updated_at: site.updated_at,
            key_rotated_at: site.key_rotated_at,
        }
    }
}

/// An org's sites.
#[derive(Debug, Serialize, ToSchema)]
pub struct SitesView {
    pub sites: Vec<SiteView>,
}

/// The org a site belongs to, as a widget may show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteOrgView {
    pub name: String,
    pub slug: String,
}

/// A site's public face, for the widget that carries its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteFaceView {
    /// `site_...`
    pub site_id: String,
    pub name: String,
    /// `chatbot` or `voice`.
    #[serde(rename = "type")]
    pub kind: String,
    pub org: SiteOrgView,
}

impl From<&SiteCaller> for SiteFaceView {
    fn from(caller: &SiteCaller) -> Self {
        Self {
            site_id: caller.site.id.clone(),
            name: caller.site.name.clone(),
            kind: caller.site.kind.to_string(),
            org: SiteOrgView {
                name: caller.org_name.clone(),
                slug: caller.org_slug.clone(),
            },
        }
    }
}
