//! Workflows through the user's own usage alerts (`/api/user/webhooks`): registering,
//! listing without the secret, the per-owner cap, refusals that change nothing (plain http
//! and internal receivers, for users and for orgs' portal workflows alike), and the
//! threshold deliveries themselves — exactly once under concurrent usage, signed per
//! Standard Webhooks (verified here with an HMAC of the test's own), stored before they are
//! sent, and retried by the scheduled event until the receiver takes them, each failed
//! attempt shown as its status code and failure class, never the error's words.
//!
//! Deliveries go to a local receiver over plain http, which only `ENVIRONMENT=local`
//! allows, so the delivery case runs a worker of its own (the shared one runs as `e2e`,
//! where the same URL is refused). Its retries are made due by moving the delivery's
//! `next_attempt_at_ms` back in D1 (the worker's clock is the real one), then firing the
//! scheduled event.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::api_keys::clerk_user_on_plan;
use super::chat::site_of;
use super::portal::{make_org, member_token};
use super::Case;
use crate::fakes::{FakeReceiver, Recorded};
use crate::harness::identity::{now, unique};
use crate::harness::snapshot::Rows;
use crate::harness::{plans, Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(
        workflows:
        a_webhook_is_created_with_its_secret_once_and_listed_without_it,
        refusals_change_nothing,
        internal_and_plain_http_receivers_are_refused_for_users_and_orgs,
        another_users_webhook_is_not_found_and_untouched,
        a_webhook_is_changed_by_its_owner_only,
        concurrent_creations_never_pass_the_cap,
        thresholds_are_delivered_once_signed_and_retried_until_taken,
    )
}

const WEBHOOKS: &str = "/api/user/webhooks";

