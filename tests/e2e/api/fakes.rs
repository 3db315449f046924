//! The fake upstreams themselves: they record what they receive and fail on request,
//! which the fault-path tests of later features rely on, and the fake Clerk's keys and
//! session API behave like Clerk's. These talk to the fakes directly, not through the worker.
//!
//! Cases run in parallel and share the world's fakes with each other and with the worker, so
//! on the shared fakes they compare counters before and after instead of assuming absolute
//! values and use session ids of their own. Whatever changes a fake for everyone (injected
//! faults, rotating the Clerk key) is checked on private instances.

use std::time::{Duration, Instant};

use jwt_compact::alg::{Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Token, UntrustedToken};
use rand_core::RngCore;
use serde_json::{json, Value};

use super::Case;
use crate::fakes::{FakeClerk, Fakes, Fault, CLERK_ISSUER, CLERK_SECRET_KEY};
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(fakes:
        fakes_record_requests_and_inject_faults,
        clerk_jwks_verifies_signed_tokens,
        clerk_rotation_serves_only_the_new_key,
        clerk_session_api_refreshes_and_revokes,
    )
}

fn fakes_record_requests_and_inject_faults(_world: &World) {
    // Private instances of the same fakes: a fault injected into a shared fake would hit
    // whichever request reaches it next, from any case running in parallel.
    let fakes = Fakes::start();
    let agent = ureq::AgentBuilder::new().build();
    for fake in fakes.all() {
        let url = format!("{}/self-test/{}", fake.base_url(), fake.name());
        let status = |r: Result<ureq::Response, ureq::Error>| match r {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp.status(),
            Err(e) => panic!("{e}"),
        };
        let before = fake.received().len();
        assert_eq!(
            status(agent.post(&url).set("X-Probe", "1").send_string("hello")),
            404
        );

        fake.inject(&[Fault::Status(503), Fault::Delay(Duration::from_millis(300))]);
        assert_eq!(status(agent.get(&url).call()), 503, "{}", fake.name());
        let started = Instant::now();
        assert_eq!(status(agent.get(&url).call()), 404);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the delay was applied"
        );
        assert_eq!(status(agent.get(&url).call()), 404, "faults are used up");

        let received = fake.received();
        let first = &received[before];
        assert_eq!(first.method, "POST");
        assert_eq!(first.path, format!("/self-test/{}", fake.name()));
        assert_eq!(first.header("x-probe"), Some("1"));
        assert_eq!(first.body, b"hello");
        assert_eq!(received.len(), before + 4);
    }
}

fn clerk_jwks_verifies_signed_tokens(_world: &World) {
    // A private instance: the shared fake's JWKS fetch counter belongs to the worker's
    // key-rotation cases, which count exactly how often the worker asks.
    let clerk = FakeClerk::start("sk_test_private");
    let claims = session_claims("user_jwks", &unique("sess_jwks"));
    let kid = clerk.current_kid();
    let token = clerk.sign(&claims);
    let pem = clerk.public_key_pem();
    let jwks = get_json(&clerk.jwks_url());
    assert_eq!(clerk.jwks_fetches(), 1, "the JWKS fetch was counted");

    assert!(kid.starts_with("ins_test_"), "{kid}");
    let keys = jwks["keys"].as_array().expect("a key list");
    assert_eq!(keys.len(), 1, "only the current key is served: {jwks}");
    let jwk = &keys[0];
    assert_eq!(jwk["kid"], kid.as_str());
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["e"], "AQAB");
    let n = jwk["n"].as_str().expect("a modulus");
    assert!(
        !n.contains(['=', '+', '/']),
        "n is base64url without padding"
    );

    let verified = verify(&jwks, &token).expect("the token's kid is in the JWKS");
    assert_eq!(verified.header().key_id.as_deref(), Some(kid.as_str()));
    assert_eq!(verified.header().token_type.as_deref(), Some("JWT"));
    assert_eq!(UntrustedToken::new(&token).unwrap().algorithm(), "RS256");
    assert_eq!(
        payload(&token),
        claims,
        "the claims are signed exactly as given"
    );

    let forged_kid = clerk.sign_with_kid(&claims, "ins_test_unknown");
    let forged = UntrustedToken::new(&forged_kid).unwrap();
    assert_eq!(forged.header().key_id.as_deref(), Some("ins_test_unknown"));
    assert!(verify(&jwks, &forged_kid).is_none(), "no key has that kid");
    Rsa::rs256()
        .validator::<Value>(&jwk_key(jwk))
        .validate(&forged)
        .expect("still signed with the current key");

    use rsa::pkcs8::DecodePublicKey;
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let from_pem = RsaPublicKey::from_public_key_pem(&pem).expect("SPKI PEM");
    assert_eq!(from_pem, jwk_key(jwk), "the PEM is the served key");
}

