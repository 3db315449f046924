//! The audit log (`GET /api/admin/audit-log`): every state-changing action writes one row
//! (who, what, on what, in which request, a detail without secrets), read only by admins,
//! filtered and paginated. A repeated action that changes nothing writes nothing.

use serde_json::{json, Value};

use super::api_keys::clerk_user_on_plan;
use super::Case;
use crate::fakes::{stripe_signature, STRIPE_WEBHOOK_SECRET};
use crate::harness::identity::{now, unique, ADMIN_CLERK_ID};
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(audit:
        key_and_profile_changes_are_recorded_with_actor_target_and_request_id,
        a_paid_checkout_records_the_checkout_the_event_and_the_plan_change_once,
        admin_actions_on_the_key_pool_are_recorded_once,
        only_admins_read_the_log,
        a_users_first_request_records_their_creation_once,
        the_log_is_filtered_and_paginated_and_bad_filters_are_refused,
        an_account_that_registered_bought_spent_and_was_adjusted_shows_each_action,
    )
}

const LOG: &str = "/api/admin/audit-log";

fn admin(world: &World) -> String {
    world.clerk_token(ADMIN_CLERK_ID)
}

/// The log's rows for a query string, newest first (one page of up to 200).
fn rows(world: &World, query: &str) -> Vec<Value> {
    let reply = world
        .authed("GET", &format!("{LOG}?limit=200&{query}"), &admin(world))
        .send();
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    reply.json()["data"].as_array().unwrap().clone()
}

/// A fresh Clerk user on the free plan: (token, Tollgate id).
fn user(world: &World) -> (String, String) {
    let (_, token) = clerk_user_on_plan(world, "free");
    let profile = world.authed("GET", "/api/user/profile", &token).send();
    assert_eq!(profile.status, 200, "{}", profile.body);
    (token, profile.json()["id"].as_str().unwrap().to_owned())
}

fn key_and_profile_changes_are_recorded_with_actor_target_and_request_id(world: &World) {
    let (token, user_id) = user(world);
    let request_id = unique("audit-create-");
    let created = world
        .authed("POST", "/api/user/api-keys", &token)
        .header("X-Request-Id", &request_id)
        .json(&json!({ "name": "ci", "scopes": ["usage", "billing"] }));
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.json()["api_key"].clone();
    let key_id = key["id"].as_str().unwrap();
    let plaintext = key["key"].as_str().unwrap();

    let found = rows(world, &format!("target={key_id}"));
    assert_eq!(found.len(), 1, "{found:?}");
    let row = &found[0];
    assert_eq!(row["action"], "api_key.created");
    assert_eq!(row["actor"], json!({ "kind": "user", "id": user_id }));
    assert_eq!(row["target"], json!({ "kind": "api_key", "id": key_id }));
    assert_eq!(row["request_id"], request_id.as_str());
    assert_eq!(row["detail"]["name"], "ci");
    assert_eq!(row["detail"]["scopes"], json!(["usage", "billing"]));
    // Neither the key nor its hash is ever written to the log.
    let stored = world.d1_query(&format!(
        "SELECT detail FROM audit_log WHERE target_id = '{key_id}'"
    ));
    let text = stored[0]["detail"].as_str().unwrap();
    assert!(
        !text.contains(plaintext) && !text.contains("tg_live_"),
        "{text}"
    );

    // Revoked twice: recorded once.
    for _ in 0..2 {
        let revoked = world
            .authed("DELETE", &format!("/api/user/api-keys/{key_id}"), &token)
            .send();
        assert_eq!(revoked.status, 200, "{}", revoked.body);
    }
    let actions: Vec<Value> = rows(world, &format!("target={key_id}"))
        .iter()
        .map(|r| r["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [json!("api_key.revoked"), json!("api_key.created")]
    );

    // A profile change names the fields it changed, not their values.
    let patched = world
        .authed("PATCH", "/api/user/profile", &token)
        .json(&json!({ "display_name": "Ada Secret-Name" }));
    assert_eq!(patched.status, 200, "{}", patched.body);
    let updates = rows(world, &format!("target={user_id}&action=user.updated"));
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["detail"], json!({ "fields": ["display_name"] }));
}

