//! The caller's own profile.

use worker::Env;

use crate::error::AppError;
use crate::identity::rules::profile::ProfileChanges;
use crate::identity::store::users;
pub use crate::identity::store::users::User;
use crate::storage;

/// Applies validated profile changes to the user; `conflict` when the username is taken.
pub async fn update(
    env: &Env,
    user_id: &str,
    changes: &ProfileChanges,
    now: &str,
) -> Result<User, AppError> {
    let db = storage::database(env)?;
    users::update_profile(&db, user_id, changes, now).await
}
