//! Provider keys through the real worker: Puku's `POST /api/key` against the fake OpenRouter
//! (every branch of the seed's flow, with the fake's state and D1 checked after each), its
//! failure safety, the admin API, Sokuji's key pool, and the scheduled sweep.
//!
//! Cases run in parallel against one fake OpenRouter: each works on users of its own, finds
//! their keys by the user id in the key's name, and injects faults only into requests that
//! name its own user or key ([`FakeOpenRouter::fail_next`]).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api_keys::all_at_once;
use super::Case;
use crate::fakes::{Call, FakeKey, Fault};
use crate::harness::identity::{clerk_user_event, now, unique, ADMIN_CLERK_ID};
use crate::harness::snapshot::Rows;
use crate::harness::{
    World, KEY_ENCRYPTION_KEY, OPENROUTER_TIMEOUT_MS, PREVIOUS_KEY_ENCRYPTION_KEY,
};
use tollgate::core::sealed::Keyring;

pub fn cases() -> Vec<Case> {
    crate::cases!(provider_keys:
        a_new_user_gets_a_one_dollar_key_and_ten_credits_sealed_at_rest,
        normal_use_deducts_exactly_the_usage_delta,
        a_key_with_half_a_dollar_left_is_rotated_and_the_old_one_deleted,
        credits_at_or_below_a_tenth_reset_the_user,
        a_failed_create_keeps_the_key_and_deducts_nothing,
        an_openrouter_timeout_is_a_502_within_the_timeout,
        twenty_concurrent_requests_for_a_new_user_make_one_key_and_one_grant,
        admin_endpoints_refuse_non_admins,
        admins_list_users_adjust_credits_and_rotate_keys,
        the_key_pool_hands_each_user_a_live_key_of_their_tier,
        a_settlement_whose_lock_was_lost_applies_nothing,
        keys_are_created_with_a_daily_limit_reset,
    )
}

/// Cases that fire the scheduled run (it empties the deletion queue other cases inspect), and
/// cases whose requests must overlap: in the parallel phase another case's D1 read waiting
/// for the storage gate holds back a second request until the first has finished.
pub fn serial_cases() -> Vec<Case> {
    crate::cases!(provider_keys:
        the_scheduled_sweep_deletes_keys_left_behind_and_renews_old_seals,
        a_key_created_while_its_user_is_deleted_is_queued_for_deletion,
        a_key_made_by_a_timed_out_create_is_found_by_name_and_deleted,
    )
}

const KEY: &str = "/api/key";

