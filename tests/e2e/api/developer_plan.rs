//! The developer's own plan through the real worker, local D1, the fake Clerk and the fake
//! Stripe: `POST /verify-auth` counts a developer's calls exactly on their plan's
//! `calls_per_month` (also under concurrency), a Checkout made outside Tollgate that names
//! the developer by their Clerk user id moves them to the plan it bought and writes
//! `{plan, subscribed, subscriptionId}` to their Clerk public metadata, `POST
//! /create-checkout` buys `PLATFORM_UPGRADE_PLAN` by default, and bad input changes nothing.

use serde_json::{json, Value};

use super::api_keys::all_at_once;
use super::platforms::register;
use super::Case;
use crate::fakes::{stripe_signature, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET};
use crate::harness::identity::{now, unique};
use crate::harness::plans::{BASIC_PRICE, PREMIUM_PRICE};
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World, BILLING_RETURN_URL};

pub fn cases() -> Vec<Case> {
    crate::cases!(developer_plan:
        verify_auth_admits_the_free_plans_five_calls_then_a_clerk_checkout_upgrades_to_basic,
        twenty_concurrent_calls_by_a_new_free_developer_admit_exactly_five,
        a_checkout_for_a_clerk_user_never_seen_makes_their_user_on_the_plan_bought,
        create_checkout_without_a_plan_buys_the_platform_upgrade_plan,
        bad_input_and_other_credentials_are_refused_and_change_nothing,
        a_usage_api_key_counts_on_its_owners_plan,
    )
}

/// Cases that start a worker of their own.
pub fn serial_cases() -> Vec<Case> {
    crate::cases!(developer_plan:
        an_unknown_platform_upgrade_plan_or_no_stripe_answers_not_configured,
    )
}

/// A developer signed in with Clerk, never seen before: (Clerk user id, token).
fn developer(world: &World) -> (String, String) {
    let clerk_id = unique("user_dev");
    let token = world.clerk_token(&clerk_id);
    (clerk_id, token)
}

