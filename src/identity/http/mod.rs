//! Sign-in, sessions, the caller's profile and API keys.
pub mod auth;
pub mod user;
pub mod views;