/// A new HMAC user (Puku's clients use HMAC tokens): their token and their Tollgate id.
fn new_user(world: &World) -> (String, String) {
    let token = world.hmac_token(&unique("puku_"));
    let reply = world.authed("GET", "/api/user/profile", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    (token, id)
}

/// `POST /api/key`, which must answer 200; its body.
fn post_key(world: &World, token: &str) -> Value {
    let reply = world.authed("POST", KEY, token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.json()
}

/// Every key the fake made for this user, oldest first.
fn fake_keys(world: &World, user_id: &str) -> Vec<FakeKey> {
    world.fakes.openrouter.keys_named(user_id)
}

/// The deletion queued for the OpenRouter key `hash`, if any.
fn queued_deletion(hash: &str) -> Rows {
    Rows::new().where_eq("provider_key_deletions", "key_hash", hash)
}

/// The user's credit account row.
fn account(world: &World, user_id: &str) -> Value {
    world
        .rows(&Rows::new().where_eq("credit_accounts", "user_id", user_id))
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

/// The user's ledger as `(kind, amount)`, oldest first.
fn ledger(world: &World, user_id: &str) -> Vec<(String, i64)> {
    // Read in rowid order; a stable sort by time keeps that order within one instant.
    let mut rows = world.rows(&Rows::new().where_eq("credit_ledger", "user_id", user_id));
    rows.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
    rows.iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn approx(value: &Value, expected: f64) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"));
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
}

fn a_new_user_gets_a_one_dollar_key_and_ten_credits_sealed_at_rest(world: &World) {
    let (token, user_id) = new_user(world);
    let first = post_key(world, &token);
    assert_eq!(first["action"], "created", "{first}");
    approx(&first["credits"], 10.0);
    approx(&first["initial_credits"], 10.0);
    approx(&first["key_limit"], 1.0);
    approx(&first["key_remaining"], 1.0);
    let key = first["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-or-v1-"), "{key}");

    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 1, "one key at OpenRouter");
    assert_eq!(made[0].key, key);
    assert_eq!(made[0].limit, Some(1.0));
    assert!(!made[0].include_byok_in_limit);
    assert!(!made[0].deleted && !made[0].disabled);
    assert_eq!(first["key_hash"], made[0].hash.as_str());

    // D1 holds the key sealed, never in plaintext, in any column.
    let row = account(world, &user_id);
    assert_eq!(row["credits"], 10_000_000);
    assert_eq!(row["key_limit"], 1_000_000);
    assert_eq!(row["key_hash"], made[0].hash.as_str());
    let sealed = row["key_sealed"].as_str().unwrap();
    assert!(sealed.starts_with("v1."), "{sealed}");
    let secret_part = key.trim_start_matches("sk-or-v1-");
    let whole_row = row.to_string();
    assert!(
        !whole_row.contains(secret_part),
        "plaintext in D1: {whole_row}"
    );
    assert!(!whole_row.contains(KEY_ENCRYPTION_KEY));
    assert!(row["key_label"].as_str().unwrap().contains("****"));
    assert_eq!(ledger(world, &user_id), [("grant".to_owned(), 10_000_000)]);

    // Asked again with nothing spent: the same key, nothing deducted, nothing created.
    let again = post_key(world, &token);
    assert_eq!(again["action"], "unchanged");
    assert_eq!(again["key"], key.as_str());
    approx(&again["credits"], 10.0);
    assert_eq!(fake_keys(world, &user_id).len(), 1);
    assert_eq!(ledger(world, &user_id).len(), 1);

    // No credential, a bad one: 401 and nothing made.
    world
        .call("POST", KEY)
        .send()
        .assert_error(401, "unauthorized");
    world
        .authed("POST", KEY, "invalid")
        .send()
        .assert_error(401, "unauthorized");
}

fn normal_use_deducts_exactly_the_usage_delta(world: &World) {
    let (token, user_id) = new_user(world);
    let key = post_key(world, &token)["key"].clone();
    let hash = fake_keys(world, &user_id)[0].hash.clone();

    world.fakes.openrouter.set_usage(&hash, 0.2);
    let after = post_key(world, &token);
    assert_eq!(after["action"], "unchanged");
    assert_eq!(after["key"], key);
    approx(&after["credits"], 9.8);
    approx(&after["key_usage"], 0.2);
    approx(&after["key_remaining"], 0.8);

    world.fakes.openrouter.set_usage(&hash, 0.45);
    let after = post_key(world, &token);
    approx(&after["credits"], 9.55);
    // Looking again without new spend deducts nothing more.
    approx(&post_key(world, &token)["credits"], 9.55);

    let row = account(world, &user_id);
    assert_eq!(row["credits"], 9_550_000);
    assert_eq!(row["key_usage"], 450_000);
    assert_eq!(
        ledger(world, &user_id),
        [
            ("grant".to_owned(), 10_000_000),
            ("usage".to_owned(), -200_000),
            ("usage".to_owned(), -250_000)
        ]
    );
    assert_eq!(fake_keys(world, &user_id).len(), 1, "no rotation");
}

fn a_key_with_half_a_dollar_left_is_rotated_and_the_old_one_deleted(world: &World) {
    let (token, user_id) = new_user(world);
    let old_key = post_key(world, &token)["key"].clone();
    let old_hash = fake_keys(world, &user_id)[0].hash.clone();

    // 0.49 spent leaves 0.51: kept.
    world.fakes.openrouter.set_usage(&old_hash, 0.49);
    let kept = post_key(world, &token);
    assert_eq!(kept["action"], "unchanged");
    // 0.5 spent leaves 0.5: rotated, and only the new spend (0.01) deducted.
    world.fakes.openrouter.set_usage(&old_hash, 0.5);
    let rotated = post_key(world, &token);
    assert_eq!(rotated["action"], "rotated", "{rotated}");
    assert_ne!(rotated["key"], old_key);
    approx(&rotated["credits"], 9.5);
    approx(&rotated["key_remaining"], 1.0);
    assert_eq!(rotated["rotations"], 1);

    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 2);
    assert!(made[0].deleted, "the old key is deleted at OpenRouter");
    assert!(!made[1].deleted);
    assert_eq!(rotated["key"], made[1].key.as_str());
    assert_eq!(made[1].limit, Some(1.0));

    let row = account(world, &user_id);
    assert_eq!(row["key_hash"], made[1].hash.as_str());
    assert_eq!(row["credits"], 9_500_000);
    assert_eq!(row["key_usage"], 0);
    let pending = world.count(&queued_deletion(&old_hash));
    assert_eq!(
        pending, 0,
        "a deletion that succeeded leaves nothing queued"
    );

    // The new key is what the user gets from now on.
    assert_eq!(post_key(world, &token)["key"], rotated["key"]);
}

fn admin_token(world: &World) -> String {
    world.clerk_token(ADMIN_CLERK_ID)
}

fn adjust(world: &World, user_id: &str, body: &Value) -> crate::harness::Reply {
    world
        .authed(
            "POST",
            &format!("/api/admin/users/{user_id}/credits"),
            &admin_token(world),
        )
        .json(body)
}

