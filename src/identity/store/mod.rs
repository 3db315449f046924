//! The users, sessions and API keys tables.
pub mod api_keys;
pub mod sessions;
pub mod users;
