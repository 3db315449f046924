//! The API contract, checked from outside (`GET /openapi.json`): the document is valid
//! OpenAPI 3.1, and schemathesis, fuzzing every operation it documents against the running
//! worker, finds no 5xx, no status code the document does not list for the operation, no
//! undocumented content type and no body that breaks its documented schema, once with a
//! session token and once with an API key.
//!
//! The tools are Python (tests/contract/requirements.txt, pinned), installed by
//! `scripts/setup` into `target/venv`. The fuzzing runs are in the serial phase: they flood
//! the worker, which the timing-sensitive cases must not share it with.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate::identity::rules::scopes::Scope;

use super::Case;
use crate::harness::identity::{unique, ADMIN_HMAC_UID};
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(contract: openapi_json_is_a_valid_openapi_3_1_document)
}

/// The fuzzing runs: alone, after every other case but the one that must go last.
pub fn serial_cases() -> Vec<Case> {
    crate::cases!(contract:
        schemathesis_finds_no_server_error_or_schema_violation_with_a_token,
        schemathesis_finds_no_server_error_or_schema_violation_with_an_api_key,
        schemathesis_finds_no_server_error_or_schema_violation_with_a_platform_key,
    )
}

const OPENAPI: &str = "/openapi.json";

/// What every response is checked for (schemathesis's names).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";

/// Test cases per operation and phase; the time budget below is what bounds a run.
const MAX_EXAMPLES: u32 = 25;

/// Each run's time budget, in seconds. Schemathesis spends all of it: examples and coverage
/// go once, then fuzzing and stateful testing repeat until it is up. Two runs stay within
/// about four minutes.
const MAX_TIME_SECS: u64 = 100;

/// When a run that has not finished is killed: its budget, plus loading the schema and
/// writing the report.
const HARD_LIMIT: Duration = Duration::from_secs(MAX_TIME_SECS + 80);

/// The same cases on every run (with the same document and the same worker answers).
const SEED: &str = "20261127";

/// The plan the fuzzed users are on: no rate limit, no monthly cap, no API key limit, so the
/// requests reach the handlers instead of stopping at 429 from the first minute on.
const UNLIMITED_PLAN: &str = "enterprise";

fn openapi_json_is_a_valid_openapi_3_1_document(world: &World) {
    let (document, path) = fetch_openapi(world, "validate");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3.1"),
        "`openapi` must be 3.1.x, is {:?}",
        document["openapi"]
    );
    let mut validator = Command::new(venv_tool("openapi-spec-validator"));
    validator
        .args(["--schema", "3.1", "--validation-errors", "all"])
        .arg(&path);
    let (status, output) = run_bounded(&mut validator, Duration::from_secs(60));
    assert!(
        status.success(),
        "openapi-spec-validator refused {OPENAPI} ({status}):\n{output}"
    );
    println!("    {}", output.trim());
}

fn schemathesis_finds_no_server_error_or_schema_violation_with_a_token(world: &World) {
    // A fresh user with a session token: every route a signed-in user may call. Admin
    // routes answer it 403 (the key run below covers them with an admin's key).
    let token = world.hmac_token(&unique("contract-token-"));
    lift_limits(world, &token);
    fuzz(world, "token", &token, &[]);
}

fn schemathesis_finds_no_server_error_or_schema_violation_with_an_api_key(world: &World) {
    // A key holding every scope there is, so every scoped route is open to it; only an
    // admin may hold `admin`, so its owner is the HMAC admin. Routes that need a session
    // answer a key 403, which the document must list.
    let owner = world.hmac_token(ADMIN_HMAC_UID);
    lift_limits(world, &owner);
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let reply = world
        .authed("POST", "/api/user/api-keys", &owner)
        .json(&json!({ "name": "contract", "scopes": scopes }));
    assert_eq!(reply.status, 201, "create the key: {}", reply.body);
    let key = reply.json()["api_key"].clone();
    assert_eq!(key["scopes"], json!(scopes), "{key}");
    fuzz(
        world,
        "api-key",
        key["key"].as_str().expect("plaintext key"),
        &[],
    );
}

fn schemathesis_finds_no_server_error_or_schema_violation_with_a_platform_key(world: &World) {
    // A registered platform's key: the platform routes, and the end-user routes with the
    // `X-User-Id` the fuzzer generates; every user route answers it 401.
    let reply = world
        .call("POST", "/api/developer/register")
        .header("CF-Connecting-IP", &unique("10.200."))
        .json(&json!({ "email": format!("{}@example.com", unique("contract-")) }));
    assert_eq!(reply.status, 201, "register: {}", reply.body);
    let key = reply.json()["api_key"]
        .as_str()
        .expect("the key")
        .to_owned();
    // And a site key, sent along as `X-Site-Key` (every other route ignores it), of a site
    // that takes server calls (the fuzzer sends no Origin): the site-key routes answer it.
    let slug = unique("contract");
    let site_key = tollgate::sites::rules::generate_key(&slug, tollgate::sites::rules::Env::Live);
    world.d1_query_all(&format!(
        "INSERT INTO orgs (id, name, slug, plan, status, created_at, updated_at) \
             VALUES ('org_{slug}', 'Contract', '{slug}', 'basic', 'active', \
                     '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z'); \
         INSERT INTO sites (id, org_id, name, type, status, site_key, env, allow_server_calls, \
                            created_at, updated_at) \
             VALUES ('site_{slug}', 'org_{slug}', 'Contract', 'chatbot', 'active', '{site_key}', \
                     'live', 1, '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z')"
    ));
    fuzz(
        world,
        "platform-key",
        &key,
        &[format!("X-Site-Key: {site_key}")],
    );
}

