//! Platforms through the real worker and local D1: developers' credentials and public
//! registration, per-platform tiers, end users counted exactly against their tier under
//! concurrency (and never across platforms), idempotent counting, the dashboard, and bad
//! input and bad credentials that change nothing.

use serde_json::{json, Value};

use super::api_keys::{all_at_once, clerk_user_on_plan};
use super::rate_limits::wait_for_room_in_the_minute;
use super::Case;
use crate::fakes::{stripe_signature, STRIPE_WEBHOOK_SECRET};
use crate::harness::identity::{end_user_claims, now, unique};
use crate::harness::plans::TIER_PRICE;
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(platforms:
        two_hundred_concurrent_calls_admit_exactly_the_tiers_limit,
        the_same_end_user_on_two_platforms_is_two_people_and_keys_never_cross,
        a_retried_call_with_the_same_request_id_counts_once,
        generating_credentials_revokes_the_key_before,
        registration_refuses_a_taken_email_and_more_than_five_an_hour_per_ip,
        bad_input_and_bad_credentials_are_refused_and_change_nothing,
        the_dashboard_counts_end_users_and_calls,
        tiers_are_public_by_platform_id_and_replaced_whole,
        a_tiers_stripe_price_is_checked_at_stripe_once_when_saved,
        an_end_users_checkout_moves_them_to_the_tier_once_and_counts_the_revenue,
        a_subscription_that_ended_wins_over_an_older_checkout_delivered_late,
        two_subscription_events_in_one_second_leave_the_end_users_newest_state,
        a_failed_end_user_checkout_stores_no_customer,
        an_end_user_token_counts_on_the_platform_it_names_and_nowhere_else,
        concurrent_key_rotations_leave_one_platform_and_one_live_key,
        an_end_user_past_a_hundred_requests_a_minute_is_refused_and_nothing_counted,
        a_platform_key_sent_by_a_browser_is_refused_and_counts_nothing,
    )
}

/// A platform registered for a fresh email from a fresh IP: (platform id, key).
pub(super) fn register(world: &World) -> (String, String) {
    let reply = world
        .call("POST", "/api/developer/register")
        .header("CF-Connecting-IP", &unique("10.0."))
        .json(&json!({ "email": format!("{}@example.com", unique("dev-")), "name": "Acme" }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    (
        body["platform_id"].as_str().unwrap().to_owned(),
        body["api_key"].as_str().unwrap().to_owned(),
    )
}

/// Replaces the platform's tiers; the answer must be 200.
pub(super) fn set_tiers(world: &World, key: &str, tiers: Value) {
    let reply = world
        .authed("PUT", "/api/developer/tiers", key)
        .json(&json!({ "tiers": tiers }));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn free_and_pro() -> Value {
    json!([
        { "id": "free", "name": "Free", "calls_per_month": 10, "price_cents": 0, "currency": "usd" },
        { "id": "pro", "name": "Pro", "calls_per_month": 100, "price_cents": 1900,
          "currency": "usd", "stripe_price_id": TIER_PRICE.0 },
    ])
}

/// `POST /api/data` for `end_user` with the platform key.
pub(super) fn data(world: &World, key: &str, end_user: &str, body: &Value) -> Reply {
    world
        .authed("POST", "/api/data", key)
        .header("X-User-Id", end_user)
        .json(body)
}

/// The end user's `calls` counter and record count as stored.
fn stored(world: &World, platform: &str, end_user: &str) -> (i64, i64) {
    let subject = format!("{platform}:{end_user}").replace('\'', "''");
    let rows = world.d1_query(&format!(
        "SELECT (SELECT COALESCE(SUM(used), 0) FROM meter_counters WHERE subject_kind = 'end_user' \
           AND subject_id = '{subject}' AND meter = 'calls') AS used, \
         (SELECT COUNT(*) FROM usage_records WHERE subject_kind = 'end_user' \
           AND subject_id = '{subject}' AND meter = 'calls') AS records"
    ));
    (
        rows[0]["used"].as_i64().unwrap(),
        rows[0]["records"].as_i64().unwrap(),
    )
}

/// Every row an end user's call could write.
fn end_user_rows(platform: &str, end_user: &str) -> Rows {
    let subject = format!("{platform}:{end_user}");
    Rows::new()
        .where_eq("meter_counters", "subject_kind", "end_user")
        .and_eq("subject_id", &subject)
        .where_eq("usage_records", "subject_kind", "end_user")
        .and_eq("subject_id", &subject)
        .where_eq("platform_end_users", "platform_id", platform)
}

fn two_hundred_concurrent_calls_admit_exactly_the_tiers_limit(world: &World) {
    let (platform, key) = register(world);
    set_tiers(world, &key, free_and_pro());
    let end_user = unique("racer-");
    let replies = all_at_once(200, |i| {
        data(
            world,
            &key,
            &end_user,
            &json!({ "request_id": format!("race-{i}") }),
        )
    });
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        admitted, 10,
        "exactly the free tier's 10 calls are admitted"
    );
    for reply in replies.iter().filter(|r| r.status != 200) {
        let code = reply.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            (reply.status == 402 && code == "quota_exceeded")
                || (reply.status == 429 && code == "rate_limited"),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let refused = replies.iter().find(|r| r.status == 402).expect("a 402");
    let body = refused.json();
    assert_eq!(body["allowed"], false);
    assert_eq!(body["tier"], "free");
    assert_eq!(body["usage"]["used"], 10);
    assert_eq!(body["usage"]["limit"], 10);
    assert_eq!(body["usage"]["remaining"], 0);
    // D1 agrees: ten calls counted, ten records, nothing else.
    assert_eq!(stored(world, &platform, &end_user), (10, 10));
    let seen = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM platform_end_users WHERE platform_id = '{platform}' \
         AND end_user_id = '{end_user}'"
    ));
    assert_eq!(seen[0]["n"], 1);

    // Another end user merely stated to be on pro is refused: pro has a price, and they have
    // not paid it (a paid tier comes from a paid Checkout, never from a header).
    let pro_user = unique("pro-");
    let untouched = world.snapshot(&end_user_rows(&platform, &pro_user));
    let reply = world
        .authed("POST", "/api/data", &key)
        .header("X-User-Id", &pro_user)
        .header("X-User-Plan", "pro")
        .json(&json!({ "amount": 100 }));
    let error = reply.assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "X-User-Plan");
    assert!(
        error["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("paid tier"),
        "{error}"
    );
    untouched.assert_unchanged(world);

    // A tier the platform does not have is 400 and counts nothing.
    let other = unique("plan-");
    let before = world.snapshot(&end_user_rows(&platform, &other));
    let reply = world
        .authed("POST", "/api/data", &key)
        .header("X-User-Id", &other)
        .header("X-User-Plan", "gold")
        .send();
    let error = reply.assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "X-User-Plan");
    before.assert_unchanged(world);
}