fn a_paid_checkout_records_the_checkout_the_event_and_the_plan_change_once(world: &World) {
    let (token, user_id) = user(world);
    let reply = world
        .authed("POST", "/api/subscriptions/checkout", &token)
        .json(&json!({ "plan": "basic" }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.json()["session_id"].as_str().unwrap().to_owned();
    let started = rows(
        world,
        &format!("actor={user_id}&action=subscription.checkout_created"),
    );
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["target"]["id"], session.as_str());
    assert_eq!(started[0]["detail"]["plan"], "basic");

    let completed = world.fakes.stripe.complete_checkout(&session);
    let event_id = completed["id"].as_str().unwrap().to_owned();
    let body = completed.to_string();
    for _ in 0..2 {
        let delivered = world
            .call("POST", "/api/webhooks/stripe")
            .header(
                "Stripe-Signature",
                &stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now()),
            )
            .body("application/json", body.as_bytes());
        assert_eq!(delivered.status, 200, "{}", delivered.body);
    }
    // The event, applied once (the duplicate delivery changed nothing) ...
    let applied = rows(world, &format!("target={event_id}"));
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0]["action"], "webhook.applied");
    assert_eq!(
        applied[0]["actor"],
        json!({ "kind": "system", "id": "stripe" })
    );
    assert_eq!(applied[0]["detail"]["type"], "checkout.session.completed");
    assert_eq!(applied[0]["request_id"], event_id.as_str());
    // ... and the plan it changed, once, caused by that event.
    let changed = rows(world, &format!("target={user_id}&action=plan.changed"));
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["actor"]["id"], "stripe");
    assert_eq!(
        changed[0]["detail"],
        json!({ "from": "free", "to": "basic", "cause": "checkout.session.completed" })
    );
    assert_eq!(changed[0]["request_id"], event_id.as_str());

    // Cancelling now is the user's action, and changes the plan back.
    let cancelled = world
        .authed("POST", "/api/subscriptions/cancel", &token)
        .json(&json!({ "at_period_end": false }));
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let mine = rows(world, &format!("actor={user_id}"));
    let actions: Vec<&str> = mine.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "subscription.cancelled",
            "plan.changed",
            "subscription.checkout_created"
        ],
        "{mine:?}"
    );
    assert_eq!(mine[1]["detail"]["to"], "free");
}

fn admin_actions_on_the_key_pool_are_recorded_once(world: &World) {
    let admin = admin(world);
    let admin_id = world
        .authed("GET", "/api/user/profile", &admin)
        .send()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let provider = unique("auditp").to_ascii_lowercase();
    let secret = format!("sk-audit-{}", unique(""));
    let added = world
        .authed("POST", "/api/admin/provider-keys", &admin)
        .json(&json!({ "provider": provider, "tier": "free", "key": secret }));
    assert_eq!(added.status, 201, "{}", added.body);
    let id = added.json()["provider_key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let retired = world
            .authed("DELETE", &format!("/api/admin/provider-keys/{id}"), &admin)
            .send();
        assert_eq!(retired.status, 200, "{}", retired.body);
    }
    let found = rows(world, &format!("target={id}"));
    let actions: Vec<&str> = found
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["provider_key.retired", "provider_key.added"]);
    assert!(found.iter().all(|r| r["actor"]["id"] == admin_id.as_str()));
    assert_eq!(found[1]["detail"]["provider"], provider.as_str());
    let stored = world.d1_query(&format!(
        "SELECT detail FROM audit_log WHERE target_id = '{id}'"
    ));
    assert!(stored
        .iter()
        .all(|r| !r["detail"].as_str().unwrap().contains(&secret)));
}

fn only_admins_read_the_log(world: &World) {
    let (token, _) = user(world);
    world
        .authed("GET", LOG, &token)
        .send()
        .assert_error(403, "forbidden");
    world.get(LOG).assert_error(401, "unauthorized");
}

