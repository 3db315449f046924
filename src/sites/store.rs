//! Sites and their origins in D1 (`sites`, `site_origins`). Every statement about an org's
//! sites is keyed by the org id the caller's service resolved (never one read from a
//! request); the site-key lookup reads the site's org (`orgs`) in the same statement, so a
//! key is admitted in one round trip.

use serde::Deserialize;
use worker::{query, D1Database, D1PreparedStatement, D1Result};

use crate::error::AppError;
use crate::sites::rules::{Env, Kind, Status};

/// A site as stored, with its origins (a JSON array, in the order they were added).
#[derive(Debug, Clone, Deserialize)]
pub struct SiteRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub status: Status,
    pub site_key: String,
    pub env: Env,
    pub allow_server_calls: f64,
    pub created_at: String,
    pub updated_at: String,
    pub key_rotated_at: Option<String>,
    pub origins: String,
}

const SITE_COLUMNS: &str = "s.id, s.org_id, s.name, s.type, s.status, s.site_key, s.env, \
     s.allow_server_calls, s.created_at, s.updated_at, s.key_rotated_at, \
     (SELECT json_group_array(origin) FROM \
         (SELECT origin FROM site_origins WHERE site_id = s.id ORDER BY rowid)) AS origins";

/// A site found by its key, with what the admission needs of its org (whether it is
/// active is asked of the orgs table in SQL, as the origin lookup does).
#[derive(Debug, Clone, Deserialize)]
pub struct KeyedSite {
    #[serde(flatten)]
    pub site: SiteRow,
    pub org_slug: String,
    pub org_name: String,
    pub org_plan: String,
    /// 1 when the org's status is `active`, else 0.
    pub org_active: f64,
}

/// The site a key names, with its org and origins: one statement.
pub async fn by_key(db: &D1Database, key: &str) -> Result<Option<KeyedSite>, AppError> {
    let found = query!(
        db,
        &format!(
            "SELECT {SITE_COLUMNS}, o.slug AS org_slug, o.name AS org_name, o.plan AS org_plan, \
                    o.status = 'active' AS org_active \
             FROM sites s JOIN orgs o ON o.id = s.org_id WHERE s.site_key = ?1"
        ),
        key
    )?
    .first::<KeyedSite>(None)
    .await?;
    Ok(found)
}

/// The site `id` names, with its org and origins (legacy mode): one statement.
pub async fn by_id(db: &D1Database, id: &str) -> Result<Option<KeyedSite>, AppError> {
    let found = query!(
        db,
        &format!(
            "SELECT {SITE_COLUMNS}, o.slug AS org_slug, o.name AS org_name, o.plan AS org_plan, \
                    o.status = 'active' AS org_active \
             FROM sites s JOIN orgs o ON o.id = s.org_id WHERE s.id = ?1"
        ),
        id
    )?
    .first::<KeyedSite>(None)
    .await?;
    Ok(found)
}

/// Whether some active site of an active org allows `origin` (normalised), by the
/// `site_origins_by_origin` index.
pub async fn origin_on_an_active_site(db: &D1Database, origin: &str) -> Result<bool, AppError> {
    #[derive(Deserialize)]
    struct Found {
        #[allow(dead_code)]
        found: f64,
    }
    let found = query!(
        db,
        "SELECT 1 AS found FROM site_origins so \
             JOIN sites s ON s.id = so.site_id JOIN orgs o ON o.id = s.org_id \
         WHERE so.origin = ?1 AND s.status = 'active' AND o.status = 'active' LIMIT 1",
        origin
    )?
    .first::<Found>(None)
    .await?;
    Ok(found.is_some())
}

/// An org's sites, oldest first.
pub async fn list(db: &D1Database, org_id: &str) -> Result<Vec<SiteRow>, AppError> {
    let rows = query!(
        db,
        &format!(
            "SELECT {SITE_COLUMNS} FROM sites s WHERE s.org_id = ?1 ORDER BY s.created_at, s.id"
        ),
        org_id
    )?
    .all()
    .await?
    .results::<SiteRow>()?;
    Ok(rows)
}

/// The statement that reads one site of one org.
pub fn one_statement(
    db: &D1Database,
    org_id: &str,
    site_id: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        &format!("SELECT {SITE_COLUMNS} FROM sites s WHERE s.id = ?1 AND s.org_id = ?2"),
        site_id,
        org_id
    )?)
}

