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