fn the_same_end_user_on_two_platforms_is_two_people_and_keys_never_cross(world: &World) {
    let (platform_a, key_a) = register(world);
    let (platform_b, key_b) = register(world);
    set_tiers(world, &key_a, free_and_pro());
    let person = unique("shared-");
    for _ in 0..3 {
        let reply = data(world, &key_a, &person, &json!({}));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // B's first call for the same id starts at zero, on B's own (default) tiers.
    let reply = data(world, &key_b, &person, &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["usage"]["used"], 1);
    assert_eq!(
        body["usage"]["limit"], 5,
        "B's tiers are the defaults (free: 5)"
    );
    assert_eq!(stored(world, &platform_a, &person), (3, 3));
    assert_eq!(stored(world, &platform_b, &person), (1, 1));

    // Nothing B's key reaches shows or changes anything of A's.
    let a_rows = end_user_rows(&platform_a, &person)
        .where_eq("platforms", "id", &platform_a)
        .where_eq("platform_keys", "platform_id", &platform_a);
    let before = world.snapshot(&a_rows);
    let usage = world
        .authed("GET", "/api/usage", &key_b)
        .header("X-User-Id", &person)
        .send();
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert_eq!(usage.json()["usage"]["used"], 1);
    let dashboard = world
        .authed("GET", "/api/developer/dashboard", &key_b)
        .send()
        .json();
    assert_eq!(dashboard["platform_id"], platform_b.as_str());
    assert_eq!(dashboard["calls"]["all_time"], 1);
    assert_eq!(dashboard["end_users"]["total"], 1);
    let tiers = world.authed("GET", "/api/tiers", &key_b).send().json();
    assert_eq!(tiers["platform_id"], platform_b.as_str());
    // A platform id in a body or query is never how a platform is chosen.
    let reply = data(
        world,
        &key_b,
        &person,
        &json!({ "platform_id": platform_a }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["usage"]["used"], 2);
    set_tiers(
        world,
        &key_b,
        json!([{ "id": "solo", "name": "Solo", "calls_per_month": 1, "price_cents": 0,
                 "currency": "usd" }]),
    );
    let reply = world
        .authed(
            "GET",
            &format!("/api/usage?platform_id={platform_a}"),
            &key_b,
        )
        .header("X-User-Id", &person)
        .send();
    assert_eq!(reply.json()["tier"], "solo");
    // A's tiers are not B's to sell, and A's end users' billing is not B's to open.
    world
        .authed("POST", "/api/create-checkout", &key_b)
        .header("X-User-Id", &person)
        .json(&json!({ "tier": "pro" }))
        .assert_error(400, "validation_failed");
    world
        .authed("POST", "/api/customer-portal", &key_b)
        .header("X-User-Id", &person)
        .send()
        .assert_error(409, "conflict");
    before.assert_unchanged(world);
    let a_tiers = world
        .get(&format!("/api/tiers?platform_id={platform_a}"))
        .json();
    assert_eq!(a_tiers["tiers"][1]["id"], "pro", "A's tiers are A's");
}

fn a_retried_call_with_the_same_request_id_counts_once(world: &World) {
    let (platform, key) = register(world);
    let person = unique("retry-");
    let first = data(
        world,
        &key,
        &person,
        &json!({ "request_id": "call-1", "amount": 2 }),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("Idempotent-Replayed"), None);
    let again = data(
        world,
        &key,
        &person,
        &json!({ "request_id": "call-1", "amount": 2 }),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.json()["usage"], first.json()["usage"]);
    // The header carries the same key.
    let by_header = world
        .authed("POST", "/api/data", &key)
        .header("X-User-Id", &person)
        .header("Idempotency-Key", "call-1")
        .send();
    assert_eq!(by_header.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(stored(world, &platform, &person), (2, 1));
    // Ten concurrent retries of a new key still count once.
    let replies = all_at_once(10, |_| {
        data(world, &key, &person, &json!({ "request_id": "call-2" }))
    });
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies[0].body
    );
    assert_eq!(stored(world, &platform, &person), (3, 2));
}

fn generating_credentials_revokes_the_key_before(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    // No platform yet.
    world
        .authed("GET", "/get-credentials", &token)
        .send()
        .assert_error(404, "not_found");
    let first = world.authed("POST", "/generate-credentials", &token).send();
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("Cache-Control"), Some("no-store"));
    let first = first.json();
    assert_eq!(first["platform_created"], true);
    assert_eq!(first["revoked_previous_key"], false);
    let platform = first["platform_id"].as_str().unwrap().to_owned();
    let old_key = first["api_key"].as_str().unwrap().to_owned();
    assert!(
        old_key.starts_with("pk_live_") && old_key.len() == 40,
        "{old_key}"
    );
    let reply = world
        .authed("GET", "/api/developer/dashboard", &old_key)
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);

    let second = world.authed("POST", "/generate-credentials", &token).send();
    assert_eq!(second.status, 200, "{}", second.body);
    let second = second.json();
    assert_eq!(
        second["platform_id"],
        platform.as_str(),
        "the same platform"
    );
    assert_eq!(second["revoked_previous_key"], true);
    let new_key = second["api_key"].as_str().unwrap().to_owned();
    let refused = world
        .authed("GET", "/api/developer/dashboard", &old_key)
        .send();
    refused.assert_error(401, "unauthorized");
    assert!(refused.body.contains("revoked"), "{}", refused.body);
    let reply = world
        .authed("GET", "/api/developer/dashboard", &new_key)
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Shown masked afterwards; only hashes are stored.
    let shown = world
        .authed("GET", "/get-credentials", &token)
        .send()
        .json();
    assert_eq!(shown["platform_id"], platform.as_str());
    let masked = shown["api_key"].as_str().unwrap();
    assert_eq!(
        masked,
        format!("pk_live_{}****{}", &new_key[8..12], &new_key[36..])
    );
    assert!(shown["last_used_at"].is_string(), "{shown}");
    let keys = world.d1_query(&format!(
        "SELECT key_hash, masked, revoked_at FROM platform_keys WHERE platform_id = '{platform}' \
         ORDER BY created_at"
    ));
    assert_eq!(keys.len(), 2);
    assert!(keys[0]["revoked_at"].is_string() && keys[1]["revoked_at"].is_null());
    let dump = serde_json::to_string(&keys).unwrap();
    assert!(!dump.contains(&new_key[8..]) && !dump.contains(&old_key[8..]));
    // A platform key is not a user's credential, and a user's token is not a platform's.
    let reply = world.authed("GET", "/api/user/profile", &new_key).send();
    reply.assert_error(401, "unauthorized");
    assert!(reply.body.contains("platform routes"), "{}", reply.body);
    world
        .authed("GET", "/api/developer/dashboard", &token)
        .send()
        .assert_error(401, "unauthorized");
    // The audit log has both issues and the platform's creation.
    let actions = world.d1_query(&format!(
        "SELECT action FROM audit_log WHERE target_id = '{platform}' OR (action = \
         'platform.key_issued' AND target_id IN (SELECT id FROM platform_keys WHERE \
         platform_id = '{platform}')) ORDER BY id"
    ));
    let actions: Vec<&str> = actions
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "platform.key_issued",
            "platform.created",
            "platform.key_issued"
        ]
    );
}

