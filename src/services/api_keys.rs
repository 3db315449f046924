//! Issuing user API keys within the plan's limit.

use serde::Serialize;
use worker::D1Database;

use crate::core::{api_key, plans::PlanCatalog, random};
use crate::error::AppError;
use crate::store::api_keys::{self, ApiKey, NewKey};
use crate::store::users::User;

/// A key just created: the only time its plaintext is shown.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub stored: ApiKey,
    /// The key itself; never shown again.
    pub key: String,
}

/// Creates a key for `user` if their plan allows one more; `quota_exceeded` otherwise.
pub async fn issue(
    db: &D1Database,
    catalog: &PlanCatalog,
    user: &User,
    name: &str,
    now: &str,
) -> Result<IssuedKey, AppError> {
    let plan = catalog.get_or_default(&user.plan);
    let key = api_key::generate();
    let id = random::id::<8>("key_");
    let new = NewKey {
        id: &id,
        user_id: &user.id,
        name,
        key_hash: &api_key::hash(&key),
        masked: &api_key::mask(&key),
    };
    match api_keys::create_within_limit(db, new, plan.api_keys, now).await? {
        Some(stored) => Ok(IssuedKey { stored, key }),
        None => Err(AppError::QuotaExceeded(format!(
            "the {} plan allows {} active API key(s); revoke one or upgrade",
            plan.name,
            plan.api_keys.unwrap_or_default()
        ))),
    }
}
