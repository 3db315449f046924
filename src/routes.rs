//! The one table of every path the API serves, and who may call it. A new endpoint is one
//! line here.
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

use crate::accounts::http::{self as accounts, views as account_views};
use crate::audit::http as audit;
use crate::billing::http as billing;
use crate::billing::http::views as billing_views;
use crate::chat::http as chat;
use crate::chat::rules as chat_rules;
use crate::contract::{self, OpenApiDocument};
use crate::health::http as health;
use crate::http::access::{
    EndUser, OrgAdmin, OrgMember, PlatformKey, Public, Signed, SiteKey, SiteKeyOrLegacy, Staff,
};
use crate::http::dispatch::RouteTable;
use crate::http::doc::{Doc, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC, REPLAYED, REPLAYED_DOC};
use crate::identity::http::{auth, user, views as identity};
use crate::identity::rules::scopes::Access::{Scoped, Session};
use crate::identity::rules::scopes::Scope::{Admin, Billing, Keys, Usage};
use crate::identity::rules::scopes::Signer::{Clerk, Stripe};
use crate::identity::rules::{clerk_event, profile};
use crate::ledger::http as tokens;
use crate::metering::http::views::{
    DeviceSessionsView, UsageHistoryQuery, UsageHistoryView, UsageQuotaView, UsageReportView,
    UsageReservedView, UsageStatsQuery, UsageStatsView, UsageSyncView,
};
use crate::metering::http::{
    self as usage, CLIENT_PLATFORM, CLIENT_PLATFORM_DOC, DEVICE_ID, DEVICE_ID_DOC,
};
use crate::metering::rules::{ReportRequest, ReserveRequest, SyncRequest};
use crate::metering::service as metering_service;
use crate::orgs::http::{self as portal, views as portal_views};
use crate::orgs::rules::OrgConfig;
use crate::orgs::service::NewOrg;
use crate::plans::http as subscription;
use crate::platforms::http::{self as platforms, views as platform_views};
use crate::platforms::service::{USER_ID_HEADER, USER_PLAN_HEADER};
use crate::provider_keys::http::{admin, keys as provider_keys, views as key_views};
use crate::proxy::http as proxy;
use crate::sites::http::{self as sites, views as site_views};
use crate::voice::http as voice;
use crate::voice::rules as voice_rules;
use crate::webhooks::http as clerk_webhook;
use crate::workflows::http as workflows;
use crate::workflows::service::{NewWorkflow, WorkflowPatch};

const USER_ID_DOC: &str =
    "With a platform key: the end user this call is for, as the platform names them (1 to 128 \
     visible ASCII characters). Required with a platform key; ignored with an end-user token.";
