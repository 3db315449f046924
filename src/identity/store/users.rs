//! The `users` table: one row per person whatever proved who they are.

use serde::{Deserialize, Serialize};
use worker::{query, D1Database, D1PreparedStatement, D1Result};

use crate::core::random;
use crate::error::AppError;
use crate::identity::rules::profile::ProfileChanges;
use crate::identity::rules::status::{AuthSource, SessionStatus, UserStatus};
use crate::storage::{changes, UserRef};

/// The columns every user query returns.
const COLUMNS: &str = "id, auth_source, external_id, email, username, display_name, \
                       avatar_url, plan, status, created_at, updated_at";

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct User {
    /// `usr_...`.
    pub id: String,
    pub auth_source: AuthSource,
    /// The subject at that source.
    pub external_id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    /// Plan id from the catalog.
    pub plan: String,
    pub status: UserStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl User {
    /// Whether the user may authenticate.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
}

/// The caller's user row (if it exists yet) and the state of their token's session.
#[derive(Debug, Clone)]
pub struct Caller {
    user: Option<User>,
    /// `None` when the session is not known.
    pub session_status: Option<SessionStatus>,
}

impl Caller {
    /// The user row, if the caller has one.
    pub fn user(&self) -> Option<&User> {
        self.user.as_ref()
    }
}

#[derive(Deserialize)]
struct CallerRow {
    session_status: Option<SessionStatus>,
    id: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Value,
}

/// Identity claims used when a user row is first created from a token.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub auth_source: AuthSource,
    pub external_id: &'a str,
    pub email: Option<&'a str>,
    pub username: Option<&'a str>,
    /// The catalog's default plan.
    pub plan: &'a str,
}

/// The statement that finds the caller's row and session state in one round trip (always one
/// result row). The session is the caller's own: same source, same user, same id.
pub fn caller_statement(
    db: &D1Database,
    auth_source: AuthSource,
    external_id: &str,
    session_id: Option<&str>,
) -> Result<D1PreparedStatement, AppError> {
    let sql = format!(
        "SELECT (SELECT status FROM auth_sessions \
                 WHERE auth_source = ?1 AND external_user_id = ?2 AND id = ?3) AS session_status, \
                u.{} \
         FROM (SELECT 1) LEFT JOIN users u ON u.auth_source = ?1 AND u.external_id = ?2",
        COLUMNS.replace(", ", ", u.")
    );
    Ok(query!(
        db,
        &sql,
        auth_source.as_str(),
        external_id,
        session_id
    )?)
}

/// The caller [`caller_statement`] found.
pub fn caller_from(result: &D1Result) -> Result<Caller, AppError> {
    let row = result
        .results::<CallerRow>()?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal("caller lookup returned no row".to_owned()))?;
    let user = match row.id {
        Some(id) => {
            let mut value = row.rest;
            value["id"] = serde_json::Value::String(id);
            Some(
                serde_json::from_value::<User>(value)
                    .map_err(|e| AppError::Internal(format!("user row: {e}")))?,
            )
        }
        None => None,
    };
    Ok(Caller {
        user,
        session_status: row.session_status,
    })
}

/// The id of the user with this external identity, as SQL (see [`UserRef`]).
pub fn id_of_external(auth_source: AuthSource, external_id: &str) -> UserRef {
    UserRef {
        sql: "(SELECT id FROM users WHERE auth_source = ?1 AND external_id = ?2)".to_owned(),
        params: vec![auth_source.as_str().into(), external_id.into()],
    }
}

/// A user made by a sign-up (not by a token's first request).
#[derive(Debug, Clone, Copy)]
pub struct SignedUpUser<'a> {
    pub id: &'a str,
    pub auth_source: AuthSource,
    pub external_id: &'a str,
    pub email: &'a str,
    pub display_name: Option<&'a str>,
    pub plan: &'a str,
}

/// The statement that inserts a signed-up user (its ids are new, so it meets no row).
pub fn insert_statement(
    db: &D1Database,
    new: SignedUpUser<'_>,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "INSERT INTO users (id, auth_source, external_id, email, display_name, plan, status, \
                            created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?7)",
        new.id,
        new.auth_source.as_str(),
        new.external_id,
        new.email,
        new.display_name,
        new.plan,
        now
    )?)
}