fn registration_refuses_a_taken_email_and_more_than_five_an_hour_per_ip(world: &World) {
    let email = format!("{}@example.com", unique("taken-"));
    let ip = unique("10.9.");
    let register_as = |email: &str, ip: &str| {
        world
            .call("POST", "/api/developer/register")
            .header("CF-Connecting-IP", ip)
            .json(&json!({ "email": email }))
    };
    let first = register_as(&email, &ip);
    assert_eq!(first.status, 201, "{}", first.body);
    let body = first.json();
    assert_eq!(body["tiers"][0]["id"], "free");
    assert_eq!(body["tiers"][0]["calls_per_month"], 5);
    assert_eq!(body["tiers"][1]["calls_per_month"], 500);
    assert_eq!(body["tiers"][1]["price_cents"], 2900);
    let rows = Rows::new()
        .where_eq("platforms", "owner_email", &email)
        .where_eq("platform_signup_windows", "ip", &ip);
    let before = world.snapshot(&rows);
    register_as(&email.to_uppercase(), &ip).assert_error(409, "conflict");
    before.assert_unchanged(world);

    // Four more from the IP are admitted; the sixth is 429 and stores nothing.
    for _ in 0..4 {
        let reply = register_as(&format!("{}@example.com", unique("more-")), &ip);
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let sixth = format!("{}@example.com", unique("sixth-"));
    let rows = Rows::new()
        .where_eq("platforms", "owner_email", &sixth)
        .where_eq("platform_signup_windows", "ip", &ip);
    let before = world.snapshot(&rows);
    let reply = register_as(&sixth, &ip);
    reply.assert_error(429, "rate_limited");
    let retry: u64 = reply.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    before.assert_unchanged(world);
    // Another IP is not held back.
    let reply = register_as(&sixth, &unique("10.8."));
    assert_eq!(reply.status, 201, "{}", reply.body);

    // Ten concurrent registrations from a new IP: exactly five platforms.
    let burst_ip = unique("10.7.");
    let replies = all_at_once(10, |i| {
        register_as(&format!("burst-{i}-{burst_ip}@example.com"), &burst_ip)
    });
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 5);
    assert_eq!(replies.iter().filter(|r| r.status == 429).count(), 5);
    let made = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM platforms WHERE owner_email LIKE 'burst-%-{burst_ip}@example.com'"
    ));
    assert_eq!(made[0]["n"], 5);
}

