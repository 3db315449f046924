//! One module per area: parse the request, call a service or store, map the result to HTTP.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod clerk_webhook;
pub mod health;
pub mod provider_keys;
pub mod subscription;
pub mod usage;
pub mod user;

use worker::Date;

use crate::core::time::rfc3339_from_millis;

/// Now, as stored and shown: RFC 3339 UTC.
fn now() -> String {
    rfc3339_from_millis(Date::now().as_millis())
}
