//! The one table of every path the API serves, and who may call it. A new endpoint is one
//! line here: its method, path, access rule and handler, and the description `/openapi.json`
//! gives of it (a `<handler>_doc()` beside the handler, in its capability's `http` module).
//!
//! Access: `Public` reads no credential; `Signed(provider)` takes only a delivery signed by
//! that provider, verified before the handler runs; `Session` needs a Clerk, HMAC or account
//! token (API keys are refused); `Scoped(scope)` takes any token, or an API key holding `scope`
//! (see [`crate::identity::rules::scopes`]). Admin routes also check the caller's admin role.
//! `PlatformKey` and `EndUser` take a platform's credentials; `SiteKey` takes a site key
//! (`X-Site-Key`) from one of its site's origins.
//!
//! Body limits: a route's request bodies are held to `MAX_BODY_BYTES`, a signed route's to
//! `MAX_WEBHOOK_BODY_BYTES` (deliveries may be larger); a route may state its own with
//! `.limit(BodyLimit::...)`.

use crate::accounts::http::{self as accounts, verified_email, NOT_VERIFIED};
use crate::audit::http as audit;
use crate::billing::http as billing;
use crate::chat::http as chat;
use crate::contract;
use crate::health::http as health;
use crate::http::access::{
    EndUser, OrgAdmin, OrgMember, PlatformKey, Public, Signed, SiteKey, SiteKeyOrLegacy, Staff,
};
use crate::http::dispatch::RouteTable;
use crate::identity::http::{auth, user};
use crate::identity::rules::scopes::Access::{Scoped, Session};
use crate::identity::rules::scopes::Scope::{Admin, Billing, Keys, Usage};
use crate::identity::rules::scopes::Signer::{Clerk, Stripe};
use crate::ledger::http as tokens;
use crate::metering::http as usage;
use crate::metering::service::quota_read;
use crate::orgs::http::{self as portal, engines};
use crate::plans::http as subscription;
use crate::platforms::http::{self as platforms, developer};
use crate::provider_keys::http::{admin, keys};
use crate::proxy::http as proxy;
use crate::sites::http as sites;
use crate::voice::http as voice;
use crate::webhooks::http as clerk_webhook;
use crate::workflows::http as workflows;

/// Health paths: they answer even while a setting the pipeline needs is invalid, so an
/// operator can see what is wrong.
pub const HEALTH_PATHS: &[&str] = &["/", "/health", "/api/health", "/api/health/ping"];

