//! Who is calling: Clerk and HMAC tokens, API keys with scopes, operator roles, the users
//! table every identity source shares, sessions, and the per-plan request rate.
pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
