//! User API keys (`/api/user/api-key`, `/api/user/api-keys`): created once and shown once,
//! stored only as a SHA-256 hash and a mask, listed a page at a time, capped by the plan,
//! accepted as a bearer credential until revoked, and managed only from a signed-in session.
//! A key acts only within the scopes chosen when it was created (`usage` by default), and
//! `HEAD` never creates one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::identity::admin_routes_not_refused;
use super::Case;
use crate::fakes::{stripe_signature, STRIPE_WEBHOOK_SECRET};
use crate::harness::identity::{clerk_user_event, now, unique, KEY_ADMIN_CLERK_ID};
use crate::harness::snapshot::Rows;
use crate::harness::{Reply, World};

pub fn cases() -> Vec<Case> {
    crate::cases!(api_keys:
        the_first_get_creates_a_key_shown_once_and_later_gets_show_it_masked,
        a_key_is_stored_only_as_its_sha256_hash_and_a_mask,
        a_key_is_accepted_as_a_bearer_credential_and_its_use_is_recorded,
        a_revoked_key_is_refused_and_revoking_it_again_changes_nothing,
        keys_are_listed_masked_newest_first_one_page_at_a_time,
        bad_list_parameters_are_refused,
        each_plan_caps_active_keys_and_a_key_beyond_the_cap_is_402_with_no_row,
        key_names_must_be_1_to_64_printable_characters,
        an_api_key_cannot_create_or_revoke_keys,
        another_users_key_or_an_unknown_id_is_404_and_stays_active,
        concurrent_creations_never_exceed_the_plan_limit,
        concurrent_first_gets_create_one_key_and_show_it_once,
        a_json_array_is_not_a_key_request,
        scopes_are_chosen_at_creation_shown_in_lists_and_stored,
        unknown_scopes_are_refused_and_nothing_is_stored,
        a_default_key_meters_but_is_refused_billing_provider_keys_and_admin,
        an_admin_key_needs_an_admin_owner_and_acts_only_as_admin,
        a_billing_key_may_cancel_the_subscription_but_not_meter,
        a_key_stored_before_scopes_existed_acts_for_usage_only,
        head_on_the_key_route_creates_no_key,
    )
}

pub(super) const PROFILE: &str = "/api/user/profile";
const KEY: &str = "/api/user/api-key";
const KEYS: &str = "/api/user/api-keys";

/// The fields every key shows, whether just created or listed.
const KEY_FIELDS: [&str; 8] = [
    "id",
    "user_id",
    "name",
    "masked",
    "scopes",
    "created_at",
    "last_used_at",
    "revoked_at",
];

/// A fresh Clerk user on `plan` (created by Clerk's webhook), and a session token for them.
pub(super) fn clerk_user_on_plan(world: &World, plan: &str) -> (String, String) {
    let sub = unique("user_plan_");
    let event = clerk_user_event("user.created", &sub, now() * 1000, json!({ "plan": plan }));
    let reply = world.clerk_webhook(&unique("msg_"), &event);
    assert_eq!(reply.status, 200, "webhook: {}", reply.body);
    let token = world.clerk_token(&sub);
    (sub, token)
}

/// Creates a key with `POST /api/user/api-keys`; returns the `api_key` object (with `key`).
fn create(world: &World, token: &str, name: &str) -> Value {
    let reply = world
        .authed("POST", KEYS, token)
        .json(&json!({ "name": name }));
    assert_eq!(reply.status, 201, "create {name:?}: {}", reply.body);
    reply.json()["api_key"].clone()
}