fn credits_at_or_below_a_tenth_reset_the_user(world: &World) {
    let (token, user_id) = new_user(world);
    post_key(world, &token);
    let old_hash = fake_keys(world, &user_id)[0].hash.clone();
    // 0.3 spent, then an admin takes 9.6: 0.1 left, which is at the threshold.
    world.fakes.openrouter.set_usage(&old_hash, 0.3);
    approx(&post_key(world, &token)["credits"], 9.7);
    let reply = adjust(
        world,
        &user_id,
        &json!({ "amount": -9.6, "reason": "test drain" }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    approx(&reply.json()["adjustment"]["balance_after"], 0.1);

    let reset = post_key(world, &token);
    assert_eq!(reset["action"], "reset", "{reset}");
    approx(&reset["credits"], 10.0);
    assert_eq!(reset["resets"], 1);
    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 2);
    assert!(made[0].deleted, "the old key is deleted");
    assert_eq!(reset["key"], made[1].key.as_str());

    let row = account(world, &user_id);
    assert_eq!(row["credits"], 10_000_000);
    assert_eq!(row["resets"], 1);
    assert_eq!(
        ledger(world, &user_id),
        [
            ("grant".to_owned(), 10_000_000),
            ("usage".to_owned(), -300_000),
            ("adjustment".to_owned(), -9_600_000),
            ("reset".to_owned(), 9_900_000)
        ]
    );
}

fn a_failed_create_keeps_the_key_and_deducts_nothing(world: &World) {
    // A new user whose first key cannot be made: a clean 502, no key, no credits.
    let (token, user_id) = new_user(world);
    let or = &world.fakes.openrouter;
    or.fail_next(Call::Create, &user_id, Fault::Status(500));
    let reply = world.authed("POST", KEY, &token).send();
    let error = reply.assert_error(502, "upstream_error");
    assert!(
        !reply.body.contains("injected"),
        "upstream body leaked: {error}"
    );
    assert!(fake_keys(world, &user_id).is_empty());
    let row = account(world, &user_id);
    assert!(row["key_hash"].is_null(), "{row}");
    assert_eq!(row["credits"], 0);
    assert!(ledger(world, &user_id).is_empty());

    // The retry works.
    let created = post_key(world, &token);
    assert_eq!(created["action"], "created");
    let hash = fake_keys(world, &user_id)[0].hash.clone();

    // A rotation whose new key cannot be made: 502, the old key stays, nothing deducted.
    or.set_usage(&hash, 0.6);
    or.fail_next(Call::Create, &user_id, Fault::Status(503));
    world
        .authed("POST", KEY, &token)
        .send()
        .assert_error(502, "upstream_error");
    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 1, "no new key");
    assert!(
        !made[0].deleted && !made[0].disabled,
        "the current key is kept"
    );
    let row = account(world, &user_id);
    assert_eq!(row["key_hash"], hash.as_str());
    assert_eq!(row["credits"], 10_000_000);
    assert_eq!(row["key_usage"], 0);
    assert!(row["lock_id"].is_null(), "the lock is given back");

    // Once OpenRouter answers, the spend is deducted exactly once.
    let rotated = post_key(world, &token);
    assert_eq!(rotated["action"], "rotated");
    approx(&rotated["credits"], 9.4);
    assert_eq!(
        ledger(world, &user_id),
        [
            ("grant".to_owned(), 10_000_000),
            ("usage".to_owned(), -600_000)
        ]
    );
}

fn an_openrouter_timeout_is_a_502_within_the_timeout(world: &World) {
    let (token, user_id) = new_user(world);
    post_key(world, &token);
    let hash = fake_keys(world, &user_id)[0].hash.clone();
    world.fakes.openrouter.set_usage(&hash, 0.1);
    world
        .fakes
        .openrouter
        .fail_next(Call::Get, &hash, Fault::Delay(Duration::from_secs(6)));
    let started = Instant::now();
    world
        .authed("POST", KEY, &token)
        .send()
        .assert_error(502, "upstream_error");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(OPENROUTER_TIMEOUT_MS)
            && took < Duration::from_millis(OPENROUTER_TIMEOUT_MS + 2500),
        "answered after {took:?}"
    );
    assert_eq!(account(world, &user_id)["credits"], 10_000_000);
    // The lock was given back: the next request goes through at once.
    approx(&post_key(world, &token)["credits"], 9.9);
}

fn twenty_concurrent_requests_for_a_new_user_make_one_key_and_one_grant(world: &World) {
    let (token, user_id) = new_user(world);
    let replies = all_at_once(20, |_| world.authed("POST", KEY, &token).send());
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let keys: Vec<Value> = replies.iter().map(|r| r.json()["key"].clone()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "one key for all");
    let created = replies
        .iter()
        .filter(|r| r.json()["action"] == "created")
        .count();
    assert_eq!(created, 1);
    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 1, "one key at OpenRouter");
    assert_eq!(keys[0], made[0].key.as_str());
    assert_eq!(ledger(world, &user_id), [("grant".to_owned(), 10_000_000)]);
    assert_eq!(account(world, &user_id)["credits"], 10_000_000);

    // Concurrent looks at a key with spend deduct it once.
    world.fakes.openrouter.set_usage(&made[0].hash, 0.3);
    let replies = all_at_once(10, |_| world.authed("POST", KEY, &token).send());
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(account(world, &user_id)["credits"], 9_700_000);
    assert_eq!(
        ledger(world, &user_id),
        [
            ("grant".to_owned(), 10_000_000),
            ("usage".to_owned(), -300_000)
        ]
    );
}