fn user_id(world: &World, token: &str) -> String {
    let reply = world.authed("GET", "/api/user/profile", token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

fn create(world: &World, token: &str, url: &str) -> Value {
    let reply = world
        .authed("POST", WEBHOOKS, token)
        .json(&json!({ "url": url }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.json()
}

/// The rows a user's webhook requests could touch.
fn owned_rows(users: &[&str]) -> Rows {
    users.iter().fold(Rows::new(), |rows, user| {
        rows.where_eq("workflows", "owner_id", user)
            .where_eq("audit_log", "actor_id", user)
    })
}

fn a_webhook_is_created_with_its_secret_once_and_listed_without_it(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let created = create(world, &token, "https://hooks.example.test/tollgate?x=1");
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(id.starts_with("wf_"), "{created}");
    assert!(secret.starts_with("whsec_"), "{created}");
    assert!(B64.decode(&secret["whsec_".len()..]).unwrap().len() >= 24);
    assert_eq!(created["url"], "https://hooks.example.test/tollgate?x=1");
    assert_eq!(created["trigger"], "usage.threshold");
    assert_eq!(created["owner_kind"], "user");
    assert_eq!(created["owner_id"], owner.as_str());
    assert_eq!(created["enabled"], true);

    // Listed, never with the secret; stored sealed, never as it is.
    let listed = world.authed("GET", WEBHOOKS, &token).send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(!listed.body.contains(secret) && !listed.body.contains("whsec_"));
    let data = listed.json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 1, "{data}");
    assert_eq!(data[0]["id"], id);
    let stored = world.d1_query(&format!(
        "SELECT owner_kind, owner_id, trigger, enabled, secret_sealed FROM workflows \
         WHERE id = '{id}'"
    ));
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["owner_id"], owner.as_str());
    let sealed = stored[0]["secret_sealed"].as_str().unwrap();
    assert!(sealed.starts_with("v1.") && !sealed.contains(&secret["whsec_".len()..]));
    let audit = world.d1_query(&format!(
        "SELECT action, actor_id, detail FROM audit_log WHERE target_kind = 'workflow' \
         AND target_id = '{id}' ORDER BY id"
    ));
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["action"], "workflow.created");
    let detail: Value = serde_json::from_str(audit[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["url_host"], "hooks.example.test");
    assert_eq!(detail["trigger"], "usage.threshold");
    let detail = audit[0]["detail"].as_str().unwrap();
    assert!(
        !detail.contains("whsec_") && !detail.contains("x=1"),
        "{detail}"
    );

    // Deleted once; then it is not found, and the list is empty.
    let deleted = world
        .authed("DELETE", &format!("{WEBHOOKS}/{id}"), &token)
        .send();
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.json()["deleted"], true);
    world
        .authed("DELETE", &format!("{WEBHOOKS}/{id}"), &token)
        .send()
        .assert_error(404, "not_found");
    let listed = world.authed("GET", WEBHOOKS, &token).send().json();
    assert_eq!(listed["data"], json!([]));
    let actions = world.d1_query(&format!(
        "SELECT action FROM audit_log WHERE target_kind = 'workflow' AND target_id = '{id}' \
         ORDER BY id"
    ));
    assert_eq!(
        actions,
        vec![
            json!({"action": "workflow.created"}),
            json!({"action": "workflow.deleted"})
        ]
    );
}

fn fields(reply: &Reply) -> Vec<String> {
    let error = reply.assert_error(400, "validation_failed");
    error["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn refusals_change_nothing(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let existing = create(world, &token, "https://hooks.example.test/kept");
    let before = world.snapshot(&owned_rows(&[&owner]));
    for (body, field) in [
        // Plain http only where ENVIRONMENT is local (this worker runs as e2e).
        (json!({ "url": "http://hooks.example.test/x" }), "url"),
        (json!({ "url": "ftp://hooks.example.test/x" }), "url"),
        (
            json!({ "url": "https://user:pw@hooks.example.test/" }),
            "url",
        ),
        (json!({ "url": "https://hooks .example.test/" }), "url"),
        (json!({ "url": "" }), "url"),
        (json!({ "url": 5 }), "url"),
        (json!({}), "url"),
        (
            json!({ "url": "https://hooks.example.test/x", "trigger": "usage.threshold" }),
            "trigger",
        ),
        (
            json!({ "url": "https://hooks.example.test/x", "secret": "whsec_AAAA" }),
            "secret",
        ),
    ] {
        let reply = world.authed("POST", WEBHOOKS, &token).json(&body);
        assert_eq!(
            fields(&reply),
            vec![field.to_owned()],
            "{body}: {}",
            reply.body
        );
    }
    world
        .authed("POST", WEBHOOKS, &token)
        .body("application/json", b"{not json")
        .assert_error(400, "validation_failed");
    for path in [
        format!("{WEBHOOKS}/wf_000000000000000000000000"),
        format!("{WEBHOOKS}/nope"),
    ] {
        world
            .authed("DELETE", &path, &token)
            .send()
            .assert_error(404, "not_found");
    }
    world
        .authed(
            "GET",
            &format!("{WEBHOOKS}/wf_000000000000000000000000/deliveries"),
            &token,
        )
        .send()
        .assert_error(404, "not_found");
    world
        .authed(
            "GET",
            &format!(
                "{WEBHOOKS}/{}/deliveries?limit=0",
                existing["id"].as_str().unwrap()
            ),
            &token,
        )
        .send()
        .assert_error(400, "validation_failed");
    world
        .call("POST", WEBHOOKS)
        .json(&json!({ "url": "https://hooks.example.test/anon" }))
        .assert_error(401, "unauthorized");
    before.assert_unchanged(world);
}

/// Receivers a shared (non-local) worker must never be made to POST to: plain http, and
/// hosts that name loopback, private, link-local or internal addresses (or spell them in a
/// way only some parsers read as such).
const INTERNAL_RECEIVERS: [&str; 12] = [
    "http://example.com/",
    "https://127.0.0.1/",
    "https://10.0.0.1/",
    "https://[::1]/",
    "https://localhost/",
    "https://metadata.internal/",
    "https://169.254.169.254/latest/meta-data",
    "https://[::ffff:127.0.0.1]/",
    "https://[fd00::1]:8443/",
    "https://2130706433/",
    "https://0x7f.1/",
    "https://127.1/",
];

/// `reply` is `400 validation_failed` naming `url` alone, with a reason.
fn refused_url(reply: &Reply, url: &str) {
    assert_eq!(
        fields(reply),
        vec!["url".to_owned()],
        "{url}: {}",
        reply.body
    );
    let why = reply.json()["error"]["fields"][0]["message"].clone();
    assert!(
        why.as_str().is_some_and(|m| m.starts_with("must ")),
        "{url}: {why}"
    );
}

fn internal_and_plain_http_receivers_are_refused_for_users_and_orgs(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let hook = create(world, &token, "https://hooks.example.test/kept");
    let hook_path = format!("{WEBHOOKS}/{}", hook["id"].as_str().unwrap());
    let org = make_org(world, "basic");
    let admin = member_token(world, &org.clerk_id, "admin", false);
    let admin_id = user_id(world, &admin);
    let made = world
        .authed("POST", "/portal/workflows", &admin)
        .json(&json!({ "trigger": "usage.threshold", "url": "https://hooks.example.test/org" }));
    assert_eq!(made.status, 201, "{}", made.body);
    let flow_id = made.json()["id"].as_str().unwrap().to_owned();
    let flow_path = format!("/portal/workflows/{flow_id}");

    let before = world.snapshot(
        &owned_rows(&[&owner, &admin_id])
            .where_eq("workflows", "owner_id", &org.id)
            .where_eq("audit_log", "target_id", hook["id"].as_str().unwrap())
            .where_eq("audit_log", "target_id", &flow_id),
    );
    for url in INTERNAL_RECEIVERS {
        let reply = world
            .authed("POST", WEBHOOKS, &token)
            .json(&json!({ "url": url }));
        refused_url(&reply, url);
        let reply = world
            .authed("PATCH", &hook_path, &token)
            .json(&json!({ "url": url, "enabled": false }));
        refused_url(&reply, url);
        let reply = world
            .authed("POST", "/portal/workflows", &admin)
            .json(&json!({ "trigger": "chat.session.started", "url": url }));
        refused_url(&reply, url);
        let reply = world
            .authed("PATCH", &flow_path, &admin)
            .json(&json!({ "url": url }));
        refused_url(&reply, url);
    }
    before.assert_unchanged(world);
    // Both are still what they were.
    let listed = world.authed("GET", WEBHOOKS, &token).send().json();
    assert_eq!(listed["data"][0]["url"], "https://hooks.example.test/kept");
    assert_eq!(listed["data"][0]["enabled"], true);
    let listed = world
        .authed("GET", "/portal/workflows", &admin)
        .send()
        .json();
    assert_eq!(listed["data"][0]["url"], "https://hooks.example.test/org");
}

fn another_users_webhook_is_not_found_and_untouched(world: &World) {
    let (_, alice) = clerk_user_on_plan(world, "basic");
    let (_, bob) = clerk_user_on_plan(world, "basic");
    let (alice_id, bob_id) = (user_id(world, &alice), user_id(world, &bob));
    let hook = create(world, &alice, "https://hooks.example.test/alice");
    let id = hook["id"].as_str().unwrap();
    let before = world.snapshot(&owned_rows(&[&alice_id, &bob_id]));
    let reply = world
        .authed("DELETE", &format!("{WEBHOOKS}/{id}"), &bob)
        .send();
    reply.assert_error(404, "not_found");
    let reply = world
        .authed("GET", &format!("{WEBHOOKS}/{id}/deliveries"), &bob)
        .send();
    reply.assert_error(404, "not_found");
    assert!(!reply.body.contains("alice"));
    let listed = world.authed("GET", WEBHOOKS, &bob).send();
    assert_eq!(listed.json()["data"], json!([]), "{}", listed.body);
    before.assert_unchanged(world);
    // Alice's is still hers.
    let listed = world.authed("GET", WEBHOOKS, &alice).send().json();
    assert_eq!(listed["data"][0]["id"], id);
}

fn a_webhook_is_changed_by_its_owner_only(world: &World) {
    let (_, alice) = clerk_user_on_plan(world, "basic");
    let (_, bob) = clerk_user_on_plan(world, "basic");
    let (alice_id, bob_id) = (user_id(world, &alice), user_id(world, &bob));
    let hook = create(world, &alice, "https://hooks.example.test/before");
    let path = format!("{WEBHOOKS}/{}", hook["id"].as_str().unwrap());

    let before = world.snapshot(&owned_rows(&[&alice_id, &bob_id]));
    for (body, field) in [
        (json!({ "url": "http://hooks.example.test/plain" }), "url"),
        (json!({ "url": "not a url" }), "url"),
        (json!({ "enabled": "no" }), "enabled"),
        (json!({ "trigger": "chat.session.started" }), "trigger"),
        (json!({ "secret": "whsec_AAAA" }), "secret"),
    ] {
        let reply = world.authed("PATCH", &path, &alice).json(&body);
        assert_eq!(
            fields(&reply),
            vec![field.to_owned()],
            "{body}: {}",
            reply.body
        );
    }
    world
        .authed("PATCH", &path, &bob)
        .json(&json!({ "enabled": false }))
        .assert_error(404, "not_found");
    world
        .authed(
            "PATCH",
            &format!("{WEBHOOKS}/wf_000000000000000000000000"),
            &alice,
        )
        .json(&json!({ "enabled": false }))
        .assert_error(404, "not_found");
    before.assert_unchanged(world);

    let changed = world
        .authed("PATCH", &path, &alice)
        .json(&json!({ "url": "https://hooks.example.test/after", "enabled": false }));
    assert_eq!(changed.status, 200, "{}", changed.body);
    let changed = changed.json();
    assert_eq!(changed["url"], "https://hooks.example.test/after");
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["trigger"], "usage.threshold");
    assert!(changed.get("secret").is_none());
    let listed = world.authed("GET", WEBHOOKS, &alice).send().json();
    assert_eq!(listed["data"][0]["url"], "https://hooks.example.test/after");
    assert_eq!(listed["data"][0]["enabled"], false);
    let audit = world.d1_query(&format!(
        "SELECT action, actor_id FROM audit_log WHERE target_kind = 'workflow' \
         AND target_id = '{}' ORDER BY id",
        hook["id"].as_str().unwrap()
    ));
    assert_eq!(
        audit,
        vec![
            json!({"action": "workflow.created", "actor_id": alice_id}),
            json!({"action": "workflow.updated", "actor_id": alice_id}),
        ]
    );
}

use crate::harness::all_at_once as at_once;

fn concurrent_creations_never_pass_the_cap(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let replies = at_once(16, |i| {
        world
            .authed("POST", WEBHOOKS, &token)
            .json(&json!({ "url": format!("https://hooks.example.test/{i}") }))
    });
    let created = replies.iter().filter(|r| r.status == 201).count();
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.assert_error(409, "conflict");
    }
    assert_eq!(created, 10, "the cap is 10 per owner");
    let stored = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM workflows WHERE owner_kind = 'user' AND owner_id = '{owner}'"
    ));
    assert_eq!(stored[0]["n"], 10);
    let audited = world.d1_query(&format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'workflow.created' \
         AND actor_id = '{owner}'"
    ));
    assert_eq!(audited[0]["n"], 10);
    // One more, alone, is refused too and changes nothing.
    let before = world.snapshot(&owned_rows(&[&owner]));
    world
        .authed("POST", WEBHOOKS, &token)
        .json(&json!({ "url": "https://hooks.example.test/eleventh" }))
        .assert_error(409, "conflict");
    before.assert_unchanged(world);
}