fn a_platform_key_sent_by_a_browser_is_refused_and_counts_nothing(world: &World) {
    let (platform, key) = register(world);
    let person = unique("browser-");
    let rows = end_user_rows(&platform, &person)
        .where_eq("platforms", "id", &platform)
        .where_eq("platform_keys", "platform_id", &platform);
    let before = world.snapshot(&rows);
    let origin = "https://shop.example.com";
    let refusals = [
        world
            .authed("POST", "/api/data", &key)
            .header("X-User-Id", &person)
            .header("Origin", origin)
            .json(&json!({})),
        world
            .authed("GET", "/api/usage", &key)
            .header("X-User-Id", &person)
            .header("Origin", origin)
            .send(),
        world
            .authed("GET", "/api/developer/dashboard", &key)
            .header("Origin", origin)
            .send(),
        world
            .authed("GET", "/api/tiers", &key)
            .header("Origin", origin)
            .send(),
        world
            .authed("PUT", "/api/developer/tiers", &key)
            .header("Origin", origin)
            .json(&json!({ "tiers": free_and_pro() })),
    ];
    for reply in refusals {
        let error = reply.assert_error(403, "forbidden");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("server secrets"),
            "{error}"
        );
    }
    before.assert_unchanged(world);
    // The same key from a server (no Origin) works.
    assert_eq!(data(world, &key, &person, &json!({})).status, 200);
}

fn bad_input_and_bad_credentials_are_refused_and_change_nothing(world: &World) {
    let (platform, key) = register(world);
    let person = unique("bad-");
    let rows = end_user_rows(&platform, &person)
        .where_eq("platforms", "id", &platform)
        .where_eq("platform_keys", "platform_id", &platform);
    // Count once so the rows exist, then snapshot.
    assert_eq!(data(world, &key, &person, &json!({})).status, 200);
    let before = world.snapshot(&rows);
    for (body, field) in [
        (json!({ "amount": 0 }), "amount"),
        (json!({ "amount": -1 }), "amount"),
        (json!({ "amount": 1.5 }), "amount"),
        (json!({ "amount": "two" }), "amount"),
        (json!({ "amount": 1_000_001 }), "amount"),
        (json!({ "request_id": "has spaces" }), "request_id"),
    ] {
        let reply = data(world, &key, &person, &body);
        let error = reply.assert_error(400, "validation_failed");
        assert_eq!(error["fields"][0]["field"], field, "{body}");
    }
    let no_user = world.authed("POST", "/api/data", &key).send();
    assert_eq!(
        no_user.assert_error(400, "validation_failed")["fields"][0]["field"],
        "X-User-Id"
    );
    data(world, &key, "two words", &json!({})).assert_error(400, "validation_failed");
    for tiers in [
        json!([]),
        json!([{ "id": "a", "name": "A", "calls_per_month": 1, "price_cents": 0, "currency": "usd" },
               { "id": "a", "name": "B", "calls_per_month": 1, "price_cents": 0, "currency": "usd" }]),
        json!([{ "id": "a", "name": "A", "calls_per_month": -1, "price_cents": 0, "currency": "usd" }]),
        json!([{ "id": "a", "name": "A", "price_cents": 0, "currency": "usd", "extra": 1 }]),
        json!((0..21)
            .map(
                |i| json!({ "id": format!("t{i}"), "name": "T", "calls_per_month": 1,
                                     "price_cents": 0, "currency": "usd" })
            )
            .collect::<Vec<_>>()),
    ] {
        world
            .authed("PUT", "/api/developer/tiers", &key)
            .json(&json!({ "tiers": tiers }))
            .assert_error(400, "validation_failed");
    }
    // Credentials that are not this platform's key.
    let unknown = format!("pk_live_{}", "A".repeat(32));
    for credential in [unknown.as_str(), "pk_live_short", "not-a-token"] {
        data(world, credential, &person, &json!({})).assert_error(401, "unauthorized");
    }
    world
        .call("POST", "/api/data")
        .header("X-User-Id", &person)
        .send()
        .assert_error(401, "unauthorized");
    // An operator's user token never acts as an end user or a platform.
    let (_, token) = clerk_user_on_plan(world, "basic");
    data(world, &token, &person, &json!({})).assert_error(401, "unauthorized");
    world
        .authed("PUT", "/api/developer/tiers", &token)
        .json(&json!({ "tiers": free_and_pro() }))
        .assert_error(401, "unauthorized");
    before.assert_unchanged(world);
}

