//! Orgs in D1 (their daily metrics are `crate::metrics`'; the client list sums them). Every
//! read of one org is keyed by what the portal resolved from the caller (their token's Clerk
//! organisation, or a staff member's `?orgId=`); the staff-only client list is the one read
//! across orgs.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement};

use crate::error::AppError;
use crate::orgs::rules::OrgStatus;
use crate::storage;

/// An org as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct OrgRow {
    pub id: String,
    pub clerk_org_id: Option<String>,
    pub name: String,
    pub slug: String,
    pub plan: String,
    pub status: OrgStatus,
    pub config: String,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, clerk_org_id, name, slug, plan, status, config, created_at, updated_at";

/// The org mapped to this Clerk organisation.
pub async fn by_clerk_org(db: &D1Database, clerk_org_id: &str) -> Result<Option<OrgRow>, AppError> {
    let found = query!(
        db,
        &format!("SELECT {COLUMNS} FROM orgs WHERE clerk_org_id = ?1"),
        clerk_org_id
    )?
    .first::<OrgRow>(None)
    .await?;
    Ok(found)
}

/// The org with this Tollgate id, or else mapped to this Clerk organisation id (both are
/// `org_...`; Tollgate's own id wins).
pub async fn by_any_id(db: &D1Database, id: &str) -> Result<Option<OrgRow>, AppError> {
    let found = query!(
        db,
        &format!(
            "SELECT {COLUMNS} FROM orgs WHERE id = ?1 OR clerk_org_id = ?1 \
             ORDER BY id = ?1 DESC LIMIT 1"
        ),
        id
    )?
    .first::<OrgRow>(None)
    .await?;
    Ok(found)
}

/// A new org's row.
pub struct NewOrgRow<'a> {
    pub id: &'a str,
    pub clerk_org_id: Option<&'a str>,
    pub name: &'a str,
    pub slug: &'a str,
    pub plan: &'a str,
    pub status: OrgStatus,
    pub config: &'a str,
    pub now: &'a str,
}

/// The statement that makes an org unless its slug or Clerk organisation is taken (then it
/// changes nothing: see [`storage::changes`]).
pub fn insert(db: &D1Database, org: &NewOrgRow<'_>) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO orgs (id, clerk_org_id, name, slug, plan, status, config, created_at, \
             updated_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8 \
         WHERE NOT EXISTS (SELECT 1 FROM orgs WHERE slug = ?4 OR (?2 IS NOT NULL AND clerk_org_id = ?2)) \
         ON CONFLICT DO NOTHING",
        org.id,
        org.clerk_org_id,
        org.name,
        org.slug,
        org.plan,
        org.status.as_str(),
        org.config,
        org.now
    )?)
}

/// Which of an org's unique values is taken: `(slug taken, clerk org taken)`.
pub async fn taken(
    db: &D1Database,
    slug: &str,
    clerk_org_id: Option<&str>,
) -> Result<(bool, bool), AppError> {
    #[derive(Deserialize)]
    struct Taken {
        slug: i64,
        clerk: i64,
    }
    let found = query!(
        db,
        "SELECT EXISTS (SELECT 1 FROM orgs WHERE slug = ?1) AS slug, \
                EXISTS (SELECT 1 FROM orgs WHERE ?2 IS NOT NULL AND clerk_org_id = ?2) AS clerk",
        slug,
        clerk_org_id
    )?
    .first::<Taken>(None)
    .await?;
    Ok(found.map_or((false, false), |t| (t.slug != 0, t.clerk != 0)))
}

/// The statement that replaces an org's configuration, only if it is still `expected` (the
/// configuration the change was computed from): two concurrent changes never lose one.
pub fn set_config(
    db: &D1Database,
    org_id: &str,
    expected: &str,
    config: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE orgs SET config = ?3, updated_at = ?4 WHERE id = ?1 AND config = ?2",
        org_id,
        expected,
        config,
        now
    )?)
}

/// One org in the staff client list.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientRow {
    #[serde(flatten)]
    pub org: OrgRow,
    pub sites: i64,
    pub messages_30d: i64,
}

/// Every org with its number of sites and its messages since `since_day` (`YYYY-MM-DD`),
/// newest first.
pub async fn clients(db: &D1Database, since_day: &str) -> Result<Vec<ClientRow>, AppError> {
    let rows = query!(
        db,
        &format!(
            "SELECT {COLUMNS}, \
               (SELECT COUNT(*) FROM sites s WHERE s.org_id = orgs.id) AS sites, \
               (SELECT COALESCE(SUM(m.messages), 0) FROM org_daily_metrics m \
                  WHERE m.org_id = orgs.id AND m.day >= ?1) AS messages_30d \
             FROM orgs ORDER BY created_at DESC, id DESC"
        ),
        since_day
    )?
    .all()
    .await?
    .results::<ClientRow>()?;
    Ok(rows)
}

/// Runs statements as one batch; the results in order.
pub async fn batch(
    db: &D1Database,
    statements: Vec<D1PreparedStatement>,
) -> Result<Vec<usize>, AppError> {
    let results = db.batch(statements).await?;
    results.iter().map(storage::changes).collect()
}