/// Moves the credential's user to the unlimited plan (as an operator would, in D1).
fn lift_limits(world: &World, credential: &str) {
    let reply = world.authed("GET", "/api/user/profile", credential).send();
    assert_eq!(reply.status, 200, "profile: {}", reply.body);
    let id = reply.json()["id"].as_str().expect("user id").to_owned();
    world.d1_query(&format!(
        "UPDATE users SET plan = '{UNLIMITED_PLAN}' WHERE id = '{id}'"
    ));
    let reply = world.authed("GET", "/api/usage/quota", credential).send();
    assert_eq!(reply.status, 200, "quota: {}", reply.body);
    assert_eq!(reply.json()["plan"], UNLIMITED_PLAN, "{}", reply.body);
}

/// Runs schemathesis over every operation of the worker's document with `credential` as
/// the bearer (and `headers`, `Name: value`, on every request); panics with its report
/// unless it found nothing.
fn fuzz(world: &World, label: &str, credential: &str, headers: &[String]) {
    let dir = work_dir(label);
    let base = format!("http://{}", world.address());
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/contract/schemathesis.toml"
    );
    let args: Vec<String> = [
        // Its one per-operation exception, and why, are in the file.
        "--config-file",
        config,
        "run",
        &format!("{base}{OPENAPI}"),
        // The worker itself, whatever `servers` the document names.
        "--url",
        &base,
        "--checks",
        CHECKS,
        "--max-examples",
        &MAX_EXAMPLES.to_string(),
        "--max-time",
        &MAX_TIME_SECS.to_string(),
        "--seed",
        SEED,
        // One request at a time: two cores serve the worker, wrangler and this run.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        // The credential is given; generating values for the security scheme would only
        // replace it with junk and turn every case into a 401.
        "--generation-with-security-parameters",
        "false",
        // No example database: the seed alone decides the cases.
        "--generation-database",
        "none",
        // Reproductions with the values sent: sanitizing hides every field named like a
        // secret, `input_tokens` included. The credential is masked below instead.
        "--output-sanitize",
        "false",
        "--no-color",
        "--header",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("Authorization: Bearer {credential}")])
    .chain(
        headers
            .iter()
            .flat_map(|h| ["--header".to_owned(), h.clone()]),
    )
    .collect();
    let shown = args
        .iter()
        .map(|a| a.replace(credential, "<credential>"))
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ");

    let mut st = Command::new(venv_tool("st"));
    st.args(&args).current_dir(&dir).env("NO_COLOR", "1");
    let started = Instant::now();
    let (status, report) = run_bounded(&mut st, HARD_LIMIT);
    let took = started.elapsed();
    let report = report.replace(credential, "<credential>");
    println!(
        "    st {shown}\n    ({label}, {:.0?}): {}",
        took,
        summary(&report)
    );
    assert!(
        status.success(),
        "schemathesis ({label}) found problems ({status}, after {took:.0?})\n\
         command: st {shown}\n\
         ---- schemathesis report ----\n{report}"
    );
}

/// Schemathesis's closing lines: the summary section (operations, checks, outcome).
fn summary(report: &str) -> String {
    let lines: Vec<&str> = report.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains("SUMMARY"))
        .unwrap_or(lines.len().saturating_sub(12));
    lines[start..]
        .iter()
        .map(|l| l.trim_end())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// `GET /openapi.json`, checked for a JSON object, saved for the tools; the document and
/// where it was saved.
fn fetch_openapi(world: &World, label: &str) -> (Value, PathBuf) {
    let reply = world.get(OPENAPI);
    assert_eq!(reply.status, 200, "GET {OPENAPI}: {}", reply.body);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let document = reply.json();
    assert!(document.is_object(), "{OPENAPI} is not an object");
    let path = work_dir(label).join("openapi.json");
    std::fs::write(&path, &reply.body).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    (document, path)
}

/// A directory of this run's own under target/e2e, for saved documents and whatever the
/// tools write in their working directory.
fn work_dir(label: &str) -> PathBuf {
    let dir = root()
        .join("target/e2e")
        .join(format!("contract-{}", std::process::id()))
        .join(label);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
    dir
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from the contract tests' virtual environment.
fn venv_tool(name: &str) -> PathBuf {
    let path = root().join("target/venv/bin").join(name);
    assert!(
        path.is_file(),
        "{path:?} is missing: run scripts/setup (it installs tests/contract/requirements.txt)"
    );
    path
}

/// Runs `command` to completion, or kills it after `limit`; its exit status and its
/// stdout followed by its stderr.
fn run_bounded(command: &mut Command, limit: Duration) -> (ExitStatus, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait for the tool") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => break None,
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let Some(status) = status else {
        // Our own child, by its handle.
        let _ = child.kill();
        let _ = child.wait();
        let output = stdout.join().unwrap_or_default() + &stderr.join().unwrap_or_default();
        panic!("{command:?} was still running after {limit:?}; killed. Output so far:\n{output}");
    };
    let mut output = stdout.join().unwrap_or_default();
    let errors = stderr.join().unwrap_or_default();
    if !errors.trim().is_empty() {
        output.push_str("\n---- stderr ----\n");
        output.push_str(&errors);
    }
    (status, output)
}