const USER_PLAN_DOC: &str =
    "With a platform key: the end user's tier for this call, chosen among the platform's \
     unpaid tiers (price 0); a tier the platform lacks, or a paid one the end user has not \
     paid for, is 400 and counts nothing. Once the end user has paid, the tier they paid for \
     applies whatever this says. Without it: the paid tier, else the platform's first unpaid \
     one.";

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
        // One path, two sessions: an account's refresh token in the body, or (no
        // `refresh_token`) the bearer's Clerk or HMAC session as before.
        .post("/api/auth/refresh", Public, accounts::refresh)
        .doc(
            Doc::new(
                "Rotate an account session's tokens (refresh_token), or refresh the bearer's \
                 Clerk or HMAC session",
            )
            .optional_body::<account_views::RefreshBody>()
            .ok::<account_views::RefreshAnswer>(200)
            .errors(&[
                "bad_request",
                "unauthorized",
                "forbidden",
                "rate_limited",
                "upstream_error",
            ]),
        )
        // Tollgate's own accounts (AI Audio Studio): email and password.
        .post("/api/auth/register", Public, accounts::register)
        .doc(
            Doc::new(
                "Create an account: the user and a session; mails a verification link (at most \
                 SIGNUP_PER_IP_PER_HOUR sign-ups per client IP an hour)",
            )
            .body::<account_views::RegisterBody>()
            .ok::<account_views::AccountSessionView>(201)
            .errors(&["conflict", "rate_limited", "not_configured"]),
        )
        .post("/api/auth/login", Public, accounts::login)
        .doc(
            Doc::new("Sign in with email and password: the user and a new session")
                .body::<account_views::LoginBody>()
                .ok::<account_views::AccountSessionView>(200)
                .errors(&["unauthorized", "rate_limited"]),
        )
        .post("/api/auth/logout", Session, accounts::logout)
        .doc(
            Doc::new("End the caller's session; its tokens are refused at once")
                .ok::<account_views::LoggedOutView>(200)
                .errors(&["bad_request"]),
        )
        .get("/api/auth/profile", Session, accounts::get_profile)
        .doc(Doc::new("The caller's account").ok::<account_views::AccountUserView>(200))
        .put("/api/auth/profile", Session, accounts::put_profile)
        .doc(
            Doc::new(
                "Change the display name or avatar, or ask for a new email (with the current \
                 password; it takes over once its mailed link is used)",
            )
            .body::<account_views::AccountProfileBody>()
            .ok::<account_views::AccountUserView>(200)
            .errors(&["conflict", "not_found", "not_configured"]),
        )
        .post(
            "/api/auth/change-password",
            Session,
            accounts::change_password,
        )
        .doc(
            Doc::new("Change the password; every other session of the caller ends")
                .body::<account_views::ChangePasswordBody>()
                .ok::<account_views::PasswordSetView>(200),
        )
        .post(
            "/api/auth/request-password-reset",
            Public,
            accounts::request_password_reset,
        )
        .doc(
            Doc::new(
                "Mail a password reset link if the email has an account (same answer if not; \
                 at most RESET_PER_IP_PER_HOUR per client IP and RESET_PER_EMAIL_PER_HOUR per \
                 email an hour)",
            )
            .body::<account_views::RequestResetBody>()
            .ok::<account_views::ResetRequestedView>(202)
            .errors(&["rate_limited", "not_configured"]),
        )
        .post("/api/auth/reset-password", Public, accounts::reset_password)
        .doc(
            Doc::new("Set a new password with a mailed reset token (once); every session ends")
                .body::<account_views::ResetPasswordBody>()
                .ok::<account_views::PasswordSetView>(200)
                .errors(&["bad_request"]),
        )
        .post("/api/auth/verify-email", Public, accounts::verify_email)
        .doc(
            Doc::new(
                "Mark the email verified with a mailed token (once), or make the new email \
                 asked for the account's",
            )
            .body::<account_views::VerifyEmailBody>()
            .ok::<account_views::EmailVerifiedView>(200)
            .errors(&["bad_request", "conflict"]),
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
        .post(
            "/api/auth/webhook/clerk",
            Signed(Clerk),
            clerk_webhook::receive,
        )
        .doc(
            // The signature header is the route's security scheme (`svix-signature`, or
            // `webhook-signature`); the other two are signed with the body.
            Doc::new("Receive one of Clerk's webhook deliveries (signed by Svix)")
                .header("svix-id", "The delivery's id (or `webhook-id`)")
                .header("svix-timestamp", "Unix seconds (or `webhook-timestamp`)")
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
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
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
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        .delete("/api/user/api-keys/:id", Session, user::revoke_key)
        .doc(
            Doc::new("Revoke one of the caller's API keys (idempotent)")
                .ok::<identity::RevokedApiKeyView>(200)
                .errors(&["not_found", "upstream_error", "payload_too_large"]),
        )
        // A user's own usage alerts (Koby's threshold workflows, for any user's quota):
        // creating and deleting a signed outgoing webhook manages the account, so it takes a
        // session (as API keys do); reading them is usage, so a usage key may.
        .post("/api/user/webhooks", Session, workflows::create)
        .doc(
            Doc::new(
                "Register a webhook for the caller's 80 % and 100 % of monthly tokens; its \
                 signing secret is shown once",
            )
            .body::<workflows::NewUserWebhookBody>()
            .ok::<workflows::CreatedWorkflowView>(201)
            .errors(&["conflict", "not_configured"]),
        )
        .get("/api/user/webhooks", Scoped(Usage), workflows::list)
        .doc(
            Doc::new("The caller's webhooks, oldest first (never a secret)")
                .ok::<workflows::WorkflowListView>(200),
        )
        .patch("/api/user/webhooks/:id", Session, workflows::update)
        .doc(
            Doc::new("Change one of the caller's webhooks: its URL, or whether it is enabled")
                .body::<workflows::UserWebhookPatchBody>()
                .ok::<workflows::WorkflowView>(200)
                .errors(&["not_found"]),
        )
        .delete("/api/user/webhooks/:id", Session, workflows::delete)
        .doc(
            Doc::new("Delete one of the caller's webhooks; its pending deliveries fail")
                .ok::<workflows::DeletedWorkflowView>(200)
                .errors(&["not_found", "payload_too_large"]),
        )
        .get(
            "/api/user/webhooks/:id/deliveries",
            Scoped(Usage),
            workflows::deliveries,
        )
        .doc(
            Doc::new("A webhook's deliveries, newest first, with their status and attempts")
                .query::<workflows::DeliveryPageQuery>()
                .ok::<workflows::DeliveryPageView>(200)
                .errors(&["not_found"]),
        )
        // Plans (Sokuji).
        .get("/api/subscription/plans", Public, subscription::plans)
        .doc(
            Doc::new("Every plan, and the one new users start on")
                .ok::<subscription::PlanCatalogView>(200),
        )
        .get(
            "/api/subscription/current",
            Scoped(Usage),
            subscription::current,
        )
        .doc(
            Doc::new("The caller's plan and what it allows")
                .ok::<subscription::CurrentPlanView>(200),
        )
        .post(
            "/api/subscription/upgrade",
            Scoped(Billing),
            subscription::upgrade,
        )
        .doc(
            Doc::new("Upgrade a plan: a Stripe Checkout, or how to upgrade where billing is off")
                .optional_body::<billing::CheckoutBody>()
                .ok::<subscription::UpgradeView>(200)
                .errors(&["conflict", "upstream_error"]),
        )
        // Metering (Sokuji): exact, idempotent.
        .post("/api/usage/reserve", Scoped(Usage), usage::reserve)
        .doc(
            Doc::new("Hold an estimate of tokens before a model call")
                .body::<ReserveRequest>()
                .ok::<UsageReservedView>(201)
                .response_header(REPLAYED, REPLAYED_DOC)
                .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
                .header(DEVICE_ID, DEVICE_ID_DOC)
                .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
                .errors(&["quota_exceeded", "session_limit_exceeded"]),
        )
        .post("/api/usage/report", Scoped(Usage), usage::report)
        .doc(
            Doc::new("Record the tokens a model call used, settling its reservation")
                .body::<ReportRequest>()
                .ok::<UsageReportView>(200)
                .response_header(REPLAYED, REPLAYED_DOC)
                .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
                .header(DEVICE_ID, DEVICE_ID_DOC)
                .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC),
        )
        .get("/api/usage/quota", Scoped(Usage), usage::quota)
        .batched(metering_service::quota_read)
        .doc(
            Doc::new("The caller's token quota in the current period")
                .ok::<UsageQuotaView>(200)
                .header(DEVICE_ID, DEVICE_ID_DOC)
                .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
                .errors(&["validation_failed", "session_limit_exceeded"]),
        )
        .post("/api/usage/sync", Scoped(Usage), usage::sync)
        .batched(metering_service::quota_read)
        .doc(
            Doc::new("The quota, and whether it changed since the client's last sync")
                .optional_body::<SyncRequest>()
                .ok::<UsageSyncView>(200)
                .header(DEVICE_ID, DEVICE_ID_DOC)
                .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
                .errors(&["session_limit_exceeded"]),
        )
        .get("/api/usage/sessions", Scoped(Usage), usage::sessions)
        .doc(
            Doc::new("The caller's active devices and the plan's limit on them")
                .ok::<DeviceSessionsView>(200)
                .header(DEVICE_ID, DEVICE_ID_DOC)
                .header(CLIENT_PLATFORM, CLIENT_PLATFORM_DOC)
                .errors(&["validation_failed", "session_limit_exceeded"]),
        )
        .get("/api/usage/history", Scoped(Usage), usage::history)
        .doc(
            Doc::new("The caller's usage records, newest first")
                .query::<UsageHistoryQuery>()
                .ok::<UsageHistoryView>(200),
        )
        .get("/api/usage/stats", Scoped(Usage), usage::stats)
        .doc(
            Doc::new("Usage totals overall and by provider, model, device and day")
                .query::<UsageStatsQuery>()
                .ok::<UsageStatsView>(200),
        )
        // Subscriptions on Stripe (AI Audio Studio).
        .get("/api/subscriptions/plans", Public, subscription::plans)
        .doc(
            Doc::new("Every plan, and the one new users start on")
                .ok::<subscription::PlanCatalogView>(200),
        )
        .get(
            "/api/subscriptions/current",
            Scoped(Billing),
            billing::current,
        )
        .doc(
            Doc::new("The caller's plan and Stripe subscription")
                .ok::<billing_views::CurrentSubscriptionView>(200),
        )
        .get(
            "/api/subscriptions/history",
            Scoped(Billing),
            billing::history,
        )
        .doc(
            Doc::new("Every change of the caller's subscriptions, newest first")
                .query::<billing_views::PageQuery>()
                .ok::<billing_views::HistoryPageView>(200),
        )
        .post(
            "/api/subscriptions/checkout",
            Scoped(Billing),
            billing::checkout,
        )
        .doc(
            Doc::new("A Stripe Checkout to subscribe to a plan")
                .body::<billing::CheckoutBody>()
                .ok::<billing_views::CheckoutView>(200)
                .errors(&["conflict", "upstream_error"]),
        )
        .post(
            "/api/subscriptions/portal",
            Scoped(Billing),
            billing::portal,
        )
        .doc(
            Doc::new("A Stripe Billing Portal session for the caller")
                .optional_body::<billing::PortalBody>()
                .ok::<billing_views::PortalView>(200)
                .errors(&["conflict", "upstream_error"]),
        )
        .post(
            "/api/subscriptions/cancel",
            Scoped(Billing),
            billing::cancel,
        )
        .doc(
            Doc::new("Cancel the caller's subscription, at the period's end or now")
                .optional_body::<billing::CancelBody>()
                .ok::<billing_views::SubscriptionChangeView>(200)
                .errors(&["not_found", "conflict", "upstream_error"]),
        )
        .put(
            "/api/subscriptions/update",
            Scoped(Billing),
            billing::update,
        )
        .doc(
            Doc::new("Move the caller's subscription to another plan (prorated)")
                .body::<billing::UpdateBody>()
                .ok::<billing_views::SubscriptionChangeView>(200)
                .errors(&["not_found", "conflict", "upstream_error"]),
        )
        // Stripe's webhook (AI Audio Studio's and dream-api's paths), retry and status.
        .post("/api/webhooks/stripe", Signed(Stripe), billing::webhook)
        .doc(
            Doc::new("Stripe's events (signed)")
                .body::<billing_views::StripeEventBody>()
                .ok::<billing_views::WebhookReceivedView>(200)
                .errors(&["unauthorized"]),
        )
        .post("/webhook/stripe", Signed(Stripe), billing::webhook)
        .doc(
            Doc::new("Stripe's events (signed; the platform API's path)")
                .body::<billing_views::StripeEventBody>()
                .ok::<billing_views::WebhookReceivedView>(200)
                .errors(&["unauthorized"]),
        )
        .post("/api/webhooks/retry", Scoped(Admin), billing::retry)
        .doc(Doc::new("Retry failed Stripe events now").ok::<billing_views::RetryView>(200))
        .get("/api/webhooks/status", Scoped(Admin), billing::status)
        .doc(
            Doc::new("Webhook deliveries by provider and status, and the latest failures")
                .ok::<billing_views::WebhookStatusView>(200),
        )
        // The token ledger (AI Audio Studio): exact and idempotent under any concurrency.
        .get("/api/tokens/balance", Scoped(Usage), tokens::balance)
        .doc(Doc::new("The caller's token balance").ok::<tokens::TokenBalanceView>(200))
        .get(
            "/api/tokens/transactions",
            Scoped(Usage),
            tokens::transactions,
        )
        .doc(
            Doc::new("The caller's ledger entries, newest first")
                .query::<tokens::TransactionsQuery>()
                .ok::<tokens::TokenTransactionsView>(200),
        )
        .get("/api/tokens/analytics", Scoped(Usage), tokens::analytics)
        .doc(
            Doc::new("Tokens earned and spent per UTC day and kind in a range (default 30 days)")
                .query::<tokens::AnalyticsQuery>()
                .ok::<tokens::TokenAnalyticsView>(200),
        )
        .get("/api/tokens/packs", Public, tokens::packs)
        .doc(
            Doc::new("The token packs for sale")
                .ok::<tokens::TokenPacksView>(200)
                .errors(&["not_configured"]),
        )
        .post("/api/tokens/purchase", Scoped(Billing), tokens::purchase)
        .doc(
            Doc::new("A Stripe Checkout to buy a pack; credited once Stripe reports it paid")
                .body::<tokens::PurchaseBody>()
                .ok::<tokens::TokenCheckoutView>(200)
                .errors(&["upstream_error"]),
        )
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        .post("/api/tokens/use", Scoped(Usage), tokens::spend)
        .doc(
            Doc::new("Spend tokens; refused (nothing recorded) when the balance is short")
                .body::<tokens::UseBody>()
                .ok::<tokens::TokenChangeView>(200)
                .response_header(REPLAYED, REPLAYED_DOC)
                .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
                .errors(&["insufficient_credits", "conflict"]),
        )
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        .post("/api/tokens/add", Scoped(Admin), tokens::add)
        .doc(
            Doc::new("Give a user tokens, or take some (never below zero), with a reason")
                .body::<tokens::AddBody>()
                .ok::<tokens::TokenChangeView>(200)
                .response_header(REPLAYED, REPLAYED_DOC)
                .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
                .errors(&["not_found", "insufficient_credits", "conflict"]),
        )
        .get("/api/tokens/social", Scoped(Usage), tokens::social_tasks)
        .doc(
            Doc::new("The social tasks and whether the caller has done each")
                .ok::<tokens::SocialTasksView>(200)
                .errors(&["not_configured"]),
        )
        .post("/api/tokens/social", Scoped(Usage), tokens::claim_social)
        .doc(
            Doc::new("Claim a social task's reward: once per user and task")
                .body::<tokens::SocialClaimBody>()
                .ok::<tokens::SocialRewardView>(200)
                .errors(&["conflict", "not_configured"]),
        )
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        // Platforms (dream-api): developers' credentials, their tiers and dashboard, and their
        // end users' metered calls.
        .post(
            "/generate-credentials",
            Session,
            platforms::generate_credentials,
        )
        .doc(
            Doc::new(
                "The caller's platform (made if they have none) and a new platform key, shown \
                 once; the key before is revoked",
            )
            .ok::<platform_views::IssuedCredentialsView>(200)
            .ok::<platform_views::IssuedCredentialsView>(201),
        )
        .get("/get-credentials", Session, platforms::get_credentials)
        .doc(
            Doc::new("The caller's platform and its live key, masked")
                .ok::<platform_views::CredentialsView>(200)
                .errors(&["not_found"]),
        )
        // The developer's own plan (dream-api): their calls counted on their plan, and its
        // upgrade through Checkout.
        .post(
            "/verify-auth",
            Scoped(Usage),
            platforms::developer::verify_auth,
        )
        .doc(
            Doc::new(
                "Count one of the caller's calls against their plan's monthly calls (exactly; \
                 402 with the usage when it does not fit)",
            )
            .optional_body::<platforms::developer::VerifyAuthBody>()
            .ok::<platform_views::CallUsageAnswer>(200)
            .response_header(REPLAYED, REPLAYED_DOC)
            .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
            .errors(&["quota_exceeded"]),
        )
        .post(
            "/create-checkout",
            Scoped(Billing),
            platforms::developer::create_checkout,
        )
        .doc(
            Doc::new(
                "A Stripe Checkout for the caller's upgrade (by default to \
                 PLATFORM_UPGRADE_PLAN)",
            )
            .optional_body::<billing::CheckoutBody>()
            .ok::<billing_views::CheckoutView>(200)
            .errors(&["conflict", "upstream_error"]),
        )
        .post("/api/developer/register", Public, platforms::register)
        .doc(
            Doc::new("Register a platform for an email: its id and first key, shown once")
                .body::<platform_views::RegisterBody>()
                .ok::<platform_views::RegisteredView>(201)
                .errors(&["conflict", "rate_limited"]),
        )
        .get(
            "/api/developer/dashboard",
            PlatformKey,
            platforms::dashboard,
        )
        .doc(
            Doc::new("The calling platform's end users, calls, revenue and tiers")
                .ok::<platform_views::DashboardView>(200),
        )
        .put("/api/developer/tiers", PlatformKey, platforms::put_tiers)
        .doc(
            Doc::new(
                "Replace the calling platform's tiers; each stripe_price_id is checked at \
                 Stripe once, here, and must be an active monthly price of the tier's \
                 price_cents and currency",
            )
            .body::<platform_views::TiersBody>()
            .ok::<platform_views::TiersView>(200)
            .errors(&["upstream_error", "not_configured"]),
        )
        .get("/api/tiers", Public, platforms::tiers)
        .doc(
            Doc::new("A platform's tiers: by platform_id, or the calling platform key's")
                .query::<platform_views::TiersQuery>()
                .ok::<platform_views::TiersView>(200)
                .errors(&["not_found", "unauthorized"]),
        )
        .post("/api/data", EndUser, platforms::data)
        .doc(
            Doc::new(
                "Count an end user's calls against their tier's monthly limit (exactly; 402 \
                 with the usage when they do not fit)",
            )
            .optional_body::<platform_views::DataBody>()
            .ok::<platform_views::CallUsageAnswer>(200)
            .response_header(REPLAYED, REPLAYED_DOC)
            .header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DOC)
            .header(USER_ID_HEADER, USER_ID_DOC)
            .header(USER_PLAN_HEADER, USER_PLAN_DOC)
            .errors(&["quota_exceeded"]),
        )
        .get("/api/usage", EndUser, platforms::usage)
        .doc(
            Doc::new("An end user's calls this period, counting nothing")
                .ok::<platform_views::CallUsageAnswer>(200)
                .header(USER_ID_HEADER, USER_ID_DOC)
                .header(USER_PLAN_HEADER, USER_PLAN_DOC),
        )
        .post("/api/create-checkout", EndUser, platforms::create_checkout)
        .doc(
            Doc::new(
                "A Stripe Checkout for an end user to subscribe to one of the platform's tiers",
            )
            .body::<platform_views::EndUserCheckoutBody>()
            .ok::<platform_views::EndUserCheckoutView>(200)
            .header(USER_ID_HEADER, USER_ID_DOC)
            .errors(&["upstream_error"]),
        )
        .post("/api/customer-portal", EndUser, platforms::customer_portal)
        .doc(
            Doc::new("A Stripe Billing Portal session for an end user")
                .optional_body::<platform_views::EndUserPortalBody>()
                .ok::<platform_views::EndUserPortalView>(200)
                .header(USER_ID_HEADER, USER_ID_DOC)
                .errors(&["conflict", "upstream_error"]),
        )
        // The portal (Koby): an org's members see and change their org; staff act on any
        // org with `?orgId=`.
        .get("/portal/overview", OrgMember, portal::overview)
        .doc(
            Doc::new("The org, its plan, this month's usage and the last 30 days' activity")
                .query::<portal_views::PortalQuery>()
                .ok::<portal_views::OverviewView>(200),
        )
        .get("/portal/engines", OrgMember, portal::engines::list)
        .doc(
            Doc::new("The org's sites (engines) with their site keys and origins")
                .query::<portal_views::PortalQuery>()
                .ok::<site_views::SitesView>(200),
        )
        .post("/portal/engines", OrgAdmin, portal::engines::create)
        .doc(
            Doc::new("A new site of the org, with a new site key")
                .query::<portal_views::PortalQuery>()
                .body::<site_views::NewSiteBody>()
                .ok::<site_views::SiteView>(201),
        )
        .patch("/portal/engines/:id", OrgAdmin, portal::engines::update)
        .doc(
            Doc::new("Change a site of the org: name, status, origins, server calls")
                .query::<portal_views::PortalQuery>()
                .body::<site_views::SitePatchBody>()
                .ok::<site_views::SiteView>(200),
        )
        .post(
            "/portal/engines/:id/rotate-key",
            OrgAdmin,
            portal::engines::rotate_key,
        )
        .doc(
            Doc::new("A new site key for a site of the org; the old one is refused at once")
                .query::<portal_views::PortalQuery>()
                .ok::<site_views::SiteView>(200),
        )
        .get("/portal/workflows", OrgMember, portal::workflows::list)
        .doc(
            Doc::new("The org's workflows: triggers and their signed outgoing webhooks")
                .query::<portal_views::PortalQuery>()
                .ok::<workflows::WorkflowListView>(200),
        )
        .post("/portal/workflows", OrgAdmin, portal::workflows::create)
        .doc(
            Doc::new("A new workflow of the org; its signing secret is shown once")
                .query::<portal_views::PortalQuery>()
                .body::<NewWorkflow>()
                .ok::<workflows::CreatedWorkflowView>(201)
                .errors(&["conflict"]),
        )
        .patch("/portal/workflows/:id", OrgAdmin, portal::workflows::update)
        .doc(
            Doc::new("Change a workflow of the org: its trigger, URL, or whether it is enabled")
                .query::<portal_views::PortalQuery>()
                .body::<WorkflowPatch>()
                .ok::<workflows::WorkflowView>(200),
        )
        .delete("/portal/workflows/:id", OrgAdmin, portal::workflows::delete)
        .doc(
            Doc::new("Delete a workflow of the org; its pending deliveries fail")
                .query::<portal_views::PortalQuery>()
                .ok::<workflows::DeletedWorkflowView>(200)
                .errors(&["payload_too_large"]),
        )
        .get(
            "/portal/workflows/:id/deliveries",
            OrgMember,
            portal::workflows::deliveries,
        )
        .doc(
            Doc::new("A workflow's deliveries, newest first, with their status and attempts")
                .query::<portal_views::PortalPageQuery>()
                .ok::<workflows::DeliveryPageView>(200),
        )
        .get("/portal/insights", OrgMember, portal::insights)
        .doc(
            Doc::new("The org's daily activity series (all its sites, or one)")
                .query::<portal_views::InsightsQuery>()
                .ok::<portal_views::InsightsView>(200),
        )
        .get("/portal/team", OrgMember, portal::team)
        .doc(
            Doc::new("The org's members and their roles, from Clerk")
                .query::<portal_views::PortalQuery>()
                .ok::<portal_views::TeamView>(200),
        )
        .get("/portal/config", OrgMember, portal::get_config)
        .doc(
            Doc::new("The org's configuration")
                .query::<portal_views::PortalQuery>()
                .ok::<portal_views::ConfigView>(200),
        )
        .patch("/portal/config", OrgAdmin, portal::patch_config)
        .doc(
            Doc::new("Change the org's configuration: given fields replace, null clears")
                .query::<portal_views::PortalQuery>()
                .body::<OrgConfig>()
                .ok::<portal_views::ConfigView>(200)
                .errors(&["conflict"]),
        )
        .get("/portal/clients", Staff, portal::clients)
        .doc(
            Doc::new("Every org, with its plan, status, sites and last 30 days' messages")
                .ok::<portal_views::ClientsView>(200),
        )
        .post("/portal/clients", Staff, portal::create_client)
        .doc(
            Doc::new("Make an org (a client), mapped to its Clerk organisation")
                .body::<NewOrg>()
                .ok::<portal_views::OrgView>(201)
                .errors(&["conflict"]),
        )
        // Site chat: a site's visitors talk to the org's model, paid from the org's tokens.
        .post("/chat", SiteKeyOrLegacy, chat::chat)
        .doc(
            Doc::new(
                "A visitor's message to the site's assistant, answered with the session that \
                 continues it; logged, and paid from the org's monthly tokens",
            )
            .body::<chat_rules::ChatBody>()
            .ok::<chat::ChatAnswerView>(200)
            .or_media(
                "text/event-stream",
                "With `stream: true`: `delta` events, then one `done` with the session, \
                 latency and usage",
            )
            .errors(&[
                "quota_exceeded",
                "rate_limited",
                "not_found",
                "upstream_error",
                "not_configured",
            ]),
        )
        .post("/voice", SiteKeyOrLegacy, voice::speak)
        .doc(
            Doc::new(
                "Speech for a site's text (ElevenLabs) in one of the org's voices, its \
                 characters paid exactly from the org's monthly voice characters",
            )
            .body::<voice_rules::VoiceBody>()
            .media(200, "audio/mpeg", "The speech, streamed through")
            .errors(&[
                "quota_exceeded",
                "rate_limited",
                "upstream_error",
                "not_configured",
            ]),
        )
        // The metered model proxy, in OpenAI's shapes (its client libraries call it).
        .post("/v1/chat/completions", Scoped(Usage), proxy::completions)
        .doc(
            Doc::new(
                "A chat completion (OpenAI's shape), paid from the caller's monthly tokens: \
                 the model is asked for no more reply than the quota affords",
            )
            .body::<proxy::ChatCompletionRequest>()
            .ok::<proxy::ChatCompletionView>(200)
            .or_media(
                "text/event-stream",
                "With `stream: true`: `chat.completion.chunk` events, then `data: [DONE]`",
            )
            .errors(&["quota_exceeded", "upstream_error", "not_configured"]),
        )
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        .get("/v1/models", Scoped(Usage), proxy::models)
        .doc(
            Doc::new("The models callers may name (OpenAI's list shape)")
                .ok::<proxy::ModelListView>(200),
        )
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        // Sites: Koby's chat widgets and voice endpoints, called with their site key.
        .get("/api/site", SiteKey, sites::face)
        .doc(
            Doc::new(
                "The calling site's public face for its widget: id, name, type and its org's \
                 name and slug",
            )
            .ok::<site_views::SiteFaceView>(200),
        )
        // Provider keys: OpenRouter keys bought with credits (Puku), the key pool (Sokuji).
        .post("/api/key", Scoped(Keys), provider_keys::openrouter_key)
        .doc(
            Doc::new("The caller's OpenRouter key and credits (created, reset or rotated)")
                .ok::<key_views::OpenRouterKeySecretView>(200)
                .errors(&["conflict", "upstream_error"]),
        )
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        // Hands out (and so may assign) a pool key.
        .get_creating(
            "/api/user/provider-keys",
            Scoped(Keys),
            provider_keys::user_pool_key,
        )
        .doc(
            Doc::new("The pool key for the caller's plan and a provider")
                .query::<key_views::ProviderQuery>()
                .ok::<key_views::PoolKeySecretView>(200),
        )
        .guard(accounts::verified_email, accounts::NOT_VERIFIED)
        // Admin (admin role only).
        .get(
            "/api/admin/provider-keys",
            Scoped(Admin),
            provider_keys::list_pool_keys,
        )
        .doc(
            Doc::new("The provider key pool, masked, oldest first")
                .query::<key_views::PoolKeysQuery>()
                .ok::<key_views::PoolKeyPageView>(200),
        )
        .post(
            "/api/admin/provider-keys",
            Scoped(Admin),
            provider_keys::add_pool_key,
        )
        .doc(
            Doc::new("Load a provider key into the pool")
                .body::<provider_keys::NewPoolKeyBody>()
                .ok::<key_views::ProviderKeyView>(201)
                .errors(&["conflict"]),
        )
        .delete(
            "/api/admin/provider-keys/:id",
            Scoped(Admin),
            provider_keys::retire_pool_key,
        )
        .doc(
            Doc::new("Retire a pool key (idempotent)")
                .ok::<key_views::ProviderKeyView>(200)
                .errors(&["not_found"]),
        )
        .get("/api/admin/users", Scoped(Admin), admin::list_users)
        .doc(
            Doc::new("Every user with their plan, credits and key state, oldest first")
                .query::<billing_views::PageQuery>()
                .ok::<key_views::AdminUserPageView>(200),
        )
        .post(
            "/api/admin/users/:id/credits",
            Scoped(Admin),
            admin::adjust_credits,
        )
        .doc(
            Doc::new("Add or take a user's credits, with a reason")
                .body::<admin::CreditsBody>()
                .ok::<key_views::CreditAdjustmentView>(200)
                .response_header(REPLAYED, REPLAYED_DOC)
                .errors(&["not_found", "conflict"]),
        )
        .post(
            "/api/admin/users/:id/rotate-key",
            Scoped(Admin),
            admin::rotate_user_key,
        )
        .doc(
            Doc::new("Replace a user's OpenRouter key, deducting its spend")
                .ok::<key_views::RotatedUserKeyView>(200)
                .errors(&["not_found", "conflict", "upstream_error"]),
        )
        .get("/api/admin/audit-log", Scoped(Admin), audit::list)
        .doc(
            Doc::new("The audit log: every state-changing action, newest first")
                .query::<audit::AuditLogQuery>()
                .ok::<audit::AuditLogPageView>(200),
        )
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