/// The site [`one_statement`] found.
pub fn one_from(result: &D1Result) -> Result<Option<SiteRow>, AppError> {
    Ok(result.results::<SiteRow>()?.into_iter().next())
}

/// One site of one org.
pub async fn one(
    db: &D1Database,
    org_id: &str,
    site_id: &str,
) -> Result<Option<SiteRow>, AppError> {
    let results = db.batch(vec![one_statement(db, org_id, site_id)?]).await?;
    one_from(&results[0])
}

/// A site to insert.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub name: &'a str,
    pub kind: Kind,
    pub site_key: &'a str,
    pub env: Env,
    pub allow_server_calls: bool,
    pub origins: &'a [String],
}

/// Inserts a site and its origins with `audit` (one batch: all or nothing), and reads it back.
pub async fn create(
    db: &D1Database,
    site: &NewRow<'_>,
    now: &str,
    audit: D1PreparedStatement,
) -> Result<Option<SiteRow>, AppError> {
    let mut statements = vec![query!(
        db,
        "INSERT INTO sites (id, org_id, name, type, status, site_key, env, allow_server_calls, \
                            created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?8)",
        site.id,
        site.org_id,
        site.name,
        site.kind.as_str(),
        site.site_key,
        site.env.as_str(),
        i32::from(site.allow_server_calls),
        now
    )?];
    for origin in site.origins {
        statements.push(insert_origin(db, site.id, origin)?);
    }
    statements.push(audit);
    statements.push(one_statement(db, site.org_id, site.id)?);
    let results = db.batch(statements).await?;
    one_from(results.last().expect("the batch's last statement"))
}

fn insert_origin(
    db: &D1Database,
    site_id: &str,
    origin: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO site_origins (site_id, origin) VALUES (?1, ?2)",
        site_id,
        origin
    )?)
}

/// A change to store; `None` leaves a column as it is.
pub struct Change<'a> {
    pub name: Option<&'a str>,
    pub status: Option<Status>,
    pub allow_server_calls: Option<bool>,
    pub origins: Option<&'a [String]>,
}

/// Applies `change` to a site of `org_id` with `audit` (one batch), and reads it back.
pub async fn update(
    db: &D1Database,
    org_id: &str,
    site_id: &str,
    change: &Change<'_>,
    now: &str,
    audit: D1PreparedStatement,
) -> Result<Option<SiteRow>, AppError> {
    let mut statements = vec![query!(
        db,
        "UPDATE sites SET name = COALESCE(?3, name), status = COALESCE(?4, status), \
             allow_server_calls = COALESCE(?5, allow_server_calls), updated_at = ?6 \
         WHERE id = ?1 AND org_id = ?2",
        site_id,
        org_id,
        change.name,
        change.status.map(Status::as_str),
        change.allow_server_calls.map(i32::from),
        now
    )?];
    if let Some(origins) = change.origins {
        statements.push(query!(
            db,
            "DELETE FROM site_origins WHERE site_id = \
                 (SELECT id FROM sites WHERE id = ?1 AND org_id = ?2)",
            site_id,
            org_id
        )?);
        for origin in origins {
            statements.push(insert_origin(db, site_id, origin)?);
        }
    }
    statements.push(audit);
    statements.push(one_statement(db, org_id, site_id)?);
    let results = db.batch(statements).await?;
    one_from(results.last().expect("the batch's last statement"))
}

/// Replaces a site's key with `audit` (one batch), and reads it back: the old value names
/// no site from then on.
pub async fn rotate_key(
    db: &D1Database,
    org_id: &str,
    site_id: &str,
    new_key: &str,
    now: &str,
    audit: D1PreparedStatement,
) -> Result<Option<SiteRow>, AppError> {
    let results = db
        .batch(vec![
            query!(
                db,
                "UPDATE sites SET site_key = ?3, key_rotated_at = ?4, updated_at = ?4 \
                 WHERE id = ?1 AND org_id = ?2",
                site_id,
                org_id,
                new_key,
                now
            )?,
            audit,
            one_statement(db, org_id, site_id)?,
        ])
        .await?;
    one_from(results.last().expect("the batch's last statement"))
}
