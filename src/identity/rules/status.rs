//! The states identity stores: a user's (`users.status`) and a session's
//! (`auth_sessions.status`), and where either proved who they are (`auth_source`).

crate::stored_enum! {
    /// Whether a user may authenticate (`users.status`): a deleted user (Clerk's
    /// `user.deleted`) keeps their row and history but is refused.
    pub enum UserStatus ("user status") {
        Active = "active",
        Deleted = "deleted",
    }
}

crate::stored_enum! {
    /// Whether a session's tokens are still accepted (`auth_sessions.status`).
    pub enum SessionStatus ("session status") {
        Active = "active",
        Ended = "ended",
    }
}

crate::stored_enum! {
    /// Where a user proved who they are (`users.auth_source`, `auth_sessions.auth_source`):
    /// a Clerk session token, an HMAC token the deployment signs, or a Tollgate account's
    /// password.
    pub enum AuthSource ("auth source") {
        Clerk = "clerk",
        Hmac = "hmac",
        Password = "password",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stored::check;

    #[test]
    fn user_statuses_map_to_their_column_both_ways() {
        check::<UserStatus>();
    }

    #[test]
    fn session_statuses_map_to_their_column_both_ways() {
        check::<SessionStatus>();
    }

    #[test]
    fn auth_sources_map_to_their_columns_both_ways() {
        check::<AuthSource>();
    }
}