/// The caller's Tollgate id (their first request makes their user).
fn user_id(world: &World, token: &str) -> String {
    let reply = world.authed("GET", "/api/user/profile", token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

fn verify(world: &World, token: &str) -> Reply {
    world.authed("POST", "/verify-auth", token).send()
}

/// The user's `calls` counter and call records as stored.
fn stored_calls(world: &World, user_id: &str) -> (i64, i64) {
    let rows = world.d1_query(&format!(
        "SELECT (SELECT COALESCE(SUM(used), 0) FROM meter_counters WHERE subject_kind = 'user' \
           AND subject_id = '{user_id}' AND meter = 'calls') AS used, \
         (SELECT COUNT(*) FROM usage_records WHERE subject_kind = 'user' \
           AND subject_id = '{user_id}' AND meter = 'calls') AS records"
    ));
    (
        rows[0]["used"].as_i64().unwrap(),
        rows[0]["records"].as_i64().unwrap(),
    )
}

/// Every row a developer's call or checkout could write.
fn developer_rows(user_id: &str) -> Rows {
    Rows::of_user(user_id, &["meter_counters", "usage_records"])
        .where_eq("users", "id", user_id)
        .where_eq("billing_customers", "user_id", user_id)
        .where_eq("subscriptions", "user_id", user_id)
        .where_eq("subscription_history", "user_id", user_id)
}

/// A subscription Checkout Session made at Stripe by an app that knows its customer only by
/// their Clerk user id (as dream-api makes it): `client_reference_id` and the metadata name
/// the Clerk user. Returns the session id.
fn clerk_named_session(world: &World, clerk_id: &str, price: &str) -> String {
    let url = format!(
        "{}/v1/checkout/sessions",
        world.fakes.stripe.upstream().base_url()
    );
    let success = format!("{BILLING_RETURN_URL}/success");
    let cancel = format!("{BILLING_RETURN_URL}/cancel");
    let reply = ureq::post(&url)
        .set("Authorization", &format!("Bearer {STRIPE_SECRET_KEY}"))
        .send_form(&[
            ("mode", "subscription"),
            ("client_reference_id", clerk_id),
            ("line_items[0][price]", price),
            ("line_items[0][quantity]", "1"),
            ("success_url", &success),
            ("cancel_url", &cancel),
            ("metadata[userId]", clerk_id),
            ("subscription_data[metadata][userId]", clerk_id),
        ])
        .expect("the fake Stripe makes the session");
    let session: Value = reply.into_json().unwrap();
    session["id"].as_str().unwrap().to_owned()
}

/// Delivers a Stripe event to the webhook, signed now; returns the receipt's `event`.
fn deliver(world: &World, event: &Value) -> Value {
    let body = event.to_string();
    let signature = stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now());
    let reply = world
        .call("POST", "/api/webhooks/stripe")
        .header("Stripe-Signature", &signature)
        .body("application/json", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["event"].clone()
}

/// The session's subscription id at the fake Stripe.
fn subscription_of(world: &World, session: &str) -> String {
    world.fakes.stripe.session(session).unwrap()["subscription"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn metadata_updates(world: &World, clerk_id: &str) -> usize {
    world
        .fakes
        .clerk
        .upstream()
        .count("PATCH", &format!("/v1/users/{clerk_id}/metadata"))
}

fn verify_auth_admits_the_free_plans_five_calls_then_a_clerk_checkout_upgrades_to_basic(
    world: &World,
) {
    let (clerk_id, token) = developer(world);
    let id = user_id(world, &token);

    // A retry under the same key counts once.
    for attempt in 0..2 {
        let reply = world
            .authed("POST", "/verify-auth", &token)
            .header("Idempotency-Key", "dev-call-1")
            .send();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.header("Idempotent-Replayed").is_some(),
            attempt == 1,
            "only the retry is a replay"
        );
        assert_eq!(reply.json()["usage"]["used"], 1);
    }
    for used in 2..=5 {
        let reply = verify(world, &token);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["allowed"], true);
        assert_eq!(body["tier"], "free");
        assert_eq!(
            body["usage"],
            json!({ "used": used, "limit": 5, "remaining": 5 - used })
        );
        assert!(body["period"]["key"].as_str().unwrap().len() == 7, "{body}");
    }
    assert_eq!(stored_calls(world, &id), (5, 5));

    // The sixth does not fit: 402 with the usage beside the envelope, nothing counted.
    let before = world.snapshot(&developer_rows(&id));
    let refused = verify(world, &token);
    refused.assert_error(402, "quota_exceeded");
    let body = refused.json();
    assert_eq!(body["allowed"], false);
    assert_eq!(body["tier"], "free");
    assert_eq!(
        body["usage"],
        json!({ "used": 5, "limit": 5, "remaining": 0 })
    );
    before.assert_unchanged(world);
    assert_eq!(stored_calls(world, &id), (5, 5));

    // The developer buys basic in an app that names them by their Clerk id.
    let session = clerk_named_session(world, &clerk_id, BASIC_PRICE);
    let completed = world.fakes.stripe.complete_checkout(&session);
    assert_eq!(completed["data"]["object"]["client_reference_id"], clerk_id);
    let receipt = deliver(world, &completed);
    assert_eq!(receipt["status"], "processed", "{receipt}");
    let subscription = subscription_of(world, &session);
    let users = world.d1_query(&format!(
        "SELECT id, plan FROM users WHERE auth_source = 'clerk' AND external_id = '{clerk_id}'"
    ));
    assert_eq!(users.len(), 1, "the developer's own user, no other");
    assert_eq!(users[0]["id"], id.as_str());
    assert_eq!(users[0]["plan"], "basic");
    let reply = verify(world, &token);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["tier"], "basic");
    assert_eq!(
        body["usage"],
        json!({ "used": 6, "limit": 500, "remaining": 494 })
    );
    assert_eq!(
        world.fakes.clerk.public_metadata(&clerk_id),
        Some(json!({ "plan": "basic", "subscribed": true, "subscriptionId": subscription })),
    );

    // The same event again changes nothing, at Clerk either.
    let before = world.snapshot(&developer_rows(&id));
    let updates = metadata_updates(world, &clerk_id);
    let again = deliver(world, &completed);
    assert_eq!(again["duplicate"], true, "{again}");
    before.assert_unchanged(world);
    assert_eq!(metadata_updates(world, &clerk_id), updates);

    // Stripe ends the subscription: back to free, and Clerk says so.
    let mut canceled = world.fakes.stripe.subscription(&subscription).unwrap();
    canceled["status"] = json!("canceled");
    world
        .fakes
        .stripe
        .set_subscription_status(&subscription, "canceled");
    let deleted = world
        .fakes
        .stripe
        .event_at("customer.subscription.deleted", canceled, now() + 1);
    assert_eq!(deliver(world, &deleted)["status"], "processed");
    // Clerk merges metadata, and a `null` removes the key: no subscription id is left.
    assert_eq!(
        world.fakes.clerk.public_metadata(&clerk_id),
        Some(json!({ "plan": "free", "subscribed": false })),
    );
    verify(world, &token).assert_error(402, "quota_exceeded");
}

fn twenty_concurrent_calls_by_a_new_free_developer_admit_exactly_five(world: &World) {
    let (_, token) = developer(world);
    // Their very first requests: the user is made under the race too.
    let replies = all_at_once(20, |_| verify(world, &token));
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted, 5, "exactly the free plan's 5 calls");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(402, "quota_exceeded");
    }
    let mut used: Vec<i64> = replies
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["usage"]["used"].as_i64().unwrap())
        .collect();
    used.sort_unstable();
    assert_eq!(
        used,
        [1, 2, 3, 4, 5],
        "each admitted call saw its own count"
    );
    let id = user_id(world, &token);
    assert_eq!(stored_calls(world, &id), (5, 5), "D1 agrees");
}