/// The statement that changes a user's email.
pub fn set_email_statement(
    db: &D1Database,
    id: &str,
    email: &str,
    now: &str,
) -> Result<D1PreparedStatement, AppError> {
    Ok(query!(
        db,
        "UPDATE users SET email = ?2, updated_at = ?3 WHERE id = ?1",
        id,
        email,
        now
    )?)
}

/// The user with this Tollgate id (`usr_...`), whatever their status.
pub async fn get(db: &D1Database, id: &str) -> Result<Option<User>, AppError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1");
    Ok(query!(db, &sql, id)?.first::<User>(None).await?)
}

/// Creates the user on their first authenticated request; if a concurrent request created it
/// first, returns that row unchanged.
pub async fn create(db: &D1Database, new: NewUser<'_>, now: &str) -> Result<User, AppError> {
    let sql = format!(
        "INSERT INTO users (id, auth_source, external_id, email, username, plan, status, \
                            created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?7) \
         ON CONFLICT (auth_source, external_id) DO UPDATE SET id = id \
         RETURNING {COLUMNS}"
    );
    query!(
        db,
        &sql,
        random::id::<12>("usr_"),
        new.auth_source.as_str(),
        new.external_id,
        new.email,
        new.username,
        new.plan,
        now
    )?
    .first::<User>(None)
    .await?
    .ok_or_else(|| AppError::Internal("user upsert returned no row".to_owned()))
}

/// Applies profile changes; a username taken by someone else (in any letter case) is a
/// conflict and changes nothing.
pub async fn update_profile(
    db: &D1Database,
    id: &str,
    changes: &ProfileChanges,
    now: &str,
) -> Result<User, AppError> {
    // Each field is written only when the request names it: CASE on a flag keeps one
    // statement. The username check is in the same statement, so two users claiming one
    // name at once cannot both get it (D1 runs statements one at a time).
    let sql = format!(
        "UPDATE users SET \
           username = CASE WHEN ?2 THEN ?3 ELSE username END, \
           display_name = CASE WHEN ?4 THEN ?5 ELSE display_name END, \
           avatar_url = CASE WHEN ?6 THEN ?7 ELSE avatar_url END, \
           updated_at = ?8 \
         WHERE id = ?1 AND NOT (?2 AND ?3 IS NOT NULL AND EXISTS ( \
           SELECT 1 FROM users other WHERE other.username = ?3 COLLATE NOCASE AND other.id != ?1)) \
         RETURNING {COLUMNS}"
    );
    let flag = |f: &Option<Option<String>>| i32::from(f.is_some());
    let value = |f: &Option<Option<String>>| f.clone().flatten();
    query!(
        db,
        &sql,
        id,
        flag(&changes.username),
        value(&changes.username),
        flag(&changes.display_name),
        value(&changes.display_name),
        flag(&changes.avatar_url),
        value(&changes.avatar_url),
        now
    )?
    .first::<User>(None)
    .await?
    .ok_or_else(|| match &changes.username {
        Some(Some(username)) => AppError::Conflict(format!("username `{username}` is taken")),
        _ => AppError::NotFound("no such user".to_owned()),
    })
}

/// A user as Clerk describes it in `user.created` / `user.updated`.
#[derive(Debug, Clone)]
pub struct ClerkUser {
    pub external_id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    /// A plan from public metadata, already checked against the catalog.
    pub plan: Option<String>,
    /// Clerk's `updated_at`, epoch ms.
    pub updated_at_ms: i64,
}