/// Fires the worker's scheduled handler as the cron would.
pub(super) fn run_sweep(world: &World) {
    let reply = world.get("/cdn-cgi/handler/scheduled?cron=*%2F10+*+*+*+*");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn the_scheduled_sweep_deletes_keys_left_behind_and_renews_old_seals(world: &World) {
    let gone = a_deleted_user_leaves_a_queued_key(world);
    let stale = a_pool_key_sealed_under_the_previous_key(world);
    a_failed_delete_is_retried_by_two_sweeps_at_once(world);
    // The same sweeps deleted the deleted user's key and resealed under the current key.
    assert!(world.fakes.openrouter.key(&gone).unwrap().deleted);
    stale.renewed(world);
}

fn a_failed_delete_is_retried_by_two_sweeps_at_once(world: &World) {
    let (token, user_id) = new_user(world);
    post_key(world, &token);
    let old_hash = fake_keys(world, &user_id)[0].hash.clone();
    let or = &world.fakes.openrouter;
    or.set_usage(&old_hash, 0.7);
    or.fail_next(Call::Delete, &old_hash, Fault::Status(500));
    let rotated = post_key(world, &token);
    assert_eq!(rotated["action"], "rotated");

    // The old key could not be deleted: it is disabled and queued.
    let old = or.key(&old_hash).unwrap();
    assert!(!old.deleted && old.disabled, "{old:?}");
    let queued = world.d1_query(&format!(
        "SELECT reason, last_error FROM provider_key_deletions WHERE key_hash = '{old_hash}'"
    ));
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["reason"], "rotated");
    assert!(queued[0]["last_error"].as_str().unwrap().contains("500"));

    // Two sweeps at once: the key is deleted, by one of them.
    let deletes_before = or
        .upstream()
        .count("DELETE", &format!("/api/v1/keys/{old_hash}"));
    std::thread::scope(|s| {
        let a = s.spawn(|| run_sweep(world));
        let b = s.spawn(|| run_sweep(world));
        a.join().unwrap();
        b.join().unwrap();
    });
    assert!(or.key(&old_hash).unwrap().deleted, "the sweep deleted it");
    let deletes = or
        .upstream()
        .count("DELETE", &format!("/api/v1/keys/{old_hash}"));
    assert_eq!(deletes - deletes_before, 1, "deleted once");
    assert_eq!(world.count(&queued_deletion(&old_hash)), 0);
    // The user's current key was never touched.
    let current = or.key(rotated["key_hash"].as_str().unwrap()).unwrap();
    assert!(!current.deleted && !current.disabled);
    assert!(world
        .worker_log_with(&["scheduled sweep"])
        .contains("scheduled sweep"));
}