/// The plan the delivery case's user is on: 1 000 tokens a month, no rate limit.
const ALERT_PLAN: &str = "alerts";
const ALERT_LIMIT: u64 = 1000;

fn catalog_with_alert_plan() -> String {
    let mut catalog = plans::catalog();
    catalog.as_array_mut().unwrap().push(json!({
        "id": ALERT_PLAN,
        "name": "Alerts",
        "tokens_per_month": ALERT_LIMIT,
        "calls_per_month": 5,
        "api_keys": 1,
        "concurrent_sessions": null,
        "requests_per_minute": null,
        "price_cents": null,
        "stripe_price_id": null,
    }));
    catalog.to_string()
}

/// Verifies a delivery as a Standard Webhooks receiver would, with this test's own HMAC:
/// answers its parsed body.
fn verified(delivery: &Recorded, secret: &str) -> Value {
    let id = delivery.header("webhook-id").expect("webhook-id");
    let timestamp = delivery
        .header("webhook-timestamp")
        .expect("webhook-timestamp");
    let signature = delivery
        .header("webhook-signature")
        .expect("webhook-signature");
    let sent_at: i64 = timestamp.parse().expect("unix seconds");
    assert!((sent_at - now()).abs() < 300, "timestamp {sent_at}");
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&delivery.body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    assert!(
        signature.split(' ').any(|s| s == expected),
        "signature {signature} != {expected}"
    );
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    serde_json::from_slice(&delivery.body).expect("a JSON body")
}