fn the_log_is_filtered_and_paginated_and_bad_filters_are_refused(world: &World) {
    let (token, user_id) = user(world);
    let mut ids = Vec::new();
    for n in 0..3 {
        let created = world
            .authed("POST", "/api/user/api-keys", &token)
            .json(&json!({ "name": format!("k{n}") }));
        assert_eq!(created.status, 201, "{}", created.body);
        ids.push(created.json()["api_key"]["id"].as_str().unwrap().to_owned());
        let revoke = world
            .authed("DELETE", &format!("/api/user/api-keys/{}", ids[n]), &token)
            .send();
        assert_eq!(revoke.status, 200, "{}", revoke.body);
    }
    let mine = format!("actor={user_id}&action=api_key.created");
    assert_eq!(rows(world, &mine).len(), 3);
    assert_eq!(rows(world, &format!("actor={user_id}")).len(), 6);

    // Pages of two, newest first, reach every row exactly once.
    let admin = admin(world);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{LOG}?{mine}&limit=2&cursor={c}"),
            None => format!("{LOG}?{mine}&limit=2"),
        };
        let page = world.authed("GET", &path, &admin).send();
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        for row in page["data"].as_array().unwrap() {
            seen.push(row["target"]["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    // Times: everything so far is before a minute from now, nothing is after it.
    let later = "2999-01-01T00:00:00Z";
    assert_eq!(rows(world, &format!("{mine}&to={later}")).len(), 3);
    assert_eq!(rows(world, &format!("{mine}&from={later}")).len(), 0);

    // Bad filters are refused, naming the field; reading never writes.
    let snapshot = world.snapshot(&Rows::new().where_eq("audit_log", "actor_id", &user_id));
    for (query, field) in [
        ("action=tokens.stolen", "action"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("actor=", "actor"),
    ] {
        let reply = world
            .authed("GET", &format!("{LOG}?{query}"), &admin)
            .send();
        let error = reply.assert_error(400, "validation_failed");
        assert_eq!(error["fields"][0]["field"], field, "{query}: {error}");
    }
    snapshot.assert_unchanged(world);
}

fn an_account_that_registered_bought_spent_and_was_adjusted_shows_each_action(world: &World) {
    // Registered with email and password, verified, signed in.
    let email = format!("{}@audit.example.test", unique("journey_"));
    let password = "correct horse battery staple";
    let registered = world
        .call("POST", "/api/auth/register")
        .header(
            "CF-Connecting-IP",
            &format!("2001:db8:a0d1::{}", &unique("")[..4]),
        )
        .json(&json!({ "email": email, "password": password }));
    assert_eq!(registered.status, 201, "{}", registered.body);
    let user_id = registered.json()["user"]["id"].as_str().unwrap().to_owned();
    let link = world
        .fakes
        .mail
        .token_in_link(&email, "/verify-email")
        .expect("a verification link");
    let verified = world
        .call("POST", "/api/auth/verify-email")
        .json(&json!({ "token": link }));
    assert_eq!(verified.status, 200, "{}", verified.body);
    let login = world
        .call("POST", "/api/auth/login")
        .header("CF-Connecting-IP", "198.51.100.77")
        .json(&json!({ "email": email, "password": password }));
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();

    // Bought a pack through Checkout (paid: Stripe's event credits it) ...
    let purchase = world
        .authed("POST", "/api/tokens/purchase", &token)
        .json(&json!({ "pack": "starter" }));
    assert_eq!(purchase.status, 200, "{}", purchase.body);
    let session = purchase.json()["session_id"].as_str().unwrap().to_owned();
    let completed = world.fakes.stripe.complete_checkout(&session);
    let body = completed.to_string();
    let delivered = world
        .call("POST", "/api/webhooks/stripe")
        .header(
            "Stripe-Signature",
            &stripe_signature(body.as_bytes(), STRIPE_WEBHOOK_SECRET, now()),
        )
        .body("application/json", body.as_bytes());
    assert_eq!(delivered.status, 200, "{}", delivered.body);
    // ... spent some ...
    let spent = world
        .authed("POST", "/api/tokens/use", &token)
        .json(&json!({ "amount": 300, "reason": "a voice take", "request_id": unique("take-") }));
    assert_eq!(spent.status, 200, "{}", spent.body);
    // ... and an admin took some back.
    let adjusted = world.authed("POST", "/api/tokens/add", &admin(world)).json(
        &json!({ "user_id": user_id, "amount": -200, "reason": "goodwill reversal",
                       "request_id": unique("adj-") }),
    );
    assert_eq!(adjusted.status, 200, "{}", adjusted.body);

    // Everything done to this user, oldest first, by whom.
    let mut trail: Vec<(String, String)> = rows(world, &format!("target={user_id}"))
        .iter()
        .map(|r| {
            let actor = r["actor"]["kind"].as_str().unwrap().to_owned();
            (r["action"].as_str().unwrap().to_owned(), actor)
        })
        .collect();
    trail.reverse();
    let expected: Vec<(String, String)> = [
        ("account.registered", "anonymous"),
        ("account.email_verified", "user"),
        ("tokens.checkout_created", "user"),
        ("tokens.purchased", "system"),
        ("tokens.used", "user"),
        ("tokens.adjusted", "user"),
    ]
    .iter()
    .map(|(a, k)| ((*a).to_owned(), (*k).to_owned()))
    .collect();
    let relevant: Vec<(String, String)> = trail
        .into_iter()
        .filter(|(action, _)| expected.iter().any(|(a, _)| a == action))
        .collect();
    assert_eq!(relevant, expected);
    // Registering and signing in each started a session of this user's.
    let sessions = rows(world, &format!("actor={user_id}&action=session.started"));
    let via: Vec<&str> = sessions
        .iter()
        .map(|r| r["detail"]["via"].as_str().unwrap())
        .collect();
    assert_eq!(via, ["login", "register"], "{sessions:?}");
    // The adjustment names the admin; the purchase names Stripe's event.
    let adjustment = rows(world, &format!("target={user_id}&action=tokens.adjusted"));
    assert_ne!(adjustment[0]["actor"]["id"], user_id.as_str());
    assert_eq!(adjustment[0]["detail"]["amount"], -200);
    let purchased = rows(world, &format!("target={user_id}&action=tokens.purchased"));
    assert_eq!(purchased[0]["request_id"], completed["id"]);
    // No password or token in any row about this user.
    let stored = world.d1_query(&format!(
        "SELECT detail FROM audit_log WHERE target_id = '{user_id}' OR actor_id = '{user_id}'"
    ));
    for row in stored {
        let detail = row["detail"].as_str().unwrap();
        assert!(
            !detail.contains(password) && !detail.contains(&token),
            "{detail}"
        );
    }
}

fn a_users_first_request_records_their_creation_once(world: &World) {
    let token = world.hmac_token(&unique("first_"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let profile = world.authed("GET", "/api/user/profile", &token).send();
        assert_eq!(profile.status, 200, "{}", profile.body);
        ids.push(profile.json()["id"].as_str().unwrap().to_owned());
    }
    let created = rows(world, &format!("target={}&action=user.created", ids[0]));
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["actor"]["id"], ids[0].as_str());
    assert_eq!(created[0]["detail"], json!({ "auth_source": "hmac" }));
}
