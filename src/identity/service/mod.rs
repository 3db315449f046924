//! Authentication, API key issue and Clerk's user events.
pub mod api_keys;
pub mod auth;
pub mod clerk_events;
