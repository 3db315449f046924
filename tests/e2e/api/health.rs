//! Health endpoints: `/`, `/health`, `/api/health`, `/api/health/ping`.

use serde_json::json;

use super::Case;
use crate::harness::identity::{clerk_user_event, now, unique};
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(health:
        api_health_checks_d1_and_kv,
        legacy_health_paths_answer,
        ping_answers_pong,
        a_placeholder_sealing_key_breaks_only_the_routes_that_seal,
        an_invalid_plan_catalog_closes_all_but_health,
        bad_webhook_secrets_disable_only_what_they_sign,
        request_log_failures_writes_lines_only_for_refused_requests,
    )
}

/// `/api/health` reaches real D1 and KV, and reports the migrations actually applied.
fn api_health_checks_d1_and_kv(world: &World) {
    let reply = world.get("/api/health");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["environment"], "e2e");
    assert_eq!(body["checks"]["configuration"], json!({ "status": "ok" }));
    for check in ["d1", "kv"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{check}: {body}");
        assert!(
            body["checks"][check]["latency_ms"].is_u64(),
            "{check}: {body}"
        );
    }
    let applied = world.d1_query("SELECT COUNT(*) AS n, MAX(name) AS latest FROM d1_migrations");
    assert_eq!(
        body["checks"]["d1"]["migrations"]["applied"],
        applied[0]["n"]
    );
    assert_eq!(
        body["checks"]["d1"]["migrations"]["latest"],
        applied[0]["latest"]
    );
    assert!(
        applied[0]["n"].as_u64().unwrap() >= 1,
        "migrations were applied"
    );
}

/// Puku's `GET /` and dream-api's `GET /health` keep answering where their clients look.
fn legacy_health_paths_answer(world: &World) {
    for path in ["/", "/health"] {
        let reply = world.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.json()["status"], "ok", "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

/// `GET /api/health/ping` answers without touching storage.
fn ping_answers_pong(world: &World) {
    let reply = world.get("/api/health/ping");
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["message"], "pong");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
}

/// `cp .dev.vars.example .dev.vars` leaves `KEY_ENCRYPTION_KEY=__GENERATE__`: the worker
/// still serves ping, health (degraded, naming the setting but never its value), the
/// profile and usage; only the routes that seal provider keys answer `not_configured`.
fn a_placeholder_sealing_key_breaks_only_the_routes_that_seal(_world: &World) {
    let broken = World::start_with(&[("KEY_ENCRYPTION_KEY", "__GENERATE__")])
        .expect("a worker with the placeholder starts");
    assert_eq!(broken.get("/api/health/ping").status, 200);
    let health = broken.get("/api/health");
    assert_eq!(health.status, 200, "{}", health.body);
    let body = health.json();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        body["checks"]["configuration"]["invalid_settings"],
        json!(["KEY_ENCRYPTION_KEY"]),
        "{body}"
    );
    assert!(!health.body.contains("__GENERATE__"), "{}", health.body);

    let token = broken.hmac_token(&unique("placeholder_"));
    let profile = broken.authed("GET", "/api/user/profile", &token).send();
    assert_eq!(profile.status, 200, "{}", profile.body);
    let quota = broken.authed("GET", "/api/usage/quota", &token).send();
    assert_eq!(quota.status, 200, "{}", quota.body);
    let report = broken
        .authed("POST", "/api/usage/report", &token)
        .header("Idempotency-Key", "placeholder-report-1")
        .json(&json!({ "provider": "openai", "model": "gpt-4o", "input_tokens": 5, "output_tokens": 7 }));
    assert_eq!(report.status, 200, "{}", report.body);

    for (method, path) in [
        ("POST", "/api/key"),
        ("GET", "/api/user/provider-keys?provider=openai"),
    ] {
        let call = broken.authed(method, path, &token);
        let reply = if method == "GET" {
            call.send()
        } else {
            call.json(&json!({}))
        };
        let error = reply.assert_error(503, "not_configured");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("KEY_ENCRYPTION_KEY"),
            "{method} {path}: {error}"
        );
    }
    let log = broken.worker_log_with(&["\"setting\":\"KEY_ENCRYPTION_KEY\"", "/dev/urandom"]);
    assert!(
        log.contains("\"setting\":\"KEY_ENCRYPTION_KEY\"") && log.contains("/dev/urandom"),
        "the log says which setting and how to fix it"
    );
}

