//! Sokuji's auth endpoints: sign-out ends the calling device's session (and revokes it at
//! Clerk), refresh issues a fresh token for the same session, OAuth redirects to Clerk.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};

use super::Case;
use crate::harness::identity::{
    clerk_claims, hs256, now, unique, AUTHORIZED_PARTY, JWT_SECRET, SIGN_IN_URL,
};
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(auth:
        signout_ends_the_clerk_session_here_and_at_clerk,
        signout_ends_an_hmac_session,
        signout_needs_a_session_token,
        an_hmac_signout_never_ends_a_clerk_session_with_the_same_id,
        refresh_of_an_hmac_token_keeps_the_session,
        refresh_of_a_clerk_token_asks_clerk,
        oauth_redirects_to_the_clerk_sign_in_for_known_providers,
        oauth_refuses_unknown_providers_and_foreign_redirects,
    )
}

const PROFILE: &str = "/api/user/profile";

/// A token's payload exactly as issued (exp, iat and all), without verifying it.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).expect("base64url")).expect("JSON claims")
}

fn signout_ends_the_clerk_session_here_and_at_clerk(world: &World) {
    let sub = unique("user_out_");
    let claims = clerk_claims(&sub);
    let sid = claims["sid"].as_str().unwrap().to_owned();
    let token = world.fakes.clerk.sign(&claims);
    let other_device = world.clerk_token(&sub);
    assert_eq!(world.authed("GET", PROFILE, &token).send().status, 200);

    let reply = world.authed("POST", "/api/auth/signout", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["signed_out"], true);
    assert_eq!(body["session_id"], sid.as_str());
    assert_eq!(body["revoked_at_clerk"], true);
    assert!(world.fakes.clerk.revoked_sessions().contains(&sid));

    let error = world
        .authed("GET", PROFILE, &token)
        .send()
        .assert_error(401, "unauthorized");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("session has ended"));
    assert_eq!(
        world.authed("GET", PROFILE, &other_device).send().status,
        200
    );
    let rows = world.d1_query(&format!(
        "SELECT status, ended_reason FROM auth_sessions WHERE id = '{sid}'"
    ));
    assert_eq!(
        rows,
        vec![json!({ "status": "ended", "ended_reason": "signout" })]
    );
}

fn signout_ends_an_hmac_session(world: &World) {
    let uid = unique("puku-out-");
    let sid = unique("hsess_");
    let token = hs256(
        &json!({ "uid": uid, "sid": sid, "exp": now() + 600 }),
        JWT_SECRET.as_bytes(),
    );
    assert_eq!(world.authed("GET", PROFILE, &token).send().status, 200);
    let reply = world.authed("POST", "/api/auth/signout", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["revoked_at_clerk"], false);
    world
        .authed("GET", PROFILE, &token)
        .send()
        .assert_error(401, "unauthorized");
}

fn signout_needs_a_session_token(world: &World) {
    // An HMAC token without sid or jti names no session.
    let token = hs256(
        &json!({ "uid": unique("puku-nosid-"), "exp": now() + 600 }),
        JWT_SECRET.as_bytes(),
    );
    world
        .authed("POST", "/api/auth/signout", &token)
        .send()
        .assert_error(400, "bad_request");
    assert_eq!(world.authed("GET", PROFILE, &token).send().status, 200);
    // An API key is revoked, not signed out: the route table admits sessions only.
    let key = world
        .authed(
            "GET",
            "/api/user/api-key",
            &world.hmac_token(&unique("puku-key-")),
        )
        .send()
        .json()["api_key"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/api/auth/signout", "/api/auth/refresh"] {
        let error = world
            .authed("POST", path, &key)
            .send()
            .assert_error(403, "forbidden");
        assert!(
            error["message"].as_str().unwrap().contains("session"),
            "{path}: {error}"
        );
    }
    assert_eq!(world.authed("GET", PROFILE, &key).send().status, 200);
    world
        .call("POST", "/api/auth/signout")
        .send()
        .assert_error(401, "unauthorized");
}

