//! Authentication, sessions, the profile, API keys and Clerk's user events.
pub mod api_keys;
pub mod auth;
pub mod clerk_events;
pub mod profile;
pub mod sessions;
pub mod users;
