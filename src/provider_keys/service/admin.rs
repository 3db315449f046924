//! The admin's view of users and their credits: the user list, credit adjustments and
//! forced key rotations, each for a user named by id.

use worker::D1Database;

use crate::config::Config;
use crate::core::page::{self, PageRequest};
use crate::error::AppError;
use crate::identity::service::users;
use crate::provider_keys::service::credits::{self, Adjustment, KeyAnswer};
use crate::provider_keys::store::credit_accounts as accounts;
pub use crate::provider_keys::store::credit_accounts::{LedgerLine, UserWithAccount};

/// A page of users with their accounts, oldest first, and the next page's cursor.
pub async fn users_page(
    db: &D1Database,
    page: &PageRequest,
) -> Result<(Vec<UserWithAccount>, Option<String>), AppError> {
    let mut rows = accounts::page_users(db, page.after_pair()?, page.limit + 1).await?;
    let next_cursor = page::finish(&mut rows, page.limit, |u| [&u.created_at, &u.id]);
    Ok((rows, next_cursor))
}

/// The id of the user with this id; `not_found` if there is none.
async fn target_user(db: &D1Database, id: &str) -> Result<String, AppError> {
    users::get(db, id)
        .await?
        .map(|user| user.id)
        .ok_or_else(|| AppError::NotFound("no such user".to_owned()))
}

/// An adjustment of the credits of the user `user_id` (see [`credits::adjust`]): their id,
/// the ledger line, and whether it replays an earlier request.
pub async fn adjust_credits(
    db: &D1Database,
    user_id: &str,
    adjustment: Adjustment<'_>,
) -> Result<(String, LedgerLine, bool), AppError> {
    let user_id = target_user(db, user_id).await?;
    let (line, replayed) = credits::adjust(db, &user_id, adjustment).await?;
    Ok((user_id, line, replayed))
}

/// A forced rotation of the key of the user `user_id` (see [`credits::force_rotation`]):
/// their id and their account after it.
pub async fn rotate_key(
    db: &D1Database,
    config: &Config,
    user_id: &str,
) -> Result<(String, KeyAnswer), AppError> {
    let user_id = target_user(db, user_id).await?;
    let answer = credits::force_rotation(db, config, &user_id).await?;
    Ok((user_id, answer))
}
