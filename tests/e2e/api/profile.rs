//! The caller's profile (`/api/user/profile`): what it shows, what a user may change, the
//! rules each field follows, and that a refused change leaves the stored row as it was.

use serde_json::{json, Value};

use super::api_keys::{all_at_once, clerk_user_on_plan, PROFILE};
use super::Case;
use crate::harness::identity::unique;
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(profile:
        the_profile_shows_the_stored_user_with_plan_limits_roles_and_credential,
        a_patch_changes_only_the_named_fields_null_clears_and_it_is_stored,
        an_empty_patch_changes_nothing,
        invalid_patches_name_every_bad_field_and_change_nothing,
        a_username_taken_by_another_user_in_any_case_is_a_conflict,
        concurrent_claims_of_one_username_give_it_to_one_user,
        a_json_array_is_not_a_patch,
    )
}

/// The stored profile columns of a user.
const ROW: &str = "id, auth_source, external_id, email, username, display_name, avatar_url, \
                   status, plan, created_at, updated_at";

fn stored(world: &World, id: &str) -> Value {
    let rows = world.rows(&Rows::new().where_eq("users", "id", id));
    assert_eq!(rows.len(), 1, "{rows:?}");
    ROW.split(',')
        .map(str::trim)
        .map(|column| (column.to_owned(), rows[0][column].clone()))
        .collect()
}

fn patch(world: &World, token: &str, body: &Value) -> Value {
    let reply = world.authed("PATCH", PROFILE, token).json(body);
    assert_eq!(reply.status, 200, "PATCH {body}: {}", reply.body);
    reply.json()
}

/// The stored columns of a profile as the API shows it.
fn stored_part(profile: &Value) -> Value {
    let mut row = serde_json::Map::new();
    for column in ROW.split(", ").map(str::trim) {
        row.insert(column.to_owned(), profile[column].clone());
    }
    Value::Object(row)
}

fn get(world: &World, token: &str) -> Value {
    let reply = world.authed("GET", PROFILE, token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn the_profile_shows_the_stored_user_with_plan_limits_roles_and_credential(world: &World) {
    let (sub, token) = clerk_user_on_plan(world, "basic");
    let profile = get(world, &token);
    let mut fields: Vec<&str> = profile
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "auth_source",
            "avatar_url",
            "created_at",
            "credential",
            "display_name",
            "email",
            "external_id",
            "id",
            "limits",
            "org",
            "plan",
            "roles",
            "status",
            "updated_at",
            "username",
        ],
        "{profile}"
    );
    assert_eq!(profile["auth_source"], "clerk");
    assert_eq!(profile["external_id"], sub.as_str());
    assert_eq!(profile["email"], format!("{sub}@example.test"));
    assert_eq!(profile["username"], Value::Null);
    assert_eq!(profile["display_name"], "Test Person");
    assert_eq!(profile["avatar_url"], "https://img.clerk.com/test.png");
    assert_eq!(profile["status"], "active");
    assert_eq!(profile["plan"], "basic");
    assert_eq!(
        profile["limits"],
        json!({ "tokens_per_month": 10_000_000, "api_keys": 3, "concurrent_sessions": 3 })
    );
    assert_eq!(profile["roles"], json!(["user"]));
    assert_eq!(profile["org"], Value::Null);
    assert_eq!(profile["credential"], "clerk");

    let id = profile["id"].as_str().unwrap();
    assert_eq!(stored(world, id), stored_part(&profile), "what D1 holds");

    // An HMAC user, with the email and username from their token, shows the HMAC credential.
    let uid = unique("profile-hmac-");
    let hmac = get(world, &world.hmac_token(&uid));
    assert_eq!(hmac["credential"], "hmac");
    assert_eq!(hmac["username"], uid.as_str());
    assert_eq!(hmac["plan"], "free");
    assert_eq!(
        hmac["limits"],
        json!({ "tokens_per_month": 1_000_000, "api_keys": 1, "concurrent_sessions": 1 })
    );
}

