//! The one table of every path the API serves. A new endpoint is one line here.

use crate::handlers::{
    admin, auth, billing, clerk_webhook, health, provider_keys, subscription, usage, user,
};
use crate::http::dispatch::RouteTable;

/// Paths that receive webhook deliveries: their bodies may be up to `MAX_WEBHOOK_BODY_BYTES`
/// and are kept byte-exact for signature checks.
pub const WEBHOOK_PATHS: &[&str] = &[
    "/api/auth/webhook/clerk",
    "/api/webhooks/stripe",
    "/webhook/stripe",
];

/// Health paths: they answer even while a setting the pipeline needs is invalid, so an
/// operator can see what is wrong.
pub const HEALTH_PATHS: &[&str] = &["/", "/health", "/api/health", "/api/health/ping"];

/// Every endpoint, by path and method.
pub fn table() -> RouteTable {
    RouteTable::new()
        // Health: Puku, dream-api and Sokuji each had their own.
        .get("/", health::root)
        .get("/health", health::service)
        .get("/api/health", health::detailed)
        .get("/api/health/ping", health::ping)
        // Identity (Sokuji): sign-in, sessions, Clerk's webhook.
        .get("/api/auth/oauth/:provider", auth::oauth)
        .post("/api/auth/refresh", auth::refresh)
        .post("/api/auth/signout", auth::signout)
        .post("/api/auth/webhook/clerk", clerk_webhook::receive)
        // The caller's profile and API keys (Sokuji).
        .get("/api/user/profile", user::get_profile)
        .patch("/api/user/profile", user::patch_profile)
        .get("/api/user/api-key", user::get_or_create_key)
        .get("/api/user/api-keys", user::list_keys)
        .post("/api/user/api-keys", user::create_key)
        .delete("/api/user/api-keys/:id", user::revoke_key)
        // Plans (Sokuji).
        .get("/api/subscription/plans", subscription::plans)
        .get("/api/subscription/current", subscription::current)
        .post("/api/subscription/upgrade", subscription::upgrade)
        // Metering (Sokuji): exact, idempotent.
        .post("/api/usage/reserve", usage::reserve)
        .post("/api/usage/report", usage::report)
        .get("/api/usage/quota", usage::quota)
        .post("/api/usage/sync", usage::sync)
        .get("/api/usage/sessions", usage::sessions)
        .get("/api/usage/history", usage::history)
        .get("/api/usage/stats", usage::stats)
        // Subscriptions on Stripe (AI Audio Studio).
        .get("/api/subscriptions/plans", subscription::plans)
        .get("/api/subscriptions/current", billing::current)
        .get("/api/subscriptions/history", billing::history)
        .post("/api/subscriptions/checkout", billing::checkout)
        .post("/api/subscriptions/portal", billing::portal)
        .post("/api/subscriptions/cancel", billing::cancel)
        .put("/api/subscriptions/update", billing::update)
        // Stripe's webhook (AI Audio Studio's and dream-api's paths), retry and status.
        .post("/api/webhooks/stripe", billing::webhook)
        .post("/webhook/stripe", billing::webhook)
        .post("/api/webhooks/retry", billing::retry)
        .get("/api/webhooks/status", billing::status)
        // Provider keys: OpenRouter keys bought with credits (Puku), the key pool (Sokuji).
        .post("/api/key", provider_keys::openrouter_key)
        .get("/api/user/provider-keys", provider_keys::user_pool_key)
        // Admin (admin role only).
        .get("/api/admin/provider-keys", provider_keys::list_pool_keys)
        .post("/api/admin/provider-keys", provider_keys::add_pool_key)
        .delete(
            "/api/admin/provider-keys/:id",
            provider_keys::retire_pool_key,
        )
        .get("/api/admin/users", admin::list_users)
        .post("/api/admin/users/:id/credits", admin::adjust_credits)
        .post("/api/admin/users/:id/rotate-key", admin::rotate_user_key)
}
