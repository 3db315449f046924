//! `POST /api/auth/webhook/clerk`: Svix-signed deliveries are verified, stored before they
//! are acknowledged, applied once, and a repeated `svix-id` changes nothing.

use serde_json::{json, Value};

use super::Case;
use crate::harness::identity::{
    clerk_user_event, now, svix_headers, svix_headers_with, unique, ADMIN_CLERK_ID, SVIX_KEY,
    SVIX_KEY_NEXT,
};
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(clerk_webhook:
        a_valid_delivery_creates_the_user_with_the_plan_from_metadata,
        a_repeated_svix_id_changes_nothing,
        an_older_update_never_overwrites_a_newer_one,
        bad_signatures_and_stale_timestamps_are_refused_and_not_stored,
        a_signed_but_malformed_body_is_400_and_not_stored,
        an_ended_session_can_no_longer_authenticate,
        a_deleted_user_loses_their_api_keys,
        a_user_deleted_before_it_was_seen_is_never_created_active,
        a_delivery_signed_with_any_listed_secret_is_accepted,
        a_delivery_that_fails_is_answered_500_kept_and_applied_by_the_inbox_retry,
    )
}

const PATH: &str = "/api/auth/webhook/clerk";

/// The Clerk user `clerk_id`'s row.
fn user_of(clerk_id: &str) -> Rows {
    Rows::new()
        .where_eq("users", "external_id", clerk_id)
        .and_eq("auth_source", "clerk")
}

/// The stored Clerk delivery `id`.
fn event_of(id: &str) -> Rows {
    Rows::new()
        .where_eq("webhook_events", "event_id", id)
        .and_eq("provider", "clerk")
}

fn user_row(world: &World, clerk_id: &str) -> Vec<Value> {
    world.rows(&user_of(clerk_id))
}

fn events_with_id(world: &World, id: &str) -> Vec<Value> {
    world.rows(&event_of(id))
}

