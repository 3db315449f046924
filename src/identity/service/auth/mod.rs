//! From request to principal: who is calling, on whose behalf, with which roles.
//!
//! `Authorization: Bearer <credential>` carries one of:
//! - a user API key (`tg_live_...`), looked up by its SHA-256 hash;
//! - a Clerk session token (RS256, checked against the instance's JWKS);
//! - an HMAC token (HS256, checked with `JWT_SECRET`);
//! - an account access token (HS256, issuer `tollgate-accounts`, checked with
//!   `ACCOUNT_TOKEN_SECRET`), chosen by its `iss`. Its session must exist and be active:
//!   unlike a Clerk or HMAC token, whose unknown session is admitted, an account token's
//!   session is always recorded at sign-in, so logging out refuses it at once.
//!
//! A token acts with the user's full authority. An API key acts only within its scopes: a
//! key lacking the scope the route table declares for the route ([`scopes::Access`]) is
//! refused with `403 forbidden` as soon as the key is resolved, before the handler runs.
//!
//! Platforms' end users sign in with a second Clerk instance (`END_USER_CLERK_*`). Their
//! tokens, told apart by `iss`, are refused here before any JWKS is fetched: they are
//! verified only by [`verify_end_user`], on end-user routes, and never make a users row.
//!
//! Signature and claim checks of a token are cached per isolate until the token expires;
//! the user's status and the session's status are read from D1 on every request, so a
//! deleted user or an ended session is refused at once. An authenticated request then
//! counts against its plan's rate limit ([`rate_limit`]).

mod jwks;
mod rate_limit;

use crate::audit::rules::{Action, Actor, Entry, Target};
use crate::audit::service as audit;
use std::cell::RefCell;

use sha2::{Digest, Sha256};
use worker::{D1Database, D1PreparedStatement, D1Result, Request};

use crate::clock::now_ms;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::http::access;
use crate::http::Ctx;
use crate::identity::config::{AuthConfig, ClerkConfig};
use crate::identity::rules::api_key;
use crate::identity::rules::jwt::{
    self, ClerkPolicy, HmacPolicy, OrgClaim, Rejection, TimeCheck, TokenKind, VerifiedToken,
};
use crate::identity::rules::key_cache::VerifiedTokenCache;
use crate::identity::rules::roles::{self, Roles, Subject};
use crate::identity::rules::scopes;
use crate::identity::rules::status::{AuthSource, SessionStatus};
use crate::identity::store::api_keys;
use crate::identity::store::users::{self, NewUser, User};
use crate::storage::{self as store, UserRef};

pub use crate::identity::rules::jwt::EndUserToken;

thread_local! {
    static VERIFIED: RefCell<VerifiedTokenCache> = RefCell::new(VerifiedTokenCache::default());
    static END_USER_VERIFIED: RefCell<VerifiedTokenCache<EndUserToken>> =
        RefCell::new(VerifiedTokenCache::default());
}

/// What every platform key starts with (platform keys are the platforms capability's; a user
/// route names them only to refuse them clearly).
const PLATFORM_KEY_PREFIX: &str = "pk_live_";

/// A key's last-used time is written at most this often.
const KEY_TOUCH_INTERVAL_MS: u64 = 60_000;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A Clerk or HMAC token; `session_id` is its `sid` (or `jti`).
    Token {
        kind: TokenKind,
        session_id: Option<String>,
        org: Option<OrgClaim>,
        /// The verified token, for refresh.
        token: Box<VerifiedToken>,
    },
    /// A user API key.
    ApiKey { id: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Their user row (active).
    pub user: User,
    /// What they may do.
    pub roles: Roles,
    /// How they proved it.
    pub credential: Credential,
}

