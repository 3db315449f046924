//! Stripe billing through the real worker against the fake Stripe: Checkout, the signed
//! webhook pipeline (verified, stored, idempotent, never rolled back by late events,
//! retried after failures), plan and quota changes, cancel/update/portal parameters, and a
//! deployment without Stripe's secrets.
//!
//! Webhook deliveries are signed here exactly as Stripe signs them (HMAC-SHA256 of
//! `t.body` with the endpoint secret), independently of the worker's verifier.

use serde_json::{json, Value};

use super::api_keys::clerk_user_on_plan;
use super::provider_keys::run_sweep;
use super::Case;
use crate::fakes::{stripe_signature, Fault, STRIPE_OTHER_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET};
use crate::harness::identity::{clerk_user_event, now, unique, ADMIN_CLERK_ID};
use crate::harness::plans::{BASIC_PRICE, PREMIUM_PRICE};
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World, BILLING_RETURN_URL};

pub fn cases() -> Vec<Case> {
    crate::cases!(billing:
        a_paid_checkout_moves_the_user_to_the_plan_exactly_once,
        unsigned_wrongly_signed_or_old_events_are_rejected_and_not_stored,
        a_late_update_never_brings_a_canceled_subscription_back,
        a_failed_event_is_retried_after_recovery_and_applied_once,
        cancel_update_and_portal_reach_stripe_with_the_right_parameters,
        invoices_mark_a_failed_payment_and_its_recovery,
        webhook_administration_is_for_admins,
        a_clerk_update_never_overrides_the_plan_a_subscription_decides,
        a_subscription_on_a_price_outside_the_catalog_still_changes_the_plan_by_status,
        a_catalog_price_on_any_subscription_item_decides_the_plan,
        two_users_sending_the_same_idempotency_key_each_get_their_own_checkout,
        a_replayed_stripe_answer_is_never_stored_as_current_state,
        upgrade_with_an_empty_body_checks_out_the_next_plan_up,
        a_delivery_signed_with_any_listed_endpoint_secret_is_accepted,
        two_subscription_events_in_one_second_leave_the_newest_state,
        without_stripe_s_answer_a_subscription_event_applies_its_own_object,
        a_failed_checkout_stores_no_customer_and_its_retry_keeps_one,
    )
}

/// Cases that start a worker of their own.
pub fn serial_cases() -> Vec<Case> {
    crate::cases!(billing:
        a_clerk_outage_fails_the_event_until_clerk_is_back,
        a_deployment_without_stripe_secrets_answers_not_configured,
        upgrade_without_billing_answers_instructions,
    )
}

/// A Clerk user on the free plan: (Clerk id, token, Tollgate id).
fn customer(world: &World) -> (String, String, String) {
    let (sub, token) = clerk_user_on_plan(world, "free");
    let profile = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    (sub, token, profile["id"].as_str().unwrap().to_owned())
}

/// Delivers an event to the webhook, signed at `signed_at` with `secret`.
fn deliver_signed(world: &World, event: &Value, secret: &str, signed_at: i64) -> Reply {
    let body = event.to_string();
    let signature = stripe_signature(body.as_bytes(), secret, signed_at);
    world
        .call("POST", "/api/webhooks/stripe")
        .header("Stripe-Signature", &signature)
        .body("application/json", body.as_bytes())
}

/// Delivers an event as Stripe would now; the answer must be 200. Returns `event` of it.
fn deliver(world: &World, event: &Value) -> Value {
    let reply = deliver_signed(world, event, STRIPE_WEBHOOK_SECRET, now());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["event"].clone()
}

