//! Conventions every endpoint follows (SPEC §1): the error envelope, request ids, body
//! limits, JSON validation, and one structured log line per request.

use std::time::{Duration, Instant};

use super::Case;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(conventions:
        unknown_path_is_404_in_the_envelope,
        wrong_method_is_405_with_allow,
        head_is_served_by_get,
        request_id_is_echoed_when_sane_and_made_otherwise,
        oversized_body_is_413,
        webhook_paths_accept_larger_bodies,
        malformed_json_is_400_naming_where_it_broke,
        invalid_utf8_in_json_is_400,
        each_request_writes_one_json_log_line,
    )
}

fn unknown_path_is_404_in_the_envelope(world: &World) {
    let reply = world.get("/does-not-exist");
    reply.assert_error(404, "not_found");
    let id = reply.header("x-request-id").unwrap();
    assert!(
        id.starts_with("req_") && id.len() == 36,
        "generated id: {id}"
    );
}

fn wrong_method_is_405_with_allow(world: &World) {
    let reply = world.call("DELETE", "/api/health").send();
    reply.assert_error(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("GET"));
}

fn head_is_served_by_get(world: &World) {
    let reply = world.call("HEAD", "/api/health/ping").send();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "", "HEAD has no body");
    assert!(reply.header("x-request-id").is_some());
}

fn request_id_is_echoed_when_sane_and_made_otherwise(world: &World) {
    let reply = world
        .call("GET", "/does-not-exist")
        .header("X-Request-Id", "client-trace-42")
        .send();
    assert_eq!(reply.header("x-request-id"), Some("client-trace-42"));
    assert_eq!(reply.json()["error"]["request_id"], "client-trace-42");

    let reply = world
        .call("GET", "/api/health/ping")
        .header("X-Request-Id", &"x".repeat(300))
        .send();
    let id = reply.header("x-request-id").unwrap();
    assert!(id.starts_with("req_"), "an overlong id is replaced: {id}");
}

fn oversized_body_is_413(world: &World) {
    let body = vec![b'a'; 2 * 1024 * 1024];
    let reply = world
        .call("POST", "/api/health/ping")
        .body("application/json", &body);
    let error = reply.assert_error(413, "payload_too_large");
    assert!(
        error["message"].as_str().unwrap().contains("65536"),
        "{error}"
    );
}

/// Webhook deliveries may be larger than API bodies: 200 KiB passes the body check on a
/// webhook path (and then meets whatever that path answers) but not on an API path.
fn webhook_paths_accept_larger_bodies(world: &World) {
    let body = vec![b' '; 200 * 1024];
    let api = world
        .call("POST", "/api/health/ping")
        .body("text/plain", &body);
    api.assert_error(413, "payload_too_large");
    let hook = world
        .call("POST", "/api/webhooks/stripe")
        .body("text/plain", &body);
    assert_ne!(hook.status, 413, "{}", hook.body);
}

fn malformed_json_is_400_naming_where_it_broke(world: &World) {
    let reply = world
        .call("POST", "/api/health/ping")
        .body("application/json", br#"{"a":"#);
    let error = reply.assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "a", "{error}");
    assert!(
        error["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("EOF"),
        "{error}"
    );
}

fn invalid_utf8_in_json_is_400(world: &World) {
    let reply = world
        .call("POST", "/api/health/ping")
        .body("application/json", b"{\"name\":\"\xff\xfe\"}");
    let error = reply.assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "name", "{error}");
}

fn each_request_writes_one_json_log_line(world: &World) {
    let id = format!("e2e-log-{}", std::process::id());
    let reply = world
        .call("DELETE", "/api/health")
        .header("X-Request-Id", &id)
        .send();
    assert_eq!(reply.status, 405);

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let log = world.worker_log();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter(|l| l.contains(&id))
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .filter(|v: &serde_json::Value| v["msg"] == "request")
            .collect();
        if !lines.is_empty() || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(lines.len(), 1, "exactly one request line for {id}");
    let line = &lines[0];
    assert_eq!(line["request_id"], id.as_str());
    assert_eq!(line["method"], "DELETE");
    assert_eq!(line["path"], "/api/health");
    assert_eq!(line["route"], "/api/health");
    assert_eq!(line["status"], 405);
    assert_eq!(line["error_code"], "method_not_allowed");
    assert_eq!(line["principal"], "anonymous");
    assert!(line["duration_ms"].is_u64(), "{line}");
}
