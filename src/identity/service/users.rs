//! Users as other capabilities see them: billing and the admin endpoints read a user through
//! here, never through identity's store.

use worker::D1Database;

pub use crate::identity::store::users::User;

use crate::error::AppError;
use crate::identity::store::users;

/// The user with Tollgate id `id`, if there is one.
pub async fn get(db: &D1Database, id: &str) -> Result<Option<User>, AppError> {
    users::get(db, id).await
}

pub use crate::identity::store::users::SignedUpUser;

/// The statement that inserts a signed-up user, for the sign-up's own batch.
pub fn insert_statement(
    db: &D1Database,
    new: SignedUpUser<'_>,
    now: &str,
) -> Result<worker::D1PreparedStatement, AppError> {
    users::insert_statement(db, new, now)
}

/// The statement that changes a user's email, for the change's own batch.
pub fn set_email_statement(
    db: &D1Database,
    id: &str,
    email: &str,
    now: &str,
) -> Result<worker::D1PreparedStatement, AppError> {
    users::set_email_statement(db, id, email, now)
}

/// Applies profile changes (display name, avatar) as `PATCH /api/user/profile` does.
pub async fn update_profile(
    db: &D1Database,
    id: &str,
    changes: &crate::identity::rules::profile::ProfileChanges,
    now: &str,
) -> Result<User, AppError> {
    users::update_profile(db, id, changes, now).await
}

pub use crate::identity::store::users::NewUser;

/// The user with this external identity, made (on `new.plan`) if there is none yet, as a
/// token's first request makes it; `true` when this call made it. For flows that learn of a
/// person before they ever call, such as a Stripe checkout naming a Clerk user.
pub async fn find_or_create(
    db: &D1Database,
    new: NewUser<'_>,
    now: &str,
) -> Result<(User, bool), AppError> {
    let user = users::create(db, new, now).await?;
    let created = user.created_at == now;
    Ok((user, created))
}
