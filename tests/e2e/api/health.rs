//! Health endpoints: `/`, `/health`, `/api/health`, `/api/health/ping`.

use super::Case;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(health: api_health_checks_d1_and_kv, legacy_health_paths_answer, ping_answers_pong)
}

/// `/api/health` reaches real D1 and KV, and reports the migrations actually applied.
fn api_health_checks_d1_and_kv(world: &World) {
    let reply = world.get("/api/health");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["environment"], "e2e");
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