/// Waits until `done` holds (the first attempt is made after the answer, in the background).
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn report_all(world: &World, token: &str, n: usize, tokens: u64) -> Vec<Reply> {
    let replies = at_once(n, |_| {
        world
            .authed("POST", "/api/usage/report", token)
            .json(&json!({
                "provider": "openai", "model": "gpt-4o-mini", "input_tokens": tokens,
                "output_tokens": 0, "request_id": unique("wf-"),
            }))
    });
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    replies
}

fn fire_schedule(world: &World) {
    let fired = world.get("/cdn-cgi/handler/scheduled?cron=*%2F10+*+*+*+*");
    assert_eq!(fired.status, 200, "{}", fired.body);
}

fn thresholds_are_delivered_once_signed_and_retried_until_taken(_shared: &World) {
    let catalog = catalog_with_alert_plan();
    let world = World::start_with(&[("ENVIRONMENT", "local"), ("PLAN_CATALOG", &catalog)])
        .expect("a local worker starts");
    let receiver = FakeReceiver::start();
    let (_, token) = clerk_user_on_plan(&world, ALERT_PLAN);
    let owner = user_id(&world, &token);
    let hook = create(&world, &token, &receiver.url());
    let (hook_id, secret) = (
        hook["id"].as_str().unwrap().to_owned(),
        hook["secret"].as_str().unwrap().to_owned(),
    );

    // 50 reports at once take the user from 0 to 850 of 1 000: past 80 % once.
    let replies = report_all(&world, &token, 50, 17);
    let period = replies[0].json()["quota"]["period"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the 80 % delivery", || !receiver.received().is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let received = receiver.received();
    assert_eq!(received.len(), 1, "exactly one delivery: {received:?}");
    let first = verified(&received[0], &secret);
    assert_eq!(first["type"], "usage.threshold");
    assert!(first["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let data = &first["data"];
    assert_eq!(data["threshold"], 80);
    assert_eq!(data["meter"], "tokens");
    assert_eq!(data["limit"], ALERT_LIMIT);
    assert_eq!(data["period"], period.as_str());
    assert_eq!(data["user_id"], owner.as_str());
    let used = data["used"].as_u64().unwrap();
    assert!(
        (800..817).contains(&used),
        "the counter right after crossing: {used}"
    );
    let thresholds = format!(
        "SELECT threshold FROM usage_thresholds WHERE owner_kind = 'user' \
         AND owner_id = '{owner}' AND meter = 'tokens' AND period = '{period}' ORDER BY threshold"
    );
    assert_eq!(world.d1_query(&thresholds), vec![json!({"threshold": 80})]);
    let deliveries = format!(
        "SELECT id, status, attempts, payload FROM workflow_deliveries \
         WHERE workflow_id = '{hook_id}' ORDER BY created_at, event_key"
    );
    let stored = world.d1_query(&deliveries);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["status"], "delivered");
    assert_eq!(stored[0]["attempts"], 1);
    assert_eq!(
        received[0].header("webhook-id"),
        stored[0]["id"].as_str(),
        "the stored delivery's id is the webhook-id"
    );
    assert_eq!(
        stored[0]["payload"].as_str().unwrap().as_bytes(),
        received[0].body.as_slice(),
        "stored before sending, sent as stored"
    );

    // The receiver fails the next two; 50 more reports pass 100 % (1 050) once.
    receiver.fail_next(2);
    report_all(&world, &token, 50, 4);
    let hundred = format!(
        "SELECT id, status, attempts, next_attempt_at_ms FROM workflow_deliveries \
         WHERE workflow_id = '{hook_id}' AND event_key LIKE '%:100'"
    );
    eventually("the first attempt at the 100 % delivery", || {
        world
            .d1_query(&hundred)
            .first()
            .is_some_and(|d| d["attempts"] == 1)
    });
    let pending = world.d1_query(&hundred);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["status"], "pending");
    let due_at = pending[0]["next_attempt_at_ms"].as_f64().unwrap();
    let in_a_minute = (now() * 1000 + 60_000) as f64;
    assert!(
        (due_at - in_a_minute).abs() < 15_000.0,
        "the first retry waits a minute: {due_at}"
    );
    let msg = pending[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        world.d1_query(&thresholds),
        vec![json!({"threshold": 80}), json!({"threshold": 100})]
    );

    // Not yet due: the schedule leaves it alone.
    fire_schedule(&world);
    assert_eq!(world.d1_query(&hundred)[0]["attempts"], 1);
    // Made due twice: the second attempt fails, the third is taken.
    let make_due =
        format!("UPDATE workflow_deliveries SET next_attempt_at_ms = 0 WHERE id = '{msg}'");
    world.d1_query(&make_due);
    fire_schedule(&world);
    let after_second = world.d1_query(&hundred);
    assert_eq!(after_second[0]["attempts"], 2, "{after_second:?}");
    assert_eq!(after_second[0]["status"], "pending");
    world.d1_query(&make_due);
    fire_schedule(&world);
    let after_third = world.d1_query(&hundred);
    assert_eq!(after_third[0]["attempts"], 3, "{after_third:?}");
    assert_eq!(after_third[0]["status"], "delivered");
    // Delivered: never sent again.
    world.d1_query(&make_due);
    fire_schedule(&world);

    let received = receiver.received();
    assert_eq!(received.len(), 4, "one 80 %, three attempts at 100 %");
    let bodies: Vec<&[u8]> = received[1..].iter().map(|r| r.body.as_slice()).collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every attempt sends the same body"
    );
    for attempt in &received[1..] {
        assert_eq!(attempt.header("webhook-id"), Some(msg.as_str()));
        let body = verified(attempt, &secret);
        assert_eq!(body["data"]["threshold"], 100);
        assert_eq!(body["data"]["user_id"], owner.as_str());
        assert!(body["data"]["used"].as_u64().unwrap() >= ALERT_LIMIT);
    }

    // The deliveries, newest first, with every attempt listed.
    let listed = world
        .authed("GET", &format!("{WEBHOOKS}/{hook_id}/deliveries"), &token)
        .send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    let data = listed.json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 2, "{data}");
    assert_eq!(data[0]["id"], msg.as_str());
    assert_eq!(data[0]["status"], "delivered");
    assert_eq!(data[0]["attempt_count"], 3);
    let codes: Vec<Value> = data[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(200)]);
    let numbers: Vec<Value> = data[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].clone())
        .collect();
    assert_eq!(numbers, vec![json!(1), json!(2), json!(3)]);
    // A failure is shown as its class beside the status code, never as an error's words.
    let failures: Vec<Value> = data[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["failure"].clone())
        .collect();
    assert_eq!(
        failures,
        vec![json!("http_5xx"), json!("http_5xx"), Value::Null]
    );
    for attempt in data[0]["attempts"].as_array().unwrap() {
        assert_eq!(attempt_fields(attempt), ATTEMPT_FIELDS, "{attempt}");
    }
    assert_eq!(data[0]["payload"]["data"]["threshold"], 100);
    assert_eq!(data[1]["status"], "delivered");
    assert_eq!(data[1]["payload"]["data"]["threshold"], 80);
    assert_eq!(data[1]["attempts"].as_array().unwrap().len(), 1);

    an_unreachable_receiver_is_shown_as_connection_failed_on_the_portal(&world);
}

