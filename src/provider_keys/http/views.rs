//! What the provider key and admin endpoints answer, and the query strings they read.
//! Plaintext keys appear only in the views named for showing one (`...SecretView`).

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::core::time::rfc3339_from_millis;
use crate::error::AppError;
use crate::provider_keys::rules::usd;
use crate::provider_keys::service::admin::{LedgerLine, UserWithAccount};
use crate::provider_keys::service::credits::{Action, KeyAnswer};
use crate::provider_keys::service::pool::PoolKey;

/// `?provider=`: the provider whose pool key to hand out.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProviderQuery {
    /// A provider name: 1 to 32 lower-case letters, digits, `-` or `_` (e.g. `openai`).
    #[param(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]+$")]
    pub provider: String,
}

/// `?provider=&tier=&limit=&cursor=`: a page of the pool, optionally of one provider and tier.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PoolKeysQuery {
    /// Only this provider's keys: 1 to 32 lower-case letters, digits, `-` or `_`.
    #[param(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]+$")]
    pub provider: Option<String>,
    /// Only keys of this plan tier.
    pub tier: Option<String>,
    /// Items per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
}

/// A user's OpenRouter key account: the key's state and their credits (USD).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyCreditsView {
    /// OpenRouter's id of the key.
    #[schema(required = true)]
    pub key_hash: Option<String>,
    /// The key, masked.
    #[schema(required = true)]
    pub key_label: Option<String>,
    /// What this request did to the key.
    pub action: Action,
    /// Credits left (USD).
    pub credits: f64,
    /// Credits a new or reset user starts with (USD).
    pub initial_credits: f64,
    /// The key's spending limit at OpenRouter (USD).
    pub key_limit: f64,
    /// The key's spend at the last look (USD).
    pub key_usage: f64,
    /// What was left of its limit at the last look (USD).
    pub key_remaining: f64,
    /// How many times the credits were reset.
    pub resets: i64,
    /// How many times the key was replaced.
    pub rotations: i64,
    /// When the account was last settled (RFC 3339).
    #[schema(required = true)]
    pub checked_at: Option<String>,
}

impl KeyCreditsView {
    fn new(config: &Config, answer: &KeyAnswer) -> Self {
        let account = &answer.account;
        Self {
            key_hash: account.key_hash.clone(),
            key_label: account.key_label.clone(),
            action: answer.action,
            credits: usd(account.credits),
            initial_credits: usd(config.providers.credits.initial_credits),
            key_limit: usd(account.key_limit),
            key_usage: usd(account.key_usage),
            key_remaining: usd(account.key_remaining),
            resets: account.resets,
            rotations: account.rotations,
            checked_at: account.checked_ms.map(|ms| rfc3339_from_millis(ms as u64)),
        }
    }
}

/// The caller's OpenRouter key, in plain text, with their credits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenRouterKeySecretView {
    /// The OpenRouter API key to use.
    pub key: String,
    #[serde(flatten)]
    pub account: KeyCreditsView,
}

impl OpenRouterKeySecretView {
    pub fn new(config: &Config, answer: KeyAnswer) -> Self {
        Self {
            account: KeyCreditsView::new(config, &answer),
            key: answer.key,
        }
    }
}

/// A user's key after an admin's forced rotation (the new key is not shown).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedUserKeyView {
    pub user_id: String,
    #[serde(flatten)]
    pub account: KeyCreditsView,
}

impl RotatedUserKeyView {
    pub fn new(config: &Config, user_id: String, answer: &KeyAnswer) -> Self {
        Self {
            user_id,
            account: KeyCreditsView::new(config, answer),
        }
    }
}

/// The pool key handed to the caller, in plain text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolKeySecretView {
    pub provider: String,
    /// The plan tier the key serves.
    pub tier: String,
    pub key_id: String,
    /// The provider API key to use.
    pub key: String,
    /// The key, masked.
    pub masked: String,
    #[schema(required = true)]
    pub label: Option<String>,
}