/// A plan catalog that does not parse leaves nothing to meter against: every route but
/// health answers `not_configured` naming it, and health says so.
fn an_invalid_plan_catalog_closes_all_but_health(_world: &World) {
    let broken = World::start_with(&[("PLAN_CATALOG", "[{\"id\": \"free\"}]")])
        .expect("a worker with a bad catalog starts");
    for path in ["/", "/health", "/api/health/ping"] {
        assert_eq!(broken.get(path).status, 200, "{path}");
    }
    let health = broken.get("/api/health").json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(
        health["checks"]["configuration"]["invalid_settings"],
        json!(["PLAN_CATALOG"])
    );
    let token = broken.hmac_token(&unique("bad_catalog_"));
    let error = broken
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .assert_error(503, "not_configured");
    assert!(error["message"].as_str().unwrap().contains("PLAN_CATALOG"));
}

/// A Stripe secret left as the placeholder and a Clerk webhook secret list with a bad entry
/// stop only billing and the Clerk webhook, each answering `not_configured` naming its
/// setting (upgrade gives no "not set up" instructions for a billing that is set but
/// broken); metering goes on.
fn bad_webhook_secrets_disable_only_what_they_sign(_world: &World) {
    // A well-formed made-up secret (24 zero bytes) beside a malformed one.
    let clerk_secrets = format!("whsec_{},not-a-secret!", "A".repeat(32));
    let broken = World::start_with(&[
        ("STRIPE_WEBHOOK_SECRET", "__GENERATE__"),
        ("CLERK_WEBHOOK_SECRET", &clerk_secrets),
    ])
    .expect("a worker with bad webhook secrets starts");
    let health = broken.get("/api/health").json();
    assert_eq!(health["status"], "degraded", "{health}");
    let mut invalid: Vec<String> =
        serde_json::from_value(health["checks"]["configuration"]["invalid_settings"].clone())
            .unwrap();
    invalid.sort();
    assert_eq!(invalid, ["CLERK_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET"]);

    let token = broken.hmac_token(&unique("bad_hooks_"));
    let quota = broken.authed("GET", "/api/usage/quota", &token).send();
    assert_eq!(quota.status, 200, "{}", quota.body);
    let named = |reply: crate::harness::Reply, setting: &str| {
        let error = reply.assert_error(503, "not_configured");
        assert!(
            error["message"].as_str().unwrap().contains(setting),
            "{setting}: {error}"
        );
    };
    named(
        broken
            .authed("POST", "/api/subscription/upgrade", &token)
            .json(&json!({ "plan": "basic" })),
        "STRIPE_WEBHOOK_SECRET",
    );
    let event = clerk_user_event(
        "user.created",
        &unique("user_badhook_"),
        now() * 1000,
        json!({}),
    );
    named(
        broken.clerk_webhook(&unique("msg_"), &event),
        "CLERK_WEBHOOK_SECRET",
    );
}

/// `REQUEST_LOG=failures`: a request answered 2xx writes no access line, one answered 4xx
/// does; the shared worker (the default, `all`) writes both.
fn request_log_failures_writes_lines_only_for_refused_requests(world: &World) {
    let quiet = World::start_with(&[("REQUEST_LOG", "failures")])
        .expect("a worker logging only failures starts");
    let line_for = |w: &World, path: &str, expected: u16| {
        let id = unique("req_log_");
        let reply = w.call("GET", path).header("X-Request-Id", &id).send();
        assert_eq!(reply.status, expected, "{path}: {}", reply.body);
        id
    };
    let logged = |w: &World, id: &str| {
        w.worker_log()
            .lines()
            .any(|line| line.contains(&format!("\"request_id\":\"{id}\"")))
    };
    let ping = line_for(&quiet, "/api/health/ping", 200);
    let missing = line_for(&quiet, "/api/no-such-thing", 404);
    let shared_ping = line_for(world, "/api/health/ping", 200);
    // Lines reach the log file a moment after the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(logged(&quiet, &missing) && logged(world, &shared_ping)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the 404 and the default worker's ping are logged"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        !logged(&quiet, &ping),
        "a 200 writes no line under `failures`"
    );
    let health = quiet.get("/api/health").json();
    assert_eq!(health["checks"]["configuration"], json!({ "status": "ok" }));

    let wrong = World::start_with(&[("REQUEST_LOG", "verbose")])
        .expect("a worker with a bad REQUEST_LOG starts");
    let health = wrong.get("/api/health").json();
    assert_eq!(
        health["checks"]["configuration"]["invalid_settings"],
        json!(["REQUEST_LOG"])
    );
    assert_eq!(wrong.get("/api/health/ping").status, 200);
}
