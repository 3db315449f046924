//! Devices (Sokuji's sessions): each request may name its device (`X-Device-Id`,
//! `X-Client-Platform`); the plan caps how many are active at once, sign-out frees a slot,
//! and a device not seen for 24 hours stops counting.

use serde_json::json;

use super::Case;
use crate::harness::identity::{hs256, now, unique, JWT_SECRET};
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(devices:
        a_device_beyond_the_plan_limit_is_refused_until_one_signs_out,
        devices_not_seen_for_a_day_stop_counting,
        devices_are_listed_with_platform_and_the_current_one_marked,
        a_report_from_a_refused_device_is_still_recorded,
        bad_device_headers_are_400_and_register_nothing,
    )
}

/// A free-plan (one device) HMAC user with a session id: (token, user id).
fn free_user_with_session(world: &World) -> (String, String) {
    let uid = unique("devices-");
    let token = hs256(
        &json!({ "uid": uid, "sid": unique("dsess_"), "exp": now() + 600 }),
        JWT_SECRET.as_bytes(),
    );
    let profile = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .json();
    (token, profile["id"].as_str().unwrap().to_owned())
}

fn quota_from(world: &World, token: &str, device: &str) -> crate::harness::Reply {
    world
        .authed("GET", "/api/usage/quota", token)
        .header("X-Device-Id", device)
        .header("X-Client-Platform", "chrome")
        .send()
}

fn a_device_beyond_the_plan_limit_is_refused_until_one_signs_out(world: &World) {
    let (token, user_id) = free_user_with_session(world);
    assert_eq!(quota_from(world, &token, "laptop").status, 200);
    assert_eq!(
        quota_from(world, &token, "laptop").status,
        200,
        "the same device again"
    );
    let sessions = Rows::of_user(&user_id, &["device_sessions"]);
    assert_eq!(world.count(&sessions), 1, "the laptop is stored");
    let before = world.snapshot(&sessions);
    let error = quota_from(world, &token, "desktop").assert_error(409, "session_limit_exceeded");
    assert!(
        error["message"].as_str().unwrap().contains("1 device"),
        "{error}"
    );
    // The refused device was not stored, and the laptop's row is as it was.
    before.assert_unchanged(world);
    // Signing out on the laptop frees its slot.
    let out = world
        .authed("POST", "/api/auth/signout", &token)
        .header("X-Device-Id", "laptop")
        .send();
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.json()["devices_signed_out"], 1);
    // The old token's session has ended; the same user signs in again on the desktop.
    assert_eq!(
        world
            .authed("GET", "/api/user/profile", &token)
            .send()
            .status,
        401
    );
    let uid = world.d1_query(&format!(
        "SELECT external_id FROM users WHERE id = '{user_id}'"
    ))[0]["external_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token2 = hs256(
        &json!({ "uid": uid, "sid": unique("dsess_"), "exp": now() + 600 }),
        JWT_SECRET.as_bytes(),
    );
    assert_eq!(
        quota_from(world, &token2, "desktop").status,
        200,
        "the slot was freed"
    );
}

fn devices_not_seen_for_a_day_stop_counting(world: &World) {
    let (token, user_id) = free_user_with_session(world);
    assert_eq!(quota_from(world, &token, "old-phone").status, 200);
    quota_from(world, &token, "new-phone").assert_error(409, "session_limit_exceeded");
    // 24 hours and a minute pass for the old phone.
    let day_ago_ms = (now() - 24 * 3600 - 60) * 1000;
    world.d1_query(&format!(
        "UPDATE device_sessions SET last_seen_ms = {day_ago_ms} WHERE user_id = '{user_id}'"
    ));
    assert_eq!(quota_from(world, &token, "new-phone").status, 200);
    let listed = world
        .authed("GET", "/api/usage/sessions", &token)
        .send()
        .json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new-phone"], "{listed}");
}

fn devices_are_listed_with_platform_and_the_current_one_marked(world: &World) {
    let (_, token) = super::api_keys::clerk_user_on_plan(world, "basic");
    for (device, platform) in [("ext-1", "chrome"), ("app-1", "electron")] {
        let reply = world
            .authed("POST", "/api/usage/sync", &token)
            .header("X-Device-Id", device)
            .header("X-Client-Platform", platform)
            .json(&json!({}));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let listed = world
        .authed("GET", "/api/usage/sessions", &token)
        .header("X-Device-Id", "web-1")
        .send();
    assert_eq!(listed.status, 200, "{}", listed.body);
    let body = listed.json();
    assert_eq!(body["limit"], 3);
    assert_eq!(body["active"], 3);
    let data = body["data"].as_array().unwrap();
    let find = |id: &str| data.iter().find(|d| d["device_id"] == id).unwrap().clone();
    assert_eq!(find("ext-1")["platform"], "chrome");
    assert_eq!(find("app-1")["platform"], "electron");
    assert_eq!(find("web-1")["platform"], "web");
    assert_eq!(find("web-1")["current"], true);
    assert_eq!(find("ext-1")["current"], false);
    assert!(find("ext-1")["expires_at"].as_str().unwrap().ends_with('Z'));
    // A fourth device is one too many on basic.
    world
        .authed("GET", "/api/usage/quota", &token)
        .header("X-Device-Id", "fourth")
        .send()
        .assert_error(409, "session_limit_exceeded");
}

fn a_report_from_a_refused_device_is_still_recorded(world: &World) {
    let (token, user_id) = free_user_with_session(world);
    assert_eq!(quota_from(world, &token, "first").status, 200);
    let sessions = Rows::of_user(&user_id, &["device_sessions"]);
    assert_eq!(world.count(&sessions), 1, "the first device is stored");
    let before = world.snapshot(&sessions);
    let body = json!({ "provider": "openai", "model": "gpt-4o", "input_tokens": 7,
                       "output_tokens": 3, "request_id": unique("r-"), "device_id": "second" });
    let reply = world
        .authed("POST", "/api/usage/report", &token)
        .json(&body);
    assert_eq!(
        reply.status, 200,
        "usage that happened is never refused: {}",
        reply.body
    );
    assert_eq!(reply.json()["quota"]["tokens"]["used"], 10);
    // But the extra device is not registered.
    before.assert_unchanged(world);
}

fn bad_device_headers_are_400_and_register_nothing(world: &World) {
    let (token, user_id) = free_user_with_session(world);
    let before = world.snapshot(&Rows::of_user(&user_id, &["device_sessions"]));
    for (name, value) in [("X-Device-Id", "has space"), ("X-Client-Platform", "ios")] {
        let mut call = world.authed("GET", "/api/usage/quota", &token);
        if name == "X-Client-Platform" {
            call = call.header("X-Device-Id", "ok-device");
        }
        let error = call
            .header(name, value)
            .send()
            .assert_error(400, "validation_failed");
        assert_eq!(error["fields"][0]["field"], name);
    }
    before.assert_unchanged(world);
}
