//! Who is calling: the accept/reject matrix on a protected endpoint (`GET /api/user/profile`),
//! for Clerk session tokens, HMAC tokens and API keys. Every refusal is a 401 envelope and
//! creates no user row.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};

use super::Case;
use crate::harness::identity::{
    clerk_claims, clerk_user_event, hmac_claims, hs256, now, unique, ADMIN_CLERK_ID,
    ADMIN_HMAC_UID, JWT_SECRET, STAFF_ORG_ID,
};
use crate::harness::snapshot::Rows;
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(identity:
        a_valid_clerk_token_is_accepted_and_creates_the_user_once,
        a_valid_hmac_token_is_accepted,
        every_bad_credential_is_refused_without_creating_a_user,
        a_deleted_user_cannot_authenticate,
        roles_come_from_configuration_and_org_claims,
        hmac_and_clerk_users_with_the_same_subject_are_different_users,
        an_hmac_token_with_a_clerk_admins_id_is_refused_on_every_admin_route,
    )
}

const PROFILE: &str = "/api/user/profile";

fn users_with_external_id(world: &World, id: &str) -> usize {
    world.count(&Rows::new().where_eq("users", "external_id", id))
}

fn a_valid_clerk_token_is_accepted_and_creates_the_user_once(world: &World) {
    let sub = unique("user_e2e_");
    let token = world.clerk_token(&sub);
    let reply = world.authed("GET", PROFILE, &token).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let profile = reply.json();
    assert_eq!(profile["auth_source"], "clerk");
    assert_eq!(profile["external_id"], sub.as_str());
    assert_eq!(profile["plan"], "free");
    assert_eq!(profile["limits"]["api_keys"], 1);
    assert_eq!(profile["roles"], json!(["user"]));
    assert_eq!(profile["credential"], "clerk");
    assert!(profile["id"].as_str().unwrap().starts_with("usr_"));
    // The same user on a second request (a fresh token: not from the verified-token cache).
    let again = world
        .authed("GET", PROFILE, &world.clerk_token(&sub))
        .send()
        .json();
    assert_eq!(again["id"], profile["id"]);
    assert_eq!(users_with_external_id(world, &sub), 1);
    assert!(
        world
            .worker_log_with(&[r#""principal":"clerk""#])
            .contains(r#""principal":"clerk""#),
        "the request log names the principal kind"
    );
}

fn a_valid_hmac_token_is_accepted(world: &World) {
    let uid = unique("puku-");
    let reply = world.authed("GET", PROFILE, &world.hmac_token(&uid)).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let profile = reply.json();
    assert_eq!(profile["auth_source"], "hmac");
    assert_eq!(profile["external_id"], uid.as_str());
    assert_eq!(profile["email"], format!("{uid}@example.test"));
    assert_eq!(profile["username"], uid.as_str());
    // `sub` works when `uid` is absent.
    let sub = unique("sub-");
    let token = hs256(
        &json!({ "sub": sub, "exp": now() + 60 }),
        JWT_SECRET.as_bytes(),
    );
    let profile = world.authed("GET", PROFILE, &token).send().json();
    assert_eq!(profile["external_id"], sub.as_str());
}

/// Replaces the payload of a signed token, keeping header and signature.
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    )
}

fn every_bad_credential_is_refused_without_creating_a_user(world: &World) {
    let run = unique("reject_");
    let sub = |case: &str| format!("{run}_{case}");
    let clerk = &world.fakes.clerk;
    let secret = JWT_SECRET.as_bytes();
    let mut cases: Vec<(&str, Option<String>, &str)> = Vec::new();
    // Every subject below starts with `run`: no user or session of theirs may appear.
    let before = world.snapshot(
        &Rows::new()
            .where_prefix("users", "external_id", &run)
            .where_prefix("auth_sessions", "external_user_id", &run),
    );

    let mut expired = clerk_claims(&sub("expired"));
    expired["exp"] = json!(now() - 120);
    cases.push(("expired", Some(clerk.sign(&expired)), "expired"));

    let mut early = clerk_claims(&sub("early"));
    early["nbf"] = json!(now() + 600);
    cases.push(("not yet valid", Some(clerk.sign(&early)), "not valid yet"));

    let mut issuer = clerk_claims(&sub("issuer"));
    issuer["iss"] = json!("https://evil.clerk.test");
    cases.push(("wrong issuer", Some(clerk.sign(&issuer)), "issuer"));

    let mut party = clerk_claims(&sub("azp"));
    party["azp"] = json!("https://evil.example");
    cases.push((
        "azp not allowed",
        Some(clerk.sign(&party)),
        "authorized party",
    ));

    let none_header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = B64.encode(clerk_claims(&sub("none")).to_string());
    cases.push((
        "alg none",
        Some(format!("{none_header}.{none_payload}.")),
        "`none`",
    ));

    let pem = clerk.public_key_pem();
    let confused = hs256(&clerk_claims(&sub("confusion")), pem.as_bytes());
    cases.push((
        "HS256 signed with the RSA public key",
        Some(confused),
        "signature",
    ));

    let genuine = clerk.sign(&clerk_claims(&sub("genuine")));
    let tampered = with_payload(&genuine, &clerk_claims(&sub("tampered")));
    cases.push(("tampered payload", Some(tampered), "signature"));

    let hmac_tampered = with_payload(
        &hs256(&hmac_claims(&sub("hgenuine")), secret),
        &hmac_claims(&sub("htampered")),
    );
    cases.push(("tampered HMAC payload", Some(hmac_tampered), "signature"));

    let wrong_secret = hs256(&hmac_claims(&sub("secret")), b"not-the-configured-secret");
    cases.push(("bad HMAC signature", Some(wrong_secret), "signature"));

    // Flip one character in the middle of the signature (the last one may be padding bits).
    let mut bad_sig = clerk.sign(&clerk_claims(&sub("badsig"))).into_bytes();
    let i = bad_sig.len() - 20;
    bad_sig[i] = if bad_sig[i] == b'A' { b'B' } else { b'A' };
    let bad_sig = String::from_utf8(bad_sig).unwrap();
    cases.push(("bad RSA signature", Some(bad_sig), "signature"));

    let no_exp = hs256(&json!({ "uid": sub("noexp") }), secret);
    cases.push(("HMAC without exp", Some(no_exp), "expiry"));

    cases.push((
        "malformed header",
        Some("e30x.e30.abc".to_owned()),
        "malformed",
    ));
    cases.push(("not a JWT", Some("hello".to_owned()), "malformed"));
    cases.push((
        "malformed API key",
        Some("tg_live_short".to_owned()),
        "malformed API key",
    ));
    cases.push((
        "unknown API key",
        Some("tg_live_0123456789abcdefghijABCDEFGHIJ01".to_owned()),
        "unknown API key",
    ));
    cases.push(("missing token", None, "missing bearer"));

    for (name, credential, message) in &cases {
        let reply = match credential {
            Some(c) => world.authed("GET", PROFILE, c).send(),
            None => world.get(PROFILE),
        };
        let error = reply.assert_error(401, "unauthorized");
        let text = error["message"].as_str().unwrap();
        assert!(
            text.contains(message),
            "{name}: message {text:?} should mention {message:?}"
        );
    }
    for (scheme, value) in [("Basic", "dXNlcjpwYXNz"), ("Bearer", "")] {
        world
            .call("GET", PROFILE)
            .header("Authorization", &format!("{scheme} {value}"))
            .send()
            .assert_error(401, "unauthorized");
    }

    before.assert_unchanged(world);
    assert!(
        !world.worker_log().contains(r#""status":500"#),
        "no 500 anywhere"
    );
}

fn a_deleted_user_cannot_authenticate(world: &World) {
    let sub = unique("user_deleted_");
    let created = world.clerk_webhook(
        &unique("msg_"),
        &clerk_user_event("user.created", &sub, 1_700_000_000_000, json!({})),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let token = world.clerk_token(&sub);
    assert_eq!(world.authed("GET", PROFILE, &token).send().status, 200);
    let deleted = world.clerk_webhook(
        &unique("msg_"),
        &json!({ "type": "user.deleted", "object": "event",
                 "data": { "deleted": true, "id": sub, "object": "user" } }),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    // Both the token already verified (cached) and a fresh one are refused.
    let user = Rows::new().where_eq("users", "external_id", &sub);
    let before = world.snapshot(&user);
    for token in [token, world.clerk_token(&sub)] {
        let error = world
            .authed("GET", PROFILE, &token)
            .send()
            .assert_error(401, "unauthorized");
        assert!(error["message"].as_str().unwrap().contains("deactivated"));
    }
    before.assert_unchanged(world);
    let users = world.rows(&user);
    assert_eq!(users.len(), 1, "no second row");
    assert_eq!(users[0]["status"], "deleted");
}

fn roles_come_from_configuration_and_org_claims(world: &World) {
    let admin = world
        .authed("GET", PROFILE, &world.clerk_token(ADMIN_CLERK_ID))
        .send()
        .json();
    assert_eq!(admin["roles"], json!(["admin", "staff", "user"]));

    // Clerk's v1 org claims.
    let mut v1 = clerk_claims(&unique("user_org_"));
    v1["org_id"] = json!("org_acme");
    v1["org_role"] = json!("org:admin");
    v1["org_slug"] = json!("acme");
    let profile = world
        .authed("GET", PROFILE, &world.fakes.clerk.sign(&v1))
        .send()
        .json();
    assert_eq!(profile["roles"], json!(["org_admin", "org_member", "user"]));
    assert_eq!(
        profile["org"],
        json!({ "id": "org_acme", "role": "admin", "slug": "acme" })
    );

    // Clerk's v2 org claim, in the staff organisation.
    let mut v2 = clerk_claims(&unique("user_staff_"));
    v2["o"] = json!({ "id": STAFF_ORG_ID, "rol": "member", "slg": "staff" });
    let profile = world
        .authed("GET", PROFILE, &world.fakes.clerk.sign(&v2))
        .send()
        .json();
    assert_eq!(profile["roles"], json!(["staff", "org_member", "user"]));
    assert_eq!(profile["org"]["role"], "member");
}

fn hmac_and_clerk_users_with_the_same_subject_are_different_users(world: &World) {
    let subject = unique("user_shared_");
    let clerk = world
        .authed("GET", PROFILE, &world.clerk_token(&subject))
        .send()
        .json();
    let hmac = world
        .authed("GET", PROFILE, &world.hmac_token(&subject))
        .send()
        .json();
    assert_ne!(clerk["id"], hmac["id"]);
    assert_eq!(users_with_external_id(world, &subject), 2);
}

/// Every admin route as `(method, path, body)`: the ones naming a user act on `target`, and
/// the pool key they would add is labelled `label` (so a test can look for it in D1).
pub(super) fn admin_routes(target: &str, label: &str) -> Vec<(&'static str, String, Value)> {
    vec![
        ("GET", "/api/admin/users".to_owned(), Value::Null),
        (
            "POST",
            format!("/api/admin/users/{target}/credits"),
            json!({ "amount": 5, "reason": label }),
        ),
        (
            "POST",
            format!("/api/admin/users/{target}/rotate-key"),
            Value::Null,
        ),
        ("GET", "/api/admin/provider-keys".to_owned(), Value::Null),
        (
            "POST",
            "/api/admin/provider-keys".to_owned(),
            json!({ "provider": "scopecheck", "tier": "free",
                    "key": format!("sk-scopecheck-{label}"), "label": label }),
        ),
        (
            "DELETE",
            "/api/admin/provider-keys/pk_scopecheck".to_owned(),
            Value::Null,
        ),
        ("POST", "/api/webhooks/retry".to_owned(), Value::Null),
        ("GET", "/api/webhooks/status".to_owned(), Value::Null),
    ]
}

/// The rows the routes of [`admin_routes`] could change for `target` and `label`.
pub(super) fn untouched_by_admin_routes(target: &str, label: &str) -> Rows {
    Rows::new()
        .where_eq("users", "id", target)
        .where_eq("credit_accounts", "user_id", target)
        .where_eq("credit_ledger", "user_id", target)
        .where_eq("provider_key_assignments", "user_id", target)
        .where_eq("provider_key_deletions", "user_id", target)
        .where_eq("api_keys", "user_id", target)
        .where_eq("provider_keys", "label", label)
        .where_eq("provider_keys", "id", "pk_scopecheck")
}

/// Sends every admin route with `credential`; returns what was not a `403 forbidden`, and
/// asserts each refusal's message contains `reason`.
pub(super) fn admin_routes_not_refused(
    world: &World,
    credential: &str,
    target: &str,
    label: &str,
    reason: &str,
) -> Vec<String> {
    let mut answered = Vec::new();
    for (method, path, body) in admin_routes(target, label) {
        let call = world.authed(method, &path, credential);
        let reply = if body.is_null() {
            call.send()
        } else {
            call.json(&body)
        };
        if reply.status == 403 {
            let error = reply.assert_error(403, "forbidden");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(reason), "{method} {path}: {message}");
        } else {
            answered.push(format!(
                "{method} {path} -> {} {}",
                reply.status, reply.body
            ));
        }
    }
    answered
}

/// A bare `user_...` in `ADMIN_USER_IDS` is a Clerk user: an HS256 token whose `uid` is that
/// id is a different user (source `hmac`) and no admin; `hmac:<uid>` names an HMAC admin.
fn an_hmac_token_with_a_clerk_admins_id_is_refused_on_every_admin_route(world: &World) {
    let target = world
        .authed("GET", PROFILE, &world.hmac_token(&unique("admin-target-")))
        .send()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let impostor = world.hmac_token(ADMIN_CLERK_ID);
    let profile = world.authed("GET", PROFILE, &impostor).send().json();
    assert_eq!(profile["auth_source"], "hmac");
    assert_eq!(profile["roles"], json!(["user"]), "{profile}");

    let label = unique("impostor-");
    let before = world.snapshot(&untouched_by_admin_routes(&target, &label));
    let answered = admin_routes_not_refused(world, &impostor, &target, &label, "admin role");
    assert!(
        answered.is_empty(),
        "every admin route must be 403 for the impostor: {answered:#?}"
    );
    before.assert_unchanged(world);
    let granted = Rows::new()
        .where_eq("credit_ledger", "user_id", &target)
        .where_eq("provider_keys", "label", &label);
    assert_eq!(world.count(&granted), 0, "no credit granted, no key pooled");

    // The Clerk admin named by that bare id still is one, and so is `hmac:<uid>`.
    let clerk_admin = world.clerk_token(ADMIN_CLERK_ID);
    assert_eq!(
        world
            .authed("GET", "/api/admin/users", &clerk_admin)
            .send()
            .status,
        200
    );
    let hmac_admin = world.hmac_token(ADMIN_HMAC_UID);
    let profile = world.authed("GET", PROFILE, &hmac_admin).send().json();
    assert_eq!(
        profile["roles"],
        json!(["admin", "staff", "user"]),
        "{profile}"
    );
    let reply = world
        .authed("GET", "/api/webhooks/status", &hmac_admin)
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
}