fn clerk_rotation_serves_only_the_new_key(_world: &World) {
    // A private instance: rotating the shared one would pull the key from under other cases.
    let clerk = FakeClerk::start("sk_test_private");
    let claims = session_claims("user_rotation", "sess_rotation");
    assert_eq!(clerk.jwks_fetches(), 0);
    let old_kid = clerk.current_kid();
    let old_token = clerk.sign(&claims);
    let old_jwks = get_json(&clerk.jwks_url());
    assert_eq!(clerk.jwks_fetches(), 1);
    assert!(verify(&old_jwks, &old_token).is_some());

    let old_pem = clerk.public_key_pem();
    let new_kid = clerk.rotate();
    assert_ne!(new_kid, old_kid);
    assert_eq!(clerk.current_kid(), new_kid);
    let new_token = clerk.sign(&claims);
    let new_jwks = get_json(&clerk.jwks_url());
    assert_eq!(clerk.jwks_fetches(), 2);
    let keys = new_jwks["keys"].as_array().expect("a key list");
    assert_eq!(keys.len(), 1, "only the new key is served: {new_jwks}");
    assert_eq!(keys[0]["kid"], new_kid.as_str());
    assert!(
        verify(&new_jwks, &old_token).is_none(),
        "the old kid is gone"
    );
    assert!(verify(&new_jwks, &new_token).is_some());
    let old_key_under_new_kid = jwk_key(&old_jwks["keys"][0]);
    assert!(
        Rsa::rs256()
            .validator::<Value>(&old_key_under_new_kid)
            .validate(&UntrustedToken::new(&new_token).unwrap())
            .is_err(),
        "the new token is signed with the new key"
    );
    assert_ne!(clerk.public_key_pem(), old_pem, "the PEM follows the key");
}