/// The caller's user id.
fn user_id(world: &World, credential: &str) -> String {
    let reply = world.authed("GET", PROFILE, credential).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// The mask the worker shows for `key`: the prefix, the first and last four characters.
fn mask_of(key: &str) -> String {
    let secret = &key["tg_live_".len()..];
    format!(
        "tg_live_{}****{}",
        &secret[..4],
        &secret[secret.len() - 4..]
    )
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts a key as the API shows it: exactly the documented fields, plus `key` only when
/// `plaintext` is given (and then matching the mask).
fn assert_key_shape(key: &Value, plaintext: Option<&str>) {
    let object = key
        .as_object()
        .unwrap_or_else(|| panic!("not a key: {key}"));
    let mut expected: Vec<&str> = KEY_FIELDS.to_vec();
    if plaintext.is_some() {
        expected.push("key");
    }
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected, "{key}");
    assert!(key["id"].as_str().unwrap().starts_with("key_"), "{key}");
    let masked = key["masked"].as_str().unwrap();
    assert!(
        masked.starts_with("tg_live_") && masked.len() == 20 && &masked[12..16] == "****",
        "masked: {masked}"
    );
    if let Some(plaintext) = plaintext {
        assert_eq!(key["key"], plaintext);
        assert!(
            plaintext.len() == 40
                && plaintext.starts_with("tg_live_")
                && plaintext[8..].bytes().all(|b| b.is_ascii_alphanumeric()),
            "plaintext key shape: {plaintext}"
        );
        assert_eq!(masked, mask_of(plaintext));
    }
}

/// How many `api_keys` rows `user_id` has.
fn key_rows(world: &World, user_id: &str) -> usize {
    world.count(&Rows::of_user(user_id, &["api_keys"]))
}

fn the_first_get_creates_a_key_shown_once_and_later_gets_show_it_masked(world: &World) {
    let token = world.hmac_token(&unique("keys-once-"));
    let first = world.authed("GET", KEY, &token).send();
    assert_eq!(first.status, 201, "{}", first.body);
    let first = first.json();
    assert_eq!(first["created"], true, "{first}");
    let plaintext = first["api_key"]["key"].as_str().expect("plaintext key");
    assert_key_shape(&first["api_key"], Some(plaintext));
    assert_eq!(first["api_key"]["name"], "default");
    assert_eq!(first["api_key"]["last_used_at"], Value::Null);
    assert_eq!(first["api_key"]["revoked_at"], Value::Null);
    let owner = first["api_key"]["user_id"].as_str().unwrap();
    assert!(owner.starts_with("usr_"), "{owner}");

    for _ in 0..2 {
        let again = world.authed("GET", KEY, &token).send();
        assert_eq!(again.status, 200, "{}", again.body);
        let again = again.json();
        assert_eq!(again["created"], false, "{again}");
        assert_key_shape(&again["api_key"], None);
        let mut without_key = first["api_key"].clone();
        without_key.as_object_mut().unwrap().remove("key");
        assert_eq!(again["api_key"], without_key, "the same key, masked");
        assert!(
            !again.to_string().contains(&plaintext[8..]),
            "the secret is never shown again"
        );
    }
    assert_eq!(key_rows(world, owner), 1, "one key, however often asked");
}

fn a_key_is_stored_only_as_its_sha256_hash_and_a_mask(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let issued = create(world, &token, "storage check");
    let plaintext = issued["key"].as_str().unwrap();
    assert_key_shape(&issued, Some(plaintext));

    let rows = world.d1_query(&format!(
        "SELECT * FROM api_keys WHERE id = '{}'",
        issued["id"].as_str().unwrap()
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    let hash = row["key_hash"].as_str().unwrap();
    assert_eq!(hash, sha256_hex(plaintext), "hex SHA-256 of the whole key");
    assert!(
        hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "lower-case hex: {hash}"
    );
    assert_eq!(row["masked"], mask_of(plaintext));
    assert_eq!(row["name"], "storage check");
    assert_eq!(row["user_id"], issued["user_id"]);
    assert_eq!(row["created_at"], issued["created_at"]);
    let secret = &plaintext[8..];
    for (column, value) in row.as_object().unwrap() {
        let text = value.to_string();
        assert!(
            !text.contains(secret) && !text.contains(&secret[4..28]),
            "column {column} holds the key: {text}"
        );
    }
}

fn a_key_is_accepted_as_a_bearer_credential_and_its_use_is_recorded(world: &World) {
    let (sub, token) = clerk_user_on_plan(world, "free");
    let first = world.authed("GET", KEY, &token).send();
    assert_eq!(first.status, 201, "{}", first.body);
    let issued = first.json()["api_key"].clone();
    let plaintext = issued["key"].as_str().unwrap();
    assert_eq!(issued["last_used_at"], Value::Null);

    let reply = world.authed("GET", PROFILE, plaintext).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let profile = reply.json();
    assert_eq!(profile["credential"], "api_key");
    assert_eq!(profile["id"], issued["user_id"]);
    assert_eq!(profile["external_id"], sub.as_str());
    assert_eq!(profile["roles"], json!(["user"]));
    assert_eq!(profile["org"], Value::Null);

    // Asking for "my key" with the key itself shows it, masked; no second key appears.
    let own = world.authed("GET", KEY, plaintext).send();
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.json()["api_key"]["id"], issued["id"]);
    assert_eq!(own.json()["created"], false);

    let rows = world.rows(&Rows::new().where_eq("api_keys", "id", issued["id"].as_str().unwrap()));
    let used = rows[0]["last_used_at"]
        .as_str()
        .unwrap_or_else(|| panic!("last_used_at is set in D1: {rows:?}"));
    assert!(
        used.len() == 24 && used.ends_with('Z') && used >= rows[0]["created_at"].as_str().unwrap(),
        "RFC 3339, not before creation: {used}"
    );
    assert_eq!(key_rows(world, issued["user_id"].as_str().unwrap()), 1);

    // The list shows the same time.
    let listed = world.authed("GET", KEYS, &token).send().json();
    assert_eq!(listed["data"][0]["last_used_at"], used);
}

fn a_revoked_key_is_refused_and_revoking_it_again_changes_nothing(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "free");
    let first = world.authed("GET", KEY, &token).send();
    assert_eq!(first.status, 201, "{}", first.body);
    let issued = first.json()["api_key"].clone();
    let id = issued["id"].as_str().unwrap();
    let plaintext = issued["key"].as_str().unwrap();
    assert_eq!(world.authed("GET", PROFILE, plaintext).send().status, 200);

    let path = format!("{KEYS}/{id}");
    let revoked = world.authed("DELETE", &path, &token).send();
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let revoked = revoked.json()["api_key"].clone();
    assert_key_shape(&revoked, None);
    assert_eq!(revoked["id"], id);
    let revoked_at = revoked["revoked_at"].as_str().expect("revoked_at is set");
    assert!(revoked_at >= issued["created_at"].as_str().unwrap());

    let error = world
        .authed("GET", PROFILE, plaintext)
        .send()
        .assert_error(401, "unauthorized");
    assert!(
        error["message"].as_str().unwrap().contains("revoked"),
        "{error}"
    );

    let again = world.authed("DELETE", &path, &token).send();
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.json()["api_key"],
        revoked,
        "same key, same revoked_at"
    );

    // Still listed, for the audit trail; and no longer "my key": asking makes a new one.
    let listed = world.authed("GET", KEYS, &token).send().json();
    assert_eq!(listed["data"], json!([revoked]));
    let fresh = world.authed("GET", KEY, &token).send();
    assert_eq!(fresh.status, 201, "{}", fresh.body);
    let fresh = fresh.json()["api_key"].clone();
    assert_ne!(fresh["id"], id);

    let rows = world.d1_query(&format!(
        "SELECT id, revoked_at FROM api_keys WHERE user_id = '{}' ORDER BY id = '{id}' DESC",
        issued["user_id"].as_str().unwrap()
    ));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["revoked_at"], revoked_at, "D1 keeps the first time");
    assert_eq!(rows[1]["revoked_at"], Value::Null);
}

