//! Conventions every endpoint follows (SPEC §1): the error envelope, request ids, body
//! limits, JSON validation, and one structured log line per request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Case;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(conventions:
        unknown_path_is_404_in_the_envelope,
        wrong_method_is_405_with_allow,
        a_method_the_runtime_does_not_know_is_405_and_never_runs_a_get,
        head_is_served_by_get,
        request_id_is_echoed_when_sane_and_made_otherwise,
        oversized_body_is_413,
        webhook_paths_accept_larger_bodies,
        malformed_json_is_400_naming_where_it_broke,
        invalid_utf8_in_json_is_400,
        each_request_writes_one_json_log_line,
    )
}

/// Run alone, first in the serial phase: a big upload the worker refuses while it streams.
pub fn serial_first_cases() -> Vec<Case> {
    crate::cases!(conventions: a_chunked_5_mib_body_is_413_and_the_worker_keeps_serving)
}

/// Run alone, last: it leaves a request mid-body, which wrangler dev's proxy takes badly.
pub fn serial_last_cases() -> Vec<Case> {
    crate::cases!(conventions: a_chunked_body_is_refused_as_soon_as_it_passes_the_limit)
}

fn unknown_path_is_404_in_the_envelope(world: &World) {
    let reply = world
        .call("GET", "/does-not-exist")
        .without_request_id()
        .send();
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

/// Found by the contract fuzzing: `worker::Method` reads a method it does not know (`QUERY`,
/// `PROPFIND`) as GET, so `QUERY /api/user/api-key` would have created a key. Only a
/// request whose own method is GET runs a GET handler.
fn a_method_the_runtime_does_not_know_is_405_and_never_runs_a_get(world: &World) {
    let token = world.hmac_token(&unique("method-"));
    let profile = world.authed("GET", "/api/user/profile", &token).send();
    assert_eq!(profile.status, 200, "{}", profile.body);
    let user_id = profile.json()["id"].as_str().unwrap().to_owned();
    let before = world.snapshot(&Rows::of_user(&user_id, &["api_keys"]));
    for method in ["QUERY", "PROPFIND"] {
        let reply = world.authed(method, "/api/user/api-key", &token).send();
        reply.assert_error(405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("GET"), "{method}");
    }
    before.assert_unchanged(world);
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

/// Opens `POST path` with a chunked body (no `Content-Length`) and sends `chunks` chunks
/// of 64 KiB of JSON whitespace; with `finish` the body is then ended, otherwise the
/// connection stays open mid-body. Returns the response's status line and the rest.
fn post_chunked(
    world: &World,
    path: &str,
    request_id: &str,
    token: &str,
    chunks: usize,
    finish: bool,
) -> String {
    let mut stream = TcpStream::connect(world.address()).expect("connect to the worker");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         X-Request-Id: {request_id}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
        world.address()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..chunks {
        let sent = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|()| stream.write_all(&chunk))
            .and_then(|()| stream.write_all(b"\r\n"));
        if sent.is_err() {
            // The worker answered and stopped reading: what it said is below.
            break;
        }
    }
    if finish {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the worker closes, or until the status line and body are in.
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if text.contains("payload_too_large") || text.contains("restarted mid-request") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A body sent without `Content-Length` is read in chunks and refused as soon as it passes
/// the limit: the answer comes while the client is still mid-body (a worker that buffered
/// the whole body first would still be waiting for the rest).
fn a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(world: &World) {
    let uid = unique("chunk_stall_");
    let token = world.hmac_token(&uid);
    let users = Rows::new().where_eq("users", "external_id", &uid);
    let before = world.snapshot(&users);
    assert_refused_as_too_large(world, "chunk-stall-", &token, 3, false);
    // No handler ran: not even authentication's user row appeared.
    before.assert_unchanged(world);
    assert_eq!(world.count(&users), 0, "no handler ran");
}

/// A 5 MiB chunked body without `Content-Length` is `413`, nothing is stored, and the
/// worker goes on serving.
fn a_chunked_5_mib_body_is_413_and_the_worker_keeps_serving(world: &World) {
    let uid = unique("chunk_big_");
    let token = world.hmac_token(&uid);
    let users = Rows::new().where_eq("users", "external_id", &uid);
    let before = world.snapshot(&users);
    assert_refused_as_too_large(world, "chunk-big-", &token, 80, true);
    // No handler ran: not even authentication's user row appeared.
    before.assert_unchanged(world);
    assert_eq!(world.count(&users), 0, "no handler ran");
    let ping = world.get("/api/health/ping");
    assert_eq!(ping.status, 200, "{}", ping.body);
}

/// Sends a chunked `POST /api/usage/report` (see `post_chunked`) and asserts the worker
/// answered it `413 payload_too_large`.
///
/// Under `wrangler dev` the client may not see that 413: the dev server's proxy, still
/// streaming the upload when the worker answers, can fail the exchange and answer its own
/// 503 "worker restarted mid-request", or reset the connection after the status line
/// (Cloudflare's edge has no such proxy). Then the worker's answer is read where it is
/// certain, its log line for the request id, and the upload is tried again (up to five
/// times) if the proxy dropped it before the worker saw it.
fn assert_refused_as_too_large(
    world: &World,
    id_prefix: &str,
    token: &str,
    chunks: usize,
    finish: bool,
) {
    let mut tries = Vec::new();
    let refused = (0..5).any(|_| {
        let request_id = unique(id_prefix);
        let answer = post_chunked(
            world,
            "/api/usage/report",
            &request_id,
            token,
            chunks,
            finish,
        );
        if answer.starts_with("HTTP/1.1 413") && answer.contains("payload_too_large") {
            return true;
        }
        let proxy_gave_up =
            answer.starts_with("HTTP/1.1 503") && answer.contains("restarted mid-request");
        assert!(
            proxy_gave_up || answer.starts_with("HTTP/1.1 413"),
            "answer: {answer:.300}"
        );
        let logged = worker_answer(world, &request_id);
        tries.push(logged.clone());
        logged.is_some_and(|line| {
            line.contains("\"status\":413") && line.contains("payload_too_large")
        })
    });
    assert!(
        refused,
        "the worker answered 413 to one of the tries: {tries:?}"
    );
}

/// The worker's log line for `request_id`, waiting a little for it to be written.
fn worker_answer(world: &World, request_id: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let log = world.worker_log();
        let line = log
            .lines()
            .find(|line| line.contains(request_id) && line.contains("\"msg\":\"request\""))
            .map(str::to_owned);
        if line.is_some() || Instant::now() >= deadline {
            return line;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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