fn a_patch_changes_only_the_named_fields_null_clears_and_it_is_stored(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "free");
    let before = get(world, &token);

    // The longest allowed values, sent with surrounding spaces, which are trimmed.
    let username = format!("Ann.Lee-{}_{}", unique(""), "x".repeat(7));
    assert_eq!(username.len(), 32);
    let display = "é".repeat(100);
    let avatar = format!(
        "https://cdn.example.test/{}",
        "a".repeat(2048 - "https://cdn.example.test/".len())
    );
    let changed = patch(
        world,
        &token,
        &json!({ "username": format!("  {username} "), "display_name": format!(" {display}\u{3000}") }),
    );
    assert_eq!(changed["username"], username.as_str());
    assert_eq!(changed["display_name"], display.as_str());
    assert_eq!(
        changed["avatar_url"], before["avatar_url"],
        "an absent field is unchanged"
    );
    assert_eq!(changed["email"], before["email"]);
    assert_eq!(changed["id"], before["id"]);
    assert_eq!(changed["created_at"], before["created_at"]);
    assert!(
        changed["updated_at"].as_str() > before["updated_at"].as_str(),
        "updated_at moves: {} -> {}",
        before["updated_at"],
        changed["updated_at"]
    );
    assert_eq!(changed["credential"], "clerk");
    assert_eq!(changed["limits"], before["limits"]);

    let cleared = patch(
        world,
        &token,
        &json!({ "display_name": null, "avatar_url": avatar }),
    );
    assert_eq!(cleared["display_name"], Value::Null, "null clears");
    assert_eq!(cleared["avatar_url"], avatar.as_str());
    assert_eq!(cleared["username"], username.as_str());

    let cleared = patch(
        world,
        &token,
        &json!({ "username": null, "avatar_url": null }),
    );
    assert_eq!(cleared["username"], Value::Null);
    assert_eq!(cleared["avatar_url"], Value::Null);

    let id = before["id"].as_str().unwrap();
    assert_eq!(
        stored(world, id),
        stored_part(&cleared),
        "D1 holds the result"
    );
    assert_eq!(get(world, &token), cleared, "and GET shows it");
}

fn an_empty_patch_changes_nothing(world: &World) {
    let uid = unique("profile-empty-");
    let token = world.hmac_token(&uid);
    let before = get(world, &token);
    let after = patch(world, &token, &json!({}));
    assert_eq!(after, before);
    let id = before["id"].as_str().unwrap();
    assert_eq!(
        stored(world, id),
        stored_part(&before),
        "not even updated_at moves"
    );
}

