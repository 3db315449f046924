//! The one table of every path the API serves, and who may call it. A new endpoint is one
//! line here.
//!
//! Access: `Public` reads no credential; `Session` needs a Clerk or HMAC token (API keys are
//! refused); `Scoped(scope)` takes any token, or an API key holding `scope` (see
//! [`crate::identity::rules::scopes`]). Admin routes also check the caller's admin role.

use crate::billing::http as billing;
use crate::contract::{self, OpenApiDocument};
use crate::health::http as health;
use crate::http::dispatch::RouteTable;
use crate::http::doc::Doc;
use crate::identity::http::{auth, user, views as identity};
use crate::identity::rules::scopes::Access::{Public, Scoped, Session};
use crate::identity::rules::scopes::Scope::{Admin, Billing, Keys, Usage};
use crate::identity::rules::{clerk_event, profile};
use crate::metering::http as usage;
use crate::plans::http as subscription;
use crate::provider_keys::http::{admin, keys as provider_keys};
use crate::webhooks::http as clerk_webhook;

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

/// Every endpoint, by path and method, with who may call it.
pub fn table() -> RouteTable {
    RouteTable::new()
        // Health: Puku, dream-api and Sokuji each had their own.
        .get("/", Public, health::root)
        .doc(Doc::new("Liveness: the service and its version").ok::<health::RootView>(200))
        .get("/health", Public, health::service)
        .doc(Doc::new("Liveness: the service and the time").ok::<health::ServiceView>(200))
        .get("/api/health", Public, health::detailed)
        .doc(
            Doc::new("D1, KV and the configuration, checked; 503 while D1 or KV is unreachable")
                .ok::<health::HealthView>(200)
                .ok::<health::HealthView>(503),
        )
        .get("/api/health/ping", Public, health::ping)
        .doc(Doc::new("Connectivity check: pong").ok::<health::PingView>(200))
        // The API contract: this table as an OpenAPI 3.1 document.
        .get("/openapi.json", Public, contract::document)
        .doc(Doc::new("This API as an OpenAPI 3.1 document").ok::<OpenApiDocument>(200))
        // Identity (Sokuji): sign-in, sessions, Clerk's webhook.
        .get("/api/auth/oauth/:provider", Public, auth::oauth)
        .doc(
            Doc::new("Redirect to the Clerk-hosted sign-in with this OAuth provider")
                .query::<identity::OAuthQuery>()
                .redirect("To Clerk's sign-in for the provider")
                .errors(&["bad_request"]),
        )
        .post("/api/auth/refresh", Session, auth::refresh)
        .doc(
            Doc::new("A fresh token for the caller's session")
                .ok::<identity::RefreshedTokenView>(200)
                .errors(&[
                    "bad_request",
                    "upstream_error",
                    "validation_failed",
                    "payload_too_large",
                ]),
        )
        .post("/api/auth/signout", Session, auth::signout)
        .doc(
            Doc::new("End the calling device's session")
                .ok::<identity::SignedOutView>(200)
                .errors(&[
                    "bad_request",
                    "upstream_error",
                    "validation_failed",
                    "payload_too_large",
                ]),
        )
        .post("/api/auth/webhook/clerk", Public, clerk_webhook::receive)
        .doc(
            Doc::new("Receive one of Clerk's webhook deliveries (signed by Svix)")
                .header("svix-id", "The delivery's id (or `webhook-id`)")
                .header("svix-timestamp", "Unix seconds (or `webhook-timestamp`)")
                .header(
                    "svix-signature",
                    "`v1,<base64>` signatures (or `webhook-signature`)",
                )
                .body::<clerk_event::Envelope>()
                .ok::<clerk_webhook::ClerkDeliveryView>(200)
                .errors(&["unauthorized", "internal"]),
        )
        // The caller's profile and API keys (Sokuji).
        .get("/api/user/profile", Scoped(Usage), user::get_profile)
        .doc(
            Doc::new("The caller's profile, plan limits, roles and organisation")
                .ok::<identity::ProfileView>(200)
                .errors(&["upstream_error"]),
        )
        .patch("/api/user/profile", Session, user::patch_profile)
        .doc(
            Doc::new("Change the caller's username, display name or avatar (null clears)")
                .body::<profile::ProfilePatch>()
                .ok::<identity::ProfileView>(200)
                .errors(&["conflict", "not_found", "upstream_error"]),
        )
        .get_creating("/api/user/api-key", Scoped(Usage), user::get_or_create_key)
        .doc(
            Doc::new("The caller's API key, masked; their first one is created and shown once")
                .ok::<identity::DefaultApiKeyView>(200)
                .ok::<identity::CreatedDefaultApiKeyView>(201)
                .errors(&["quota_exceeded", "conflict", "upstream_error"]),
        )
        .get("/api/user/api-keys", Scoped(Usage), user::list_keys)
        .doc(
            Doc::new("The caller's API keys, masked, newest first")
                .query::<identity::ApiKeyPageQuery>()
                .ok::<identity::ApiKeyPageView>(200)
                .errors(&["upstream_error"]),
        )
        .post("/api/user/api-keys", Session, user::create_key)
        .doc(
            Doc::new("Create an API key with the given scopes, shown once")
                .body::<identity::NewKeyBody>()
                .ok::<identity::CreatedApiKeyAnswer>(201)
                .errors(&["quota_exceeded", "upstream_error"]),
        )
        .delete("/api/user/api-keys/:id", Session, user::revoke_key)
        .doc(
            Doc::new("Revoke one of the caller's API keys (idempotent)")
                .ok::<identity::RevokedApiKeyView>(200)
                .errors(&["not_found", "upstream_error", "payload_too_large"]),
        )
        // Plans (Sokuji).
        .get("/api/subscription/plans", Public, subscription::plans)
        .get(
            "/api/subscription/current",
            Scoped(Usage),
            subscription::current,
        )
        .post(
            "/api/subscription/upgrade",
            Scoped(Billing),
            subscription::upgrade,
        )
        // Metering (Sokuji): exact, idempotent.
        .post("/api/usage/reserve", Scoped(Usage), usage::reserve)
        .post("/api/usage/report", Scoped(Usage), usage::report)
        .get("/api/usage/quota", Scoped(Usage), usage::quota)
        .post("/api/usage/sync", Scoped(Usage), usage::sync)
        .get("/api/usage/sessions", Scoped(Usage), usage::sessions)
        .get("/api/usage/history", Scoped(Usage), usage::history)
        .get("/api/usage/stats", Scoped(Usage), usage::stats)
        // Subscriptions on Stripe (AI Audio Studio).
        .get("/api/subscriptions/plans", Public, subscription::plans)
        .get(
            "/api/subscriptions/current",
            Scoped(Billing),
            billing::current,
        )
        .get(
            "/api/subscriptions/history",
            Scoped(Billing),
            billing::history,
        )
        .post(
            "/api/subscriptions/checkout",
            Scoped(Billing),
            billing::checkout,
        )
        .post(
            "/api/subscriptions/portal",
            Scoped(Billing),
            billing::portal,
        )
        .post(
            "/api/subscriptions/cancel",
            Scoped(Billing),
            billing::cancel,
        )
        .put(
            "/api/subscriptions/update",
            Scoped(Billing),
            billing::update,
        )
        // Stripe's webhook (AI Audio Studio's and dream-api's paths), retry and status.
        .post("/api/webhooks/stripe", Public, billing::webhook)
        .post("/webhook/stripe", Public, billing::webhook)
        .post("/api/webhooks/retry", Scoped(Admin), billing::retry)
        .get("/api/webhooks/status", Scoped(Admin), billing::status)
        // Provider keys: OpenRouter keys bought with credits (Puku), the key pool (Sokuji).
        .post("/api/key", Scoped(Keys), provider_keys::openrouter_key)
        // Hands out (and so may assign) a pool key.
        .get_creating(
            "/api/user/provider-keys",
            Scoped(Keys),
            provider_keys::user_pool_key,
        )
        // Admin (admin role only).
        .get(
            "/api/admin/provider-keys",
            Scoped(Admin),
            provider_keys::list_pool_keys,
        )
        .post(
            "/api/admin/provider-keys",
            Scoped(Admin),
            provider_keys::add_pool_key,
        )
        .delete(
            "/api/admin/provider-keys/:id",
            Scoped(Admin),
            provider_keys::retire_pool_key,
        )
        .get("/api/admin/users", Scoped(Admin), admin::list_users)
        .post(
            "/api/admin/users/:id/credits",
            Scoped(Admin),
            admin::adjust_credits,
        )
        .post(
            "/api/admin/users/:id/rotate-key",
            Scoped(Admin),
            admin::rotate_user_key,
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::rules::scopes::Access;

    #[test]
    fn every_admin_route_needs_the_admin_scope() {
        let admin_paths = |p: &str| p.starts_with("/api/admin/") || p.starts_with("/api/webhooks/");
        let declared: Vec<_> = table()
            .endpoints()
            .filter(|(_, path, _)| admin_paths(path) && *path != "/api/webhooks/stripe")
            .collect();
        assert_eq!(declared.len(), 8, "{declared:?}");
        for (method, path, access) in declared {
            assert_eq!(access, Scoped(Admin), "{method} {path}");
        }
    }

    #[test]
    fn billing_actions_need_the_billing_scope_and_key_management_a_session() {
        let access = |method: &str, path: &str| -> Access {
            table()
                .endpoints()
                .find(|(m, p, _)| *m == method && *p == path)
                .map(|(_, _, a)| a)
                .unwrap_or_else(|| panic!("{method} {path} is not in the table"))
        };
        for (method, path) in [
            ("POST", "/api/subscriptions/checkout"),
            ("POST", "/api/subscriptions/portal"),
            ("POST", "/api/subscriptions/cancel"),
            ("PUT", "/api/subscriptions/update"),
            ("POST", "/api/subscription/upgrade"),
        ] {
            assert_eq!(access(method, path), Scoped(Billing), "{method} {path}");
        }
        assert_eq!(access("POST", "/api/key"), Scoped(Keys));
        for (method, path) in [
            ("POST", "/api/user/api-keys"),
            ("DELETE", "/api/user/api-keys/:id"),
            ("POST", "/api/auth/signout"),
        ] {
            assert_eq!(access(method, path), Session, "{method} {path}");
        }
    }

    #[test]
    fn head_never_runs_a_get_that_creates() {
        let table = table();
        assert!(!table.serves_head("/api/user/api-key"));
        assert!(!table.serves_head("/api/user/provider-keys"));
        assert!(table.serves_head("/api/health/ping"));
        assert!(table.serves_head("/api/user/profile"));
        assert!(!table.serves_head("/api/usage/report"), "no GET, no HEAD");
    }
}
