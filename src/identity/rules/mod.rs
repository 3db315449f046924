//! Identity's pure rules: token verification, publishable keys, API key format, roles, scopes,
//! profiles.
pub mod api_key;
pub mod clerk_event;
pub mod jwt;
pub mod key_cache;
pub mod profile;
pub mod publishable_key;
pub mod rate_limit;
pub mod roles;
pub mod scopes;
pub mod status;