impl Principal {
    /// The principal kind written to the request log: `clerk`, `hmac`, `account` or
    /// `api_key`.
    pub fn kind(&self) -> &'static str {
        match &self.credential {
            Credential::Token {
                kind: TokenKind::Clerk,
                ..
            } => "clerk",
            Credential::Token {
                kind: TokenKind::Hmac,
                ..
            } => "hmac",
            Credential::Token {
                kind: TokenKind::Account,
                ..
            } => "account",
            Credential::ApiKey { .. } => "api_key",
        }
    }

    /// The organisation of the caller's token, if any.
    pub fn org(&self) -> Option<&OrgClaim> {
        match &self.credential {
            Credential::Token { org, .. } => org.as_ref(),
            Credential::ApiKey { .. } => None,
        }
    }

    /// Refuses anyone without the admin role (admin endpoints).
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.roles.admin {
            Ok(())
        } else {
            Err(AppError::Forbidden("this needs the admin role".to_owned()))
        }
    }

    /// Refuses API keys for actions that need a signed-in session (managing keys).
    pub fn require_session(&self) -> Result<(), AppError> {
        match self.credential {
            Credential::Token { .. } => Ok(()),
            Credential::ApiKey { .. } => Err(AppError::Forbidden(
                scopes::KeyRefusal::NeedsSession.message(),
            )),
        }
    }
}

/// Authenticates the request and counts it against the caller's rate limit. Any failure to
/// authenticate is `401 unauthorized` with a precise message (or `not_configured` /
/// `upstream_error` when verification itself cannot run); a caller past their plan's
/// requests per minute gets `429 rate_limited`.
pub async fn authenticate(req: &Request, ctx: &Ctx) -> Result<Principal, AppError> {
    Ok(resolve(req, ctx, None).await?.0)
}

/// Counts this request against `per_minute` requests per minute for `key`, a budget that is
/// not a user's (a platform's end user): `429 rate_limited` when it is used up, as for users.
pub async fn admit_rate(
    ctx: &Ctx,
    per_minute: u32,
    key: String,
    who: &str,
) -> Result<(), AppError> {
    rate_limit::admit_as(ctx, per_minute, key, who).await
}

/// A read-only statement keyed by the caller's user id (given as SQL, see [`UserRef`]).
pub type ReadFor<'a> = &'a dyn Fn(&D1Database, &UserRef) -> Result<D1PreparedStatement, AppError>;

/// Authenticates as [`authenticate`] does and runs `read` in the same D1 round trip as the
/// caller's lookup, so a read-only route costs one round trip, not two. The read's result is
/// `None` when the caller had no user row before this request (there is nothing to read).
pub async fn authenticate_and_read(
    req: &Request,
    ctx: &Ctx,
    read: ReadFor<'_>,
) -> Result<(Principal, Option<D1Result>), AppError> {
    resolve(req, ctx, Some(read)).await
}

async fn resolve(
    req: &Request,
    ctx: &Ctx,
    read: Option<ReadFor<'_>>,
) -> Result<(Principal, Option<D1Result>), AppError> {
    let credential = bearer(req)?;
    if credential.starts_with(PLATFORM_KEY_PREFIX) {
        return Err(AppError::Unauthorized(
            "a platform key is accepted only on platform routes (/api/data, /api/usage, \
             /api/tiers, /api/developer/*)"
                .to_owned(),
        ));
    }
    let (principal, extra) = if credential.starts_with(api_key::PREFIX) {
        from_api_key(ctx, &credential, read).await?
    } else {
        from_token(ctx, &credential, read).await?
    };
    ctx.data.set_principal(principal.kind());
    rate_limit::admit(ctx, &principal.user).await?;
    Ok((principal, extra))
}

