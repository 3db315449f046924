//! What the account endpoints take and answer.

use serde::{Deserialize, Deserializer, Serialize};

use crate::accounts::service::profile::AccountProfile;
use crate::accounts::service::sessions::Issued;
use crate::identity::http::views::{RefreshedTokenView, TokenType};
use crate::identity::service::users::User;

/// `POST /api/auth/register`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    /// Trimmed and lower-cased; one `@`, a dot in the domain, no spaces, at most 254 bytes.
    #[schema(max_length = 254)]
    pub email: String,
    /// At least 10 characters, at most 256 bytes, not one of the most common passwords.
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
    /// 1 to 100 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

/// `POST /api/auth/login`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
}

/// `POST /api/auth/refresh`: an account session sends its refresh token; a Clerk or HMAC
/// session sends no body (or no `refresh_token`) and its bearer token.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    /// The account session's current refresh token (`rt_...`), single-use.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `POST /api/auth/change-password`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordBody {
    #[schema(max_length = 256)]
    pub current_password: String,
    /// The password policy of sign-up.
    #[schema(min_length = 10, max_length = 256)]
    pub new_password: String,
}

/// `POST /api/auth/request-password-reset`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RequestResetBody {
    #[schema(max_length = 254)]
    pub email: String,
}

/// `POST /api/auth/reset-password`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResetPasswordBody {
    /// The token from the mailed link.
    pub token: String,
    /// The password policy of sign-up.
    #[schema(min_length = 10, max_length = 256)]
    pub new_password: String,
}

/// `POST /api/auth/verify-email`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct VerifyEmailBody {
    /// The token from the mailed link.
    pub token: String,
}

/// `PUT /api/auth/profile`: a field left out is unchanged; `null` clears a display name or
/// avatar. A new email must be verified again.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountProfileBody {
    /// 1 to 100 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    pub display_name: Option<Option<String>>,
    /// An `https://` URL of at most 2048 bytes.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub avatar_url: Option<Option<String>>,
    /// A new email (normalised): needs `current_password`. It is mailed a verification
    /// link and becomes the account's email (for sign-in and resets) once that link is used;
    /// until then it is `pending_email`. The old address is told, and every reset or
    /// verification link mailed before stops working.
    #[serde(default)]
    #[schema(max_length = 254)]
    pub email: Option<String>,
    /// The account's password: required with a new `email`.
    #[serde(default, alias = "currentPassword")]
    #[schema(max_length = 256)]
    pub current_password: Option<String>,
}

fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An account holder.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountUserView {
    /// `usr_...`.
    pub id: String,
    pub email: String,
    /// Whether the mailed verification link was used for this email.
    pub email_verified: bool,
    /// A new email asked for, waiting for its mailed link to be used; until then `email`
    /// stays the one for sign-in and resets.
    #[schema(required = true)]
    pub pending_email: Option<String>,
    #[schema(required = true)]
    pub display_name: Option<String>,
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    /// Plan id.
    pub plan: String,
    pub created_at: String,
}

impl AccountUserView {
    pub fn new(user: &User, email: &str, email_verified: bool) -> Self {
        Self {
            id: user.id.clone(),
            email: email.to_owned(),
            email_verified,
            pending_email: None,
            display_name: user.display_name.clone(),
            avatar_url: user.avatar_url.clone(),
            plan: user.plan.clone(),
            created_at: user.created_at.clone(),
        }
    }

    pub fn of(profile: &AccountProfile) -> Self {
        Self {
            pending_email: profile.pending_email.clone(),
            ..Self::new(&profile.user, &profile.email, profile.email_verified)
        }
    }
}

/// A session's tokens: a short-lived access token (a JWT for `Authorization: Bearer`) and a
/// single-use refresh token for `POST /api/auth/refresh`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPairView {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: TokenType,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

impl From<Issued> for TokenPairView {
    fn from(issued: Issued) -> Self {
        Self {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token,
            token_type: TokenType::Bearer,
            expires_in: issued.expires_in,
        }
    }
}

/// Registration and sign-in: the user and a new session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountSessionView {
    pub user: AccountUserView,
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: TokenType,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

impl AccountSessionView {
    pub fn new(user: AccountUserView, issued: Issued) -> Self {
        let pair = TokenPairView::from(issued);
        Self {
            user,
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
        }
    }
}

/// `POST /api/auth/refresh`: a new pair for an account session, or a fresh token for a
/// Clerk or HMAC session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RefreshAnswer {
    Account(TokenPairView),
    Session(RefreshedTokenView),
}

/// The state of a request whose outcome is not told (`request-password-reset`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Accepted {
    Accepted,
}

/// `POST /api/auth/request-password-reset`: always this, whether or not the email has an
/// account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResetRequestedView {
    pub status: Accepted,
    pub message: &'static str,
}

/// `POST /api/auth/verify-email`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmailVerifiedView {
    pub email_verified: bool,
}

/// `POST /api/auth/reset-password` and `POST /api/auth/change-password`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PasswordSetView {
    pub password_changed: bool,
    /// Whether the other sessions (change) or all sessions (reset) were ended.
    pub sessions_ended: bool,
}

/// `POST /api/auth/logout`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoggedOutView {
    pub logged_out: bool,
    /// The session that ended.
    pub session_id: String,
}