/// An HMAC token names its own `sid`. Signing out with one equal to a Clerk user's session id
/// ends the HMAC caller's session only: sessions are keyed by source, user and id.
fn an_hmac_signout_never_ends_a_clerk_session_with_the_same_id(world: &World) {
    let clerk_id = unique("user_victim_");
    let claims = clerk_claims(&clerk_id);
    let sid = claims["sid"].as_str().unwrap().to_owned();
    let victim = world.fakes.clerk.sign(&claims);
    assert_eq!(world.authed("GET", PROFILE, &victim).send().status, 200);
    // Clerk reports the session, so it is known here as active.
    let started = world.clerk_webhook(
        &unique("msg_"),
        &json!({ "type": "session.created", "object": "event",
                 "data": { "object": "session", "id": sid, "user_id": clerk_id, "status": "active" } }),
    );
    assert_eq!(started.status, 200, "{}", started.body);

    let attacker = hs256(
        &json!({ "uid": unique("puku-attacker-"), "sid": sid, "exp": now() + 600 }),
        JWT_SECRET.as_bytes(),
    );
    let reply = world.authed("POST", "/api/auth/signout", &attacker).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["revoked_at_clerk"], false);
    world
        .authed("GET", PROFILE, &attacker)
        .send()
        .assert_error(401, "unauthorized");

    let still = world.authed("GET", PROFILE, &victim).send();
    assert_eq!(
        still.status, 200,
        "the Clerk session lives on: {}",
        still.body
    );
    assert!(
        !world.fakes.clerk.revoked_sessions().contains(&sid),
        "nothing was revoked at Clerk"
    );
    let rows = world.d1_query(&format!(
        "SELECT auth_source, status FROM auth_sessions WHERE id = '{sid}' ORDER BY auth_source"
    ));
    assert_eq!(
        rows,
        vec![
            json!({ "auth_source": "clerk", "status": "active" }),
            json!({ "auth_source": "hmac", "status": "ended" }),
        ]
    );
}

fn refresh_of_an_hmac_token_keeps_the_session(world: &World) {
    let uid = unique("puku-refresh-");
    let sid = unique("hsess_");
    let token = hs256(
        &json!({ "uid": uid, "sid": sid, "email": "r@example.test", "exp": now() + 30 }),
        JWT_SECRET.as_bytes(),
    );
    let reply = world.authed("POST", "/api/auth/refresh", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    let fresh = body["token"].as_str().unwrap();
    let claims = claims_of(fresh);
    assert_eq!(claims["uid"], uid.as_str());
    assert_eq!(claims["sid"], sid.as_str());
    assert!(claims["exp"].as_i64().unwrap() >= now() + 3000, "{claims}");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    let profile = world.authed("GET", PROFILE, fresh).send().json();
    assert_eq!(profile["external_id"], uid.as_str());
    // Signing out ends the refreshed token too: it is the same session.
    assert_eq!(
        world
            .authed("POST", "/api/auth/signout", fresh)
            .send()
            .status,
        200
    );
    world
        .authed("GET", PROFILE, &token)
        .send()
        .assert_error(401, "unauthorized");
}

fn refresh_of_a_clerk_token_asks_clerk(world: &World) {
    let sub = unique("user_refresh_");
    let claims = clerk_claims(&sub);
    let token = world.fakes.clerk.sign(&claims);
    let reply = world.authed("POST", "/api/auth/refresh", &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fresh = reply.json()["token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, token);
    let fresh_claims = claims_of(&fresh);
    assert_eq!(fresh_claims["sub"], sub.as_str());
    assert_eq!(fresh_claims["sid"], claims["sid"]);
    assert_eq!(fresh_claims["azp"], AUTHORIZED_PARTY);
    assert_eq!(world.authed("GET", PROFILE, &fresh).send().status, 200);
    let sid = claims["sid"].as_str().unwrap();
    let asked = world
        .fakes
        .clerk
        .upstream()
        .count("POST", &format!("/v1/sessions/{sid}/tokens"));
    assert_eq!(asked, 1);
}

fn oauth_redirects_to_the_clerk_sign_in_for_known_providers(world: &World) {
    let reply = world.get("/api/auth/oauth/google");
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.header("location").unwrap();
    assert_eq!(location, format!("{SIGN_IN_URL}?strategy=oauth_google"));
    let back = "http://localhost:5173/auth/callback";
    let reply = world.get(&format!(
        "/api/auth/oauth/github?redirect_url={}",
        "http%3A%2F%2Flocalhost%3A5173%2Fauth%2Fcallback"
    ));
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.header("location").unwrap();
    assert!(location.starts_with(&format!(
        "{SIGN_IN_URL}?strategy=oauth_github&redirect_url="
    )));
    assert!(
        location.contains("localhost%3A5173%2Fauth%2Fcallback"),
        "{location} for {back}"
    );
}

fn oauth_refuses_unknown_providers_and_foreign_redirects(world: &World) {
    let error = world
        .get("/api/auth/oauth/myspace")
        .assert_error(400, "bad_request");
    assert!(error["message"].as_str().unwrap().contains("google"));
    let error = world
        .get("/api/auth/oauth/google?redirect_url=https%3A%2F%2Fevil.example%2Fsteal")
        .assert_error(400, "validation_failed");
    assert_eq!(error["fields"][0]["field"], "redirect_url");
    world
        .get("/api/auth/oauth/google?redirect_url=not-a-url")
        .assert_error(400, "validation_failed");
}