/// Runs a caller lookup, with `read` keyed by that caller in the same batch if there is one.
async fn lookup(
    db: &D1Database,
    statement: D1PreparedStatement,
    read: Option<(ReadFor<'_>, UserRef)>,
) -> Result<(D1Result, Option<D1Result>), AppError> {
    let Some((read, user)) = read else {
        return Ok((statement.all().await?, None));
    };
    let mut results = db
        .batch(vec![statement, read(db, &user)?])
        .await?
        .into_iter();
    let found = results
        .next()
        .ok_or_else(|| AppError::Internal("caller lookup returned no result".to_owned()))?;
    Ok((found, results.next()))
}

/// The bearer credential of `Authorization`, read as the pipeline's gate reads it.
fn bearer(req: &Request) -> Result<String, AppError> {
    let header = req.headers().get("Authorization").ok().flatten();
    access::credential(&access::presented(header.as_deref())).map(str::to_owned)
}

async fn from_api_key(
    ctx: &Ctx,
    key: &str,
    read: Option<ReadFor<'_>>,
) -> Result<(Principal, Option<D1Result>), AppError> {
    if !api_key::looks_like_key(key) {
        return Err(AppError::Unauthorized("malformed API key".to_owned()));
    }
    let db = store::database(&ctx.env)?;
    let hash = api_key::hash(key);
    let (found, extra) = lookup(
        &db,
        api_keys::owner_statement(&db, &hash)?,
        read.map(|r| (r, api_keys::owner_of_hash(&hash))),
    )
    .await?;
    let owner = api_keys::owner_from(&found)?
        .ok_or_else(|| AppError::Unauthorized("unknown API key".to_owned()))?;
    if owner.key.revoked_at.is_some() {
        return Err(AppError::Unauthorized(
            "API key has been revoked".to_owned(),
        ));
    }
    if !owner.user.is_active() {
        return Err(AppError::Unauthorized(
            "user account is deactivated".to_owned(),
        ));
    }
    // A refused key is still logged as the caller it is.
    ctx.data.set_principal("api_key");
    scopes::admit_key(ctx.data.access(), owner.key.scopes)
        .map_err(|refusal| AppError::Forbidden(refusal.message()))?;
    let now = now_ms();
    let stale = owner.key.last_used_at.as_deref().is_none_or(|last| {
        // RFC 3339 strings of the same format compare in time order.
        last < rfc3339_from_millis(now.saturating_sub(KEY_TOUCH_INTERVAL_MS)).as_str()
    });
    if stale {
        api_keys::touch(&db, &owner.key.id, &rfc3339_from_millis(now)).await?;
    }
    let roles = roles::derive(&ctx.data.config.auth.roles, subject(&owner.user), None);
    let principal = Principal {
        user: owner.user,
        roles,
        credential: Credential::ApiKey { id: owner.key.id },
    };
    Ok((principal, extra))
}

async fn from_token(
    ctx: &Ctx,
    token: &str,
    read: Option<ReadFor<'_>>,
) -> Result<(Principal, Option<D1Result>), AppError> {
    let verified = verify_token(ctx, token).await?;
    let source = source_of(verified.kind);
    let db = store::database(&ctx.env)?;
    let statement = users::caller_statement(
        &db,
        source,
        &verified.subject,
        verified.session_id.as_deref(),
    )?;
    let read = read.map(|r| (r, users::id_of_external(source, &verified.subject)));
    let (found, mut extra) = lookup(&db, statement, read).await?;
    let caller = users::caller_from(&found)?;
    if caller.session_status == Some(SessionStatus::Ended) {
        return Err(AppError::Unauthorized("session has ended".to_owned()));
    }
    if verified.kind == TokenKind::Account {
        // Account sessions are recorded when they start: one that is not active is gone.
        if caller.session_status != Some(SessionStatus::Active) || caller.user().is_none() {
            return Err(AppError::Unauthorized("session has ended".to_owned()));
        }
    }
    let user = match caller.user() {
        Some(user) if !user.is_active() => {
            return Err(AppError::Unauthorized(
                "user account is deactivated".to_owned(),
            ))
        }
        Some(user) => user.clone(),
        None => {
            let new = NewUser {
                auth_source: source,
                external_id: &verified.subject,
                email: verified.email.as_deref(),
                username: verified.username.as_deref(),
                plan: &ctx.data.config.plans.default_plan().id,
            };
            let at = rfc3339_from_millis(now_ms());
            let user = users::create(&db, new, &at).await?;
            // The read ran before the row existed: there was nothing to read.
            extra = None;
            if user.created_at == at {
                // Made by this request (a concurrent first request finds it made).
                audit::after(
                    &ctx.env,
                    &ctx.data,
                    Entry::new(Actor::User(&user.id), Action::UserCreated)
                        .target(Target::user(&user.id))
                        .with("auth_source", source.as_str()),
                )
                .await;
            }
            if !user.is_active() {
                return Err(AppError::Unauthorized(
                    "user account is deactivated".to_owned(),
                ));
            }
            user
        }
    };
    let roles = roles::derive(
        &ctx.data.config.auth.roles,
        subject(&user),
        verified.org.as_ref(),
    );
    let principal = Principal {
        user,
        roles,
        credential: Credential::Token {
            kind: verified.kind,
            session_id: verified.session_id.clone(),
            org: verified.org.clone(),
            token: Box::new(verified),
        },
    };
    Ok((principal, extra))
}

/// The `users.auth_source` of a token kind's users.
pub fn source_of(kind: TokenKind) -> AuthSource {
    match kind {
        TokenKind::Clerk => AuthSource::Clerk,
        TokenKind::Hmac => AuthSource::Hmac,
        TokenKind::Account => AuthSource::Password,
    }
}

/// The user as role lists name them.
fn subject(user: &User) -> Subject<'_> {
    Subject {
        id: &user.id,
        auth_source: user.auth_source,
        external_id: &user.external_id,
    }
}