/// What an attempt shows, and nothing else (no `error`, whose words were the network's).
const ATTEMPT_FIELDS: [&str; 5] = ["at", "attempt", "duration_ms", "failure", "status_code"];

fn attempt_fields(attempt: &Value) -> Vec<&str> {
    let mut fields: Vec<&str> = attempt
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    fields
}

/// An org's `chat.session.started` workflow whose receiver refuses connections (a port just
/// closed): its delivery's attempt shows no status code and `connection_failed` on the
/// portal's deliveries page, and the raw error is stored nowhere. Runs on the delivery case's
/// `local` worker (plain http to loopback); the workflow is disabled at the end so the
/// schedule never retries it.
fn an_unreachable_receiver_is_shown_as_connection_failed_on_the_portal(world: &World) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let site = site_of(world, "chatbot");
    let made = world
        .authed("POST", "/portal/workflows", &site.admin)
        .json(&json!({ "trigger": "chat.session.started", "url": url }));
    assert_eq!(made.status, 201, "{}", made.body);
    let flow_id = made.json()["id"].as_str().unwrap().to_owned();
    let chat = world
        .call("POST", "/chat")
        .header("X-Site-Key", &site.key)
        .header("Origin", &site.origin)
        .json(&json!({ "message": format!("{} hello [reply:1]", unique("unreach-")) }));
    assert_eq!(chat.status, 200, "{}", chat.body);
    let attempted = format!(
        "SELECT a.* FROM workflow_delivery_attempts a JOIN workflow_deliveries d \
         ON d.id = a.delivery_id WHERE d.workflow_id = '{flow_id}'"
    );
    eventually("the attempt at the unreachable receiver", || {
        !world.d1_query(&attempted).is_empty()
    });
    let stored = world.d1_query(&attempted);
    assert_eq!(stored[0]["failure"], "connection_failed", "{stored:?}");
    assert_eq!(stored[0]["status_code"], Value::Null, "{stored:?}");
    assert!(
        stored[0].get("error").is_none(),
        "no raw error column: {stored:?}"
    );

    let listed = world
        .authed(
            "GET",
            &format!("/portal/workflows/{flow_id}/deliveries"),
            &site.admin,
        )
        .send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    let delivery = listed.json()["data"][0].clone();
    assert_eq!(delivery["event_type"], "chat.session.started", "{delivery}");
    assert_eq!(delivery["status"], "pending");
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["failure"], "connection_failed", "{attempt}");
    assert_eq!(attempt["status_code"], Value::Null);
    assert_eq!(attempt_fields(attempt), ATTEMPT_FIELDS, "{attempt}");
    assert!(!listed.body.contains("error"), "{}", listed.body);

    let off = world
        .authed(
            "PATCH",
            &format!("/portal/workflows/{flow_id}"),
            &site.admin,
        )
        .json(&json!({ "enabled": false }));
    assert_eq!(off.status, 200, "{}", off.body);
}