fn the_dashboard_counts_end_users_and_calls(world: &World) {
    let (_, key) = register(world);
    set_tiers(world, &key, free_and_pro());
    for (person, calls) in [("ana", 3), ("ben", 1), ("cy", 10)] {
        let reply = data(world, &key, person, &json!({ "amount": calls }));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // Refused calls count nothing.
    data(world, &key, "ben", &json!({ "amount": 10 })).assert_error(402, "quota_exceeded");
    let dashboard = world.authed("GET", "/api/developer/dashboard", &key).send();
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let d = dashboard.json();
    assert_eq!(d["end_users"]["total"], 3);
    assert_eq!(d["end_users"]["active_this_period"], 3);
    assert_eq!(d["calls"]["this_period"], 14);
    assert_eq!(d["calls"]["all_time"], 14);
    assert_eq!(d["revenue"]["all_time_cents"], 0);
    assert_eq!(d["tiers"][1]["id"], "pro");
    // The usage read counts nothing.
    let usage = world
        .authed("GET", "/api/usage", &key)
        .header("X-User-Id", "cy")
        .send()
        .json();
    assert_eq!(usage["allowed"], false);
    assert_eq!(usage["usage"]["used"], 10);
    assert!(
        usage["period"]["start"]
            .as_str()
            .unwrap()
            .ends_with("-01T00:00:00.000Z"),
        "{usage}"
    );
    let again = world
        .authed("GET", "/api/developer/dashboard", &key)
        .send()
        .json();
    assert_eq!(again["calls"]["all_time"], 14);
}

fn tiers_are_public_by_platform_id_and_replaced_whole(world: &World) {
    let (platform, key) = register(world);
    let public = world.get(&format!("/api/tiers?platform_id={platform}"));
    assert_eq!(public.status, 200, "{}", public.body);
    assert_eq!(public.json()["tiers"][0]["calls_per_month"], 5);
    set_tiers(world, &key, free_and_pro());
    let public = world
        .get(&format!("/api/tiers?platform_id={platform}"))
        .json();
    assert_eq!(public["tiers"], free_and_pro());
    world
        .get("/api/tiers?platform_id=plt_doesnotexist")
        .assert_error(404, "not_found");
    world
        .get("/api/tiers?platform_id=nonsense")
        .assert_error(404, "not_found");
    world
        .get("/api/tiers")
        .assert_error(400, "validation_failed");
    // Replacing is audited.
    let rows = world.d1_query(&format!(
        "SELECT detail FROM audit_log WHERE action = 'platform.tiers_updated' \
         AND target_id = '{platform}'"
    ));
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]["detail"].as_str().unwrap().contains("free,pro"),
        "{rows:?}"
    );
}

/// `PUT /api/developer/tiers` asks Stripe for each price a tier names, once per save: a
/// price Stripe does not have, or one charging another amount or currency, is a 400 naming
/// `tiers[i].stripe_price_id`; Stripe failing is a 502; neither stores anything.
fn a_tiers_stripe_price_is_checked_at_stripe_once_when_saved(world: &World) {
    let (platform, key) = register(world);
    let price = unique("price_e2e_tier_").replace('-', "_");
    world.fakes.stripe.add_price(&price, 4900);
    let tiers = |cents: u64, currency: &str, price: &str| {
        json!([
            { "id": "free", "name": "Free", "calls_per_month": 10, "price_cents": 0,
              "currency": "usd" },
            { "id": "team", "name": "Team", "calls_per_month": 1000, "price_cents": cents,
              "currency": currency, "stripe_price_id": price },
            { "id": "team_plus", "name": "Team+", "calls_per_month": 2000, "price_cents": cents,
              "currency": currency, "stripe_price_id": price },
        ])
    };
    let put = |body: Value| {
        world
            .authed("PUT", "/api/developer/tiers", &key)
            .json(&json!({ "tiers": body }))
    };
    let rows = Rows::new().where_eq("platforms", "id", &platform).where_eq(
        "audit_log",
        "target_id",
        &platform,
    );
    let before = world.snapshot(&rows);
    let missing = unique("price_e2e_missing_").replace('-', "_");
    for (body, says) in [
        (tiers(4900, "usd", &missing), "no such price"),
        (
            tiers(1900, "usd", &price),
            "charges 4900 usd, the tier says 1900 usd",
        ),
        (
            tiers(4900, "eur", &price),
            "charges 4900 usd, the tier says 4900 eur",
        ),
    ] {
        let error = put(body).assert_error(400, "validation_failed");
        let fields = error["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 2, "both tiers naming the price: {error}");
        for (i, field) in fields.iter().enumerate() {
            assert_eq!(field["field"], format!("tiers[{}].stripe_price_id", i + 1));
            assert!(
                field["message"].as_str().unwrap().contains(says),
                "{says}: {error}"
            );
        }
    }
    let path = format!("/v1/prices/{price}");
    world
        .fakes
        .stripe
        .fail_next("GET", &path, crate::fakes::Fault::Status(500));
    put(tiers(4900, "usd", &price)).assert_error(502, "upstream_error");
    before.assert_unchanged(world);

    let asked_before = world.fakes.stripe.upstream().count("GET", &path);
    let reply = put(tiers(4900, "usd", &price));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        world.fakes.stripe.upstream().count("GET", &path) - asked_before,
        1,
        "two tiers selling one price ask Stripe once"
    );
    let public = world
        .get(&format!("/api/tiers?platform_id={platform}"))
        .json();
    assert_eq!(public["tiers"], tiers(4900, "usd", &price));
}