/// Verifies a JWT, from the per-isolate cache when it was verified before.
async fn verify_token(ctx: &Ctx, token: &str) -> Result<VerifiedToken, AppError> {
    let auth = &ctx.data.config.auth;
    let now_ms = now_ms();
    let time = TimeCheck {
        now: (now_ms / 1000) as i64,
        skew: auth.clock_skew_secs,
    };
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some(hit) = VERIFIED.with_borrow(|c| c.get(&hash, time.now).cloned()) {
        return Ok(hit);
    }
    let reject = |r: Rejection| AppError::Unauthorized(r.message());
    let header = jwt::peek_header(token).map_err(reject)?;
    let verified = match header.alg.as_str() {
        // Told apart by the unverified `iss` alone: no JWKS is fetched for it.
        "RS256" if is_end_user_token(auth, token) => {
            return Err(reject(Rejection::EndUserTokenHere))
        }
        "RS256" => {
            let clerk = auth
                .clerk
                .as_ref()
                .ok_or_else(|| match auth.clerk_problem {
                    Some(setting) => AppError::NotConfigured {
                        setting: setting.into(),
                    },
                    None => reject(Rejection::NotAccepted("Clerk (RS256)")),
                })?;
            let kid = header
                .kid
                .ok_or_else(|| reject(Rejection::UnknownKey(String::new())))?;
            verify_clerk(ctx, clerk, &kid, token, time).await?
        }
        "HS256" if jwt::peek_issuer(token).as_deref() == Some(jwt::ACCOUNT_ISSUER) => {
            verify_account(ctx, token, time)?
        }
        "HS256" => verify_hmac(auth, token, time)?,
        other => return Err(reject(Rejection::UnsupportedAlgorithm(other.to_owned()))),
    };
    VERIFIED.with_borrow_mut(|c| c.insert(hash, verified.clone(), time.now, time.skew));
    Ok(verified)
}

/// Whether `token` names the end-user instance's issuer (read unverified).
fn is_end_user_token(auth: &AuthConfig, token: &str) -> bool {
    auth.end_user_clerk
        .as_ref()
        .is_some_and(|end_user| jwt::peek_issuer(token).as_deref() == Some(&end_user.issuer))
}

/// The end-user token of the request's `Authorization: Bearer`, verified as
/// [`verify_end_user`] does.
pub async fn authenticate_end_user(req: &Request, ctx: &Ctx) -> Result<EndUserToken, AppError> {
    let credential = bearer(req)?;
    verify_end_user(ctx, &credential).await
}

