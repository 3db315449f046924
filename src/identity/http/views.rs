//! What the identity endpoints answer: typed views of sessions, the profile and API keys.
//!
//! A key's plaintext appears only in [`CreatedApiKeyView`] (and the answers that carry it),
//! the views that exist to show it once; a refreshed token only in [`RefreshedTokenView`].

use serde::{Deserialize, Serialize};

use crate::identity::rules::jwt::OrgClaim;
use crate::identity::rules::scopes::Scope;
use crate::identity::service::api_keys::{ApiKey, IssuedKey};
use crate::identity::service::auth::Principal;
use crate::identity::service::profile::User;
use crate::plans::rules::PlanCatalog;

/// The token type of a refreshed token: always `Bearer`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub enum TokenType {
    #[serde(rename = "Bearer")]
    Bearer,
}

/// `POST /api/auth/refresh`: a fresh token for the caller's session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefreshedTokenView {
    /// The new token (a JWT).
    pub token: String,
    pub token_type: TokenType,
    /// When it expires (RFC 3339), or `null` when the token carries no expiry.
    #[schema(required = true)]
    pub expires_at: Option<String>,
}

/// `POST /api/auth/signout`: the session that ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedOutView {
    /// Always `true`.
    pub signed_out: bool,
    /// The session (`sid` or `jti`) that ended.
    pub session_id: String,
    /// Whether Clerk confirmed the session's revocation (Clerk sessions, with
    /// `CLERK_SECRET_KEY` set); `false` otherwise.
    pub revoked_at_clerk: bool,
    /// Devices of this session (or named by `X-Device-Id`) that were signed out.
    pub devices_signed_out: u64,
}

/// `GET /api/auth/oauth/:provider`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OAuthQuery {
    /// Where Clerk sends the browser back to; must be on an allowed origin
    /// (`CORS_ALLOWED_ORIGINS`).
    pub redirect_url: Option<String>,
}

/// Where the user's identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthSource {
    Clerk,
    Hmac,
    Password,
}

impl AuthSource {
    /// The source stored as `name` (the users table allows only these).
    fn from_stored(name: &str) -> Option<Self> {
        match name {
            "clerk" => Some(Self::Clerk),
            "hmac" => Some(Self::Hmac),
            "password" => Some(Self::Password),
            _ => None,
        }
    }
}

/// Whether the user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Deleted,
}

/// One of the caller's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
    OrgAdmin,
    OrgMember,
    User,
}

/// How the caller proved who they are on this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Clerk,
    Hmac,
    ApiKey,
}

/// The plan's limits; `null` is unlimited.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanLimitsView {
    #[schema(required = true)]
    pub tokens_per_month: Option<u64>,
    #[schema(required = true)]
    pub api_keys: Option<u32>,
    #[schema(required = true)]
    pub concurrent_sessions: Option<u32>,
}

/// The organisation the caller's token acts in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgView {
    /// `org_...`.
    pub id: String,
    /// `admin`, `member`, or a custom role as Clerk names it.
    pub role: String,
    #[schema(required = true)]
    pub slug: Option<String>,
}

/// The caller's profile: the user, their plan's limits, roles and organisation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileView {
    /// `usr_...`.
    pub id: String,
    pub auth_source: AuthSource,
    /// The subject at the identity source.
    pub external_id: String,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub username: Option<String>,
    #[schema(required = true)]
    pub display_name: Option<String>,
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    pub status: UserStatus,
    /// Plan id from the catalog.
    pub plan: String,
    pub limits: PlanLimitsView,
    /// Most powerful first; every caller is at least `user`.
    pub roles: Vec<Role>,
    /// The token's active organisation, or `null`.
    #[schema(required = true)]
    pub org: Option<OrgView>,
    pub credential: CredentialKind,
    pub created_at: String,
    pub updated_at: String,
}