impl PoolKeySecretView {
    pub fn new(key: PoolKey, plain: String) -> Self {
        Self {
            provider: key.provider,
            tier: key.tier,
            key_id: key.id,
            key: plain,
            masked: key.masked,
            label: key.label,
        }
    }
}

/// A key in the pool, masked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolKeyView {
    pub id: String,
    pub provider: String,
    /// The plan tier it serves.
    pub tier: String,
    /// The key, masked.
    pub masked: String,
    #[schema(required = true)]
    pub label: Option<String>,
    /// The admin who loaded it.
    #[schema(required = true)]
    pub created_by: Option<String>,
    /// When it was retired; `null` while it is handed out.
    #[schema(required = true)]
    pub retired_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PoolKey> for PoolKeyView {
    fn from(k: PoolKey) -> Self {
        Self {
            id: k.id,
            provider: k.provider,
            tier: k.tier,
            masked: k.masked,
            label: k.label,
            created_by: k.created_by,
            retired_at: k.retired_at,
            created_at: k.created_at,
            updated_at: k.updated_at,
        }
    }
}

/// One pool key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderKeyView {
    pub provider_key: PoolKeyView,
}

/// A page of the pool, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolKeyPageView {
    pub data: Vec<PoolKeyView>,
    /// The cursor of the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Whether a user account is in use.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Deleted,
}

impl UserStatus {
    fn parse(status: &str) -> Result<Self, AppError> {
        match status {
            "active" => Ok(Self::Active),
            "deleted" => Ok(Self::Deleted),
            other => Err(AppError::Internal(format!("unknown user status `{other}`"))),
        }
    }
}

/// A user's OpenRouter key as the admin list shows it (never the key itself).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserKeyView {
    /// OpenRouter's id of the key.
    pub hash: String,
    /// The key, masked.
    #[schema(required = true)]
    pub label: Option<String>,
    /// Its spending limit (USD).
    #[schema(required = true)]
    pub limit: Option<f64>,
    /// Its spend at the last look (USD).
    #[schema(required = true)]
    pub usage: Option<f64>,
    /// What was left of its limit at the last look (USD).
    #[schema(required = true)]
    pub remaining: Option<f64>,
    #[schema(required = true)]
    pub checked_at: Option<String>,
}

/// A user with their plan, credits and key state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    pub id: String,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub username: Option<String>,
    pub plan: String,
    pub status: UserStatus,
    pub created_at: String,
    /// Credits left (USD); `null` until the user has had a key.
    #[schema(required = true)]
    pub credits: Option<f64>,
    /// `null` until the user has had a key.
    #[schema(required = true)]
    pub key: Option<UserKeyView>,
    pub resets: i64,
    pub rotations: i64,
    /// Replaced keys still waiting to be deleted at OpenRouter.
    pub pending_key_deletions: i64,
}

impl TryFrom<UserWithAccount> for AdminUserView {
    type Error = AppError;

    fn try_from(u: UserWithAccount) -> Result<Self, AppError> {
        // Credits exist once the user has had a key.
        let credits = u.key_hash.as_ref().and(u.credits).map(usd);
        let key = u.key_hash.map(|hash| UserKeyView {
            hash,
            label: u.key_label,
            limit: u.key_limit.map(usd),
            usage: u.key_usage.map(usd),
            remaining: u.key_remaining.map(usd),
            checked_at: u.checked_ms.map(|ms| rfc3339_from_millis(ms as u64)),
        });
        Ok(Self {
            status: UserStatus::parse(u.status.as_str())?,
            id: u.id,
            email: u.email,
            username: u.username,
            plan: u.plan,
            created_at: u.created_at,
            credits,
            key,
            resets: u.resets.unwrap_or(0),
            rotations: u.rotations.unwrap_or(0),
            pending_key_deletions: u.pending_deletions,
        })
    }
}