/// An end-user token from the platform end-user Clerk instance, verified: RS256 against that
/// instance's JWKS (its own cache and re-fetch throttle), its issuer, its authorized parties
/// (`END_USER_CLERK_AUTHORIZED_PARTIES`), `exp` (required) and `nbf` with the clock skew.
/// Cached per isolate until it expires, apart from the operator's tokens.
///
/// Anything else (an operator's Clerk token, an HMAC or account token, an API key) is
/// `401` "this route takes an end-user token from the platform's end-user Clerk instance":
/// an operator never acts as an end user. With the instance unset, `401` (such tokens are not
/// accepted by this server); with it set but invalid, `503 not_configured` naming the
/// setting. No users row is read or made: end users are not Tollgate users.
pub async fn verify_end_user(ctx: &Ctx, token: &str) -> Result<EndUserToken, AppError> {
    let auth = &ctx.data.config.auth;
    let reject = |r: Rejection| AppError::Unauthorized(r.message());
    let end_user =
        auth.end_user_clerk
            .as_ref()
            .ok_or_else(|| match auth.end_user_clerk_problem {
                Some(setting) => AppError::NotConfigured {
                    setting: setting.into(),
                },
                None => reject(Rejection::NotAccepted("end-user (platform Clerk)")),
            })?;
    let time = TimeCheck {
        now: (now_ms() / 1000) as i64,
        skew: auth.clock_skew_secs,
    };
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let cached = END_USER_VERIFIED.with_borrow(|c| c.get(&hash, time.now).cloned());
    let verified = match cached {
        Some(hit) => hit,
        None => {
            let kid = jwt::end_user_kid(token, &end_user.issuer).map_err(reject)?;
            let kv = store::cache(&ctx.env)?;
            let policy = ClerkPolicy {
                issuer: end_user.issuer.clone(),
                authorized_parties: end_user.authorized_parties.clone(),
            };
            let verified = jwks::with_key(end_user, &kv, &kid, |key| {
                jwt::verify_end_user(token, key, &policy, time)
            })
            .await?
            .map_err(reject)?;
            END_USER_VERIFIED
                .with_borrow_mut(|c| c.insert(hash, verified.clone(), time.now, time.skew));
            verified
        }
    };
    ctx.data.set_principal("end_user");
    Ok(verified)
}

async fn verify_clerk(
    ctx: &Ctx,
    clerk: &ClerkConfig,
    kid: &str,
    token: &str,
    time: TimeCheck,
) -> Result<VerifiedToken, AppError> {
    let kv = store::cache(&ctx.env)?;
    let policy = ClerkPolicy {
        issuer: clerk.issuer.clone(),
        authorized_parties: clerk.authorized_parties.clone(),
    };
    jwks::with_key(clerk, &kv, kid, |key| {
        jwt::verify_clerk(token, key, &policy, time)
    })
    .await?
    .map_err(|r| AppError::Unauthorized(r.message()))
}

fn verify_account(ctx: &Ctx, token: &str, time: TimeCheck) -> Result<VerifiedToken, AppError> {
    let secret = &ctx.data.config.accounts.token_secret;
    if secret.is_blocked() {
        secret.require()?;
    }
    let Ok(secret) = secret.require() else {
        return Err(AppError::Unauthorized(
            Rejection::NotAccepted("account").message(),
        ));
    };
    jwt::verify_account(token, secret.as_bytes(), time)
        .map_err(|r| AppError::Unauthorized(r.message()))
}

fn verify_hmac(auth: &AuthConfig, token: &str, time: TimeCheck) -> Result<VerifiedToken, AppError> {
    if auth.jwt_secret.is_blocked() {
        // Invalid (not merely unset): say which setting to fix.
        auth.jwt_secret.require()?;
    }
    let Ok(secret) = auth.jwt_secret.require() else {
        return Err(AppError::Unauthorized(
            Rejection::NotAccepted("HMAC (HS256)").message(),
        ));
    };
    let policy = HmacPolicy {
        require_exp: auth.jwt_require_exp,
    };
    jwt::verify_hmac(token, secret.as_bytes(), policy, time)
        .map_err(|r| AppError::Unauthorized(r.message()))
}