/// Creates or updates a Clerk user from a webhook (a new user without a plan in metadata gets
/// `default_plan`). A delivery older than the stored state changes nothing; a deleted user
/// (or a tombstone left by a deletion that came first) stays deleted. The metadata's plan
/// applies only to a user without subscriptions: for one with any, the plan is the one their
/// subscriptions give (see [`crate::billing::store::derived_plan`]), whatever Clerk says.
/// Returns whether a row changed.
pub async fn sync_from_clerk(
    db: &D1Database,
    user: &ClerkUser,
    default_plan: &str,
    now: &str,
) -> Result<bool, AppError> {
    let sql = format!(
        "INSERT INTO users (id, auth_source, external_id, email, username, display_name, \
                            avatar_url, plan, status, source_updated_at, created_at, updated_at) \
         VALUES (?1, 'clerk', ?2, ?3, ?4, ?5, ?6, COALESCE(?7, ?8), 'active', ?9, ?10, ?10) \
         ON CONFLICT (auth_source, external_id) DO UPDATE SET \
           email = excluded.email, username = excluded.username, \
           display_name = excluded.display_name, avatar_url = excluded.avatar_url, \
           plan = CASE WHEN EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = users.id) \
                  THEN {derived} ELSE COALESCE(?7, users.plan) END, \
           source_updated_at = excluded.source_updated_at, \
           updated_at = excluded.updated_at \
         WHERE users.source_updated_at IS NULL OR users.source_updated_at <= excluded.source_updated_at",
        derived = crate::billing::store::derived_plan("users.id", "?8"),
    );
    let result = query!(
        db,
        &sql,
        random::id::<12>("usr_"),
        &user.external_id,
        &user.email,
        &user.username,
        &user.display_name,
        &user.avatar_url,
        &user.plan,
        default_plan,
        user.updated_at_ms as f64,
        now
    )?
    .run()
    .await?;
    Ok(changes(&result)? > 0)
}

/// Leaves a deleted row for an identity not seen yet, so a `user.created` or `user.updated`
/// delivered after the deletion can never create an active user (nor can a token). Does
/// nothing when the user exists. Returns whether a tombstone was written.
pub async fn tombstone(
    db: &D1Database,
    auth_source: AuthSource,
    external_id: &str,
    plan: &str,
    now: &str,
) -> Result<bool, AppError> {
    let auth_source = auth_source.as_str();
    let result = query!(
        db,
        "INSERT INTO users (id, auth_source, external_id, plan, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'deleted', ?5, ?5) \
         ON CONFLICT (auth_source, external_id) DO NOTHING",
        random::id::<12>("usr_"),
        auth_source,
        external_id,
        plan,
        now
    )?
    .run()
    .await?;
    Ok(changes(&result)? > 0)
}

/// Marks a user deleted, revokes their API keys and queues their OpenRouter key for
/// deletion, atomically. Returns whether the user
/// existed and was active.
pub async fn deactivate(
    db: &D1Database,
    auth_source: AuthSource,
    external_id: &str,
    now: &str,
) -> Result<bool, AppError> {
    let auth_source = auth_source.as_str();
    let statements = vec![
        query!(
            db,
            "UPDATE api_keys SET revoked_at = ?3 WHERE revoked_at IS NULL AND user_id = \
             (SELECT id FROM users WHERE auth_source = ?1 AND external_id = ?2)",
            auth_source,
            external_id,
            now
        )?,
        query!(
            db,
            "UPDATE auth_sessions SET status = 'ended', ended_reason = 'user.deleted', \
             updated_at = ?3 WHERE auth_source = ?1 AND external_user_id = ?2 AND status = 'active'",
            auth_source,
            external_id,
            now
        )?,
        // Their OpenRouter key must not stay alive: the sweep deletes it.
        query!(
            db,
            "INSERT INTO provider_key_deletions (key_hash, user_id, reason, next_attempt_ms, \
                 created_at, updated_at) \
             SELECT a.key_hash, a.user_id, 'user_deleted', 0, ?3, ?3 FROM credit_accounts a \
             JOIN users u ON u.id = a.user_id \
             WHERE u.auth_source = ?1 AND u.external_id = ?2 AND a.key_hash IS NOT NULL \
             ON CONFLICT (key_hash) DO NOTHING",
            auth_source,
            external_id,
            now
        )?,
        query!(
            db,
            "UPDATE credit_accounts SET key_hash = NULL, key_sealed = NULL, key_label = NULL, \
                 updated_at = ?3 \
             WHERE user_id = (SELECT id FROM users WHERE auth_source = ?1 AND external_id = ?2)",
            auth_source,
            external_id,
            now
        )?,
        query!(
            db,
            "UPDATE users SET status = 'deleted', updated_at = ?3 \
             WHERE auth_source = ?1 AND external_id = ?2 AND status = 'active'",
            auth_source,
            external_id,
            now
        )?,
    ];
    let results = db.batch(statements).await?;
    match results.last() {
        Some(last) => Ok(changes(last)? > 0),
        None => Ok(false),
    }
}