/// A page of users, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUserPageView {
    pub data: Vec<AdminUserView>,
    /// The cursor of the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// What a ledger line records.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// A new user's initial credits.
    Grant,
    /// A key's spend, deducted.
    Usage,
    /// Credits that ran down, set back to the initial amount.
    Reset,
    /// An admin's adjustment.
    Adjustment,
}

/// One line of a user's credit ledger (amounts in USD).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LedgerLineView {
    pub id: String,
    pub kind: LedgerKind,
    /// Credits added (negative: taken).
    pub amount: f64,
    pub balance_after: f64,
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The admin who made it.
    #[schema(required = true)]
    pub actor_id: Option<String>,
    /// The client's idempotency key.
    #[schema(required = true)]
    pub request_id: Option<String>,
    pub created_at: String,
}

impl TryFrom<LedgerLine> for LedgerLineView {
    type Error = AppError;

    fn try_from(l: LedgerLine) -> Result<Self, AppError> {
        let kind = match l.kind.as_str() {
            "grant" => LedgerKind::Grant,
            "usage" => LedgerKind::Usage,
            "reset" => LedgerKind::Reset,
            "adjustment" => LedgerKind::Adjustment,
            other => {
                return Err(AppError::Internal(format!(
                    "unknown ledger line kind `{other}`"
                )))
            }
        };
        Ok(Self {
            id: l.id,
            kind,
            amount: usd(l.amount),
            balance_after: usd(l.balance_after),
            reason: l.reason,
            actor_id: l.actor_id,
            request_id: l.idempotency_key,
            created_at: l.created_at,
        })
    }
}

/// An admin's credit adjustment, as recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreditAdjustmentView {
    pub user_id: String,
    pub adjustment: LedgerLineView,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn account() -> KeyCreditsView {
        KeyCreditsView {
            key_hash: Some("h1".into()),
            key_label: None,
            action: Action::Rotated,
            credits: 9.5,
            initial_credits: 10.0,
            key_limit: 1.0,
            key_usage: 0.25,
            key_remaining: 0.75,
            resets: 0,
            rotations: 2,
            checked_at: None,
        }
    }

    #[test]
    fn key_answers_are_flat_and_only_the_secret_view_carries_the_key() {
        let secret = serde_json::to_value(OpenRouterKeySecretView {
            key: "sk-or-1".into(),
            account: account(),
        })
        .unwrap();
        assert_eq!(secret["key"], "sk-or-1");
        assert_eq!(secret["action"], "rotated");
        assert_eq!(secret["key_label"], json!(null), "null, not absent");
        let rotated = serde_json::to_value(RotatedUserKeyView {
            user_id: "usr_1".into(),
            account: account(),
        })
        .unwrap();
        assert!(rotated.get("key").is_none(), "{rotated}");
        assert_eq!(rotated["user_id"], "usr_1");
        assert_eq!(rotated["credits"], 9.5);
        assert_eq!(rotated.as_object().unwrap().len(), 12);
    }

    #[test]
    fn a_user_without_a_key_has_null_credits_and_key() {
        let user: UserWithAccount = serde_json::from_value(json!({
            "id": "usr_1", "email": null, "username": "ann", "plan": "free",
            "status": "active", "created_at": "2026-01-01T00:00:00Z", "credits": 5000000,
            "key_hash": null, "key_label": null, "key_limit": null, "key_usage": null,
            "key_remaining": null, "resets": null, "rotations": null, "checked_ms": null,
            "pending_deletions": 0
        }))
        .unwrap();
        let view = serde_json::to_value(AdminUserView::try_from(user).unwrap()).unwrap();
        assert_eq!(
            view,
            json!({
                "id": "usr_1", "email": null, "username": "ann", "plan": "free",
                "status": "active", "created_at": "2026-01-01T00:00:00Z", "credits": null,
                "key": null, "resets": 0, "rotations": 0, "pending_key_deletions": 0
            })
        );
    }
}