fn a_checkout_for_a_clerk_user_never_seen_makes_their_user_on_the_plan_bought(world: &World) {
    let clerk_id = unique("user_new");
    let session = clerk_named_session(world, &clerk_id, BASIC_PRICE);
    let completed = world.fakes.stripe.complete_checkout(&session);
    assert_eq!(deliver(world, &completed)["status"], "processed");
    let users = world.d1_query(&format!(
        "SELECT id, plan, status FROM users WHERE auth_source = 'clerk' \
         AND external_id = '{clerk_id}'"
    ));
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["plan"], "basic");
    assert_eq!(users[0]["status"], "active");
    let id = users[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("usr_"), "{id}");
    let created = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'user.created' \
         AND target_id = '{id}'"
    ));
    assert_eq!(created[0]["n"], 1, "the user's creation is recorded once");

    // Their first sign-in finds that user, on basic.
    let token = world.clerk_token(&clerk_id);
    assert_eq!(user_id(world, &token), id);
    let reply = verify(world, &token);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["usage"]["limit"], 500);
    assert_eq!(
        world.fakes.clerk.public_metadata(&clerk_id),
        Some(json!({
            "plan": "basic",
            "subscribed": true,
            "subscriptionId": subscription_of(world, &session),
        })),
    );
}

/// The price the checkout the worker asked Stripe for (for this user) bills.
fn checkout_price(world: &World, user_id: &str, session_id: &str) -> String {
    let session = world.fakes.stripe.session(session_id).unwrap();
    assert_eq!(session["client_reference_id"], user_id);
    let form = world
        .fakes
        .stripe
        .form("POST", "/v1/checkout/sessions")
        .into_iter()
        .rev()
        .find(|f| {
            f.iter()
                .any(|(k, v)| k == "client_reference_id" && v == user_id)
        })
        .expect("the session's parameters");
    form.iter()
        .find(|(k, _)| k == "line_items[0][price]")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn create_checkout_without_a_plan_buys_the_platform_upgrade_plan(world: &World) {
    let (_, token) = developer(world);
    let id = user_id(world, &token);
    let reply = world.authed("POST", "/create-checkout", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["plan"], "basic", "{body}");
    assert!(body["url"]
        .as_str()
        .unwrap()
        .starts_with("https://checkout.stripe.com/"));
    let session = body["session_id"].as_str().unwrap();
    assert_eq!(checkout_price(world, &id, session), BASIC_PRICE);

    // A plan named in the body is the one bought.
    let reply = world
        .authed("POST", "/create-checkout", &token)
        .json(&json!({ "plan": "premium", "request_id": "dev-premium-1" }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.json()["session_id"].as_str().unwrap().to_owned();
    assert_eq!(checkout_price(world, &id, &session), PREMIUM_PRICE);
}

fn bad_input_and_other_credentials_are_refused_and_change_nothing(world: &World) {
    let (_, token) = developer(world);
    let id = user_id(world, &token);
    assert_eq!(verify(world, &token).status, 200);
    let before = world.snapshot(&developer_rows(&id));
    let sessions = world
        .fakes
        .stripe
        .form("POST", "/v1/checkout/sessions")
        .len();

    let error = world
        .authed("POST", "/create-checkout", &token)
        .json(&json!({ "plan": "platinum" }))
        .assert_error(400, "validation_failed");
    assert!(
        error["message"].as_str().unwrap().contains("plan"),
        "{error}"
    );
    world
        .authed("POST", "/create-checkout", &token)
        .json(&json!({ "request_id": "not a key!" }))
        .assert_error(400, "validation_failed");
    world
        .authed("POST", "/create-checkout", &token)
        .json(&json!({ "plan": "free" }))
        .assert_error(409, "conflict");
    world
        .authed("POST", "/create-checkout", &token)
        .json(&json!({ "plans": "basic" }))
        .assert_error(400, "validation_failed");
    world
        .authed("POST", "/verify-auth", &token)
        .json(&json!({ "request_id": "not a key!" }))
        .assert_error(400, "validation_failed");
    world
        .authed("POST", "/verify-auth", &token)
        .header("Idempotency-Key", &"k".repeat(200))
        .send()
        .assert_error(400, "validation_failed");

    // A platform key is not a developer's credential here.
    let (_, platform_key) = register(world);
    verify(world, &platform_key).assert_error(401, "unauthorized");
    world
        .call("POST", "/verify-auth")
        .send()
        .assert_error(401, "unauthorized");

    before.assert_unchanged(world);
    assert_eq!(stored_calls(world, &id), (1, 1));
    let sent = world.fakes.stripe.form("POST", "/v1/checkout/sessions");
    assert!(
        sent[sessions..].iter().all(|f| !f
            .iter()
            .any(|(k, v)| k == "client_reference_id" && *v == id)),
        "no checkout was asked of Stripe"
    );
}

/// Serial: a worker of its own, whose `PLATFORM_UPGRADE_PLAN` names no plan and which has
/// no Stripe key.
fn an_unknown_platform_upgrade_plan_or_no_stripe_answers_not_configured(_world: &World) {
    let bare = World::start_with(&[
        ("PLATFORM_UPGRADE_PLAN", "platinum"),
        ("STRIPE_SECRET_KEY", ""),
    ])
    .expect("a second worker starts");
    let (_, token) = developer(&bare);
    let id = user_id(&bare, &token);
    let before = bare.snapshot(&developer_rows(&id).all("billing_customers"));
    let error = bare
        .authed("POST", "/create-checkout", &token)
        .send()
        .assert_error(503, "not_configured");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("PLATFORM_UPGRADE_PLAN"),
        "{error}"
    );
    let error = bare
        .authed("POST", "/create-checkout", &token)
        .json(&json!({ "plan": "basic" }))
        .assert_error(503, "not_configured");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("STRIPE_SECRET_KEY"),
        "{error}"
    );
    before.assert_unchanged(&bare);
    // A platform's tier list that names a Stripe price cannot be checked without Stripe: it
    // is refused and nothing is stored; a list without Stripe prices needs no Stripe.
    let (platform, platform_key) = register(&bare);
    let stored = bare.snapshot(&Rows::new().where_eq("platforms", "id", &platform));
    let free = json!({ "id": "free", "name": "Free", "calls_per_month": 10, "price_cents": 0,
                       "currency": "usd" });
    let sold = json!({ "id": "pro", "name": "Pro", "calls_per_month": 100, "price_cents": 1900,
                       "currency": "usd", "stripe_price_id": "price_e2e_pro" });
    let error = bare
        .authed("PUT", "/api/developer/tiers", &platform_key)
        .json(&json!({ "tiers": [free, sold] }))
        .assert_error(503, "not_configured");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("STRIPE_SECRET_KEY"),
        "{error}"
    );
    stored.assert_unchanged(&bare);
    super::platforms::set_tiers(&bare, &platform_key, json!([free]));
    assert!(bare.fakes.stripe.upstream().received().is_empty());
    // Counting calls needs neither.
    assert_eq!(verify(&bare, &token).status, 200);
    let health = bare.get("/api/health").json();
    assert!(
        health.to_string().contains("PLATFORM_UPGRADE_PLAN"),
        "the problem is reported: {health}"
    );
}

fn a_usage_api_key_counts_on_its_owners_plan(world: &World) {
    let (_, token) = developer(world);
    let id = user_id(world, &token);
    let reply = world
        .authed("POST", "/api/user/api-keys", &token)
        .json(&json!({ "name": "server" }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let key = reply.json()["api_key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(verify(world, &token).status, 200);
    let reply = verify(world, &key);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["usage"],
        json!({ "used": 2, "limit": 5, "remaining": 3 }),
        "the key and the token count on one plan"
    );
    assert_eq!(stored_calls(world, &id), (2, 2));
    // Calls are not tokens: the token history, stats and quota do not show them.
    let history = world.authed("GET", "/api/usage/history", &token).send();
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.json()["data"], json!([]), "{}", history.body);
    let stats = world
        .authed("GET", "/api/usage/stats", &token)
        .send()
        .json();
    assert!(
        stats["total"].is_null() || stats["total"]["total_tokens"] == 0,
        "{stats}"
    );
    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    assert_eq!(quota["tokens"]["used"], 0, "{quota}");
}
