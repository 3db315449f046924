//! Meter tables keyed by subject (`schema/0009_meter_subjects.sql`): a subject is the pair
//! (`subject_kind`, `subject_id`), so rows of another kind sit beside a user's without ever
//! being counted as theirs, and the migration carried every user's rows over unchanged.
//!
//! Honest scope: nothing in the worker meters a non-user subject yet (that comes with the
//! platforms issue: a platform's end users, then an org's sites), so these cases write the
//! other kind's rows straight into D1, the way those flows will find them, and show that a
//! user's reservations, reports and quota neither see nor touch them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::Case;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(subjects:
        another_kinds_rows_under_the_users_own_id_are_not_the_users,
        the_migration_carries_every_users_meter_rows_over,
    )
}

/// A fresh free-plan user: (HMAC token, Tollgate user id).
fn free_user(world: &World) -> (String, String) {
    let token = world.hmac_token(&unique("subject-"));
    let profile = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    (token, profile["id"].as_str().unwrap().to_owned())
}

fn another_kinds_rows_under_the_users_own_id_are_not_the_users(world: &World) {
    let (token, user_id) = free_user(world);
    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    let period = quota["period"]["key"].as_str().unwrap().to_owned();
    let limit = quota["tokens"]["limit"].as_u64().unwrap();
    let key = unique("shared-key-");
    let site = unique("site_");
    // The hardest case for the keys: an end user whose id is the user's very id, with a
    // counter far past the user's limit, an open reservation and a record under the key the
    // user is about to report with; and a site of its own beside them.
    world.d1_query(&format!(
        "INSERT INTO meter_counters (subject_kind, subject_id, meter, period, used, reserved, \
             updated_at) \
         VALUES ('end_user', '{user_id}', 'tokens', '{period}', {over}, 7, \
                 '2026-01-01T00:00:00Z'), \
                ('site', '{site}', 'tokens', '{period}', 42, 0, '2026-01-01T00:00:00Z'); \
         INSERT INTO usage_reservations (id, subject_kind, subject_id, meter, period, amount, \
             request_id, status, expires_at_ms, used_after, reserved_after, created_at) \
         VALUES ('{rsv}', 'end_user', '{user_id}', 'tokens', '{period}', 7, '{key}', \
                 'reserved', 9999999999999, {over}, 7, '2026-01-01T00:00:00Z'); \
         INSERT INTO usage_records (id, subject_kind, subject_id, meter, period, request_id, \
             provider, model, input_tokens, output_tokens, total_tokens, created_at) \
         VALUES ('{rec}', 'end_user', '{user_id}', 'tokens', '{period}', '{key}', 'openai', \
                 'gpt-4o-mini', 1, 1, 2, '2026-01-01T00:00:00Z')",
        over = limit * 2,
        rsv = unique("rsv_other"),
        rec = unique("use_other"),
    ));
    let others = Rows::new()
        .where_eq("meter_counters", "subject_kind", "end_user")
        .where_eq("meter_counters", "subject_id", &site)
        .where_eq("usage_reservations", "subject_kind", "end_user")
        .where_eq("usage_records", "subject_kind", "end_user");
    let before = world.snapshot(&others);
    assert_eq!(
        other_kinds_rows(world, &user_id),
        3,
        "the other kind's rows are there"
    );

    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    assert_eq!(quota["tokens"]["used"], 0, "{quota}");
    assert_eq!(quota["tokens"]["reserved"], 0, "{quota}");
    // The same key is the user's own: reserved (not replayed), then reported (not replayed).
    let reserved = world
        .authed("POST", "/api/usage/reserve", &token)
        .json(&json!({ "estimate_tokens": limit, "request_id": key }));
    assert_eq!(
        reserved.status, 201,
        "the whole limit fits: {}",
        reserved.body
    );
    assert_eq!(reserved.header("idempotent-replayed"), None);
    let reservation = reserved.json()["reservation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reported = world.authed("POST", "/api/usage/report", &token).json(
        &json!({ "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 100,
                       "output_tokens": 23, "request_id": key,
                       "reservation_id": reservation }),
    );
    assert_eq!(reported.status, 200, "{}", reported.body);
    assert_eq!(reported.header("idempotent-replayed"), None);
    let answer = reported.json();
    assert_eq!(answer["reservation"]["status"], "settled", "{answer}");
    assert_eq!(answer["quota"]["tokens"]["used"], 123, "{answer}");
    assert_eq!(answer["quota"]["tokens"]["reserved"], 0, "{answer}");
    let quota = world
        .authed("GET", "/api/usage/quota", &token)
        .send()
        .json();
    assert_eq!(quota["tokens"]["used"], 123, "{quota}");
    let history = world
        .authed("GET", "/api/usage/history", &token)
        .send()
        .json();
    assert_eq!(history["data"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["data"][0]["total_tokens"], 123, "{history}");

    // The user's rows are the user's kind, and the other kind's are as they were.
    for table in ["meter_counters", "usage_reservations", "usage_records"] {
        assert_eq!(
            world.count(&Rows::of_user(&user_id, &[table])),
            1,
            "one row of the user's own in {table}"
        );
    }
    before.assert_unchanged(world);
}

/// Rows of the end-user kind under `subject_id`.
fn other_kinds_rows(world: &World, subject_id: &str) -> usize {
    ["meter_counters", "usage_reservations", "usage_records"]
        .iter()
        .map(|table| {
            world.count(
                &Rows::new()
                    .where_eq(table, "subject_id", subject_id)
                    .and_eq("subject_kind", "end_user"),
            )
        })
        .sum()
}

/// `wrangler d1 execute` on a scratch local database of its own (not the running worker's).
fn execute(root: &Path, state: &Path, what: &[&str]) -> String {
    let out = Command::new(root.join("node_modules/.bin/wrangler"))
        .current_dir(root)
        .envs([
            ("WRANGLER_SEND_METRICS", "false"),
            ("CI", "true"),
            ("NO_COLOR", "1"),
        ])
        .stdin(Stdio::null())
        .args(["d1", "execute", "DB", "--local", "-c", "wrangler.dev.toml"])
        .arg("--persist-to")
        .arg(state)
        .args(what)
        .output()
        .expect("run wrangler d1 execute");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "d1 execute {what:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A user's meter rows as 0003 stored them, on a scratch database migrated up to 0008; then
/// 0009; every row is there, the user's kind, with the same values.
fn the_migration_carries_every_users_meter_rows_over(_world: &World) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let run = root
        .join("target")
        .join("e2e")
        .join(format!("subjects-migration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run).unwrap();
    let state = run.join("state");
    let mut before = String::new();
    let mut migrations: Vec<PathBuf> = std::fs::read_dir(root.join("schema"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    migrations.sort();
    let (earlier, rest): (Vec<_>, Vec<_>) = migrations
        .into_iter()
        .partition(|path| path.file_name().unwrap().to_str().unwrap() < "0009");
    assert_eq!(
        rest.first().and_then(|p| p.file_name()).unwrap(),
        "0009_meter_subjects.sql"
    );
    for path in &earlier {
        before.push_str(&std::fs::read_to_string(path).unwrap());
        before.push('\n');
    }
    before.push_str(
        "INSERT INTO users (id, auth_source, external_id, created_at, updated_at) VALUES \
             ('usr_a', 'clerk', 'a', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'), \
             ('usr_b', 'hmac', 'b', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');\n\
         INSERT INTO meter_counters VALUES \
             ('usr_a', 'tokens', '2026-11', 600, 400, '2026-11-02T00:00:00Z'), \
             ('usr_b', 'tokens', '2026-10', 5, 0, '2026-10-03T00:00:00Z');\n\
         INSERT INTO usage_reservations (id, user_id, meter, period, amount, provider, model, \
             request_id, status, expires_at_ms, used_after, reserved_after, created_at, \
             settled_at) VALUES \
             ('rsv_1', 'usr_a', 'tokens', '2026-11', 400, 'openai', 'm', 'k1', 'reserved', \
              1800000000000, 600, 400, '2026-11-02T00:00:00Z', NULL), \
             ('rsv_2', 'usr_a', 'tokens', '2026-11', 10, NULL, NULL, NULL, 'settled', \
              1800000000000, 0, 10, '2026-11-01T00:00:00Z', '2026-11-01T00:01:00Z');\n\
         INSERT INTO usage_records (id, user_id, meter, period, request_id, provider, model, \
             device_id, input_tokens, output_tokens, total_tokens, reservation_id, \
             reservation_status, released_tokens, used_after, reserved_after, limit_at, \
             created_at) VALUES \
             ('use_1', 'usr_a', 'tokens', '2026-11', 'k0', 'openai', 'm', 'chrome-1', 500, \
              100, 600, 'rsv_2', 'settled', 0, 600, 400, 1000000, '2026-11-02T00:00:00Z'), \
             ('use_2', 'usr_b', 'tokens', '2026-10', 'k0', 'openai', 'm', NULL, 2, 3, 5, \
              NULL, NULL, 0, NULL, NULL, NULL, '2026-10-03T00:00:00Z');\n",
    );
    let before_file = run.join("before.sql");
    std::fs::write(&before_file, before).unwrap();
    execute(&root, &state, &["--file", before_file.to_str().unwrap()]);
    let read = |sql: &str| -> Vec<Value> {
        let out = execute(&root, &state, &["--json", "--command", sql]);
        let parsed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        parsed[0]["results"].as_array().unwrap().clone()
    };
    let tables = ["meter_counters", "usage_reservations", "usage_records"];
    let old: Vec<Vec<Value>> = tables
        .iter()
        .map(|t| read(&format!("SELECT * FROM {t} ORDER BY 1, 2")))
        .collect();
    assert_eq!(old.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2]);

    execute(&root, &state, &["--file", rest[0].to_str().unwrap()]);

    for (table, old_rows) in tables.iter().zip(&old) {
        let new_rows = read(&format!("SELECT * FROM {table} ORDER BY rowid"));
        assert_eq!(new_rows.len(), old_rows.len(), "{table}: every row carried");
        for old_row in old_rows {
            let mut expected = old_row.as_object().unwrap().clone();
            let user_id = expected.remove("user_id").unwrap();
            expected.insert("subject_kind".into(), json!("user"));
            expected.insert("subject_id".into(), user_id);
            assert!(
                new_rows.contains(&Value::Object(expected.clone())),
                "{table}: {expected:?} not among {new_rows:#?}"
            );
        }
    }
    // The indexes are 0003's with the subject in front, and a request id is unique per
    // subject: the user's own again is ignored, another kind's under the same id is not.
    let indexes = read(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' \
         AND tbl_name IN ('meter_counters', 'usage_reservations', 'usage_records') \
         ORDER BY name",
    );
    assert_eq!(
        indexes,
        [
            json!({ "name": "usage_records_by_subject_time" }),
            json!({ "name": "usage_reservations_open" })
        ]
    );
    let ignored = read(
        "INSERT OR IGNORE INTO usage_records (id, subject_kind, subject_id, meter, period, \
             request_id, provider, model, input_tokens, output_tokens, total_tokens, created_at) \
         VALUES ('use_3', 'user', 'usr_a', 'tokens', '2026-11', 'k0', 'p', 'm', 1, 1, 2, 't'), \
                ('use_4', 'site', 'usr_a', 'tokens', '2026-11', 'k0', 'p', 'm', 1, 1, 2, 't') \
         RETURNING id",
    );
    assert_eq!(
        ignored,
        [json!({ "id": "use_4" })],
        "(kind, id, request id) is unique"
    );
    let _ = std::fs::remove_dir_all(&run);
}