/// A Clerk user with an OpenRouter key is deleted: their key is queued at once. Returns its
/// hash.
fn a_deleted_user_leaves_a_queued_key(world: &World) -> String {
    let clerk_id = unique("user_gone_");
    let created = clerk_user_event("user.created", &clerk_id, now() * 1000, json!({}));
    assert_eq!(world.clerk_webhook(&unique("msg_"), &created).status, 200);
    let token = world.clerk_token(&clerk_id);
    let reply = world.authed("GET", "/api/user/profile", &token).send();
    let user_id = reply.json()["id"].as_str().unwrap().to_owned();
    post_key(world, &token);
    let hash = fake_keys(world, &user_id)[0].hash.clone();
    let deleted = world.clerk_webhook(
        &unique("msg_"),
        &json!({ "type": "user.deleted", "object": "event",
                 "data": { "deleted": true, "id": clerk_id, "object": "user" } }),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let queued = world.d1_query(&format!(
        "SELECT reason FROM provider_key_deletions WHERE key_hash = '{hash}'"
    ));
    assert_eq!(queued.len(), 1, "queued on deletion");
    assert_eq!(queued[0]["reason"], "user_deleted");
    assert!(
        account(world, &user_id)["key_sealed"].is_null(),
        "forgotten"
    );
    assert!(!world.fakes.openrouter.key(&hash).unwrap().deleted);
    hash
}

/// A pool key whose stored seal was made under the previous encryption key.
struct StaleSeal {
    id: String,
    plain: String,
    path: String,
    user: String,
}

/// Loads a pool key and rewrites its seal under the previous encryption key (as if it had been
/// loaded before `KEY_ENCRYPTION_KEY` was rotated); it still opens for its user.
fn a_pool_key_sealed_under_the_previous_key(world: &World) -> StaleSeal {
    let admin = admin_token(world);
    let provider = unique("reseal").to_ascii_lowercase();
    let plain = format!("sk-reseal-{}", unique(""));
    let reply = world
        .authed("POST", "/api/admin/provider-keys", &admin)
        .json(&json!({ "provider": provider, "tier": "free", "key": plain }));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["provider_key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = Keyring::new(PREVIOUS_KEY_ENCRYPTION_KEY, None).unwrap();
    let old_seal = old.seal(&plain, &format!("pool:{id}"), [7; 12]);
    world.d1_query(&format!(
        "UPDATE provider_keys SET key_sealed = '{old_seal}' WHERE id = '{id}'"
    ));
    let (user, _) = new_user(world);
    let path = format!("/api/user/provider-keys?provider={provider}");
    let handed = world.authed("GET", &path, &user).send();
    assert_eq!(handed.status, 200, "{}", handed.body);
    assert_eq!(handed.json()["key"], plain.as_str());
    StaleSeal {
        id,
        plain,
        path,
        user,
    }
}

impl StaleSeal {
    /// After a sweep: sealed under the current key, and still handed out.
    fn renewed(&self, world: &World) {
        let current = Keyring::new(KEY_ENCRYPTION_KEY, None).unwrap();
        let rows = world.d1_query(&format!(
            "SELECT key_sealed FROM provider_keys WHERE id = '{}'",
            self.id
        ));
        let sealed = rows[0]["key_sealed"].as_str().unwrap();
        let prefix = format!("v1.{}.", current.current_id());
        assert!(sealed.starts_with(&prefix), "{sealed}");
        let context = format!("pool:{}", self.id);
        assert_eq!(current.open(sealed, &context).unwrap(), self.plain);
        let again = world.authed("GET", &self.path, &self.user).send();
        assert_eq!(again.json()["key"], self.plain.as_str());
    }
}

fn admin_endpoints_refuse_non_admins(world: &World) {
    let (token, user_id) = new_user(world);
    post_key(world, &token);
    let calls = [
        ("GET", "/api/admin/users".to_owned(), None),
        (
            "POST",
            format!("/api/admin/users/{user_id}/credits"),
            Some(json!({ "amount": 100, "reason": "self-service" })),
        ),
        (
            "POST",
            format!("/api/admin/users/{user_id}/rotate-key"),
            None,
        ),
        ("GET", "/api/admin/provider-keys".to_owned(), None),
        (
            "POST",
            "/api/admin/provider-keys".to_owned(),
            Some(json!({ "provider": "openai", "tier": "free", "key": "sk-nonadmin-0123456789" })),
        ),
        ("DELETE", "/api/admin/provider-keys/pk_x".to_owned(), None),
    ];
    for (method, path, body) in &calls {
        let call = world.authed(method, path, &token);
        let reply = match body {
            Some(body) => call.json(body),
            None => call.send(),
        };
        reply.assert_error(403, "forbidden");
        let anonymous = world.call(method, path).send();
        anonymous.assert_error(401, "unauthorized");
    }
    // Nothing changed: the user's credits and key are as they were.
    let row = account(world, &user_id);
    assert_eq!(row["credits"], 10_000_000);
    assert_eq!(row["rotations"], 0);
    assert_eq!(fake_keys(world, &user_id).len(), 1);
}

fn admins_list_users_adjust_credits_and_rotate_keys(world: &World) {
    let (token, user_id) = new_user(world);
    let key = post_key(world, &token)["key"].as_str().unwrap().to_owned();
    let admin = admin_token(world);

    // The list, walked page by page, shows the user with credits and a masked key.
    let mut cursor: Option<String> = None;
    let mut found = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/api/admin/users?limit=200&cursor={c}"),
            None => "/api/admin/users?limit=200".to_owned(),
        };
        let reply = world.authed("GET", &path, &admin).send();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(!reply.body.contains(&key), "a plaintext key in the list");
        let page = reply.json();
        if let Some(user) = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == user_id.as_str())
        {
            found = Some(user.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let user = found.expect("the user is listed");
    approx(&user["credits"], 10.0);
    assert_eq!(user["plan"], "free");
    assert!(user["key"]["label"].as_str().unwrap().contains("****"));
    approx(&user["key"]["limit"], 1.0);
    let small = world
        .authed("GET", "/api/admin/users?limit=1", &admin)
        .send()
        .json();
    assert_eq!(small["data"].as_array().unwrap().len(), 1);
    assert!(small["next_cursor"].is_string());

    // Adjustments: validated, recorded with the reason and the admin, idempotent.
    for bad in [
        json!({ "amount": 0, "reason": "nothing" }),
        json!({ "amount": "5", "reason": "string" }),
        json!({ "amount": 5 }),
        json!({ "amount": 5, "reason": "" }),
        json!({ "amount": 1e12, "reason": "absurd" }),
        json!({ "amount": 5, "reason": "x", "extra": true }),
    ] {
        adjust(world, &user_id, &bad).assert_error(400, "validation_failed");
    }
    adjust(world, "usr_missing", &json!({ "amount": 1, "reason": "x" }))
        .assert_error(404, "not_found");
    adjust(
        world,
        &user_id,
        &json!({ "amount": -11, "reason": "too much" }),
    )
    .assert_error(409, "conflict");
    let request =
        json!({ "amount": 2.5, "reason": "support ticket 42", "request_id": unique("adj_") });
    let first = adjust(world, &user_id, &request);
    assert_eq!(first.status, 200, "{}", first.body);
    let line = first.json()["adjustment"].clone();
    approx(&line["amount"], 2.5);
    approx(&line["balance_after"], 12.5);
    assert_eq!(line["reason"], "support ticket 42");
    let retry = adjust(world, &user_id, &request);
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.json()["adjustment"], line);
    let mut changed = request.clone();
    changed["amount"] = json!(3);
    adjust(world, &user_id, &changed).assert_error(409, "conflict");
    let audit = world.d1_query(&format!(
        "SELECT l.amount, l.reason, l.actor_id, u.external_id AS actor FROM credit_ledger l \
         JOIN users u ON u.id = l.actor_id WHERE l.user_id = '{user_id}' AND l.kind = 'adjustment'"
    ));
    assert_eq!(audit.len(), 1, "one adjustment recorded: {audit:?}");
    assert_eq!(audit[0]["amount"], 2_500_000);
    assert_eq!(audit[0]["actor"], ADMIN_CLERK_ID);
    assert_eq!(account(world, &user_id)["credits"], 12_500_000);

    // A forced rotation: spend deducted, a new key, the old one deleted; the admin does not
    // see the new key.
    let old_hash = fake_keys(world, &user_id)[0].hash.clone();
    world.fakes.openrouter.set_usage(&old_hash, 0.25);
    let reply = world
        .authed(
            "POST",
            &format!("/api/admin/users/{user_id}/rotate-key"),
            &admin,
        )
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rotated = reply.json();
    assert!(rotated.get("key").is_none(), "{rotated}");
    assert_eq!(rotated["action"], "rotated");
    approx(&rotated["credits"], 12.25);
    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 2);
    assert!(made[0].deleted);
    assert_eq!(rotated["key_hash"], made[1].hash.as_str());
    assert_eq!(post_key(world, &token)["key"], made[1].key.as_str());

    // A user who never asked for a key has nothing to rotate or adjust.
    let (_, keyless) = new_user(world);
    world
        .authed(
            "POST",
            &format!("/api/admin/users/{keyless}/rotate-key"),
            &admin,
        )
        .send()
        .assert_error(409, "conflict");
    adjust(world, &keyless, &json!({ "amount": 1, "reason": "x" })).assert_error(409, "conflict");
    assert!(fake_keys(world, &keyless).is_empty());

    // A deleted user's key is not rotated, and the admin is told so, not told that their
    // own credentials failed (a 401 would sign the admin's client out).
    let (gone_token, gone) = new_user(world);
    post_key(world, &gone_token);
    world.d1_query(&format!(
        "UPDATE users SET status = 'deleted' WHERE id = '{gone}'"
    ));
    let refused = world
        .authed(
            "POST",
            &format!("/api/admin/users/{gone}/rotate-key"),
            &admin,
        )
        .send()
        .assert_error(409, "conflict");
    assert!(
        refused["message"].as_str().unwrap().contains("deactivated"),
        "{refused}"
    );
    assert_eq!(fake_keys(world, &gone).len(), 1, "no key was made");
}