/// What the tests' pro tier sells for, in cents (its price at the fake Stripe).
const PRO_CENTS: i64 = TIER_PRICE.1;

/// Delivers a Stripe event, signed now; the answer must be 200. Returns its `event`.
fn deliver(world: &World, event: &Value) -> Value {
    let body = event.to_string();
    let signature = stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now());
    let reply = world
        .call("POST", "/webhook/stripe")
        .header("Stripe-Signature", &signature)
        .body("application/json", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["event"].clone()
}

/// A platform with free and pro tiers (pro sold at Stripe), and an end user who checked out
/// pro and paid: (platform, key, end user, the completed session).
fn paid_pro(world: &World) -> (String, String, String, Value) {
    let (platform, key) = register(world);
    set_tiers(world, &key, free_and_pro());
    let person = unique("buyer-");
    let reply = world
        .authed("POST", "/api/create-checkout", &key)
        .header("X-User-Id", &person)
        .json(&json!({ "tier": "pro" }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["tier"], "pro");
    assert!(
        body["url"].as_str().unwrap().starts_with("https://"),
        "{body}"
    );
    let completed = world
        .fakes
        .stripe
        .complete_checkout(body["session_id"].as_str().unwrap());
    let session = completed["data"]["object"].clone();
    assert_eq!(session["metadata"]["platform_id"], platform.as_str());
    (platform, key, person, session)
}

fn tier_of(world: &World, platform: &str, person: &str) -> Value {
    let rows = world.d1_query(&format!(
        "SELECT tier FROM platform_end_users WHERE platform_id = '{platform}' \
         AND end_user_id = '{person}'"
    ));
    rows.first()
        .map(|r| r["tier"].clone())
        .unwrap_or(Value::Null)
}

fn an_end_users_checkout_moves_them_to_the_tier_once_and_counts_the_revenue(world: &World) {
    let (platform, key, person, session) = paid_pro(world);
    let subscription = session["subscription"].as_str().unwrap().to_owned();
    // Before the webhook: still on the first tier.
    assert_eq!(tier_of(world, &platform, &person), Value::Null);
    let event = world
        .fakes
        .stripe
        .event("checkout.session.completed", session.clone());
    let receipt = deliver(world, &event);
    assert_eq!(receipt["status"], "processed", "{receipt}");
    assert_eq!(tier_of(world, &platform, &person), "pro");
    // The tier applies to their calls without X-User-Plan, and one stating another tier
    // neither lowers nor changes it: the payment decides.
    let reply = data(world, &key, &person, &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["tier"], "pro");
    assert_eq!(reply.json()["usage"]["limit"], 100);
    let stated_free = world
        .authed("POST", "/api/data", &key)
        .header("X-User-Id", &person)
        .header("X-User-Plan", "free")
        .json(&json!({}));
    assert_eq!(stated_free.status, 200, "{}", stated_free.body);
    assert_eq!(stated_free.json()["tier"], "pro");
    assert_eq!(stated_free.json()["usage"]["limit"], 100);

    // The same event again, and another event for the same session: nothing changes.
    let rows = Rows::new()
        .where_eq("platform_end_users", "platform_id", &platform)
        .where_eq("platform_payments", "platform_id", &platform);
    let before = world.snapshot(&rows);
    let again = deliver(world, &event);
    assert_eq!(again["duplicate"], true, "{again}");
    let other = world
        .fakes
        .stripe
        .event("checkout.session.completed", session);
    assert_eq!(deliver(world, &other)["status"], "ignored");
    before.assert_unchanged(world);

    // The dashboard counts the payment once.
    let d = world
        .authed("GET", "/api/developer/dashboard", &key)
        .send()
        .json();
    assert_eq!(d["revenue"]["all_time_cents"], PRO_CENTS);
    assert_eq!(d["revenue"]["this_period_cents"], PRO_CENTS);
    assert_eq!(d["revenue"]["payments"], 1);
    assert_eq!(d["end_users"]["total"], 1);
    // A renewal's paid invoice counts too, once, and changes no tier.
    let invoice = world.fakes.stripe.invoice(&subscription, true);
    let renewal = world.fakes.stripe.event("invoice.paid", invoice);
    assert_eq!(deliver(world, &renewal)["status"], "processed");
    assert_eq!(deliver(world, &renewal)["duplicate"], true);
    let d = world
        .authed("GET", "/api/developer/dashboard", &key)
        .send()
        .json();
    assert_eq!(d["revenue"]["all_time_cents"], 2 * PRO_CENTS);
    assert_eq!(d["revenue"]["payments"], 2);
    assert_eq!(tier_of(world, &platform, &person), "pro");
    // Another platform's dashboard does not see it.
    let (_, other_key) = register(world);
    let d = world
        .authed("GET", "/api/developer/dashboard", &other_key)
        .send()
        .json();
    assert_eq!(d["revenue"]["all_time_cents"], 0);

    // The tier change is in the audit log, by Stripe.
    let rows = world.d1_query(&format!(
        "SELECT actor_kind, actor_id FROM audit_log WHERE action = \
         'platform.end_user_tier_changed' AND target_id = '{platform}'"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor_id"], "stripe");

    // Their customer now has a Billing Portal.
    let reply = world
        .authed("POST", "/api/customer-portal", &key)
        .header("X-User-Id", &person)
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    // An end user who never checked out has none (409), and a tier without a price cannot
    // be bought (400); neither changes anything.
    let stranger = unique("stranger-");
    let before = world.snapshot(&end_user_rows(&platform, &stranger));
    world
        .authed("POST", "/api/customer-portal", &key)
        .header("X-User-Id", &stranger)
        .send()
        .assert_error(409, "conflict");
    for tier in ["free", "gold"] {
        world
            .authed("POST", "/api/create-checkout", &key)
            .header("X-User-Id", &stranger)
            .json(&json!({ "tier": tier }))
            .assert_error(400, "validation_failed");
    }
    before.assert_unchanged(world);
}

fn a_subscription_that_ended_wins_over_an_older_checkout_delivered_late(world: &World) {
    let (platform, key, person, session) = paid_pro(world);
    let subscription_id = session["subscription"].as_str().unwrap().to_owned();
    let subscription = world.fakes.stripe.subscription(&subscription_id).unwrap();
    assert_eq!(subscription["metadata"]["end_user_id"], person.as_str());
    let paid_at = now();
    // Stripe delivers the cancellation (later) before the checkout (earlier).
    let mut canceled = subscription.clone();
    canceled["status"] = json!("canceled");
    world
        .fakes
        .stripe
        .set_subscription_status(&subscription_id, "canceled");
    let ended =
        world
            .fakes
            .stripe
            .event_at("customer.subscription.deleted", canceled, paid_at + 10);
    assert_eq!(deliver(world, &ended)["status"], "processed");
    let late = world
        .fakes
        .stripe
        .event_at("checkout.session.completed", session, paid_at);
    deliver(world, &late);
    assert_eq!(
        tier_of(world, &platform, &person),
        Value::Null,
        "still free"
    );
    let reply = data(world, &key, &person, &json!({}));
    assert_eq!(reply.json()["tier"], "free");
    // The payment itself is still counted once.
    let d = world
        .authed("GET", "/api/developer/dashboard", &key)
        .send()
        .json();
    assert_eq!(d["revenue"]["all_time_cents"], PRO_CENTS);
}

fn an_end_user_token_counts_on_the_platform_it_names_and_nowhere_else(world: &World) {
    let (platform_a, key_a) = register(world);
    let (platform_b, _) = register(world);
    set_tiers(world, &key_a, free_and_pro());
    let sub = unique("user_end_");
    let token = world.end_user_token(&sub, &platform_a, None);
    // Counted on A, under the token's subject; an X-User-Id sent along is ignored.
    let reply = world
        .authed("POST", "/api/data", &token)
        .header("X-User-Id", "someone-else")
        .json(&json!({ "amount": 2 }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["tier"], "free");
    assert_eq!(reply.json()["usage"]["limit"], 10);
    assert_eq!(stored(world, &platform_a, &sub), (2, 1));
    assert_eq!(stored(world, &platform_a, "someone-else"), (0, 0));
    assert_eq!(stored(world, &platform_b, &sub), (0, 0));
    let usage = world.authed("GET", "/api/usage", &token).send();
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert_eq!(usage.json()["usage"]["used"], 2);
    // The token's plan claim states the tier as X-User-Plan does: a paid tier the end user
    // has not paid for is refused, naming the claim.
    let pro = world.end_user_token(&sub, &platform_a, Some("pro"));
    let reply = world.authed("POST", "/api/data", &pro).send();
    assert_eq!(
        reply.assert_error(400, "validation_failed")["fields"][0]["field"],
        "plan"
    );
    assert_eq!(stored(world, &platform_a, &sub), (2, 1));
    // An end user may buy a tier with their token.
    let reply = world
        .authed("POST", "/api/create-checkout", &token)
        .json(&json!({ "tier": "pro" }));
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Refusals change nothing.
    let before = world.snapshot(
        &end_user_rows(&platform_a, &sub)
            .where_eq("users", "external_id", &sub)
            .where_eq("platform_end_users", "end_user_id", &sub),
    );
    let gold = world.end_user_token(&sub, &platform_a, Some("gold"));
    let refused = world.authed("POST", "/api/data", &gold).send();
    assert_eq!(
        refused.assert_error(400, "validation_failed")["fields"][0]["field"],
        "plan"
    );
    for platform in ["plt_unknown0000000000", "not-a-platform"] {
        let stranger = world.end_user_token(&sub, platform, None);
        world
            .authed("POST", "/api/data", &stranger)
            .send()
            .assert_error(401, "unauthorized");
    }
    let mut claims = end_user_claims(&sub, &platform_a, None);
    claims.as_object_mut().unwrap().remove("publicMetadata");
    let nameless = world.fakes.end_user_clerk.sign(&claims);
    let reply = world.authed("POST", "/api/data", &nameless).send();
    reply.assert_error(401, "unauthorized");
    assert!(reply.body.contains("names no platform"), "{}", reply.body);
    // An end-user token is not a developer's: every developer and user route refuses it.
    for (method, path) in [
        ("POST", "/generate-credentials"),
        ("GET", "/get-credentials"),
        ("GET", "/api/user/profile"),
        ("GET", "/api/developer/dashboard"),
    ] {
        world
            .authed(method, path, &token)
            .send()
            .assert_error(401, "unauthorized");
    }
    before.assert_unchanged(world);
}

fn concurrent_key_rotations_leave_one_platform_and_one_live_key(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    // Make the developer's user row first, so the racers only race for the platform.
    assert_eq!(
        world
            .authed("GET", "/api/user/profile", &token)
            .send()
            .status,
        200
    );
    let replies = all_at_once(8, |_| {
        world.authed("POST", "/generate-credentials", &token).send()
    });
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 201),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(
        replies.iter().filter(|r| r.status == 201).count(),
        1,
        "one platform made"
    );
    let platforms: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| r.json()["platform_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(platforms.len(), 1, "{platforms:?}");
    let platform = platforms.into_iter().next().unwrap();
    let live = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM platform_keys WHERE platform_id = '{platform}' \
         AND revoked_at IS NULL"
    ));
    assert_eq!(live[0]["n"], 1);
    // Exactly one of the keys handed out works.
    let working = replies
        .iter()
        .map(|r| r.json()["api_key"].as_str().unwrap().to_owned())
        .filter(|key| {
            world
                .authed("GET", "/api/developer/dashboard", key)
                .send()
                .status
                == 200
        })
        .count();
    assert_eq!(working, 1);
}

fn an_end_user_past_a_hundred_requests_a_minute_is_refused_and_nothing_counted(world: &World) {
    let (platform, key) = register(world);
    set_tiers(
        world,
        &key,
        json!([{ "id": "unlimited", "name": "Unlimited", "calls_per_month": null,
                 "price_cents": 0, "currency": "usd" }]),
    );
    let (other_platform, other_key) = register(world);
    let person = unique("busy-");
    // The limiter counts in windows aligned to the minute: the burst fits in one.
    wait_for_room_in_the_minute(30);
    let replies = all_at_once(100, |i| {
        data(
            world,
            &key,
            &person,
            &json!({ "request_id": format!("busy-{i}") }),
        )
    });
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().find(|r| r.status != 200).map(|r| &r.body)
    );
    let before = world.snapshot(&end_user_rows(&platform, &person));
    let refused = data(world, &key, &person, &json!({ "request_id": "busy-101" }));
    refused.assert_error(429, "rate_limited");
    let retry: u64 = refused.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    before.assert_unchanged(world);
    assert_eq!(stored(world, &platform, &person), (100, 100));
    // Each end user of each platform has a budget of their own.
    assert_eq!(data(world, &key, &unique("calm-"), &json!({})).status, 200);
    assert_eq!(data(world, &other_key, &person, &json!({})).status, 200);
    assert_eq!(stored(world, &other_platform, &person), (1, 1));
}

/// An end user's subscription went `unpaid`, then was paid and `active` again, within one
/// second; Stripe delivers the newest event first. Each event is judged by the subscription
/// as Stripe has it at processing, so the older one does not end the paid tier; when Stripe
/// cannot answer, the event's own object applies as before (and ends it).
fn two_subscription_events_in_one_second_leave_the_end_users_newest_state(world: &World) {
    use crate::fakes::Fault;
    for stripe_answers in [true, false] {
        let (platform, _, person, session) = paid_pro(world);
        let subscription_id = session["subscription"].as_str().unwrap().to_owned();
        let stripe = &world.fakes.stripe;
        let paid = stripe.event_at("checkout.session.completed", session, now());
        assert_eq!(deliver(world, &paid)["status"], "processed");
        assert_eq!(tier_of(world, &platform, &person), "pro");
        let live = stripe.subscription(&subscription_id).unwrap();
        let mut unpaid = live.clone();
        unpaid["status"] = json!("unpaid");
        let second = now() + 1;
        let older = stripe.event_at("customer.subscription.updated", unpaid, second);
        let newer = stripe.event_at("customer.subscription.updated", live, second);
        deliver(world, &newer);
        if !stripe_answers {
            stripe.fail_next("GET", &subscription_id, Fault::Status(503));
        }
        deliver(world, &older);
        let expected = if stripe_answers {
            json!("pro")
        } else {
            Value::Null
        };
        assert_eq!(
            tier_of(world, &platform, &person),
            expected,
            "Stripe answers: {stripe_answers}"
        );
    }
}

/// An end user's customer is kept only once their checkout exists: when Stripe fails the
/// Checkout Session the answer is `502` and nothing is stored; the retry keeps the customer.
fn a_failed_end_user_checkout_stores_no_customer(world: &World) {
    use crate::fakes::Fault;
    let (platform, key) = register(world);
    set_tiers(world, &key, free_and_pro());
    let person = unique("buyer-");
    let customer_of = || {
        world
            .d1_query(&format!(
                "SELECT stripe_customer_id FROM platform_end_users \
                 WHERE platform_id = '{platform}' AND end_user_id = '{person}'"
            ))
            .first()
            .map(|r| r["stripe_customer_id"].clone())
            .unwrap_or(Value::Null)
    };
    let needle = format!("subscription_data[metadata][end_user_id]={person}");
    world
        .fakes
        .stripe
        .fail_next("POST", &needle, Fault::Status(500));
    let start = || {
        world
            .authed("POST", "/api/create-checkout", &key)
            .header("X-User-Id", &person)
            .json(&json!({ "tier": "pro" }))
    };
    start().assert_error(502, "upstream_error");
    assert_eq!(customer_of(), Value::Null, "no customer stored");
    let reply = start();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let customer = customer_of();
    assert!(world
        .fakes
        .stripe
        .customer(customer.as_str().unwrap())
        .is_some());
}