/// Every endpoint, by path and method, with who may call it: one line each, its description
/// on a second when both would not fit in 100 columns (laid out by hand: rustfmt would spread
/// every endpoint over several lines).
#[rustfmt::skip]
pub fn table() -> RouteTable {
    RouteTable::new()
        // Health: Puku, dream-api and Sokuji each had their own.
        .get("/", Public, health::root).doc(health::root_doc())
        .get("/health", Public, health::service).doc(health::service_doc())
        .get("/api/health", Public, health::detailed).doc(health::detailed_doc())
        .get("/api/health/ping", Public, health::ping).doc(health::ping_doc())
        // The API contract: this table as an OpenAPI 3.1 document.
        .get("/openapi.json", Public, contract::document).doc(contract::document_doc())
        // Identity (Sokuji): sign-in, sessions, Clerk's webhook.
        .get("/api/auth/oauth/:provider", Public, auth::oauth).doc(auth::oauth_doc())
        // One path, two sessions: an account's refresh token in the body, or (no
        // `refresh_token`) the bearer's Clerk or HMAC session as before.
        .post("/api/auth/refresh", Public, accounts::refresh).doc(accounts::refresh_doc())
        // Tollgate's own accounts (AI Audio Studio): email and password.
        .post("/api/auth/register", Public, accounts::register).doc(accounts::register_doc())
        .post("/api/auth/login", Public, accounts::login).doc(accounts::login_doc())
        .post("/api/auth/logout", Session, accounts::logout).doc(accounts::logout_doc())
        .get("/api/auth/profile", Session, accounts::get_profile).doc(accounts::get_profile_doc())
        .put("/api/auth/profile", Session, accounts::put_profile).doc(accounts::put_profile_doc())
        .post("/api/auth/change-password", Session, accounts::change_password)
            .doc(accounts::change_password_doc())
        .post("/api/auth/request-password-reset", Public, accounts::request_password_reset)
            .doc(accounts::request_password_reset_doc())
        .post("/api/auth/reset-password", Public, accounts::reset_password)
            .doc(accounts::reset_password_doc())
        .post("/api/auth/verify-email", Public, accounts::verify_email)
            .doc(accounts::verify_email_doc())
        .post("/api/auth/signout", Session, auth::signout).doc(auth::signout_doc())
        .post("/api/auth/webhook/clerk", Signed(Clerk), clerk_webhook::receive)
            .doc(clerk_webhook::receive_doc())
        // The caller's profile and API keys (Sokuji).
        .get("/api/user/profile", Scoped(Usage), user::get_profile).doc(user::get_profile_doc())
        .patch("/api/user/profile", Session, user::patch_profile).doc(user::patch_profile_doc())
        .get_creating("/api/user/api-key", Scoped(Usage), user::get_or_create_key)
            .doc(user::get_or_create_key_doc())
            .guard(verified_email, NOT_VERIFIED)
        .get("/api/user/api-keys", Scoped(Usage), user::list_keys).doc(user::list_keys_doc())
        .post("/api/user/api-keys", Session, user::create_key).doc(user::create_key_doc())
            .guard(verified_email, NOT_VERIFIED)
        .delete("/api/user/api-keys/:id", Session, user::revoke_key).doc(user::revoke_key_doc())
        // A user's own usage alerts (Koby's threshold workflows, for any user's quota):
        // creating and deleting a signed outgoing webhook manages the account, so it takes a
        // session (as API keys do); reading them is usage, so a usage key may.
        .post("/api/user/webhooks", Session, workflows::create).doc(workflows::create_doc())
        .get("/api/user/webhooks", Scoped(Usage), workflows::list).doc(workflows::list_doc())
        .patch("/api/user/webhooks/:id", Session, workflows::update).doc(workflows::update_doc())
        .delete("/api/user/webhooks/:id", Session, workflows::delete).doc(workflows::delete_doc())
        .get("/api/user/webhooks/:id/deliveries", Scoped(Usage), workflows::deliveries)
            .doc(workflows::deliveries_doc())
        // Plans (Sokuji).
        .get("/api/subscription/plans", Public, subscription::plans).doc(subscription::plans_doc())
        .get("/api/subscription/current", Scoped(Usage), subscription::current)
            .doc(subscription::current_doc())
        .post("/api/subscription/upgrade", Scoped(Billing), subscription::upgrade)
            .doc(subscription::upgrade_doc())
        // Metering (Sokuji): exact, idempotent.
        .post("/api/usage/reserve", Scoped(Usage), usage::reserve).doc(usage::reserve_doc())
        .post("/api/usage/report", Scoped(Usage), usage::report).doc(usage::report_doc())
        .get("/api/usage/quota", Scoped(Usage), usage::quota).doc(usage::quota_doc())
            .batched(quota_read)
        .post("/api/usage/sync", Scoped(Usage), usage::sync).doc(usage::sync_doc())
            .batched(quota_read)
        .get("/api/usage/sessions", Scoped(Usage), usage::sessions).doc(usage::sessions_doc())
        .get("/api/usage/history", Scoped(Usage), usage::history).doc(usage::history_doc())
        .get("/api/usage/stats", Scoped(Usage), usage::stats).doc(usage::stats_doc())
        // Subscriptions on Stripe (AI Audio Studio).
        .get("/api/subscriptions/plans", Public, subscription::plans).doc(subscription::plans_doc())
        .get("/api/subscriptions/current", Scoped(Billing), billing::current)
            .doc(billing::current_doc())
        .get("/api/subscriptions/history", Scoped(Billing), billing::history)
            .doc(billing::history_doc())
        .post("/api/subscriptions/checkout", Scoped(Billing), billing::checkout)
            .doc(billing::checkout_doc())
        .post("/api/subscriptions/portal", Scoped(Billing), billing::portal)
            .doc(billing::portal_doc())
        .post("/api/subscriptions/cancel", Scoped(Billing), billing::cancel)
            .doc(billing::cancel_doc())
        .put("/api/subscriptions/update", Scoped(Billing), billing::update)
            .doc(billing::update_doc())
        // Stripe's webhook (AI Audio Studio's and dream-api's paths), retry and status.
        .post("/api/webhooks/stripe", Signed(Stripe), billing::webhook).doc(billing::webhook_doc())
        .post("/webhook/stripe", Signed(Stripe), billing::webhook)
            .doc(billing::platform_webhook_doc())
        .post("/api/webhooks/retry", Scoped(Admin), billing::retry).doc(billing::retry_doc())
        .get("/api/webhooks/status", Scoped(Admin), billing::status).doc(billing::status_doc())
        // The token ledger (AI Audio Studio): exact and idempotent under any concurrency.
        .get("/api/tokens/balance", Scoped(Usage), tokens::balance).doc(tokens::balance_doc())
        .get("/api/tokens/transactions", Scoped(Usage), tokens::transactions)
            .doc(tokens::transactions_doc())
        .get("/api/tokens/analytics", Scoped(Usage), tokens::analytics).doc(tokens::analytics_doc())
        .get("/api/tokens/packs", Public, tokens::packs).doc(tokens::packs_doc())
        .post("/api/tokens/purchase", Scoped(Billing), tokens::purchase).doc(tokens::purchase_doc())
            .guard(verified_email, NOT_VERIFIED)
        .post("/api/tokens/use", Scoped(Usage), tokens::spend).doc(tokens::spend_doc())
            .guard(verified_email, NOT_VERIFIED)
        .post("/api/tokens/add", Scoped(Admin), tokens::add).doc(tokens::add_doc())
        .get("/api/tokens/social", Scoped(Usage), tokens::social_tasks)
            .doc(tokens::social_tasks_doc())
        .post("/api/tokens/social", Scoped(Usage), tokens::claim_social)
            .doc(tokens::claim_social_doc())
            .guard(verified_email, NOT_VERIFIED)
        // Platforms (dream-api): developers' credentials, their tiers and dashboard, and their
        // end users' metered calls.
        .post("/generate-credentials", Session, platforms::generate_credentials)
            .doc(platforms::generate_credentials_doc())
        .get("/get-credentials", Session, platforms::get_credentials)
            .doc(platforms::get_credentials_doc())
        // The developer's own plan (dream-api): their calls counted on their plan, and its
        // upgrade through Checkout.
        .post("/verify-auth", Scoped(Usage), developer::verify_auth)
            .doc(developer::verify_auth_doc())
        .post("/create-checkout", Scoped(Billing), developer::create_checkout)
            .doc(developer::create_checkout_doc())
        .post("/api/developer/register", Public, platforms::register).doc(platforms::register_doc())
        .get("/api/developer/dashboard", PlatformKey, platforms::dashboard)
            .doc(platforms::dashboard_doc())
        .put("/api/developer/tiers", PlatformKey, platforms::put_tiers)
            .doc(platforms::put_tiers_doc())
        .get("/api/tiers", Public, platforms::tiers).doc(platforms::tiers_doc())
        .post("/api/data", EndUser, platforms::data).doc(platforms::data_doc())
        .get("/api/usage", EndUser, platforms::usage).doc(platforms::usage_doc())
        .post("/api/create-checkout", EndUser, platforms::create_checkout)
            .doc(platforms::create_checkout_doc())
        .post("/api/customer-portal", EndUser, platforms::customer_portal)
            .doc(platforms::customer_portal_doc())
        // The portal (Koby): an org's members see and change their org; staff act on any
        // org with `?orgId=`.
        .get("/portal/overview", OrgMember, portal::overview).doc(portal::overview_doc())
        .get("/portal/engines", OrgMember, engines::list).doc(engines::list_doc())
        .post("/portal/engines", OrgAdmin, engines::create).doc(engines::create_doc())
        .patch("/portal/engines/:id", OrgAdmin, engines::update).doc(engines::update_doc())
        .post("/portal/engines/:id/rotate-key", OrgAdmin, engines::rotate_key)
            .doc(engines::rotate_key_doc())
        .get("/portal/workflows", OrgMember, portal::workflows::list)
            .doc(portal::workflows::list_doc())
        .post("/portal/workflows", OrgAdmin, portal::workflows::create)
            .doc(portal::workflows::create_doc())
        .patch("/portal/workflows/:id", OrgAdmin, portal::workflows::update)
            .doc(portal::workflows::update_doc())
        .delete("/portal/workflows/:id", OrgAdmin, portal::workflows::delete)
            .doc(portal::workflows::delete_doc())
        .get("/portal/workflows/:id/deliveries", OrgMember, portal::workflows::deliveries)
            .doc(portal::workflows::deliveries_doc())
        .get("/portal/insights", OrgMember, portal::insights).doc(portal::insights_doc())
        .get("/portal/team", OrgMember, portal::team).doc(portal::team_doc())
        .get("/portal/config", OrgMember, portal::get_config).doc(portal::get_config_doc())
        .patch("/portal/config", OrgAdmin, portal::patch_config).doc(portal::patch_config_doc())
        .get("/portal/clients", Staff, portal::clients).doc(portal::clients_doc())
        .post("/portal/clients", Staff, portal::create_client).doc(portal::create_client_doc())
        // Site chat: a site's visitors talk to the org's model, paid from the org's tokens.
        .post("/chat", SiteKeyOrLegacy, chat::chat).doc(chat::chat_doc())
        .post("/voice", SiteKeyOrLegacy, voice::speak).doc(voice::speak_doc())
        // The metered model proxy, in OpenAI's shapes (its client libraries call it).
        .post("/v1/chat/completions", Scoped(Usage), proxy::completions)
            .doc(proxy::completions_doc())
            .guard(verified_email, NOT_VERIFIED)
        .get("/v1/models", Scoped(Usage), proxy::models).doc(proxy::models_doc())
            .guard(verified_email, NOT_VERIFIED)
        // Sites: Koby's chat widgets and voice endpoints, called with their site key.
        .get("/api/site", SiteKey, sites::face).doc(sites::face_doc())
        // Provider keys: OpenRouter keys bought with credits (Puku), the key pool (Sokuji).
        .post("/api/key", Scoped(Keys), keys::openrouter_key).doc(keys::openrouter_key_doc())
            .guard(verified_email, NOT_VERIFIED)
        // Hands out (and so may assign) a pool key.
        .get_creating("/api/user/provider-keys", Scoped(Keys), keys::user_pool_key)
            .doc(keys::user_pool_key_doc())
            .guard(verified_email, NOT_VERIFIED)
        // Admin (admin role only).
        .get("/api/admin/provider-keys", Scoped(Admin), keys::list_pool_keys)
            .doc(keys::list_pool_keys_doc())
        .post("/api/admin/provider-keys", Scoped(Admin), keys::add_pool_key)
            .doc(keys::add_pool_key_doc())
        .delete("/api/admin/provider-keys/:id", Scoped(Admin), keys::retire_pool_key)
            .doc(keys::retire_pool_key_doc())
        .get("/api/admin/users", Scoped(Admin), admin::list_users).doc(admin::list_users_doc())
        .post("/api/admin/users/:id/credits", Scoped(Admin), admin::adjust_credits)
            .doc(admin::adjust_credits_doc())
        .post("/api/admin/users/:id/rotate-key", Scoped(Admin), admin::rotate_user_key)
            .doc(admin::rotate_user_key_doc())
        .get("/api/admin/audit-log", Scoped(Admin), audit::list).doc(audit::list_doc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::rules::scopes::Access;

    #[test]
    fn every_route_that_is_not_public_refuses_an_anonymous_request_before_its_handler() {
        use crate::error::AppError;
        use crate::http::access::{gate, Admitted, Arrival, Presented};
        use crate::identity::rules::scopes::Signer;
        // Every signer's secret is configured, so a refusal is the request's fault.
        let configured = |signer: Signer| -> Result<&'static str, AppError> {
            Ok(match signer {
                Signer::Clerk => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // Svix's example
                Signer::Stripe => "whsec_test_stripe",                     // made up
            })
        };
        // No Authorization, no signature headers, a JSON body.
        let no_headers = |_: &str| -> Option<String> { None };
        let anonymous = Arrival {
            authorization: Presented::Nothing,
            header: &no_headers,
            body: br#"{"id":"evt_1","type":"user.created","data":{}}"#,
            now_secs: 1_700_000_000,
        };
        let table = table();
        let (mut public, mut signed, mut legacy) = (Vec::new(), Vec::new(), Vec::new());
        for (method, path, access) in table.endpoints() {
            let admitted = gate(access, &anonymous, &configured);
            if access == Access::SiteKeyOrLegacy {
                // The site admission decides: legacy mode off (the default), no key is 401.
                assert_eq!(admitted, Ok(Admitted::Anyone), "{method} {path}");
                legacy.push(format!("{method} {path}"));
            } else if access == Access::Public {
                assert_eq!(admitted, Ok(Admitted::Anyone), "{method} {path}");
                public.push(format!("{method} {path}"));
            } else {
                let refused = admitted.expect_err(&format!("{method} {path} admits anyone"));
                assert_eq!(refused.code(), "unauthorized", "{method} {path}");
                if let Access::Signed(signer) = access {
                    signed.push(format!("{method} {path} by {}", signer.as_str()));
                }
            }
        }
        // The public and signed routes, by name: a route is either only because it says so
        // here.
        assert_eq!(
            public,
            [
                "GET /",
                "GET /health",
                "GET /api/health",
                "GET /api/health/ping",
                "GET /openapi.json",
                "GET /api/auth/oauth/:provider",
                // The refresh token in the body is the credential (or, without one, the
                // handler authenticates the bearer as the Session rule would).
                "POST /api/auth/refresh",
                "POST /api/auth/register",
                "POST /api/auth/login",
                "POST /api/auth/request-password-reset",
                "POST /api/auth/reset-password",
                "POST /api/auth/verify-email",
                "GET /api/subscription/plans",
                "GET /api/subscriptions/plans",
                "GET /api/tokens/packs",
                "POST /api/developer/register",
                "GET /api/tiers",
            ]
        );
        assert_eq!(
            signed,
            [
                "POST /api/auth/webhook/clerk by clerk",
                "POST /api/webhooks/stripe by stripe",
                "POST /webhook/stripe by stripe",
            ]
        );
        // The seed's chat and voice clients may come without a key (legacy mode).
        assert_eq!(legacy, ["POST /chat", "POST /voice"]);
    }

    #[test]
    fn signed_routes_take_webhook_sized_bodies_and_every_other_route_api_sized_ones() {
        use crate::core::body::BodyLimit;
        let table = table();
        for (method, path, limit) in table.limits() {
            let (_, _, access) = table
                .endpoints()
                .find(|(m, p, _)| *m == method && *p == path)
                .expect("the same table");
            let expected = match access {
                Access::Signed(_) => BodyLimit::Webhook,
                _ => BodyLimit::Api,
            };
            assert_eq!(limit, expected, "{method} {path}");
        }
        // Looked up by a request's method and path, before the body is read.
        let post = worker::Method::Post;
        assert_eq!(
            table.body_limit(&post, "/api/webhooks/stripe"),
            BodyLimit::Webhook
        );
        assert_eq!(
            table.body_limit(&post, "/webhook/stripe"),
            BodyLimit::Webhook
        );
        assert_eq!(
            table.body_limit(&post, "/api/auth/webhook/clerk"),
            BodyLimit::Webhook
        );
        assert_eq!(table.body_limit(&post, "/api/usage/report"), BodyLimit::Api);
        assert_eq!(
            table.body_limit(&post, "/api/admin/users/u_1/credits"),
            BodyLimit::Api
        );
        // A path or method the table does not serve keeps the API limit.
        assert_eq!(
            table.body_limit(&post, "/api/webhooks/stripe/"),
            BodyLimit::Api
        );
        assert_eq!(table.body_limit(&post, "/nowhere"), BodyLimit::Api);
        assert_eq!(
            table.body_limit(&worker::Method::Put, "/api/webhooks/stripe"),
            BodyLimit::Api
        );
    }

    #[test]
    fn a_route_may_state_its_own_body_limit() {
        use crate::core::body::BodyLimit;
        let table = RouteTable::new()
            .post("/big/:id", Public, health::root)
            .limit(BodyLimit::Webhook)
            .post("/small", Signed(Stripe), billing::webhook)
            .limit(BodyLimit::Api);
        let post = worker::Method::Post;
        assert_eq!(table.body_limit(&post, "/big/7"), BodyLimit::Webhook);
        assert_eq!(table.body_limit(&post, "/small"), BodyLimit::Api);
    }

    #[test]
    fn every_admin_route_needs_the_admin_scope() {
        let admin_paths = |p: &str| p.starts_with("/api/admin/") || p.starts_with("/api/webhooks/");
        let declared: Vec<_> = table()
            .endpoints()
            .filter(|(_, path, _)| admin_paths(path) && *path != "/api/webhooks/stripe")
            .collect();
        assert_eq!(declared.len(), 9, "{declared:?}");
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
            ("POST", "/create-checkout"),
        ] {
            assert_eq!(access(method, path), Scoped(Billing), "{method} {path}");
        }
        assert_eq!(access("POST", "/api/key"), Scoped(Keys));
        assert_eq!(access("POST", "/verify-auth"), Scoped(Usage));
        for (method, path) in [
            ("POST", "/api/user/api-keys"),
            ("DELETE", "/api/user/api-keys/:id"),
            ("POST", "/api/user/webhooks"),
            ("PATCH", "/api/user/webhooks/:id"),
            ("DELETE", "/api/user/webhooks/:id"),
            ("POST", "/api/auth/signout"),
            ("POST", "/api/auth/logout"),
            ("GET", "/api/auth/profile"),
            ("PUT", "/api/auth/profile"),
            ("POST", "/api/auth/change-password"),
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