fn the_key_pool_hands_each_user_a_live_key_of_their_tier(world: &World) {
    let admin = admin_token(world);
    let provider = unique("prov").to_ascii_lowercase();
    let load = |tier: &str, key: &str| {
        world
            .authed("POST", "/api/admin/provider-keys", &admin)
            .json(&json!({
                "provider": provider, "tier": tier, "key": key, "label": "team key"
            }))
    };
    let free_a = format!("sk-free-a-{}", unique(""));
    let free_b = format!("sk-free-b-{}", unique(""));
    let basic = format!("sk-basic-{}", unique(""));
    let mut ids = Vec::new();
    for (tier, key) in [("free", &free_a), ("free", &free_b), ("basic", &basic)] {
        let reply = load(tier, key);
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert!(
            !reply.body.contains(key.as_str()),
            "the answer shows the key masked"
        );
        let stored = reply.json()["provider_key"].clone();
        assert!(stored["masked"].as_str().unwrap().contains("****"));
        assert!(stored.get("key_sealed").is_none());
        ids.push(stored["id"].as_str().unwrap().to_owned());
    }
    // The refused loads below name this test's provider (or "Open AI"), so a stored one
    // would show here.
    let pooled = Rows::new()
        .where_eq("provider_keys", "provider", &provider)
        .where_eq("provider_keys", "provider", "Open AI");
    let before = world.snapshot(&pooled);
    load("free", &free_a).assert_error(409, "conflict");
    for bad in [
        json!({ "provider": "Open AI", "tier": "free", "key": "sk-0123456789abcdef" }),
        json!({ "provider": provider, "tier": "gold", "key": "sk-0123456789abcdef" }),
        json!({ "provider": provider, "tier": "free", "key": "short" }),
        json!({ "provider": provider, "tier": "free" }),
    ] {
        world
            .authed("POST", "/api/admin/provider-keys", &admin)
            .json(&bad)
            .assert_error(400, "validation_failed");
    }
    before.assert_unchanged(world);
    let rows = world.rows(&pooled);
    assert_eq!(rows.len(), 3, "bad input stored nothing");
    let text = Value::Array(rows).to_string();
    for key in [&free_a, &free_b, &basic] {
        assert!(!text.contains(key.as_str()), "plaintext in D1");
    }

    // The list is masked.
    let list = world
        .authed(
            "GET",
            &format!("/api/admin/provider-keys?provider={provider}"),
            &admin,
        )
        .send();
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 3);
    for key in [&free_a, &free_b, &basic] {
        assert!(!list.body.contains(key.as_str()));
    }

    // A free user gets a free key, the same one each time.
    let (token, _) = new_user(world);
    let path = format!("/api/user/provider-keys?provider={provider}");
    let first = world.authed("GET", &path, &token).send();
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let first = first.json();
    assert_eq!(first["tier"], "free");
    let handed = first["key"].as_str().unwrap().to_owned();
    assert!(handed == free_a || handed == free_b, "{handed}");
    assert_eq!(
        world.authed("GET", &path, &token).send().json()["key"],
        handed.as_str()
    );
    // A second free user is spread onto the other free key.
    let (other, _) = new_user(world);
    let second = world.authed("GET", &path, &other).send().json();
    assert_ne!(second["key"], handed.as_str());

    // Retiring the user's key moves them to the other live free key; with none left the
    // pool refuses clearly.
    let retire = |id: &str| {
        world
            .authed("DELETE", &format!("/api/admin/provider-keys/{id}"), &admin)
            .send()
    };
    let handed_id = first["key_id"].as_str().unwrap();
    let retired = retire(handed_id);
    assert_eq!(retired.status, 200, "{}", retired.body);
    assert!(retired.json()["provider_key"]["retired_at"].is_string());
    let moved = world.authed("GET", &path, &token).send().json();
    assert_ne!(moved["key"], handed.as_str());
    assert_eq!(moved["tier"], "free");
    let other_id = moved["key_id"].as_str().unwrap();
    assert_eq!(retire(other_id).status, 200);
    assert_eq!(retire(other_id).status, 200, "retiring twice is fine");
    world
        .authed("GET", &path, &token)
        .send()
        .assert_error(503, "not_configured");
    retire("pk_missing").assert_error(404, "not_found");
    world
        .authed("GET", "/api/user/provider-keys", &token)
        .send()
        .assert_error(400, "validation_failed");
    world
        .authed(
            "GET",
            "/api/user/provider-keys?provider=nobody-has-this",
            &token,
        )
        .send()
        .assert_error(503, "not_configured");
}