fn keys_are_listed_masked_newest_first_one_page_at_a_time(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let first = world.authed("GET", KEY, &token).send();
    assert_eq!(first.status, 201, "{}", first.body);
    let default = first.json()["api_key"].clone();
    let second = create(world, &token, "second");
    let third = create(world, &token, "third");
    let masked = |key: &Value| {
        let mut key = key.clone();
        key.as_object_mut().unwrap().remove("key");
        key
    };

    let page1 = world
        .authed("GET", &format!("{KEYS}?limit=2"), &token)
        .send();
    assert_eq!(page1.status, 200, "{}", page1.body);
    let page1 = page1.json();
    assert_eq!(
        page1["data"],
        json!([masked(&third), masked(&second)]),
        "newest first, masked"
    );
    for key in page1["data"].as_array().unwrap() {
        assert_key_shape(key, None);
    }
    let cursor = page1["next_cursor"].as_str().expect("a next page");

    let page2 = world
        .authed("GET", &format!("{KEYS}?limit=2&cursor={cursor}"), &token)
        .send();
    assert_eq!(page2.status, 200, "{}", page2.body);
    let page2 = page2.json();
    assert_eq!(page2["data"], json!([masked(&default)]));
    assert_eq!(page2["next_cursor"], Value::Null, "the last page");

    // A page that exactly fills the limit has no next page; the default limit shows all.
    let exact = world
        .authed("GET", &format!("{KEYS}?limit=3"), &token)
        .send()
        .json();
    assert_eq!(exact["data"].as_array().unwrap().len(), 3);
    assert_eq!(exact["next_cursor"], Value::Null);
    let all = world.authed("GET", KEYS, &token).send().json();
    assert_eq!(
        all,
        json!({ "data": [masked(&third), masked(&second), masked(&default)], "next_cursor": null })
    );
    for secret in [&default, &second, &third].map(|k| &k["key"].as_str().unwrap()[8..]) {
        assert!(!all.to_string().contains(secret), "no plaintext in lists");
    }

    // Revoked keys are listed too.
    let id = second["id"].as_str().unwrap();
    let revoke = world
        .authed("DELETE", &format!("{KEYS}/{id}"), &token)
        .send();
    assert_eq!(revoke.status, 200, "{}", revoke.body);
    let all = world.authed("GET", KEYS, &token).send().json();
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    assert_eq!(all["data"][1]["id"], id);
    assert!(all["data"][1]["revoked_at"].is_string(), "{all}");

    // Another user sees none of them.
    let other = world.hmac_token(&unique("keys-other-"));
    let theirs = world.authed("GET", KEYS, &other).send();
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert_eq!(theirs.json(), json!({ "data": [], "next_cursor": null }));
}

fn bad_list_parameters_are_refused(world: &World) {
    let token = world.hmac_token(&unique("keys-badlist-"));
    let first = world.authed("GET", KEY, &token).send();
    assert_eq!(first.status, 201, "{}", first.body);
    let owner = first.json()["api_key"]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cursor_of = |key: Value| B64.encode(key.to_string());
    let cases = [
        ("limit=0".to_owned(), "limit"),
        ("limit=201".to_owned(), "limit"),
        ("limit=-1".to_owned(), "limit"),
        ("limit=ten".to_owned(), "limit"),
        ("limit=".to_owned(), "limit"),
        ("cursor=%25%25%25".to_owned(), "cursor"),
        ("cursor=e30".to_owned(), "cursor"),
        (format!("cursor={}", cursor_of(json!([]))), "cursor"),
        (format!("cursor={}", cursor_of(json!(["x"]))), "cursor"),
        (
            format!("cursor={}", cursor_of(json!(["a", "b", "c"]))),
            "cursor",
        ),
        (format!("cursor={}", cursor_of(json!([1, 2]))), "cursor"),
    ];
    let before = world.snapshot(&Rows::of_user(&owner, &["api_keys"]));
    for (query, field) in &cases {
        let reply = world
            .authed("GET", &format!("{KEYS}?{query}"), &token)
            .send();
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        let error = reply.assert_error(400, "validation_failed");
        assert_eq!(error["fields"][0]["field"], *field, "{query}: {error}");
    }
    let widest = world
        .authed("GET", &format!("{KEYS}?limit=200"), &token)
        .send();
    assert_eq!(widest.status, 200, "limit=200 is allowed: {}", widest.body);
    assert_eq!(widest.json()["data"].as_array().unwrap().len(), 1);
    before.assert_unchanged(world);
    assert_eq!(key_rows(world, &owner), 1, "nothing stored or lost");
}

