//! The states identity stores: a user's (`users.status`) and a session's
//! (`auth_sessions.status`).

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
}