/// Polls `done` every 20 ms for up to `within`; whether it came true.
fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// The create requests the fake received for this user so far.
fn creates_for(world: &World, user_id: &str) -> usize {
    world
        .fakes
        .openrouter
        .upstream()
        .received()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path == "/api/v1/keys"
                && String::from_utf8_lossy(&r.body).contains(user_id)
        })
        .count()
}

/// `SUM(amount)` of the user's ledger and their balance.
fn ledger_sum_and_balance(world: &World, user_id: &str) -> (i64, i64) {
    let sum = ledger(world, user_id)
        .iter()
        .map(|(_, amount)| amount)
        .sum();
    let balance = account(world, user_id)["credits"]
        .as_i64()
        .unwrap_or_else(|| panic!("no credit account for {user_id}"));
    (sum, balance)
}

fn a_settlement_whose_lock_was_lost_applies_nothing(world: &World) {
    let (token, user_id) = new_user(world);
    post_key(world, &token);
    let old_hash = fake_keys(world, &user_id)[0].hash.clone();
    let or = &world.fakes.openrouter;
    // 0.6 spent: the next look deducts it, creates a key and retires the old one.
    or.set_usage(&old_hash, 0.6);
    // What the lost settlement would have written: a usage line, the old key queued.
    let before =
        world.snapshot(&queued_deletion(&old_hash).where_eq("credit_ledger", "user_id", &user_id));
    let version = account(world, &user_id)["version"].as_i64().unwrap();
    // The moment the next request takes the lock, it loses it: as if it had stalled past the
    // lock's expiry while another request took the lock over, settled (keeping the same key)
    // and let go. (A trigger makes this exact; RETURNING still shows the claimer its lock.)
    let trigger = format!("lose_lock_{}", user_id.trim_start_matches("usr_"));
    world.d1_query(&format!(
        "CREATE TRIGGER {trigger} AFTER UPDATE OF lock_id ON credit_accounts \
         WHEN NEW.user_id = '{user_id}' AND NEW.lock_id IS NOT NULL AND OLD.version = {version} \
         BEGIN UPDATE credit_accounts SET lock_id = NULL, lock_expires_ms = NULL, \
             version = version + 1 WHERE user_id = NEW.user_id; END"
    ));
    let reply = world.authed("POST", KEY, &token).send();
    world.d1_query(&format!("DROP TRIGGER {trigger}"));
    reply.assert_error(409, "conflict");

    // Nothing of the lost settlement applied: no usage line, no deletion queued for the key
    // still in use, the balance unchanged, and the ledger still sums to the balance.
    assert_eq!(ledger(world, &user_id), [("grant".to_owned(), 10_000_000)]);
    before.assert_unchanged(world);
    assert_eq!(
        world.count(&queued_deletion(&old_hash)),
        0,
        "the key still in use was queued for deletion"
    );
    let row = account(world, &user_id);
    assert_eq!(row["key_hash"], old_hash.as_str());
    assert_eq!(row["credits"], 10_000_000);
    assert_eq!(row["key_usage"], 0);
    assert_eq!(row["rotations"], 0);
    assert_eq!(row["version"], version + 1, "only the thief's change");
    let (sum, balance) = ledger_sum_and_balance(world, &user_id);
    assert_eq!(sum, balance);
    let old = or.key(&old_hash).unwrap();
    assert!(!old.deleted && !old.disabled, "{old:?}");
    // The key the request made but could not keep is queued, and only that one.
    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 2);
    let queued = world.d1_query(&format!(
        "SELECT key_hash, reason FROM provider_key_deletions WHERE user_id = '{user_id}'"
    ));
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["key_hash"], made[1].hash.as_str());
    assert_eq!(queued[0]["reason"], "orphaned");

    // The next request settles normally: the spend is deducted once.
    let rotated = post_key(world, &token);
    assert_eq!(rotated["action"], "rotated", "{rotated}");
    approx(&rotated["credits"], 9.4);
    let (sum, balance) = ledger_sum_and_balance(world, &user_id);
    assert_eq!((sum, balance), (9_400_000, 9_400_000));
}