/// The webhook inbox's failure rule for Clerk: a delivery whose processing fails is answered
/// `500` (so Svix redelivers it) and kept as `failed`; the inbox's retry applies it from the
/// stored payload once the fault is gone, and a redelivery after that changes nothing.
fn a_delivery_that_fails_is_answered_500_kept_and_applied_by_the_inbox_retry(world: &World) {
    let clerk_id = unique("user_inbox_");
    let msg = unique("msg_");
    let trigger = format!("fail_{}", clerk_id.trim_start_matches("user_"));
    world.d1_query(&format!(
        "CREATE TRIGGER {trigger} BEFORE INSERT ON users WHEN NEW.external_id = '{clerk_id}' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    ));
    let event = clerk_user_event("user.created", &clerk_id, 1_700_000_000_000, json!({}));
    let failed = world.clerk_webhook(&msg, &event);
    world.d1_query(&format!("DROP TRIGGER {trigger}"));
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert!(user_row(world, &clerk_id).is_empty(), "nothing applied");
    let stored = events_with_id(world, &msg);
    assert_eq!(stored.len(), 1, "the delivery is kept");
    // Another case's retry may already have applied it; otherwise it is failed.
    assert!(
        stored[0]["status"] == "failed" || stored[0]["status"] == "processed",
        "{stored:?}"
    );

    let admin = world.clerk_token(ADMIN_CLERK_ID);
    let retried = world.authed("POST", "/api/webhooks/retry", &admin).send();
    assert_eq!(retried.status, 200, "{}", retried.body);
    let rows = user_row(world, &clerk_id);
    assert_eq!(rows.len(), 1, "the retry applied the stored event");
    let stored = events_with_id(world, &msg);
    assert_eq!(stored[0]["status"], "processed", "{stored:?}");
    assert!(stored[0]["attempts"].as_i64().unwrap() >= 2, "{stored:?}");

    let again = world.clerk_webhook(&msg, &event);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(
        user_row(world, &clerk_id),
        rows,
        "the redelivery changed nothing"
    );
}

fn a_valid_delivery_creates_the_user_with_the_plan_from_metadata(world: &World) {
    let clerk_id = unique("user_hook_");
    let msg = unique("msg_");
    let reply = world.clerk_webhook(
        &msg,
        &clerk_user_event(
            "user.created",
            &clerk_id,
            1_700_000_000_000,
            json!({ "plan": "premium" }),
        ),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["duplicate"], false);
    assert_eq!(body["status"], "processed");
    let rows = user_row(world, &clerk_id);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["email"], format!("{clerk_id}@example.test"));
    assert_eq!(rows[0]["display_name"], "Test Person");
    assert_eq!(rows[0]["plan"], "premium");
    let events = events_with_id(world, &msg);
    assert_eq!(events[0]["status"], "processed");
    assert_eq!(events[0]["event_type"], "user.created");
    assert_eq!(events[0]["attempts"], 1);
    // The token of that user sees the plan.
    let profile = world
        .authed("GET", "/api/user/profile", &world.clerk_token(&clerk_id))
        .send()
        .json();
    assert_eq!(profile["plan"], "premium");
    assert_eq!(profile["limits"]["api_keys"], 10);
}

fn a_repeated_svix_id_changes_nothing(world: &World) {
    let clerk_id = unique("user_dup_");
    let msg = unique("msg_");
    let first = world.clerk_webhook(
        &msg,
        &clerk_user_event(
            "user.created",
            &clerk_id,
            1_700_000_000_000,
            json!({ "plan": "basic" }),
        ),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(user_row(world, &clerk_id).len(), 1);
    assert_eq!(events_with_id(world, &msg).len(), 1);
    let before = world.snapshot(&user_of(&clerk_id).where_eq("webhook_events", "event_id", &msg));
    // Same svix-id, a different (newer, correctly signed) body: acknowledged, not applied.
    let again = world.clerk_webhook(
        &msg,
        &clerk_user_event(
            "user.updated",
            &clerk_id,
            1_800_000_000_000,
            json!({ "plan": "enterprise" }),
        ),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["duplicate"], true);
    // The user and the stored event are unchanged.
    before.assert_unchanged(world);
}

fn an_older_update_never_overwrites_a_newer_one(world: &World) {
    let clerk_id = unique("user_order_");
    let newer = clerk_user_event(
        "user.updated",
        &clerk_id,
        1_700_000_500_000,
        json!({ "plan": "premium" }),
    );
    let older = clerk_user_event(
        "user.created",
        &clerk_id,
        1_700_000_000_000,
        json!({ "plan": "basic" }),
    );
    assert_eq!(world.clerk_webhook(&unique("msg_"), &newer).status, 200);
    assert_eq!(world.clerk_webhook(&unique("msg_"), &older).status, 200);
    let rows = user_row(world, &clerk_id);
    assert_eq!(
        rows[0]["plan"], "premium",
        "the late, older event did not roll back"
    );
    assert_eq!(rows[0]["source_updated_at"], 1_700_000_500_000i64);
}

fn bad_signatures_and_stale_timestamps_are_refused_and_not_stored(world: &World) {
    let clerk_id = unique("user_forged_");
    let event = clerk_user_event(
        "user.created",
        &clerk_id,
        1_700_000_000_000,
        json!({ "plan": "enterprise" }),
    );
    let body = event.to_string();
    let send = |headers: Vec<(&'static str, String)>| {
        let mut call = world.call("POST", PATH);
        for (name, value) in headers {
            call = call.header(name, &value);
        }
        call.body("application/json", body.as_bytes())
    };
    // Every delivery's svix-id starts with `run`: none may be stored, and no user created.
    let run = unique("msg_forged_");
    let untouched = Rows::new()
        .where_prefix("webhook_events", "event_id", &run)
        .where_eq("users", "external_id", &clerk_id);
    let before = world.snapshot(&untouched);

    let id = unique(&run);
    let mut wrong = svix_headers(&id, now(), body.as_bytes());
    wrong[2].1 = "v1,Zm9yZ2VkIHNpZ25hdHVyZSBmb3JnZWQgc2lnbmF0dXJlIQ==".to_owned();
    let error = send(wrong).assert_error(401, "unauthorized");
    assert!(
        error["message"].as_str().unwrap().contains("signature"),
        "{error}"
    );

    let id = unique(&run);
    let other_body = svix_headers(&id, now(), b"{\"type\":\"user.created\"}");
    send(other_body).assert_error(401, "unauthorized");

    let id = unique(&run);
    let stale = svix_headers(&id, now() - 6 * 60, body.as_bytes());
    let error = send(stale).assert_error(401, "unauthorized");
    assert!(
        error["message"].as_str().unwrap().contains("tolerance"),
        "{error}"
    );

    let id = unique(&run);
    let future = svix_headers(&id, now() + 6 * 60, body.as_bytes());
    send(future).assert_error(401, "unauthorized");

    for missing in ["svix-id", "svix-timestamp", "svix-signature"] {
        let id = unique(&run);
        let headers = svix_headers(&id, now(), body.as_bytes())
            .into_iter()
            .filter(|(name, _)| *name != missing)
            .collect();
        let error = send(headers).assert_error(401, "unauthorized");
        assert!(
            error["message"].as_str().unwrap().contains(missing),
            "{error}"
        );
    }

    before.assert_unchanged(world);
    assert_eq!(
        world.count(&untouched),
        0,
        "refused deliveries are not stored, no user created"
    );
}

fn a_signed_but_malformed_body_is_400_and_not_stored(world: &World) {
    let id = unique("msg_");
    let before = world.snapshot(&event_of(&id));
    let body = br#"{"type": "user.deleted", "data": {"object": "user"}}"#;
    let mut call = world.call("POST", PATH);
    for (name, value) in svix_headers(&id, now(), body) {
        call = call.header(name, &value);
    }
    let error = call
        .body("application/json", body)
        .assert_error(400, "validation_failed");
    assert!(
        error["message"].as_str().unwrap().contains("body"),
        "{error}"
    );
    before.assert_unchanged(world);
    assert!(events_with_id(world, &id).is_empty());
}

fn an_ended_session_can_no_longer_authenticate(world: &World) {
    let clerk_id = unique("user_sess_");
    let mut claims = crate::harness::identity::clerk_claims(&clerk_id);
    let sid = unique("sess_");
    claims["sid"] = json!(sid);
    let token = world.fakes.clerk.sign(&claims);
    let other_device = world.clerk_token(&clerk_id);
    assert_eq!(
        world
            .authed("GET", "/api/user/profile", &token)
            .send()
            .status,
        200
    );
    let ended = world.clerk_webhook(
        &unique("msg_"),
        &json!({ "type": "session.revoked", "object": "event",
                 "data": { "object": "session", "id": sid, "user_id": clerk_id, "status": "revoked" } }),
    );
    assert_eq!(ended.status, 200, "{}", ended.body);
    let error = world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .assert_error(401, "unauthorized");
    assert!(
        error["message"].as_str().unwrap().contains("session"),
        "{error}"
    );
    let other = world
        .authed("GET", "/api/user/profile", &other_device)
        .send();
    assert_eq!(other.status, 200, "another device's session is unaffected");
    // A late session.created never revives it.
    let created = world.clerk_webhook(
        &unique("msg_"),
        &json!({ "type": "session.created", "object": "event",
                 "data": { "object": "session", "id": sid, "user_id": clerk_id, "status": "active" } }),
    );
    assert_eq!(created.status, 200);
    world
        .authed("GET", "/api/user/profile", &token)
        .send()
        .assert_error(401, "unauthorized");
}

fn a_deleted_user_loses_their_api_keys(world: &World) {
    let clerk_id = unique("user_keys_");
    let token = world.clerk_token(&clerk_id);
    let created = world.authed("GET", "/api/user/api-key", &token).send();
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.json()["api_key"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        world.authed("GET", "/api/user/profile", &key).send().status,
        200
    );
    let deleted = world.clerk_webhook(
        &unique("msg_"),
        &json!({ "type": "user.deleted", "object": "event",
                 "data": { "deleted": true, "id": clerk_id, "object": "user" } }),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    world
        .authed("GET", "/api/user/profile", &key)
        .send()
        .assert_error(401, "unauthorized");
    let users = user_row(world, &clerk_id);
    assert_eq!(users.len(), 1, "{users:?}");
    let user_id = users[0]["id"].as_str().unwrap();
    let active = Rows::of_user(user_id, &["api_keys"]).and_null("revoked_at");
    assert_eq!(world.count(&active), 0, "every key revoked");
}

fn a_user_deleted_before_it_was_seen_is_never_created_active(world: &World) {
    let clerk_id = unique("user_gone_");
    let deleted = world.clerk_webhook(
        &unique("msg_"),
        &json!({ "type": "user.deleted", "object": "event",
                 "data": { "deleted": true, "id": clerk_id, "object": "user" } }),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    // Late deliveries of its creation and an update, older and newer than the deletion.
    let at = now() * 1000;
    for (kind, updated_at) in [("user.created", at - 60_000), ("user.updated", at + 60_000)] {
        let event = clerk_user_event(kind, &clerk_id, updated_at, json!({ "plan": "premium" }));
        let reply = world.clerk_webhook(&unique("msg_"), &event);
        assert_eq!(reply.status, 200, "{kind}: {}", reply.body);
    }
    let active = user_of(&clerk_id).and_eq("status", "active");
    assert_eq!(world.count(&active), 0, "no active user");
    let before = world.snapshot(&user_of(&clerk_id));
    let error = world
        .authed("GET", "/api/user/profile", &world.clerk_token(&clerk_id))
        .send()
        .assert_error(401, "unauthorized");
    assert!(
        error["message"].as_str().unwrap().contains("deactivated"),
        "{error}"
    );
    // The token did not create one either, nor change the row there is.
    before.assert_unchanged(world);
    assert_eq!(world.count(&active), 0);
}

fn a_delivery_signed_with_any_listed_secret_is_accepted(world: &World) {
    for (key, accepted) in [
        (SVIX_KEY_NEXT, true),
        (SVIX_KEY, true),
        (&b"e2e-svix-unlisted-key-32-bytes!!"[..], false),
    ] {
        let clerk_id = unique("user_rotated_");
        let id = unique("msg_");
        let body = clerk_user_event("user.created", &clerk_id, now() * 1000, json!({})).to_string();
        let mut call = world.call("POST", PATH);
        for (name, value) in svix_headers_with(key, &id, now(), body.as_bytes()) {
            call = call.header(name, &value);
        }
        let reply = call.body("application/json", body.as_bytes());
        if accepted {
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(user_row(world, &clerk_id).len(), 1);
        } else {
            reply.assert_error(401, "unauthorized");
            assert!(user_row(world, &clerk_id).is_empty());
            assert!(events_with_id(world, &id).is_empty());
        }
    }
}