fn clerk_session_api_refreshes_and_revokes(world: &World) {
    let clerk = &world.fakes.clerk;
    let base = clerk.upstream().base_url();
    let sid = unique("sess_api");
    let tokens_url = format!("{base}/v1/sessions/{sid}/tokens");
    let revoke_url = format!("{base}/v1/sessions/{sid}/revoke");
    let secret = format!("Bearer {CLERK_SECRET_KEY}");

    // Authentication comes first, and in Clerk's error shape.
    for auth in [None, Some("Bearer sk_test_wrong"), Some(CLERK_SECRET_KEY)] {
        for url in [&tokens_url, &revoke_url] {
            let (status, body) = post(url, auth);
            assert_eq!(status, 401, "{url} with {auth:?}: {body}");
            assert_eq!(
                body["errors"][0]["code"], "authentication_invalid",
                "{body}"
            );
            assert!(body["errors"][0]["message"].is_string(), "{body}");
            assert!(body["errors"][0]["long_message"].is_string(), "{body}");
        }
    }
    // A session that was never signed is unknown.
    for url in [&tokens_url, &revoke_url] {
        let (status, body) = post(url, Some(&secret));
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["errors"][0]["code"], "resource_not_found", "{body}");
    }

    let claims = session_claims("user_api", &sid);
    clerk.sign(&claims);
    let (jwt, jwks) = (0..5)
        .find_map(|_| {
            let (status, body) = post(&tokens_url, Some(&secret));
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["object"], "token", "{body}");
            let jwt = body["jwt"].as_str().expect("a jwt").to_owned();
            let jwks = get_json(&clerk.jwks_url());
            // Retried only if another case rotated the shared key in between.
            verify(&jwks, &jwt).is_some().then_some((jwt, jwks))
        })
        .expect("the fresh token verifies against the JWKS");
    let fresh = verify(&jwks, &jwt).unwrap();
    let custom = &fresh.claims().custom;
    assert_eq!(custom["sub"], "user_api");
    assert_eq!(custom["sid"], sid.as_str());
    assert_eq!(custom["iss"], CLERK_ISSUER);
    let claims_of = payload(&jwt);
    let iat = claims_of["iat"].as_i64().expect("iat");
    assert_eq!(claims_of["nbf"].as_i64(), Some(iat));
    assert_eq!(claims_of["exp"].as_i64(), Some(iat + 60));
    assert!(
        (iat - now_s()).abs() <= 5,
        "iat is now: {iat} vs {}",
        now_s()
    );

    assert!(!clerk.revoked_sessions().contains(&sid));
    let (status, session) = post(&revoke_url, Some(&secret));
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["object"], "session");
    assert_eq!(session["id"], sid.as_str());
    assert_eq!(session["user_id"], "user_api");
    assert_eq!(session["status"], "revoked");
    assert!(session["client_id"].is_string());
    for field in [
        "last_active_at",
        "expire_at",
        "abandon_at",
        "created_at",
        "updated_at",
    ] {
        assert!(session[field].as_u64().is_some(), "{field}: {session}");
    }
    assert!(clerk.revoked_sessions().contains(&sid));

    // A revoked session gets no new tokens.
    let (status, body) = post(&tokens_url, Some(&secret));
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0]["code"].is_string(), "{body}");

    let recorded = clerk.upstream().received();
    let revoke = recorded
        .iter()
        .rev()
        .find(|r| r.path == format!("/v1/sessions/{sid}/revoke"))
        .expect("the revoke was recorded");
    assert_eq!(revoke.method, "POST");
    assert_eq!(revoke.header("authorization"), Some(secret.as_str()));
}

/// Claims shaped like a Clerk session token's.
fn session_claims(sub: &str, sid: &str) -> Value {
    let now = now_s();
    json!({
        "azp": "http://localhost:5173",
        "exp": now + 60,
        "iat": now,
        "iss": CLERK_ISSUER,
        "nbf": now - 5,
        "sid": sid,
        "sub": sub,
    })
}

/// `prefix` with a random suffix, so parallel cases never share a session.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand_core::OsRng.next_u64())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn get_json(url: &str) -> Value {
    let response = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(response.status(), 200, "{url}");
    response.into_json().expect("a JSON body")
}

/// A POST with an optional `Authorization` header; the status and the JSON body.
fn post(url: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut request = ureq::post(url);
    if let Some(authorization) = authorization {
        request = request.set("Authorization", authorization);
    }
    match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            let status = response.status();
            (status, response.into_json().expect("a JSON body"))
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

fn jwk_key(jwk: &Value) -> RsaPublicKey {
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk.clone()).expect("a JWK");
    RsaPublicKey::try_from(&jwk).expect("an RSA public key")
}

/// Verifies `token` with the JWKS key its `kid` names; `None` when no key has that `kid`.
/// Panics when the signature does not verify.
fn verify(jwks: &Value, token: &str) -> Option<Token<Value>> {
    let untrusted = UntrustedToken::new(token).expect("a JWT");
    let kid = untrusted.header().key_id.clone()?;
    let jwk = jwks["keys"]
        .as_array()
        .expect("a key list")
        .iter()
        .find(|k| k["kid"] == kid.as_str())?;
    let token = Rsa::rs256()
        .validator::<Value>(&jwk_key(jwk))
        .validate(&untrusted)
        .unwrap_or_else(|e| panic!("the token verifies with key {kid}: {e}"));
    Some(token)
}

/// A token's claims exactly as they were signed.
fn payload(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