/// Starts a checkout for `plan`; returns the session id.
fn checkout(world: &World, token: &str, plan: &str) -> String {
    let reply = world
        .authed("POST", "/api/subscriptions/checkout", token)
        .json(&json!({ "plan": plan }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert!(body["url"]
        .as_str()
        .unwrap()
        .starts_with("https://checkout.stripe.com/"));
    body["session_id"].as_str().unwrap().to_owned()
}

/// A user subscribed to `plan` through a paid checkout: (Clerk id, token, user id, sub id).
fn subscriber(world: &World, plan: &str) -> (String, String, String, String) {
    let (clerk_id, token, user_id) = customer(world);
    let session = checkout(world, &token, plan);
    let completed = world.fakes.stripe.complete_checkout(&session);
    assert_eq!(deliver(world, &completed)["status"], "processed");
    let subscription = world.fakes.stripe.session(&session).unwrap()["subscription"]
        .as_str()
        .unwrap()
        .to_owned();
    (clerk_id, token, user_id, subscription)
}

fn plan_of(world: &World, token: &str) -> String {
    let profile = world
        .authed("GET", "/api/user/profile", token)
        .send()
        .json();
    profile["plan"].as_str().unwrap().to_owned()
}

fn quota_limit(world: &World, token: &str) -> Value {
    let quota = world.authed("GET", "/api/usage/quota", token).send();
    assert_eq!(quota.status, 200, "{}", quota.body);
    quota.json()["tokens"]["limit"].clone()
}

fn history_count(world: &World, user_id: &str) -> usize {
    world.count(&Rows::new().where_eq("subscription_history", "user_id", user_id))
}

fn a_paid_checkout_moves_the_user_to_the_plan_exactly_once(world: &World) {
    let (clerk_id, token, user_id) = customer(world);
    assert_eq!(quota_limit(world, &token), 1_000_000);
    let session_id = checkout(world, &token, "basic");

    // What the worker asked Stripe for: a customer for this user, then the session.
    let stripe = &world.fakes.stripe;
    let session = stripe.session(&session_id).unwrap();
    assert_eq!(session["client_reference_id"], user_id.as_str());
    assert_eq!(session["mode"], "subscription");
    let customer = stripe
        .customer(session["customer"].as_str().unwrap())
        .unwrap();
    assert_eq!(customer["metadata"]["user_id"], user_id.as_str());
    let sent = stripe
        .form("POST", "/v1/checkout/sessions")
        .into_iter()
        .find(|f| {
            f.iter()
                .any(|(k, v)| k == "client_reference_id" && *v == user_id)
        })
        .expect("the session's parameters");
    let param = |name: &str| {
        sent.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(param("line_items[0][price]"), BASIC_PRICE);
    assert_eq!(param("line_items[0][quantity]"), "1");
    assert_eq!(
        param("success_url"),
        format!("{BILLING_RETURN_URL}/success")
    );
    assert_eq!(param("subscription_data[metadata][user_id]"), user_id);
    for path in ["/v1/customers", "/v1/checkout/sessions"] {
        let keys = stripe.idempotency_keys(path);
        assert!(
            !keys.is_empty() && keys.iter().all(Option::is_some),
            "{path}: {keys:?}"
        );
    }

    // Paying does nothing by itself; the signed event moves the user.
    assert_eq!(plan_of(world, &token), "free");
    let completed = stripe.complete_checkout(&session_id);
    let receipt = deliver(world, &completed);
    assert_eq!(receipt["status"], "processed", "{receipt}");
    assert_eq!(plan_of(world, &token), "basic");
    assert_eq!(quota_limit(world, &token), 10_000_000);
    let current = world
        .authed("GET", "/api/subscriptions/current", &token)
        .send()
        .json();
    assert_eq!(current["plan"]["id"], "basic");
    assert_eq!(current["subscription"]["status"], "active");
    assert_eq!(history_count(world, &user_id), 1);
    assert_eq!(
        world.fakes.clerk.public_metadata(&clerk_id).unwrap()["plan"],
        "basic",
        "the plan is written to Clerk"
    );

    // The same event again: acknowledged, nothing changes.
    let again = deliver(world, &completed);
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(history_count(world, &user_id), 1);
    let event_id = completed["id"].as_str().unwrap();
    let stored = world.d1_query(&format!(
        "SELECT status, attempts FROM webhook_events WHERE event_id = '{event_id}'"
    ));
    assert_eq!(stored[0]["status"], "processed");
    assert_eq!(stored[0]["attempts"], 1);
    // The same path dream-api's clients use answers the same.
    let body = completed.to_string();
    let reply = world
        .call("POST", "/webhook/stripe")
        .header(
            "Stripe-Signature",
            &stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now()),
        )
        .body("application/json", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["event"]["duplicate"], true);
    let history = world
        .authed("GET", "/api/subscriptions/history", &token)
        .send()
        .json();
    assert_eq!(history["data"][0]["to_plan"], "basic");
    assert_eq!(history["data"][0]["from_plan"], "free");
}

fn unsigned_wrongly_signed_or_old_events_are_rejected_and_not_stored(world: &World) {
    let (_, token, user_id) = customer(world);
    let session_id = checkout(world, &token, "basic");
    let completed = world.fakes.stripe.complete_checkout(&session_id);
    let body = completed.to_string();
    let event_id = completed["id"].as_str().unwrap();
    let before = world.snapshot(
        &Rows::new()
            .where_eq("webhook_events", "event_id", event_id)
            .where_eq("users", "id", &user_id)
            .where_eq("billing_customers", "user_id", &user_id)
            .where_eq("subscriptions", "user_id", &user_id)
            .where_eq("subscription_history", "user_id", &user_id),
    );
    let unsigned = world
        .call("POST", "/api/webhooks/stripe")
        .body("application/json", body.as_bytes());
    unsigned.assert_error(401, "unauthorized");
    deliver_signed(world, &completed, "whsec_someone_else", now())
        .assert_error(401, "unauthorized");
    deliver_signed(world, &completed, STRIPE_WEBHOOK_SECRET, now() - 360)
        .assert_error(401, "unauthorized");
    let tampered = body.replace("\"paid\"", "\"PAID\"");
    let signature = stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now());
    world
        .call("POST", "/api/webhooks/stripe")
        .header("Stripe-Signature", &signature)
        .body("application/json", tampered.as_bytes())
        .assert_error(401, "unauthorized");
    // Rejected deliveries are not stored, and nothing of the user's billing changed.
    before.assert_unchanged(world);
    assert_eq!(
        world.count(&Rows::new().where_eq("webhook_events", "event_id", event_id)),
        0,
        "no delivery of it was stored"
    );
    // A signed body that is not an event is refused and not stored either.
    let junk = json!({ "hello": "world" });
    let reply = deliver_signed(world, &junk, STRIPE_WEBHOOK_SECRET, now());
    reply.assert_error(400, "validation_failed");
    before.assert_unchanged(world);
    assert_eq!(plan_of(world, &token), "free");
}

fn a_late_update_never_brings_a_canceled_subscription_back(world: &World) {
    let (_, token, _, subscription_id) = subscriber(world, "basic");
    assert_eq!(plan_of(world, &token), "basic");
    let stripe = &world.fakes.stripe;
    let live = stripe.subscription(&subscription_id).unwrap();
    let mut canceled = live.clone();
    canceled["status"] = json!("canceled");
    stripe.set_subscription_status(&subscription_id, "canceled");
    let deleted = stripe.event_at("customer.subscription.deleted", canceled, now() + 1);
    assert_eq!(deliver(world, &deleted)["status"], "processed");
    assert_eq!(plan_of(world, &token), "free");

    // An update Stripe sent earlier, arriving late: ignored.
    let stale = stripe.event_at("customer.subscription.updated", live.clone(), now() - 60);
    assert_eq!(deliver(world, &stale)["status"], "ignored");
    // Even one stamped later cannot revive a canceled subscription.
    let revived = stripe.event_at("customer.subscription.updated", live, now() + 5);
    assert_eq!(deliver(world, &revived)["status"], "ignored");
    let row = world.d1_query(&format!(
        "SELECT status, plan FROM subscriptions WHERE id = '{subscription_id}'"
    ));
    assert_eq!(row[0]["status"], "canceled");
    assert_eq!(plan_of(world, &token), "free");
    assert_eq!(quota_limit(world, &token), 1_000_000);
}

fn a_failed_event_is_retried_after_recovery_and_applied_once(world: &World) {
    let stripe = &world.fakes.stripe;
    let admin = world.clerk_token(ADMIN_CLERK_ID);
    // Stripe is down when the event comes: stored, failed, answered 200.
    for retry_by_cron in [true, false] {
        let (_, token, user_id) = customer(world);
        let session_id = checkout(world, &token, "premium");
        let completed = stripe.complete_checkout(&session_id);
        let subscription = completed["data"]["object"]["subscription"]
            .as_str()
            .unwrap()
            .to_owned();
        stripe.fail_next("GET", &subscription, Fault::Status(500));
        let receipt = deliver(world, &completed);
        assert_eq!(receipt["status"], "failed", "{receipt}");
        let event_id = completed["id"].as_str().unwrap();
        let stored = world.d1_query(&format!(
            "SELECT status, attempts, error FROM webhook_events WHERE event_id = '{event_id}'"
        ));
        assert_eq!(stored[0]["status"], "failed");
        assert!(stored[0]["error"].as_str().unwrap().contains("500"));
        assert_eq!(plan_of(world, &token), "free", "nothing applied");

        // Stripe is back: the retry applies it, once.
        if retry_by_cron {
            run_sweep(world);
        } else {
            let reply = world.authed("POST", "/api/webhooks/retry", &admin).send();
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        let stored = world.d1_query(&format!(
            "SELECT status, attempts FROM webhook_events WHERE event_id = '{event_id}'"
        ));
        assert_eq!(stored[0]["status"], "processed", "{stored:?}");
        assert_eq!(stored[0]["attempts"], 2);
        assert_eq!(plan_of(world, &token), "premium");
        assert_eq!(quota_limit(world, &token), 50_000_000);
        // Stripe delivering it again changes nothing.
        assert_eq!(deliver(world, &completed)["duplicate"], true);
        assert_eq!(history_count(world, &user_id), 1);
    }
}

/// The form parameters of the last request with this method and path.
fn last_form(world: &World, method: &str, path: &str) -> Vec<(String, String)> {
    world
        .fakes
        .stripe
        .form(method, path)
        .pop()
        .unwrap_or_else(|| panic!("no {method} {path} reached Stripe"))
}

fn has(form: &[(String, String)], key: &str, value: &str) -> bool {
    form.iter().any(|(k, v)| k == key && v == value)
}

fn cancel_update_and_portal_reach_stripe_with_the_right_parameters(world: &World) {
    let (_, token, user_id, subscription_id) = subscriber(world, "basic");
    let path = format!("/v1/subscriptions/{subscription_id}");
    let stripe = &world.fakes.stripe;
    let item = stripe.subscription(&subscription_id).unwrap()["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Bad requests reach nobody. (Other cases share the fake: count what names this user.)
    let owner = stripe.subscription(&subscription_id).unwrap()["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    let touching = || {
        stripe
            .upstream()
            .received()
            .iter()
            .filter(|r| {
                let body = String::from_utf8_lossy(&r.body);
                r.path.contains(&subscription_id)
                    || body.contains(&owner)
                    || body.contains(&user_id)
            })
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.method,
                    r.path,
                    String::from_utf8_lossy(&r.body)
                )
            })
            .collect::<Vec<_>>()
    };
    let before = touching();
    for (method, route, body, status, code) in [
        (
            "PUT",
            "/api/subscriptions/update",
            json!({ "plan": "gold" }),
            400,
            "validation_failed",
        ),
        (
            "PUT",
            "/api/subscriptions/update",
            json!({ "plan": "enterprise" }),
            400,
            "validation_failed",
        ),
        (
            "PUT",
            "/api/subscriptions/update",
            json!({ "plan": "basic" }),
            409,
            "conflict",
        ),
        (
            "PUT",
            "/api/subscriptions/update",
            json!({ "plan": 7 }),
            400,
            "validation_failed",
        ),
        (
            "POST",
            "/api/subscriptions/checkout",
            json!({ "plan": "premium" }),
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/subscriptions/checkout",
            json!({ "plan": "premium", "success_url": "https://evil.example/x" }),
            400,
            "validation_failed",
        ),
        (
            "POST",
            "/api/subscriptions/portal",
            json!({ "return_url": "https://evil.example/x" }),
            400,
            "validation_failed",
        ),
        (
            "POST",
            "/api/subscriptions/cancel",
            json!({ "at_period_end": "no" }),
            400,
            "validation_failed",
        ),
    ] {
        world
            .authed(method, route, &token)
            .json(&body)
            .assert_error(status, code);
    }
    assert_eq!(touching(), before, "nothing reached Stripe");

    // A plan change: the item's price, prorated; the plan changes at once.
    let reply = world
        .authed("PUT", "/api/subscriptions/update", &token)
        .json(&json!({ "plan": "premium" }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let form = last_form(world, "POST", &path);
    assert!(has(&form, "items[0][id]", &item), "{form:?}");
    assert!(has(&form, "items[0][price]", PREMIUM_PRICE), "{form:?}");
    assert!(has(&form, "proration_behavior", "create_prorations"));
    assert_eq!(plan_of(world, &token), "premium");
    assert_eq!(quota_limit(world, &token), 50_000_000);

    // The portal, for this customer, back to the configured page.
    let reply = world
        .authed("POST", "/api/subscriptions/portal", &token)
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["url"]
        .as_str()
        .unwrap()
        .starts_with("https://billing.stripe.com/"));
    let form = last_form(world, "POST", "/v1/billing_portal/sessions");
    assert!(has(&form, "customer", &owner));
    assert!(has(&form, "return_url", BILLING_RETURN_URL));

    // Cancel at the period's end: the plan stays until then.
    let reply = world
        .authed("POST", "/api/subscriptions/cancel", &token)
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["subscription"]["cancel_at_period_end"], true);
    assert!(has(
        &last_form(world, "POST", &path),
        "cancel_at_period_end",
        "true"
    ));
    assert_eq!(plan_of(world, &token), "premium");

    // Cancel now: the subscription ends and the user is back on the default plan.
    let reply = world
        .authed("POST", "/api/subscriptions/cancel", &token)
        .json(&json!({ "at_period_end": false }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["subscription"]["status"], "canceled");
    assert_eq!(
        stripe.subscription(&subscription_id).unwrap()["status"],
        "canceled"
    );
    assert_eq!(plan_of(world, &token), "free");
    world
        .authed("POST", "/api/subscriptions/cancel", &token)
        .send()
        .assert_error(404, "not_found");

    let history = world
        .authed("GET", "/api/subscriptions/history?limit=2", &token)
        .send()
        .json();
    assert_eq!(history["data"].as_array().unwrap().len(), 2);
    assert_eq!(history["data"][0]["kind"], "cancel");
    assert!(history["next_cursor"].is_string());
    assert_eq!(history_count(world, &user_id), 4);

    // A user who never paid has no portal.
    let (_, stranger, _) = customer(world);
    world
        .authed("POST", "/api/subscriptions/portal", &stranger)
        .send()
        .assert_error(409, "conflict");
}

fn invoices_mark_a_failed_payment_and_its_recovery(world: &World) {
    let (_, token, _, subscription_id) = subscriber(world, "basic");
    let stripe = &world.fakes.stripe;
    let failed = stripe.event_at(
        "invoice.payment_failed",
        stripe.invoice(&subscription_id, false),
        now() + 1,
    );
    assert_eq!(deliver(world, &failed)["status"], "processed");
    let status = |world: &World| {
        world.d1_query(&format!(
            "SELECT status FROM subscriptions WHERE id = '{subscription_id}'"
        ))[0]["status"]
            .clone()
    };
    assert_eq!(status(world), "past_due");
    assert_eq!(plan_of(world, &token), "basic", "kept while Stripe retries");
    let paid = stripe.event_at(
        "invoice.payment_succeeded",
        stripe.invoice(&subscription_id, true),
        now() + 2,
    );
    assert_eq!(deliver(world, &paid)["status"], "processed");
    assert_eq!(status(world), "active");
    // An event type Tollgate does not handle is stored and ignored.
    let other = stripe.event(
        "customer.created",
        json!({ "id": unique("cus_"), "object": "customer" }),
    );
    assert_eq!(deliver(world, &other)["status"], "ignored");
}

fn webhook_administration_is_for_admins(world: &World) {
    let (_, token, _) = customer(world);
    for (method, path) in [
        ("POST", "/api/webhooks/retry"),
        ("GET", "/api/webhooks/status"),
    ] {
        world
            .authed(method, path, &token)
            .send()
            .assert_error(403, "forbidden");
    }
    let admin = world.clerk_token(ADMIN_CLERK_ID);
    let reply = world.authed("GET", "/api/webhooks/status", &admin).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let status = reply.json();
    assert!(status["counts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["provider"] == "stripe" || c["provider"] == "clerk"));
    assert!(status["latest_failures"].is_array());
}

/// Serial: the fault is injected into the shared fake Clerk's next request, which in the
/// serial phase is the worker's metadata update.
fn a_clerk_outage_fails_the_event_until_clerk_is_back(world: &World) {
    let (clerk_id, token, user_id) = customer(world);
    let session = checkout(world, &token, "basic");
    let completed = world.fakes.stripe.complete_checkout(&session);
    world.fakes.clerk.upstream().inject(&[Fault::Status(503)]);
    let receipt = deliver(world, &completed);
    assert_eq!(receipt["status"], "failed", "{receipt}");
    let synced = |world: &World| {
        world
            .fakes
            .clerk
            .public_metadata(&clerk_id)
            .and_then(|m| m.get("plan").cloned())
    };
    assert_eq!(synced(world), None, "Clerk never got the plan");

    let admin = world.clerk_token(ADMIN_CLERK_ID);
    let reply = world.authed("POST", "/api/webhooks/retry", &admin).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let event_id = completed["id"].as_str().unwrap();
    let stored = world.d1_query(&format!(
        "SELECT status, attempts FROM webhook_events WHERE event_id = '{event_id}'"
    ));
    assert_eq!(stored[0]["status"], "processed", "{stored:?}");
    assert_eq!(synced(world), Some(json!("basic")));
    assert_eq!(plan_of(world, &token), "basic");
    assert_eq!(history_count(world, &user_id), 1, "applied once");
}

fn a_deployment_without_stripe_secrets_answers_not_configured(_world: &World) {
    let bare = World::start_without(&[
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "PROVISIONING_API_KEY",
        "KEY_ENCRYPTION_KEY",
    ])
    .expect("a second worker starts");
    let token = bare.hmac_token(&unique("bare_"));
    // A world of its own: whole tables can be snapshotted.
    let stored = Rows::new()
        .all("webhook_events")
        .all("billing_customers")
        .all("subscriptions")
        .all("subscription_history")
        .all("credit_accounts")
        .all("credit_ledger")
        .all("provider_key_assignments");
    assert_eq!(bare.count(&stored), 0, "a fresh world stores nothing");
    let before = bare.snapshot(&stored);
    let expect = |reply: Reply, setting: &str| {
        let error = reply.assert_error(503, "not_configured");
        assert!(
            error["message"].as_str().unwrap().contains(setting),
            "{error}"
        );
    };
    let call =
        |method: &str, path: &str, body: Value| bare.authed(method, path, &token).json(&body);
    expect(
        call(
            "POST",
            "/api/subscriptions/checkout",
            json!({ "plan": "basic" }),
        ),
        "STRIPE_SECRET_KEY",
    );
    expect(
        call(
            "PUT",
            "/api/subscriptions/update",
            json!({ "plan": "basic" }),
        ),
        "STRIPE_SECRET_KEY",
    );
    expect(
        call("POST", "/api/subscriptions/cancel", json!({})),
        "STRIPE_SECRET_KEY",
    );
    expect(
        call("POST", "/api/subscriptions/portal", json!({})),
        "STRIPE_SECRET_KEY",
    );
    let event = bare
        .fakes
        .stripe
        .event("customer.created", json!({ "id": "cus_x" }));
    expect(
        deliver_signed(&bare, &event, STRIPE_WEBHOOK_SECRET, now()),
        "STRIPE_WEBHOOK_SECRET",
    );
    expect(call("POST", "/api/key", json!({})), "PROVISIONING_API_KEY");
    expect(
        bare.authed("GET", "/api/user/provider-keys?provider=openai", &token)
            .send(),
        "KEY_ENCRYPTION_KEY",
    );
    assert!(
        bare.fakes.stripe.upstream().received().is_empty(),
        "Stripe was never called"
    );
    assert!(bare.fakes.openrouter.upstream().received().is_empty());
    // Nothing stored.
    before.assert_unchanged(&bare);
}

/// A Stripe price the catalog does not list (a repriced or grandfathered subscription).
const OFF_CATALOG_PRICE: &str = "price_e2e_grandfathered";

fn clerk_plan(world: &World, clerk_id: &str) -> Option<Value> {
    world
        .fakes
        .clerk
        .public_metadata(clerk_id)
        .and_then(|m| m.get("plan").cloned())
}

fn stored_plan(world: &World, user_id: &str) -> Value {
    world.d1_query(&format!("SELECT plan FROM users WHERE id = '{user_id}'"))[0]["plan"].clone()
}

fn a_clerk_update_never_overrides_the_plan_a_subscription_decides(world: &World) {
    let (clerk_id, token, user_id, subscription_id) = subscriber(world, "premium");
    assert_eq!(plan_of(world, &token), "premium");
    let stripe = &world.fakes.stripe;
    let mut canceled = stripe.subscription(&subscription_id).unwrap();
    canceled["status"] = json!("canceled");
    stripe.set_subscription_status(&subscription_id, "canceled");
    let deleted = stripe.event_at("customer.subscription.deleted", canceled.clone(), now() + 1);
    assert_eq!(deliver(world, &deleted)["status"], "processed");
    assert_eq!(plan_of(world, &token), "free");
    assert_eq!(clerk_plan(world, &clerk_id), Some(json!("free")));

    // Clerk tells of a change to the user whose metadata still says premium.
    let update = clerk_user_event(
        "user.updated",
        &clerk_id,
        now() * 1000,
        json!({ "plan": "premium" }),
    );
    let reply = world.clerk_webhook(&unique("msg_"), &update);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(plan_of(world, &token), "free", "the subscription decides");
    assert_eq!(stored_plan(world, &user_id), "free");
    assert_eq!(quota_limit(world, &token), 1_000_000);

    // Another delivery about the subscription re-derives the plan and pushes that to Clerk.
    let again = stripe.event_at("customer.subscription.updated", canceled, now() + 2);
    deliver(world, &again);
    assert_eq!(plan_of(world, &token), "free");
    assert_eq!(clerk_plan(world, &clerk_id), Some(json!("free")));
}

fn a_subscription_on_a_price_outside_the_catalog_still_changes_the_plan_by_status(world: &World) {
    let stripe = &world.fakes.stripe;
    for (kind, status, plan) in [
        ("customer.subscription.deleted", "canceled", "free"),
        ("customer.subscription.updated", "canceled", "free"),
        ("customer.subscription.updated", "unpaid", "free"),
        ("customer.subscription.updated", "past_due", "basic"),
    ] {
        let (_, token, _, subscription_id) = subscriber(world, "basic");
        let mut object = stripe.subscription(&subscription_id).unwrap();
        object["items"]["data"][0]["price"]["id"] = json!(OFF_CATALOG_PRICE);
        object["status"] = json!(status);
        let event = stripe.event_at(kind, object, now() + 1);
        // The fake cannot hold an off-catalog price: Stripe "does not know" the subscription,
        // so the event's own object is what applies.
        stripe.fail_next("GET", &subscription_id, Fault::Status(404));
        let receipt = deliver(world, &event);
        assert_eq!(receipt["status"], "processed", "{kind} {status}: {receipt}");
        let row = world.d1_query(&format!(
            "SELECT status, plan FROM subscriptions WHERE id = '{subscription_id}'"
        ));
        assert_eq!(row[0]["status"], status, "{kind} {status}");
        assert_eq!(plan_of(world, &token), plan, "{kind} {status}");
    }
}

fn a_catalog_price_on_any_subscription_item_decides_the_plan(world: &World) {
    let (_, token, _, subscription_id) = subscriber(world, "basic");
    let stripe = &world.fakes.stripe;
    let mut object = stripe.subscription(&subscription_id).unwrap();
    let item = object["items"]["data"][0].clone();
    let mut add_on = item.clone();
    add_on["id"] = json!(unique("si_"));
    add_on["price"]["id"] = json!(OFF_CATALOG_PRICE);
    let mut premium = item;
    premium["price"]["id"] = json!(PREMIUM_PRICE);
    let premium_item = premium["id"].clone();
    object["items"]["data"] = json!([add_on, premium]);
    let event = stripe.event_at("customer.subscription.updated", object, now() + 1);
    // The fake cannot hold these items: the event's own object applies (Stripe answers 404).
    stripe.fail_next("GET", &subscription_id, Fault::Status(404));
    assert_eq!(deliver(world, &event)["status"], "processed");
    assert_eq!(plan_of(world, &token), "premium");
    let row = world.d1_query(&format!(
        "SELECT price_id, item_id, plan FROM subscriptions WHERE id = '{subscription_id}'"
    ));
    assert_eq!(row[0]["price_id"], PREMIUM_PRICE);
    assert_eq!(
        row[0]["item_id"], premium_item,
        "the item holding the price"
    );
}

fn two_users_sending_the_same_idempotency_key_each_get_their_own_checkout(world: &World) {
    let key = unique("client-key-");
    let start = |token: &str| {
        let reply = world
            .authed("POST", "/api/subscriptions/checkout", token)
            .header("Idempotency-Key", &key)
            .json(&json!({ "plan": "basic" }));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["session_id"].as_str().unwrap().to_owned()
    };
    let (_, token_a, user_a) = customer(world);
    let (_, token_b, user_b) = customer(world);
    let session_a = start(&token_a);
    let session_b = start(&token_b);
    assert_ne!(session_a, session_b);
    let stripe = &world.fakes.stripe;
    assert_eq!(
        stripe.session(&session_a).unwrap()["client_reference_id"],
        user_a.as_str()
    );
    assert_eq!(
        stripe.session(&session_b).unwrap()["client_reference_id"],
        user_b.as_str()
    );
    let sent: Vec<String> = stripe
        .idempotency_keys("/v1/checkout/sessions")
        .into_iter()
        .flatten()
        .filter(|k| k.contains(&key))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_ne!(sent[0], sent[1], "{sent:?}");
    assert!(sent[0].contains(&user_a), "{sent:?}");
    assert!(sent[1].contains(&user_b), "{sent:?}");
    // The same user retrying with the key gets the same session back.
    assert_eq!(start(&token_a), session_a);
}

fn a_replayed_stripe_answer_is_never_stored_as_current_state(world: &World) {
    let (_, token, _, subscription_id) = subscriber(world, "basic");
    let change = |plan: &str, request_id: &str| {
        world
            .authed("PUT", "/api/subscriptions/update", &token)
            .header("X-Request-Id", request_id)
            .json(&json!({ "plan": plan }))
    };
    let first = unique("req-upgrade-");
    let reply = change("premium", &first);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = change("basic", &unique("req-downgrade-"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(plan_of(world, &token), "basic");

    // The first request again: Stripe answers with what it saved then (premium), and changes
    // nothing; Tollgate must not store that answer as the subscription's state.
    let reply = change("premium", &first);
    let stripe = &world.fakes.stripe;
    let price =
        stripe.subscription(&subscription_id).unwrap()["items"]["data"][0]["price"]["id"].clone();
    assert_eq!(price, BASIC_PRICE, "Stripe did not run the request again");
    reply.assert_error(409, "conflict");
    assert_eq!(plan_of(world, &token), "basic");
    let row = world.d1_query(&format!(
        "SELECT plan, price_id FROM subscriptions WHERE id = '{subscription_id}'"
    ));
    assert_eq!(row[0]["plan"], "basic");
    assert_eq!(row[0]["price_id"], BASIC_PRICE);
}

fn upgrade_with_an_empty_body_checks_out_the_next_plan_up(world: &World) {
    let stripe = &world.fakes.stripe;
    // The price of the newest session Stripe was asked for on behalf of this user.
    let price_asked_for = |user_id: &str| {
        let form = stripe
            .form("POST", "/v1/checkout/sessions")
            .into_iter()
            .rev()
            .find(|f| has(f, "client_reference_id", user_id))
            .expect("a checkout for the user");
        form.into_iter()
            .find(|(k, _)| k == "line_items[0][price]")
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    for (plan, next, price) in [
        ("free", "basic", BASIC_PRICE),
        ("basic", "premium", PREMIUM_PRICE),
    ] {
        let (_, token) = clerk_user_on_plan(world, plan);
        let user_id = world
            .authed("GET", "/api/user/profile", &token)
            .send()
            .json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for body in [None, Some(json!({}))] {
            let call = world.authed("POST", "/api/subscription/upgrade", &token);
            let reply = match &body {
                None => call.send(),
                Some(body) => call.json(body),
            };
            assert_eq!(reply.status, 200, "{plan} {body:?}: {}", reply.body);
            let answer = reply.json();
            assert_eq!(answer["plan"], next, "{answer}");
            assert!(answer["url"]
                .as_str()
                .unwrap()
                .starts_with("https://checkout.stripe.com/"));
            assert_eq!(price_asked_for(&user_id), price, "{plan} -> {next}");
        }
    }
    // At the top plan there is nothing to upgrade to; Stripe is not asked.
    let (_, token) = clerk_user_on_plan(world, "premium");
    let before = stripe.upstream().received().len();
    let error = world
        .authed("POST", "/api/subscription/upgrade", &token)
        .send()
        .assert_error(409, "conflict");
    assert!(
        error["message"].as_str().unwrap().contains("highest"),
        "{error}"
    );
    let error_user = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let asked = stripe.upstream().received()[before..]
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains(&error_user));
    assert!(!asked, "Stripe was not asked");
}

fn a_delivery_signed_with_any_listed_endpoint_secret_is_accepted(world: &World) {
    let (_, token, _) = customer(world);
    let session = checkout(world, &token, "basic");
    let completed = world.fakes.stripe.complete_checkout(&session);
    let reply = deliver_signed(world, &completed, STRIPE_OTHER_WEBHOOK_SECRET, now());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["event"]["status"], "processed");
    assert_eq!(plan_of(world, &token), "basic");
    // The other listed secret verifies too (a duplicate now), an unlisted one does not.
    let again = deliver_signed(world, &completed, STRIPE_WEBHOOK_SECRET, now());
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["event"]["duplicate"], true);
    let customer_id = unique("cus_");
    let other = world
        .fakes
        .stripe
        .event("customer.created", json!({ "id": customer_id }));
    let id = other["id"].as_str().unwrap();
    let untouched = Rows::new()
        .where_eq("webhook_events", "event_id", id)
        .where_eq("billing_customers", "customer_id", &customer_id);
    let before = world.snapshot(&untouched);
    deliver_signed(world, &other, "whsec_not_listed", now()).assert_error(401, "unauthorized");
    before.assert_unchanged(world);
    assert_eq!(world.count(&untouched), 0);
}

/// Serial: starts a worker without Stripe's secrets (and without `UPGRADE_URL`).
fn upgrade_without_billing_answers_instructions(_world: &World) {
    let bare = World::start_without(&["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
        .expect("a second worker starts");
    let token = bare.hmac_token(&unique("bare_"));
    for body in [None, Some(json!({ "plan": "premium" }))] {
        let call = bare.authed("POST", "/api/subscription/upgrade", &token);
        let reply = match &body {
            None => call.send(),
            Some(body) => call.json(body),
        };
        assert_eq!(reply.status, 200, "{body:?}: {}", reply.body);
        let answer = reply.json();
        let instructions = answer["instructions"].as_str().unwrap();
        assert!(!instructions.is_empty());
        assert!(answer["upgrade_url"].is_null(), "{answer}");
        let target = if body.is_some() { "premium" } else { "basic" };
        assert_eq!(answer["plan"], target, "{answer}");
        assert!(instructions.contains("contact"), "{instructions}");
    }
    // Bad input is still refused.
    bare.authed("POST", "/api/subscription/upgrade", &token)
        .json(&json!({ "plan": "gold" }))
        .assert_error(400, "validation_failed");
    assert!(bare.fakes.stripe.upstream().received().is_empty());
    let profile = bare
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    assert_eq!(profile["plan"], "free", "nothing changed");
}

/// The subscription's stored status and the user's plan.
fn stored_subscription(world: &World, subscription_id: &str) -> Value {
    world.d1_query(&format!(
        "SELECT status, plan FROM subscriptions WHERE id = '{subscription_id}'"
    ))[0]
        .clone()
}

/// Stripe stamps events with whole seconds: a subscription that went `unpaid`, then was paid
/// and went `active` again within one second gives two events with the same `created`. Stripe
/// delivers the newest first: each is applied from the subscription as Stripe has it at
/// processing, so the older one cannot leave `unpaid` behind.
fn two_subscription_events_in_one_second_leave_the_newest_state(world: &World) {
    let (_, token, _, subscription_id) = subscriber(world, "basic");
    let stripe = &world.fakes.stripe;
    let live = stripe.subscription(&subscription_id).unwrap();
    let mut unpaid = live.clone();
    unpaid["status"] = json!("unpaid");
    let second = now() + 1;
    let older = stripe.event_at("customer.subscription.updated", unpaid, second);
    let newer = stripe.event_at("customer.subscription.updated", live, second);
    let path = format!("/v1/subscriptions/{subscription_id}");
    let fetched_before = stripe.upstream().count("GET", &path);
    assert_eq!(deliver(world, &newer)["status"], "processed");
    assert_eq!(deliver(world, &older)["status"], "processed");
    let row = stored_subscription(world, &subscription_id);
    assert_eq!(row["status"], "active", "the newest state stays");
    assert_eq!(plan_of(world, &token), "basic");
    assert_eq!(
        stripe.upstream().count("GET", &path) - fetched_before,
        2,
        "each event fetched the subscription"
    );
}

/// When Stripe fails (5xx, timeout) or does not know the subscription (404), the event is not
/// lost: its own object applies under the event-time rule (a change stamped in the same
/// second as the stored one applies over it).
fn without_stripe_s_answer_a_subscription_event_applies_its_own_object(world: &World) {
    let stripe = &world.fakes.stripe;
    for fault in [Fault::Status(500), Fault::Status(404)] {
        let (_, token, _, subscription_id) = subscriber(world, "basic");
        let live = stripe.subscription(&subscription_id).unwrap();
        let mut unpaid = live.clone();
        unpaid["status"] = json!("unpaid");
        let second = now() + 1;
        let older = stripe.event_at("customer.subscription.updated", unpaid, second);
        let newer = stripe.event_at("customer.subscription.updated", live, second);
        stripe.fail_next("GET", &subscription_id, fault);
        assert_eq!(deliver(world, &newer)["status"], "processed");
        stripe.fail_next("GET", &subscription_id, fault);
        let receipt = deliver(world, &older);
        assert_eq!(receipt["status"], "processed", "{fault:?}: {receipt}");
        let row = stored_subscription(world, &subscription_id);
        assert_eq!(
            row["status"], "unpaid",
            "{fault:?}: the event's own object applied"
        );
        assert_eq!(plan_of(world, &token), "free", "{fault:?}");
        let stored = world.d1_query(&format!(
            "SELECT status FROM webhook_events WHERE event_id = '{}'",
            older["id"].as_str().unwrap()
        ));
        assert_eq!(stored[0]["status"], "processed", "{fault:?}: stored");
    }
}

/// The customer is kept only once a checkout for it exists: when Stripe fails the Checkout
/// Session, the answer is `502` and nothing is stored; the retry makes the checkout and stores
/// the customer Stripe made the first time (one customer, by its idempotency key).
fn a_failed_checkout_stores_no_customer_and_its_retry_keeps_one(world: &World) {
    let (_, token, user_id) = customer(world);
    let stripe = &world.fakes.stripe;
    let rows = Rows::new().where_eq("billing_customers", "user_id", &user_id);
    let before = world.snapshot(&rows);
    let needle = format!("client_reference_id={user_id}");
    stripe.fail_next("POST", &needle, Fault::Status(500));
    let reply = world
        .authed("POST", "/api/subscriptions/checkout", &token)
        .json(&json!({ "plan": "basic" }));
    reply.assert_error(502, "upstream_error");
    before.assert_unchanged(world);
    assert_eq!(world.count(&rows), 0, "no customer stored");
    checkout(world, &token, "basic");
    assert_eq!(
        world.count(&rows),
        1,
        "the customer is kept with its checkout"
    );
    let stored = world.d1_query(&format!(
        "SELECT customer_id FROM billing_customers WHERE user_id = '{user_id}'"
    ));
    let id = stored[0]["customer_id"].as_str().unwrap();
    assert!(stripe.customer(id).is_some(), "a customer Stripe has");
    // Other cases make customers on the shared fake at the same time: only this user's
    // creations are read. Each carried the same idempotency key, so Stripe made one.
    let keys: Vec<String> = stripe
        .upstream()
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/customers")
        .filter(|r| String::from_utf8_lossy(&r.body).contains(&user_id))
        .map(|r| r.header("Idempotency-Key").unwrap_or_default().to_owned())
        .collect();
    assert!(!keys.is_empty() && keys.len() <= 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| !k.is_empty() && *k == keys[0]),
        "the retry reuses the customer's idempotency key: {keys:?}"
    );
}