fn invalid_patches_name_every_bad_field_and_change_nothing(world: &World) {
    let (_, token) = clerk_user_on_plan(world, "basic");
    let set = patch(world, &token, &json!({ "username": unique("valid_") }));
    let id = set["id"].as_str().unwrap();
    let row_before = stored(world, id);
    let before = world.snapshot(&Rows::new().where_eq("users", "id", id));

    let long_url = format!("https://cdn.example.test/{}", "a".repeat(2048));
    // (case, body, the fields reported, in order).
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "every field bad",
            json!({ "username": "a", "display_name": "x".repeat(101), "avatar_url": "javascript:alert(1)" }),
            vec!["username", "display_name", "avatar_url"],
        ),
        (
            "a good username with a bad display name",
            json!({ "username": unique("good_"), "display_name": "tab\there" }),
            vec!["display_name"],
        ),
        (
            "username too short",
            json!({ "username": "ab" }),
            vec!["username"],
        ),
        (
            "username too long",
            json!({ "username": "a".repeat(33) }),
            vec!["username"],
        ),
        (
            "username starting with a dash",
            json!({ "username": "-ann" }),
            vec!["username"],
        ),
        (
            "username with a space",
            json!({ "username": "ann lee" }),
            vec!["username"],
        ),
        (
            "username with a slash",
            json!({ "username": "ann/.." }),
            vec!["username"],
        ),
        (
            "username not ASCII",
            json!({ "username": "anné" }),
            vec!["username"],
        ),
        (
            "blank username",
            json!({ "username": "   " }),
            vec!["username"],
        ),
        (
            "empty display name",
            json!({ "display_name": "" }),
            vec!["display_name"],
        ),
        (
            "blank display name",
            json!({ "display_name": "   " }),
            vec!["display_name"],
        ),
        (
            "display name with a newline",
            json!({ "display_name": "Ann\nLee" }),
            vec!["display_name"],
        ),
        (
            "display name of 101 characters",
            json!({ "display_name": "é".repeat(101) }),
            vec!["display_name"],
        ),
        (
            "plain http avatar",
            json!({ "avatar_url": "http://cdn.example.test/a.png" }),
            vec!["avatar_url"],
        ),
        (
            "avatar without a host",
            json!({ "avatar_url": "https://" }),
            vec!["avatar_url"],
        ),
        (
            "avatar with a space",
            json!({ "avatar_url": "https://cdn.example.test/a b.png" }),
            vec!["avatar_url"],
        ),
        (
            "avatar over 2048 bytes",
            json!({ "avatar_url": long_url }),
            vec!["avatar_url"],
        ),
        (
            "data URL avatar",
            json!({ "avatar_url": "data:image/png;base64,AAAA" }),
            vec!["avatar_url"],
        ),
    ];
    for (case, body, fields) in &cases {
        let reply = world.authed("PATCH", PROFILE, &token).json(body);
        assert_eq!(reply.status, 400, "{case}: {}", reply.body);
        let error = reply.assert_error(400, "validation_failed");
        let named: Vec<&str> = error["fields"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: no fields: {error}"))
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(&named, fields, "{case}: {error}");
        for field in error["fields"].as_array().unwrap() {
            assert!(
                field["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{case}: {error}"
            );
        }
    }

    // Fields a user may not set, wrong types and bodies that are not an object.
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("email", br#"{"email":"new@example.test"}"#.to_vec()),
        ("plan", br#"{"plan":"enterprise"}"#.to_vec()),
        (
            "status",
            br#"{"display_name":"Ann","status":"deleted"}"#.to_vec(),
        ),
        ("roles", br#"{"roles":["admin"]}"#.to_vec()),
        ("a number username", br#"{"username":42}"#.to_vec()),
        (
            "a boolean display name",
            br#"{"display_name":true}"#.to_vec(),
        ),
        (
            "an array avatar",
            br#"{"avatar_url":["https://a.test/x"]}"#.to_vec(),
        ),
        ("a JSON string", br#""ann""#.to_vec()),
        ("JSON null", b"null".to_vec()),
        ("malformed JSON", br#"{"username":"#.to_vec()),
        ("no body", Vec::new()),
    ];
    for (case, body) in &refused {
        let reply = world
            .authed("PATCH", PROFILE, &token)
            .body("application/json", body);
        assert_eq!(reply.status, 400, "{case}: {}", reply.body);
        let error = reply.assert_error(400, "validation_failed");
        assert!(
            error["fields"].as_array().is_some_and(|f| !f.is_empty()),
            "{case}: {error}"
        );
    }

    // Nothing changed in D1, in any column.
    before.assert_unchanged(world);
    assert_eq!(stored(world, id), row_before);
    assert_eq!(get(world, &token), set, "nor in what the API shows");
}

fn a_username_taken_by_another_user_in_any_case_is_a_conflict(world: &World) {
    let (_, first) = clerk_user_on_plan(world, "free");
    let taken = format!("Taken_{}", unique(""));
    patch(world, &first, &json!({ "username": taken }));
    // An HMAC user's username comes from their token.
    let hmac_uid = unique("profile-claimed-");
    let hmac = get(world, &world.hmac_token(&hmac_uid));

    let (_, second) = clerk_user_on_plan(world, "free");
    let before = patch(world, &second, &json!({ "username": unique("mine_") }));
    for attempt in [
        json!({ "username": taken }),
        json!({ "username": taken.to_lowercase() }),
        json!({ "username": format!(" {} ", taken.to_uppercase()) }),
        json!({ "username": hmac_uid.to_uppercase() }),
        json!({ "username": taken, "display_name": "Someone Else" }),
    ] {
        let reply = world.authed("PATCH", PROFILE, &second).json(&attempt);
        let error = reply.assert_error(409, "conflict");
        assert!(
            error["message"].as_str().unwrap().contains("taken"),
            "{attempt}: {error}"
        );
    }

    let rows = world.d1_query(&format!(
        "SELECT {ROW} FROM users WHERE id IN ('{second}', '{hmac}') ORDER BY id = '{second}' DESC",
        second = before["id"].as_str().unwrap(),
        hmac = hmac["id"].as_str().unwrap(),
    ));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0],
        stored_part(&before),
        "the refused user is unchanged"
    );
    assert_eq!(rows[1]["username"], hmac_uid.as_str(), "the owner keeps it");

    // Changing the case of one's own username is no conflict.
    let recased = patch(world, &first, &json!({ "username": taken.to_lowercase() }));
    assert_eq!(recased["username"], taken.to_lowercase());
    let own = before["username"].as_str().unwrap().to_uppercase();
    assert_eq!(
        patch(world, &second, &json!({ "username": own }))["username"],
        own.as_str()
    );
}

/// The check for a taken username and the write are separate statements: users racing for
/// one name must still end with one owner.
fn concurrent_claims_of_one_username_give_it_to_one_user(world: &World) {
    const USERS: usize = 6;
    const ROUNDS: usize = 4;
    let prefix = unique("race_");
    let mut statuses = Vec::new();
    for round in 0..ROUNDS {
        // Fresh users each round, so every round's outcome stays in D1.
        let tokens: Vec<String> = (0..USERS)
            .map(|_| world.hmac_token(&unique("profile-race-")))
            .collect();
        for token in &tokens {
            get(world, token);
        }
        let name = format!("{prefix}_{round}");
        let replies = all_at_once(USERS, |i| {
            let claim = if i % 2 == 0 {
                name.clone()
            } else {
                name.to_uppercase()
            };
            world
                .authed("PATCH", PROFILE, &tokens[i])
                .json(&json!({ "username": claim }))
        });
        statuses.push(replies.iter().map(|r| r.status).collect::<Vec<u16>>());
    }
    // Owners of each round's name, in either of the spellings claimed.
    let owners: Vec<usize> = (0..ROUNDS)
        .map(|round| {
            let name = format!("{prefix}_{round}");
            world.count(&Rows::new().where_eq("users", "username", &name).where_eq(
                "users",
                "username",
                &name.to_uppercase(),
            ))
        })
        .collect();
    let one_winner = |s: &Vec<u16>| {
        s.iter().filter(|s| **s == 200).count() == 1 && s.iter().all(|s| *s == 200 || *s == 409)
    };
    assert!(
        statuses.iter().all(one_winner) && owners.iter().all(|n| *n == 1),
        "each round: one 200 and the rest 409, one owner; got statuses {statuses:?}, \
         owners per name in D1 {owners:?}"
    );
}

/// A patch is an object; serde would otherwise read an array's items as the fields in
/// declaration order (`["name"]` sets the username).
fn a_json_array_is_not_a_patch(world: &World) {
    let uid = unique("profile-array-");
    let token = world.hmac_token(&uid);
    let before = get(world, &token);
    let mut accepted = Vec::new();
    for body in [&b"[]"[..], br#"[null]"#, br#"["array_name", "Array Name"]"#] {
        let reply = world
            .authed("PATCH", PROFILE, &token)
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
    let row = stored(world, before["id"].as_str().unwrap());
    assert!(
        accepted.is_empty() && row == stored_part(&before),
        "array bodies must be 400 and change nothing; accepted: {accepted:#?}; \
         D1 before {} after {row}",
        stored_part(&before)
    );
}