fn each_plan_caps_active_keys_and_a_key_beyond_the_cap_is_402_with_no_row(world: &World) {
    let mut owners = Vec::new();
    for (plan, cap) in [
        ("free", Some(1)),
        ("basic", Some(3)),
        ("premium", Some(10)),
        ("enterprise", None),
    ] {
        let (_, token) = clerk_user_on_plan(world, plan);
        let profile = world.authed("GET", PROFILE, &token).send().json();
        assert_eq!(profile["plan"], plan);
        assert_eq!(profile["limits"]["api_keys"], json!(cap), "{plan}");
        let allowed = cap.unwrap_or(12);
        let mut owner = String::new();
        for n in 0..allowed {
            owner = create(world, &token, &format!("{plan} {n}"))["user_id"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        if cap.is_some() {
            let before = world.snapshot(&Rows::of_user(&owner, &["api_keys"]));
            let refused = world
                .authed("POST", KEYS, &token)
                .json(&json!({ "name": "one too many" }));
            let error = refused.assert_error(402, "quota_exceeded");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains(&allowed.to_string()),
                "{plan}: {error}"
            );
            before.assert_unchanged(world);
            // `GET /api-key` shows an existing key rather than trying to create one.
            let existing = world.authed("GET", KEY, &token).send();
            assert_eq!(existing.status, 200, "{}", existing.body);
        }
        owners.push((plan, owner, token, allowed));
    }

    // Revoked keys do not count: the free user may create one after revoking theirs.
    let (_, free_owner, free_token, _) = &owners[0];
    let listed = world.authed("GET", KEYS, free_token).send().json();
    let id = listed["data"][0]["id"].as_str().unwrap();
    let revoke = world
        .authed("DELETE", &format!("{KEYS}/{id}"), free_token)
        .send();
    assert_eq!(revoke.status, 200, "{}", revoke.body);
    create(world, free_token, "after revoking");

    for (plan, owner, _, allowed) in &owners {
        let keys = Rows::of_user(owner, &["api_keys"]);
        let revoked = usize::from(owner == free_owner);
        assert_eq!(
            world.count(&keys),
            *allowed as usize + revoked,
            "{plan}: no row for a refused key"
        );
        assert_eq!(
            world.count(&keys.and_null("revoked_at")),
            *allowed as usize,
            "{plan}"
        );
    }
}

fn key_names_must_be_1_to_64_printable_characters(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let before = world.snapshot(&Rows::of_user(&owner, &["api_keys"]));
    // (case, body, the field named first; `None` where only "some field" is promised).
    let refused: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("empty name", br#"{"name":""}"#.to_vec(), Some("name")),
        ("blank name", br#"{"name":"   "}"#.to_vec(), Some("name")),
        (
            "65 characters",
            json!({ "name": "a".repeat(65) }).to_string().into_bytes(),
            Some("name"),
        ),
        ("tab", br#"{"name":"tab\there"}"#.to_vec(), Some("name")),
        (
            "newline",
            br#"{"name":"line\nbreak"}"#.to_vec(),
            Some("name"),
        ),
        ("NUL", br#"{"name":"nul\u0000"}"#.to_vec(), Some("name")),
        ("DEL", br#"{"name":"del\u007f"}"#.to_vec(), Some("name")),
        ("a number", br#"{"name":5}"#.to_vec(), Some("name")),
        ("an object", br#"{"name":{"x":1}}"#.to_vec(), Some("name")),
        ("unknown field", br#"{"label":"x"}"#.to_vec(), None),
        (
            "a name and an unknown field",
            br#"{"name":"ok","plan":"premium"}"#.to_vec(),
            None,
        ),
        ("malformed JSON", br#"{"name":"#.to_vec(), Some("name")),
        ("a string body", br#""just a name""#.to_vec(), Some("body")),
    ];
    for (case, body, field) in &refused {
        let reply = world
            .authed("POST", KEYS, &token)
            .body("application/json", body);
        assert_eq!(reply.status, 400, "{case}: {}", reply.body);
        let error = reply.assert_error(400, "validation_failed");
        assert!(
            error["fields"].as_array().is_some_and(|f| !f.is_empty()),
            "{case}: fields: {error}"
        );
        if let Some(field) = field {
            assert_eq!(error["fields"][0]["field"], *field, "{case}: {error}");
        }
    }
    before.assert_unchanged(world);

    // The edges that are allowed: 64 characters (not bytes), surrounding spaces trimmed, and
    // no body at all (the name is "default").
    let long = "é".repeat(64);
    assert_eq!(create(world, &token, &long)["name"], long.as_str());
    assert_eq!(
        create(world, &token, "  padded name  ")["name"],
        "padded name"
    );
    let unnamed = world.authed("POST", KEYS, &token).send();
    assert_eq!(unnamed.status, 201, "{}", unnamed.body);
    assert_eq!(unnamed.json()["api_key"]["name"], "default");

    let rows = world.rows(&Rows::of_user(&owner, &["api_keys"]));
    let mut names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut expected = vec![long.as_str(), "padded name", "default"];
    expected.sort_unstable();
    assert_eq!(names, expected);
}

fn an_api_key_cannot_create_or_revoke_keys(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let issued = create(world, &token, "robot");
    let plaintext = issued["key"].as_str().unwrap();
    let id = issued["id"].as_str().unwrap();

    let create = world
        .authed("POST", KEYS, plaintext)
        .json(&json!({ "name": "made by a key" }));
    create.assert_error(403, "forbidden");
    let empty = world.authed("POST", KEYS, plaintext).send();
    empty.assert_error(403, "forbidden");
    let revoke = world
        .authed("DELETE", &format!("{KEYS}/{id}"), plaintext)
        .send();
    revoke.assert_error(403, "forbidden");

    // The key still works, and reading is allowed.
    assert_eq!(world.authed("GET", PROFILE, plaintext).send().status, 200);
    let listed = world.authed("GET", KEYS, plaintext).send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()["data"].as_array().unwrap().len(), 1);

    // (Not a snapshot: authenticating with the key rightly stamps its `last_used_at`.)
    let rows: Vec<Value> = world
        .rows(&Rows::of_user(
            issued["user_id"].as_str().unwrap(),
            &["api_keys"],
        ))
        .iter()
        .map(|r| json!({ "id": r["id"], "revoked_at": r["revoked_at"] }))
        .collect();
    assert_eq!(
        rows,
        vec![json!({ "id": id, "revoked_at": null })],
        "no key made, none revoked"
    );
}

fn another_users_key_or_an_unknown_id_is_404_and_stays_active(world: &World) {
    let owner_token = world.hmac_token(&unique("keys-owner-"));
    let issued = world.authed("GET", KEY, &owner_token).send();
    assert_eq!(issued.status, 201, "{}", issued.body);
    let issued = issued.json()["api_key"].clone();
    let id = issued["id"].as_str().unwrap();
    let plaintext = issued["key"].as_str().unwrap();

    let (_, intruder) = clerk_user_on_plan(world, "basic");
    let owner = issued["user_id"].as_str().unwrap();
    let owners_keys = Rows::of_user(owner, &["api_keys"]);
    let before = world.snapshot(&owners_keys);
    let theirs = world
        .authed("DELETE", &format!("{KEYS}/{id}"), &intruder)
        .send();
    theirs.assert_error(404, "not_found");
    for unknown in ["key_doesnotexist00", "x", "key_%27%20OR%201%3D1%20--"] {
        world
            .authed("DELETE", &format!("{KEYS}/{unknown}"), &intruder)
            .send()
            .assert_error(404, "not_found");
    }

    // The owner's key is untouched: still active and still accepted.
    before.assert_unchanged(world);
    assert_eq!(world.authed("GET", PROFILE, plaintext).send().status, 200);
    let listed = world.authed("GET", KEYS, &owner_token).send().json();
    assert_eq!(listed["data"][0]["revoked_at"], Value::Null);
    let rows = world.rows(&owners_keys);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], id);
    assert_eq!(rows[0]["revoked_at"], Value::Null);
}

pub(super) use crate::harness::all_at_once;

fn concurrent_creations_never_exceed_the_plan_limit(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let replies = all_at_once(8, |i| {
        world
            .authed("POST", KEYS, &token)
            .json(&json!({ "name": format!("racer {i}") }))
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "exactly the basic plan's 3: {statuses:?}"
    );
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.assert_error(402, "quota_exceeded");
    }
    assert_eq!(key_rows(world, &owner), 3, "no row beyond the limit");
}

/// `GET /api-key` promises one key, shown once, however many first requests race (a basic
/// user could otherwise get up to three "default" keys).
fn concurrent_first_gets_create_one_key_and_show_it_once(world: &World) {
    const ROUNDS: usize = 5;
    let mut outcomes = Vec::new();
    let mut owners = Vec::new();
    for _ in 0..ROUNDS {
        let (_, token) = clerk_user_on_plan(world, "basic");
        owners.push(user_id(world, &token));
        let replies = all_at_once(8, |_| world.authed("GET", KEY, &token).send());
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        let ids: Vec<Value> = replies
            .iter()
            .filter(|r| r.status == 200 || r.status == 201)
            .map(|r| r.json()["api_key"]["id"].clone())
            .collect();
        outcomes.push((statuses, ids));
    }
    let rows: Vec<usize> = owners.iter().map(|owner| key_rows(world, owner)).collect();
    let one_key = |(statuses, ids): &(Vec<u16>, Vec<Value>)| {
        statuses.iter().filter(|s| **s == 201).count() == 1
            && statuses.iter().all(|s| *s == 200 || *s == 201)
            && ids.iter().all(|id| *id == ids[0])
    };
    assert!(
        outcomes.iter().all(one_key) && rows.iter().all(|n| *n == 1),
        "each round: one 201, the rest 200 showing that key, one row; \
         got (statuses, key ids) {outcomes:?}, key rows per user in D1 {rows:?}"
    );
}

/// The body is an object with an optional `name`; an array is not one (serde would otherwise
/// fill the struct's fields from it by position).
fn a_json_array_is_not_a_key_request(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let mut accepted = Vec::new();
    for body in [&b"[]"[..], br#"["positional name"]"#] {
        let reply = world
            .authed("POST", KEYS, &token)
            .body("application/json", body);
        if reply.status != 400 {
            accepted.push(format!(
                "{} -> {} {}",
                String::from_utf8_lossy(body),
                reply.status,
                reply.body
            ));
        } else {
            reply.assert_error(400, "validation_failed");
        }
    }
    let rows = key_rows(world, &owner);
    assert!(
        accepted.is_empty() && rows == 0,
        "array bodies must be 400 and make no key; accepted: {accepted:#?}; {rows} rows in D1"
    );
}

/// `POST /api/user/api-keys` with `scopes`; returns the `api_key` object (with `key`).
fn create_scoped(world: &World, token: &str, scopes: Value) -> Value {
    let reply = world
        .authed("POST", KEYS, token)
        .json(&json!({ "name": "scoped", "scopes": scopes }));
    assert_eq!(reply.status, 201, "create with {scopes}: {}", reply.body);
    reply.json()["api_key"].clone()
}

/// The `scopes` column of the key with this id.
fn stored_scopes(world: &World, key_id: &str) -> Value {
    let rows = world.d1_query(&format!(
        "SELECT scopes FROM api_keys WHERE id = '{key_id}'"
    ));
    rows.first()
        .unwrap_or_else(|| panic!("no key {key_id} in D1"))["scopes"]
        .clone()
}

/// Sends `method path` (with `body` unless null) as `credential`.
fn send(world: &World, method: &str, path: &str, credential: &str, body: &Value) -> Reply {
    let call = world.authed(method, path, credential);
    if body.is_null() {
        call.send()
    } else {
        call.json(body)
    }
}

/// Asserts `403 forbidden` whose message names `scope`.
fn assert_lacks(reply: &Reply, scope: &str, what: &str) {
    let error = reply.assert_error(403, "forbidden");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("`{scope}`")),
        "{what}: the refusal names the `{scope}` scope: {message}"
    );
}

fn scopes_are_chosen_at_creation_shown_in_lists_and_stored(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let unscoped = create(world, &token, "no scopes named");
    assert_eq!(unscoped["scopes"], json!(["usage"]));
    let chosen = create_scoped(world, &token, json!(["keys", "usage", "keys"]));
    assert_eq!(
        chosen["scopes"],
        json!(["usage", "keys"]),
        "canonical, once each"
    );
    let nulled = world
        .authed("POST", KEYS, &token)
        .json(&json!({ "scopes": null }));
    assert_eq!(nulled.status, 201, "{}", nulled.body);
    let nulled = nulled.json()["api_key"].clone();
    assert_eq!(nulled["scopes"], json!(["usage"]));

    let listed = world.authed("GET", KEYS, &token).send().json();
    let shown: Vec<(Value, Value)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].clone(), k["scopes"].clone()))
        .collect();
    assert_eq!(
        shown,
        vec![
            (nulled["id"].clone(), json!(["usage"])),
            (chosen["id"].clone(), json!(["usage", "keys"])),
            (unscoped["id"].clone(), json!(["usage"])),
        ]
    );
    assert_eq!(
        stored_scopes(world, chosen["id"].as_str().unwrap()),
        "usage keys"
    );
    assert_eq!(
        stored_scopes(world, unscoped["id"].as_str().unwrap()),
        "usage"
    );

    // The `keys` scope passes the scope check on the pool route (which then finds no key
    // for a provider nobody loaded).
    let plaintext = chosen["key"].as_str().unwrap();
    world
        .authed(
            "GET",
            "/api/user/provider-keys?provider=nobodysprovider",
            plaintext,
        )
        .send()
        .assert_error(503, "not_configured");

    // The get-or-create route makes a `usage` key.
    let fresh = world.hmac_token(&unique("keys-scope-default-"));
    let made = world.authed("GET", KEY, &fresh).send();
    assert_eq!(made.status, 201, "{}", made.body);
    let made = made.json()["api_key"].clone();
    assert_eq!(made["scopes"], json!(["usage"]));
    assert_eq!(stored_scopes(world, made["id"].as_str().unwrap()), "usage");
}

fn unknown_scopes_are_refused_and_nothing_is_stored(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let before = world.snapshot(&Rows::of_user(&owner, &["api_keys"]));
    for body in [
        json!({ "scopes": ["usage", "everything"] }),
        json!({ "scopes": ["Usage"] }),
        json!({ "scopes": [] }),
        json!({ "scopes": "usage" }),
        json!({ "scopes": [1] }),
        json!({ "name": "fine", "scopes": ["admin "] }),
    ] {
        let error = world
            .authed("POST", KEYS, &token)
            .json(&body)
            .assert_error(400, "validation_failed");
        let field = error["fields"][0]["field"].as_str().unwrap_or_default();
        assert!(field.starts_with("scopes"), "{body}: {error}");
    }
    before.assert_unchanged(world);
    // Known names are taken, in any order.
    let taken = create_scoped(world, &token, json!(["billing", "usage"]));
    assert_eq!(taken["scopes"], json!(["usage", "billing"]));
    assert_eq!(key_rows(world, &owner), 1);
}

/// The admin listed as `clerk:<id>`, on the premium plan (room for several keys); returns a
/// session token and their Tollgate id.
fn key_admin(world: &World) -> (String, String) {
    let event = clerk_user_event(
        "user.created",
        KEY_ADMIN_CLERK_ID,
        now() * 1000,
        json!({ "plan": "premium" }),
    );
    let reply = world.clerk_webhook(&unique("msg_"), &event);
    assert_eq!(reply.status, 200, "webhook: {}", reply.body);
    let token = world.clerk_token(KEY_ADMIN_CLERK_ID);
    let id = user_id(world, &token);
    (token, id)
}

fn a_default_key_meters_but_is_refused_billing_provider_keys_and_admin(world: &World) {
    let (token, owner) = key_admin(world);
    let key = create(world, &token, "metering only");
    assert_eq!(key["scopes"], json!(["usage"]));
    assert_eq!(stored_scopes(world, key["id"].as_str().unwrap()), "usage");
    let key = key["key"].as_str().unwrap();

    let reserved = world
        .authed("POST", "/api/usage/reserve", key)
        .json(&json!({ "estimate_tokens": 100, "request_id": unique("scope-rsv-") }));
    assert_eq!(reserved.status, 201, "reserve: {}", reserved.body);
    let reported = world.authed("POST", "/api/usage/report", key).json(&json!({
        "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10,
        "output_tokens": 5, "request_id": unique("scope-rpt-"),
    }));
    assert_eq!(reported.status, 200, "report: {}", reported.body);
    // What the refused calls below could write for the owner. (Not the owner's user row or
    // keys: other cases share this admin and change those.)
    let label = unique("default-key-");
    let untouched = Rows::new()
        .where_eq("billing_customers", "user_id", &owner)
        .where_eq("subscriptions", "user_id", &owner)
        .where_eq("credit_accounts", "user_id", &owner)
        .where_eq("credit_ledger", "user_id", &owner)
        .where_eq("provider_key_assignments", "user_id", &owner)
        .where_eq("provider_keys", "label", &label)
        .where_eq("provider_keys", "id", "pk_scopecheck");
    let before = world.snapshot(&untouched);
    for path in [
        "/api/usage/quota",
        "/api/usage/history",
        "/api/usage/stats",
        "/api/usage/sessions",
        "/api/user/profile",
        "/api/subscription/current",
    ] {
        let reply = world.authed("GET", path, key).send();
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }

    for (method, path, body) in [
        (
            "POST",
            "/api/subscriptions/checkout",
            json!({ "plan": "basic" }),
        ),
        ("POST", "/api/subscriptions/portal", json!({})),
        ("POST", "/api/subscriptions/cancel", json!({})),
        (
            "PUT",
            "/api/subscriptions/update",
            json!({ "plan": "basic" }),
        ),
        (
            "POST",
            "/api/subscription/upgrade",
            json!({ "plan": "basic" }),
        ),
        ("GET", "/api/subscriptions/current", Value::Null),
        ("GET", "/api/subscriptions/history", Value::Null),
    ] {
        let reply = send(world, method, path, key, &body);
        assert_lacks(&reply, "billing", &format!("{method} {path}"));
    }
    for (method, path) in [
        ("POST", "/api/key"),
        ("GET", "/api/user/provider-keys?provider=openai"),
    ] {
        let reply = world.authed(method, path, key).send();
        assert_lacks(&reply, "keys", &format!("{method} {path}"));
    }
    let answered = admin_routes_not_refused(world, key, &owner, &label, "`admin`");
    assert!(
        answered.is_empty(),
        "every admin route must be 403 for a usage key, even an admin's: {answered:#?}"
    );

    before.assert_unchanged(world);
    let none = Rows::new()
        .where_eq("billing_customers", "user_id", &owner)
        .where_eq("credit_accounts", "user_id", &owner)
        .where_eq("credit_ledger", "user_id", &owner)
        .where_eq("provider_keys", "label", &label);
    assert_eq!(world.count(&none), 0, "no refused call changed anything");
    // The owner's own session token keeps their full authority.
    let reply = world.authed("GET", "/api/admin/users", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn an_admin_key_needs_an_admin_owner_and_acts_only_as_admin(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let owner = user_id(world, &token);
    let before = world.snapshot(&Rows::of_user(&owner, &["api_keys"]));
    let error = world
        .authed("POST", KEYS, &token)
        .json(&json!({ "scopes": ["usage", "admin"] }))
        .assert_error(403, "forbidden");
    before.assert_unchanged(world);
    assert!(
        error["message"].as_str().unwrap().contains("admin"),
        "{error}"
    );
    assert_eq!(key_rows(world, &owner), 0, "no key for a non-admin");

    let (admin_token, _) = key_admin(world);
    let key = create_scoped(world, &admin_token, json!(["admin"]));
    assert_eq!(key["scopes"], json!(["admin"]));
    assert_eq!(stored_scopes(world, key["id"].as_str().unwrap()), "admin");
    let key = key["key"].as_str().unwrap();
    let reply = world.authed("GET", "/api/admin/users?limit=1", key).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = world.authed("GET", "/api/webhooks/status", key).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = world
        .authed("POST", "/api/usage/reserve", key)
        .json(&json!({ "estimate_tokens": 1, "request_id": unique("admin-rsv-") }));
    assert_lacks(&reply, "usage", "reserve with an admin-only key");
}

/// Delivers a Stripe event, signed as Stripe signs it; the worker must take it.
fn deliver_stripe(world: &World, event: &Value) {
    let body = event.to_string();
    let signature = stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now());
    let reply = world
        .call("POST", "/api/webhooks/stripe")
        .header("Stripe-Signature", &signature)
        .body("application/json", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn a_billing_key_may_cancel_the_subscription_but_not_meter(world: &World) {
    // A paid checkout through the fake Stripe gives the user a subscription.
    let (_, token) = clerk_user_on_plan(world, "free");
    let checkout = world
        .authed("POST", "/api/subscriptions/checkout", &token)
        .json(&json!({ "plan": "basic" }));
    assert_eq!(checkout.status, 200, "{}", checkout.body);
    let session = checkout.json()["session_id"].as_str().unwrap().to_owned();
    deliver_stripe(world, &world.fakes.stripe.complete_checkout(&session));
    let subscription = world.fakes.stripe.session(&session).unwrap()["subscription"]
        .as_str()
        .unwrap()
        .to_owned();

    let usage_key = create(world, &token, "metering");
    let usage_key = usage_key["key"].as_str().unwrap();
    let refused = world
        .authed("POST", "/api/subscriptions/cancel", usage_key)
        .send();
    assert_lacks(&refused, "billing", "cancel with a usage key");
    assert_eq!(
        world.fakes.stripe.subscription(&subscription).unwrap()["cancel_at_period_end"],
        false,
        "the refused cancel never reached Stripe"
    );

    let billing = create_scoped(world, &token, json!(["billing"]));
    assert_eq!(billing["scopes"], json!(["billing"]));
    assert_eq!(
        stored_scopes(world, billing["id"].as_str().unwrap()),
        "billing"
    );
    let billing = billing["key"].as_str().unwrap();
    let reply = world
        .authed("POST", "/api/subscriptions/cancel", billing)
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["subscription"]["cancel_at_period_end"], true);
    assert_eq!(
        world.fakes.stripe.subscription(&subscription).unwrap()["cancel_at_period_end"],
        true
    );
    let reply = world.authed("GET", "/api/usage/quota", billing).send();
    assert_lacks(&reply, "usage", "quota with a billing-only key");
}

/// Keys created before migration 0007 have no scopes written; the column's default makes
/// them `usage` keys.
fn a_key_stored_before_scopes_existed_acts_for_usage_only(world: &World) {
    let token = world.hmac_token(&unique("keys-legacy-"));
    let owner = user_id(world, &token);
    let plaintext = format!("tg_live_{}", &unique("")[..16].repeat(2));
    let id = unique("key_legacy");
    world.d1_query(&format!(
        "INSERT INTO api_keys (id, user_id, name, key_hash, masked, created_at) \
         VALUES ('{id}', '{owner}', 'legacy', '{}', '{}', '2026-01-01T00:00:00.000Z')",
        sha256_hex(&plaintext),
        mask_of(&plaintext)
    ));
    assert_eq!(stored_scopes(world, &id), "usage");
    let reply = world.authed("GET", "/api/usage/quota", &plaintext).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = world
        .authed("POST", "/api/subscriptions/portal", &plaintext)
        .send();
    assert_lacks(&reply, "billing", "portal with a legacy key");
    let listed = world.authed("GET", KEYS, &token).send().json();
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert_eq!(listed["data"][0]["scopes"], json!(["usage"]));
}

/// `GET /api/user/api-key` creates a key; `HEAD` on it must not run it at all.
fn head_on_the_key_route_creates_no_key(world: &World) {
    let uid = unique("keys-head-");
    let token = world.hmac_token(&uid);
    let keys_of_uid = || {
        let user = Rows::new()
            .where_eq("users", "external_id", &uid)
            .and_eq("auth_source", "hmac");
        world
            .rows(&user)
            .iter()
            .map(|u| key_rows(world, u["id"].as_str().unwrap()))
            .sum::<usize>()
    };
    let head = world.authed("HEAD", KEY, &token).send();
    assert_eq!(head.status, 405, "HEAD on a creating GET is refused");
    assert_eq!(head.header("allow"), Some("GET"));
    assert_eq!(keys_of_uid(), 0, "D1 holds no key");

    // HEAD still answers on routes whose GET creates nothing.
    assert_eq!(world.call("HEAD", "/api/health/ping").send().status, 200);
    assert_eq!(world.authed("HEAD", PROFILE, &token).send().status, 200);
    assert_eq!(keys_of_uid(), 0);

    let made = world.authed("GET", KEY, &token).send();
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(world.authed("HEAD", KEY, &token).send().status, 405);
    assert_eq!(keys_of_uid(), 1);
}