fn a_key_created_while_its_user_is_deleted_is_queued_for_deletion(world: &World) {
    let clerk_id = unique("user_inflight_");
    let created = clerk_user_event("user.created", &clerk_id, now() * 1000, json!({}));
    assert_eq!(world.clerk_webhook(&unique("msg_"), &created).status, 200);
    let token = world.clerk_token(&clerk_id);
    let reply = world.authed("GET", "/api/user/profile", &token).send();
    let user_id = reply.json()["id"].as_str().unwrap().to_owned();

    // The first key's create is slow; the user is deleted while it is in flight.
    let slow = Duration::from_millis(OPENROUTER_TIMEOUT_MS - 300);
    world
        .fakes
        .openrouter
        .fail_next(Call::Create, &user_id, Fault::Delay(slow));
    let (key_reply, key_done, deleted, deleted_done) = std::thread::scope(|s| {
        let request = s.spawn(|| {
            let reply = world.authed("POST", KEY, &token).send();
            (reply, Instant::now())
        });
        assert!(
            eventually(Duration::from_secs(5), || creates_for(world, &user_id) > 0),
            "the create reached OpenRouter"
        );
        let deleted = world.clerk_webhook(
            &unique("msg_"),
            &json!({ "type": "user.deleted", "object": "event",
                     "data": { "deleted": true, "id": clerk_id, "object": "user" } }),
        );
        let deleted_done = Instant::now();
        let (reply, done) = request.join().unwrap();
        (reply, done, deleted, deleted_done)
    });
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(key_reply.status, 200, "{}", key_reply.body);
    assert!(
        deleted_done >= key_done,
        "the deletion waited for the request holding the lock"
    );

    // The key made in flight was stored, then queued for deletion with the user, and forgotten.
    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 1);
    assert_eq!(key_reply.json()["key"], made[0].key.as_str());
    let queued = world.d1_query(&format!(
        "SELECT reason FROM provider_key_deletions WHERE key_hash = '{}'",
        made[0].hash
    ));
    assert_eq!(queued.len(), 1, "the key created in flight is queued");
    assert_eq!(queued[0]["reason"], "user_deleted");
    let row = account(world, &user_id);
    assert!(
        row["key_hash"].is_null() && row["key_sealed"].is_null(),
        "{row}"
    );
    let (sum, balance) = ledger_sum_and_balance(world, &user_id);
    assert_eq!(sum, balance);
}

fn keys_are_created_with_a_daily_limit_reset(world: &World) {
    let (token, user_id) = new_user(world);
    post_key(world, &token);
    let made = fake_keys(world, &user_id);
    assert_eq!(made.len(), 1);
    assert_eq!(
        made[0].limit_reset.as_deref(),
        Some("daily"),
        "Puku's keys have a $1 daily limit: {:?}",
        made[0]
    );
    assert_eq!(made[0].limit, Some(1.0));
}

fn a_key_made_by_a_timed_out_create_is_found_by_name_and_deleted(world: &World) {
    let (token, user_id) = new_user(world);
    let real = post_key(world, &token);
    let real_hash = fake_keys(world, &user_id)[0].hash.clone();
    let or = &world.fakes.openrouter;
    // Other applications' keys on the same OpenRouter account: the list takes pages.
    or.add_keys(&unique("another app "), 150);

    // The rotation's create outlives the timeout, but OpenRouter makes the key anyway.
    or.set_usage(&real_hash, 0.6);
    or.fail_next(
        Call::Create,
        &user_id,
        Fault::Delay(Duration::from_millis(OPENROUTER_TIMEOUT_MS + 1000)),
    );
    world
        .authed("POST", KEY, &token)
        .send()
        .assert_error(502, "upstream_error");
    let row = account(world, &user_id);
    assert_eq!(
        row["key_hash"],
        real_hash.as_str(),
        "the user keeps their key"
    );
    assert_eq!(row["credits"], 10_000_000);
    let name = format!("tollgate e2e {user_id}");
    let lookups = world.d1_query(&format!(
        "SELECT name, user_id FROM provider_key_lookups WHERE user_id = '{user_id}'"
    ));
    assert_eq!(lookups.len(), 1, "a look-up is queued: {lookups:?}");
    assert_eq!(lookups[0]["name"], name.as_str());

    assert!(
        eventually(Duration::from_secs(5), || fake_keys(world, &user_id).len()
            == 2),
        "the slow create landed at OpenRouter"
    );
    let orphan = fake_keys(world, &user_id)[1].clone();
    assert_eq!(orphan.name, name);
    assert!(!orphan.deleted);

    run_sweep(world);
    assert!(
        or.key(&orphan.hash).unwrap().deleted,
        "the orphan is deleted"
    );
    let kept = or.key(&real_hash).unwrap();
    assert!(
        !kept.deleted && !kept.disabled,
        "the user's key is untouched"
    );
    let listed_pages = or
        .upstream()
        .received()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/keys")
        .map(|r| r.query.clone())
        .collect::<Vec<_>>();
    assert!(
        listed_pages.iter().any(|q| q.contains("offset=100")),
        "the sweep read past the first page: {listed_pages:?}"
    );
    let left = world.count(
        &Rows::new()
            .where_eq("provider_key_lookups", "user_id", &user_id)
            .where_eq("provider_key_deletions", "user_id", &user_id),
    );
    assert_eq!(left, 0, "the look-up is done and nothing is left queued");

    // The user's key still works, and the next rotation goes through.
    let again = post_key(world, &token);
    assert_eq!(again["action"], "rotated");
    assert_ne!(again["key"], real["key"]);
}