impl ProfileView {
    /// `user` as `principal` sees it.
    pub fn new(catalog: &PlanCatalog, principal: &Principal, user: &User) -> Self {
        let plan = catalog.get_or_default(&user.plan);
        Self {
            id: user.id.clone(),
            // The users table's CHECK constraints allow nothing else.
            auth_source: AuthSource::from_stored(user.auth_source.as_str())
                .unwrap_or(AuthSource::Clerk),
            external_id: user.external_id.clone(),
            email: user.email.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            avatar_url: user.avatar_url.clone(),
            status: if user.is_active() {
                UserStatus::Active
            } else {
                UserStatus::Deleted
            },
            plan: plan.id.clone(),
            limits: PlanLimitsView {
                tokens_per_month: plan.tokens_per_month,
                api_keys: plan.api_keys,
                concurrent_sessions: plan.concurrent_sessions,
            },
            roles: roles(principal),
            org: principal.org().map(org_view),
            credential: match principal.kind() {
                "clerk" => CredentialKind::Clerk,
                "hmac" => CredentialKind::Hmac,
                _ => CredentialKind::ApiKey,
            },
            created_at: user.created_at.clone(),
            updated_at: user.updated_at.clone(),
        }
    }
}

fn roles(principal: &Principal) -> Vec<Role> {
    let r = &principal.roles;
    [
        (r.admin, Role::Admin),
        (r.staff, Role::Staff),
        (r.org_admin, Role::OrgAdmin),
        (r.org_member, Role::OrgMember),
        (true, Role::User),
    ]
    .into_iter()
    .filter_map(|(held, role)| held.then_some(role))
    .collect()
}

fn org_view(org: &OrgClaim) -> OrgView {
    OrgView {
        id: org.id.clone(),
        role: org.role.as_str().to_owned(),
        slug: org.slug.clone(),
    }
}

/// An API key as listed: masked, never the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    /// `key_...`.
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `tg_live_AbCd****WxYz`.
    pub masked: String,
    /// What the key may be used for, in canonical order.
    pub scopes: Vec<Scope>,
    pub created_at: String,
    #[schema(required = true)]
    pub last_used_at: Option<String>,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            user_id: key.user_id,
            name: key.name,
            masked: key.masked,
            scopes: key.scopes.iter().collect(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A key just created: the only time its plaintext is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKeyView {
    #[serde(flatten)]
    pub stored: ApiKeyView,
    /// The key itself (`tg_live_...`); never shown again.
    pub key: String,
}

impl From<IssuedKey> for CreatedApiKeyView {
    fn from(issued: IssuedKey) -> Self {
        Self {
            stored: issued.stored.into(),
            key: issued.key,
        }
    }
}

/// `GET /api/user/api-key` when the caller already has a key: `created` is `false`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DefaultApiKeyView {
    /// `false`: the key existed already.
    pub created: bool,
    pub api_key: ApiKeyView,
}

/// `GET /api/user/api-key` when this call created the caller's first key (`created` is
/// `true`): shown once, in full.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedDefaultApiKeyView {
    /// `true`: this call created the key.
    pub created: bool,
    pub api_key: CreatedApiKeyView,
}

/// `POST /api/user/api-keys`: the new key, shown once in full.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKeyAnswer {
    pub api_key: CreatedApiKeyView,
}

/// `DELETE /api/user/api-keys/:id`: the revoked key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedApiKeyView {
    pub api_key: ApiKeyView,
}

/// A page of the caller's keys, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyPageView {
    pub data: Vec<ApiKeyView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /api/user/api-keys`'s query: a page of at most `limit` keys after `cursor`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyPageQuery {
    /// Keys per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A `POST /api/user/api-keys` body (optional: an empty body takes every default).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// 1 to 64 printable characters (trimmed); `default` when absent.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    /// Scope names; absent or null means `["usage"]`. At least one; only an admin may ask
    /// for `admin`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Scope>>, min_items = 1)]
    pub scopes: Option<Vec<String>>,
}
