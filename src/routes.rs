//! The one table of every path the API serves. A new endpoint is one line here.

use crate::handlers::health;
use crate::http::dispatch::RouteTable;

/// Paths that receive webhook deliveries: their bodies may be up to `MAX_WEBHOOK_BODY_BYTES`
/// and are kept byte-exact for signature checks.
pub const WEBHOOK_PATHS: &[&str] = &[
    "/api/auth/webhook/clerk",
    "/api/webhooks/stripe",
    "/webhook/stripe",
];

/// Every endpoint, by path and method.
pub fn table() -> RouteTable {
    RouteTable::new()
        // Health: Puku, dream-api and Sokuji each had their own.
        .get("/", health::root)
        .get("/health", health::service)
        .get("/api/health", health::detailed)
        .get("/api/health/ping", health::ping)
}
