//! The fake upstreams themselves: they record what they receive and fail on request,
//! which the fault-path tests of later features rely on, the fake Clerk's keys, session and
//! user metadata API behave like Clerk's, the fake OpenRouter's key management API like
//! OpenRouter's, and the fake Stripe's API, events and webhook signatures like Stripe's.
//! These talk to the fakes directly, not through the worker.
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
use crate::fakes::{
    stripe_signature, Call, FakeClerk, FakeKey, FakeOpenRouter, FakeStripe, Fakes, Fault,
    CLERK_ISSUER, CLERK_SECRET_KEY,
};
use crate::harness::World;

pub fn cases() -> Vec<Case> {
    crate::cases!(fakes:
        fakes_record_requests_and_inject_faults,
        clerk_jwks_verifies_signed_tokens,
        clerk_rotation_serves_only_the_new_key,
        clerk_session_api_refreshes_and_revokes,
        openrouter_key_api_behaves_like_openrouters,
        stripe_api_behaves_like_stripes,
        clerk_metadata_update_merges_like_clerks,
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

fn openrouter_key_api_behaves_like_openrouters(_world: &World) {
    // A private instance: the targeted faults below must not meet the worker's own calls, and
    // its key list is this case's alone.
    let openrouter = FakeOpenRouter::start("k");
    let base = openrouter.upstream().base_url();
    let keys_url = format!("{base}/api/v1/keys");
    let bearer = Some("Bearer k");
    let create = |body: &Value| send("POST", &keys_url, bearer, Some(&body.to_string()));

    // Unknown paths are 404 in OpenRouter's error shape, whatever the credentials.
    for auth in [None, bearer] {
        let (status, body) = send("GET", &format!("{base}/api/v1/nothing"), auth, None);
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], 404, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    // Authentication: no bearer, or the wrong one, is 401 and creates nothing.
    let named = json!({ "name": "or-auth" }).to_string();
    for auth in [None, Some("Bearer wrong"), Some("k")] {
        for (method, url) in [("POST", keys_url.clone()), ("GET", keys_url.clone())] {
            let (status, body) = send(method, &url, auth, Some(&named));
            assert_eq!(status, 401, "{method} with {auth:?}: {body}");
            assert_eq!(body["error"]["code"], 401, "{body}");
        }
    }
    assert!(openrouter.keys_named("or-auth").is_empty());

    // Bodies OpenRouter would reject are 400 and create nothing.
    for bad in [
        "not json",
        "[]",
        r#"{}"#,
        r#"{"name": 5}"#,
        r#"{"name": "or-bad", "limit": -1}"#,
        r#"{"name": "or-bad", "limit": "10"}"#,
        r#"{"name": "or-bad", "limit_reset": "hourly"}"#,
        r#"{"name": "or-bad", "include_byok_in_limit": "yes"}"#,
    ] {
        let (status, body) = send("POST", &keys_url, bearer, Some(bad));
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], 400, "{body}");
    }
    assert!(openrouter.keys_named("or-bad").is_empty());

    // Create: 201, the plaintext key once, and the key object.
    let (status, created) = create(&json!({
        "name": "or-user-a",
        "limit": 10,
        "limit_reset": "monthly",
        "include_byok_in_limit": true,
    }));
    assert_eq!(status, 201, "{created}");
    let plaintext = created["key"]
        .as_str()
        .expect("the plaintext key")
        .to_owned();
    let secret = plaintext
        .strip_prefix("sk-or-v1-")
        .expect("an sk-or-v1- key");
    assert!(is_lower_hex(secret, 64), "{plaintext}");
    let data = &created["data"];
    let hash = data["hash"].as_str().expect("a hash").to_owned();
    assert!(is_lower_hex(&hash, 64), "{hash}");
    assert_eq!(
        data["label"],
        format!(
            "{}...{}",
            &plaintext[..12],
            &plaintext[plaintext.len() - 3..]
        )
        .as_str(),
        "the label masks the key"
    );
    assert_eq!(data["name"], "or-user-a");
    assert_eq!(data["disabled"], false);
    assert_eq!(data["limit"].as_f64(), Some(10.0));
    assert_eq!(data["limit_remaining"].as_f64(), Some(10.0));
    assert_eq!(data["limit_reset"], "monthly");
    assert_eq!(data["include_byok_in_limit"], true);
    for field in [
        "usage",
        "usage_daily",
        "usage_weekly",
        "usage_monthly",
        "byok_usage",
        "byok_usage_daily",
        "byok_usage_weekly",
        "byok_usage_monthly",
    ] {
        assert_eq!(data[field].as_f64(), Some(0.0), "{field}: {data}");
    }
    let created_at = data["created_at"].as_str().expect("created_at");
    assert!(is_rfc3339_utc(created_at), "{created_at}");
    assert!(data["updated_at"].is_null(), "{data}");
    assert!(
        data.get("key").is_none(),
        "the key object never holds the key"
    );

    let stored = openrouter.key(&hash).expect("the fake kept the key");
    let expected = FakeKey {
        hash: hash.clone(),
        name: "or-user-a".to_owned(),
        key: plaintext.clone(),
        limit: Some(10.0),
        limit_reset: Some("monthly".to_owned()),
        include_byok_in_limit: true,
        usage: 0.0,
        disabled: false,
        deleted: false,
    };
    assert_eq!(stored, expected);
    assert_eq!(openrouter.key_by_plaintext(&plaintext), Some(expected));
    assert_eq!(openrouter.key_by_plaintext("sk-or-v1-unknown"), None);
    let received = openrouter.upstream().received();
    let request = received.last().expect("the create was recorded");
    assert_eq!(request.header("authorization"), Some("Bearer k"));

    // A second key, unlimited, with the defaults.
    let (status, second) = create(&json!({ "name": "or-user-b", "limit": null }));
    assert_eq!(status, 201, "{second}");
    let second_hash = second["data"]["hash"].as_str().expect("a hash").to_owned();
    assert!(second["data"]["limit"].is_null(), "{second}");
    assert!(second["data"]["limit_remaining"].is_null(), "{second}");
    assert!(second["data"]["limit_reset"].is_null(), "{second}");
    assert_eq!(second["data"]["include_byok_in_limit"], false);
    assert_ne!(second_hash, hash);
    assert_ne!(second["key"], created["key"]);

    // Get shows the same key; usage moves limit_remaining, never below zero.
    let key_url = format!("{keys_url}/{hash}");
    let (status, got) = send("GET", &key_url, bearer, None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"], created["data"]);
    openrouter.set_usage(&hash, 3.5);
    let (_, got) = send("GET", &key_url, bearer, None);
    for field in ["usage", "usage_daily", "usage_weekly", "usage_monthly"] {
        assert_eq!(got["data"][field].as_f64(), Some(3.5), "{field}: {got}");
    }
    assert_eq!(got["data"]["limit_remaining"].as_f64(), Some(6.5), "{got}");
    openrouter.set_usage(&hash, 12.0);
    assert_eq!(openrouter.key(&hash).map(|k| k.usage), Some(12.0));
    let (_, got) = send("GET", &key_url, bearer, None);
    assert_eq!(got["data"]["limit_remaining"].as_f64(), Some(0.0), "{got}");
    let (status, body) = send(
        "GET",
        &format!("{keys_url}/{}", "0".repeat(64)),
        bearer,
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], 404, "{body}");

    // Update: disable and raise the limit; a bad field changes nothing.
    let patch = |url: &str, body: &Value| send("PATCH", url, bearer, Some(&body.to_string()));
    let (status, body) = patch(
        &key_url,
        &json!({ "disabled": "yes", "name": "or-renamed" }),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        openrouter.key(&hash).map(|k| k.name),
        Some("or-user-a".to_owned())
    );
    let (status, updated) = patch(&key_url, &json!({ "disabled": true, "limit": 20 }));
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["disabled"], true);
    assert_eq!(updated["data"]["limit"].as_f64(), Some(20.0));
    assert_eq!(updated["data"]["limit_remaining"].as_f64(), Some(8.0));
    assert_eq!(updated["data"]["name"], "or-user-a", "unsent fields stay");
    let updated_at = updated["data"]["updated_at"].as_str().expect("updated_at");
    assert!(is_rfc3339_utc(updated_at), "{updated_at}");
    let stored = openrouter.key(&hash).expect("the key");
    assert!(stored.disabled);
    assert_eq!(stored.limit, Some(20.0));
    let (status, body) = patch(
        &format!("{keys_url}/{}", "0".repeat(64)),
        &json!({ "disabled": true }),
    );
    assert_eq!(status, 404, "{body}");

    // List: live keys, oldest first, disabled ones only when asked for, paged by offset.
    let list = |query: &str| {
        let (status, body) = send("GET", &format!("{keys_url}{query}"), bearer, None);
        assert_eq!(status, 200, "{query}: {body}");
        let hashes: Vec<String> = body["data"]
            .as_array()
            .expect("a key list")
            .iter()
            .map(|k| k["hash"].as_str().expect("a hash").to_owned())
            .collect();
        hashes
    };
    assert_eq!(list(""), [second_hash.as_str()]);
    assert_eq!(list("?include_disabled=false"), [second_hash.as_str()]);
    assert_eq!(
        list("?include_disabled=true"),
        [hash.as_str(), second_hash.as_str()]
    );
    assert_eq!(
        list("?offset=1&include_disabled=true"),
        [second_hash.as_str()]
    );
    assert!(list("?offset=2&include_disabled=true").is_empty());

    // Delete: once; afterwards the key is gone from the API but kept, flagged, in the fake.
    let (status, body) = send("DELETE", &key_url, bearer, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "deleted": true }));
    for method in ["GET", "DELETE"] {
        let (status, body) = send(method, &key_url, bearer, None);
        assert_eq!(status, 404, "{method} after delete: {body}");
        assert_eq!(body["error"]["code"], 404, "{body}");
    }
    let (status, _) = patch(&key_url, &json!({ "disabled": false }));
    assert_eq!(status, 404);
    assert!(openrouter.key(&hash).is_some_and(|k| k.deleted));
    assert_eq!(list("?include_disabled=true"), [second_hash.as_str()]);
    let named: Vec<(String, bool)> = openrouter
        .keys_named("or-user-")
        .into_iter()
        .map(|k| (k.hash, k.deleted))
        .collect();
    assert_eq!(
        named,
        [(hash.clone(), true), (second_hash.clone(), false)],
        "every key by name, deleted ones too, in creation order"
    );

    // Targeted faults hit only the request they name, once each.
    openrouter.fail_next(Call::Create, "or-fault-b", Fault::Status(502));
    let (status, body) = create(&json!({ "name": "or-fault-a" }));
    assert_eq!(status, 201, "another name does not take the fault: {body}");
    let (status, body) = create(&json!({ "name": "or-fault-b" }));
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body,
        json!({ "error": { "code": 502, "message": "injected fault" } })
    );
    assert!(
        openrouter.keys_named("or-fault-b").is_empty(),
        "a failed create creates nothing"
    );
    let (status, body) = create(&json!({ "name": "or-fault-b" }));
    assert_eq!(status, 201, "the fault is used up: {body}");

    let second_url = format!("{keys_url}/{second_hash}");
    openrouter.fail_next(Call::Update, &second_hash, Fault::Status(500));
    openrouter.fail_next(Call::Delete, &second_hash, Fault::Status(503));
    openrouter.fail_next(Call::List, "", Fault::Status(429));
    openrouter.fail_next(
        Call::Get,
        &second_hash,
        Fault::Delay(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let (status, body) = send("GET", &second_url, bearer, None);
    assert_eq!(status, 200, "a delay answers normally: {body}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the delay was applied"
    );
    let (status, _) = patch(&second_url, &json!({ "name": "or-renamed" }));
    assert_eq!(status, 500);
    assert_eq!(
        openrouter.key(&second_hash).map(|k| k.name),
        Some("or-user-b".to_owned()),
        "a failed update changes nothing"
    );
    let (status, _) = send("DELETE", &second_url, bearer, None);
    assert_eq!(status, 503);
    assert!(openrouter.key(&second_hash).is_some_and(|k| !k.deleted));
    let (status, body) = send("GET", &keys_url, bearer, None);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], 429, "{body}");
    let (status, _) = send("GET", &keys_url, bearer, None);
    assert_eq!(status, 200, "every fault is used up");
}

fn stripe_api_behaves_like_stripes(_world: &World) {
    // A private instance: its faults must not meet the worker's calls, and its customers and
    // subscriptions are this case's alone.
    let stripe = FakeStripe::start("sk_x");
    let base = stripe.upstream().base_url().to_owned();
    let url = |path: &str| format!("{base}{path}");
    let bearer = Some("Bearer sk_x");
    let call = |method: &str, path: &str, key: Option<&str>, form: &[(&str, &str)]| {
        stripe_call(method, &url(path), bearer, key, form)
    };
    stripe.add_price("price_basic", 900);
    stripe.add_price("price_pro", 2900);

    // Unknown paths are 404 in Stripe's error shape, whatever the credentials.
    for auth in [None, bearer] {
        let (status, body) = stripe_call("GET", &url("/v1/nothing"), auth, None, &[]);
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    // Authentication: no bearer, or the wrong one, is 401 and creates nothing.
    let auth_form = [("email", "auth@example.com")];
    for auth in [None, Some("Bearer sk_wrong_key_0123"), Some("sk_x")] {
        let (status, body) = stripe_call("POST", &url("/v1/customers"), auth, None, &auth_form);
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let (_, body) = stripe_call(
        "GET",
        &url("/v1/subscriptions/sub_x"),
        Some("Bearer sk_wrong_key_0123"),
        None,
        &[],
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid API Key provided: "), "{body}");
    assert!(!message.contains("sk_wrong_key_0123"), "the key is masked");
    assert!(stripe.customers_with_email("auth@example.com").is_empty());

    // A JSON body is not a form.
    let response = ureq::post(&url("/v1/customers"))
        .set("Authorization", "Bearer sk_x")
        .set("Content-Type", "application/json")
        .send_string(r#"{"email":"json@example.com"}"#);
    let Err(ureq::Error::Status(400, _)) = response else {
        panic!("a JSON body is rejected");
    };

    // Customers.
    let customer_form = [
        ("email", "ada@example.com"),
        ("name", "Ada Lovelace"),
        ("metadata[user_id]", "user_ada"),
    ];
    let (status, customer) = call("POST", "/v1/customers", Some("k-cus-1"), &customer_form);
    assert_eq!(status, 200, "{customer}");
    let customer_id = customer["id"].as_str().expect("an id").to_owned();
    let suffix = customer_id.strip_prefix("cus_").expect("a cus_ id");
    assert!(is_alnum(suffix, 14), "{customer_id}");
    assert_eq!(customer["object"], "customer");
    assert_eq!(customer["email"], "ada@example.com");
    assert_eq!(customer["name"], "Ada Lovelace");
    assert_eq!(customer["metadata"], json!({ "user_id": "user_ada" }));
    assert_eq!(customer["livemode"], false);
    assert_near_now(&customer["created"]);
    assert_eq!(stripe.customer(&customer_id).as_ref(), Some(&customer));
    assert_eq!(stripe.customer("cus_unknown"), None);
    assert_eq!(
        stripe.customers_with_email("ada@example.com"),
        std::slice::from_ref(&customer)
    );
    let (status, body) = call("POST", "/v1/customers", None, &[("emial", "x@example.com")]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "parameter_unknown", "{body}");
    assert_eq!(body["error"]["param"], "emial", "{body}");

    // Idempotency: the same key and parameters replay the first answer, in any order; other
    // parameters or another endpoint under the same key are refused.
    let mut reordered = customer_form;
    reordered.reverse();
    let (status, replayed) = call("POST", "/v1/customers", Some("k-cus-1"), &reordered);
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed, customer, "the first answer, replayed");
    let changed = [("email", "ada@example.com"), ("name", "Ada King")];
    let (status, body) = call("POST", "/v1/customers", Some("k-cus-1"), &changed);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "idempotency_error", "{body}");
    let (status, body) = call(
        "POST",
        "/v1/billing_portal/sessions",
        Some("k-cus-1"),
        &[("customer", &customer_id)],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "idempotency_error", "{body}");
    assert_eq!(stripe.customers_with_email("ada@example.com").len(), 1);
    // A rejected request saves nothing: its key can be used again.
    let (status, _) = call("POST", "/v1/customers", Some("k-cus-2"), &[("bad", "1")]);
    assert_eq!(status, 400);
    let (status, second) = call(
        "POST",
        "/v1/customers",
        Some("k-cus-2"),
        &[("email", "ada@example.com")],
    );
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["id"], customer["id"]);
    assert_eq!(stripe.customers_with_email("ada@example.com").len(), 2);

    // Checkout Sessions: what Stripe refuses.
    let session_form = |price: &'static str| -> Vec<(&str, &str)> {
        vec![
            ("mode", "subscription"),
            ("customer", customer_id.as_str()),
            ("client_reference_id", "user_ada"),
            ("line_items[0][price]", price),
            ("line_items[0][quantity]", "1"),
            ("success_url", "https://app.example/billing/success"),
            ("cancel_url", "https://app.example/billing/cancel"),
            ("metadata[user_id]", "user_ada"),
            ("subscription_data[metadata][user_id]", "user_ada"),
            ("subscription_data[metadata][plan]", "basic"),
        ]
    };
    fn without<'a>(form: Vec<(&'a str, &'a str)>, name: &str) -> Vec<(&'a str, &'a str)> {
        form.into_iter().filter(|(k, _)| *k != name).collect()
    }
    let good = session_form("price_basic");
    let refusals = vec![
        (
            without(good.clone(), "mode"),
            "mode",
            Some("parameter_missing"),
        ),
        (
            [good.clone(), vec![("mode", "rental")]].concat(),
            "mode",
            None,
        ),
        (
            without(good.clone(), "line_items[0][price]"),
            "line_items[0][price]",
            Some("parameter_missing"),
        ),
        (
            without(
                without(good.clone(), "line_items[0][price]"),
                "line_items[0][quantity]",
            ),
            "line_items",
            Some("parameter_missing"),
        ),
        (
            session_form("price_unknown"),
            "line_items[0][price]",
            Some("resource_missing"),
        ),
        (
            without(good.clone(), "line_items[0][quantity]"),
            "line_items[0][quantity]",
            Some("parameter_missing"),
        ),
        (
            [good.clone(), vec![("customer", "cus_unknown")]].concat(),
            "customer",
            Some("resource_missing"),
        ),
        (
            [
                good.clone(),
                vec![("line_items[0][price_id]", "price_basic")],
            ]
            .concat(),
            "line_items[0][price_id]",
            Some("parameter_unknown"),
        ),
    ];
    for (form, param, code) in &refusals {
        let (status, body) = call("POST", "/v1/checkout/sessions", None, form);
        assert_eq!(status, 400, "{param}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(body["error"]["param"], *param, "{body}");
        assert_eq!(body["error"]["code"].as_str(), *code, "{body}");
    }

    let (status, session) = call("POST", "/v1/checkout/sessions", Some("k-cs-1"), &good);
    assert_eq!(status, 200, "{session}");
    let session_id = session["id"].as_str().expect("an id").to_owned();
    let suffix = session_id.strip_prefix("cs_test_").expect("a cs_test_ id");
    assert!(
        suffix.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{session_id}"
    );
    assert_eq!(session["object"], "checkout.session");
    assert_eq!(
        session["url"],
        format!("https://checkout.stripe.com/c/pay/{session_id}").as_str()
    );
    assert_eq!(session["mode"], "subscription");
    assert_eq!(session["customer"], customer_id.as_str());
    assert_eq!(session["client_reference_id"], "user_ada");
    assert_eq!(session["status"], "open");
    assert_eq!(session["payment_status"], "unpaid");
    assert_eq!(session["metadata"], json!({ "user_id": "user_ada" }));
    assert!(session["subscription"].is_null(), "{session}");
    assert_eq!(
        session["success_url"],
        "https://app.example/billing/success"
    );
    assert_eq!(session["cancel_url"], "https://app.example/billing/cancel");
    assert_eq!(session["livemode"], false);
    assert_eq!(session["amount_total"], 900);
    assert_near_now(&session["created"]);
    assert_eq!(stripe.session(&session_id).as_ref(), Some(&session));

    // What the fake received, decoded, and the keys it came with.
    let forms = stripe.form("POST", "/v1/checkout/sessions");
    assert_eq!(forms.len(), refusals.len() + 1);
    let last = forms.last().expect("the session's form");
    assert!(last.contains(&("line_items[0][price]".to_owned(), "price_basic".to_owned())));
    assert!(last.contains(&(
        "success_url".to_owned(),
        "https://app.example/billing/success".to_owned()
    )));
    let keys = stripe.idempotency_keys("/v1/checkout/sessions");
    assert_eq!(keys.len(), refusals.len() + 1);
    assert_eq!(keys.last(), Some(&Some("k-cs-1".to_owned())));
    assert_eq!(keys[0], None);
    assert_eq!(
        stripe.idempotency_keys("/v1/customers")[..2],
        [None, None],
        "the unauthenticated attempts carried none"
    );

    // Billing portal sessions.
    let (status, body) = call("POST", "/v1/billing_portal/sessions", None, &[]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "parameter_missing", "{body}");
    let (status, body) = call(
        "POST",
        "/v1/billing_portal/sessions",
        None,
        &[("customer", "cus_unknown")],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "resource_missing", "{body}");
    assert_eq!(body["error"]["param"], "customer", "{body}");
    let (status, portal) = call(
        "POST",
        "/v1/billing_portal/sessions",
        Some("k-bps-1"),
        &[
            ("customer", &customer_id),
            ("return_url", "https://app.example/billing"),
        ],
    );
    assert_eq!(status, 200, "{portal}");
    assert!(
        portal["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("bps_")),
        "{portal}"
    );
    assert_eq!(portal["object"], "billing_portal.session");
    assert!(
        portal["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://billing.stripe.com/p/session/test_")),
        "{portal}"
    );
    assert_eq!(portal["customer"], customer_id.as_str());
    assert_eq!(portal["return_url"], "https://app.example/billing");
    assert_near_now(&portal["created"]);

    // The customer pays: an active subscription and the checkout.session.completed event.
    let event = stripe.complete_checkout(&session_id);
    assert!(
        event["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_")),
        "{event}"
    );
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "checkout.session.completed");
    assert_eq!(event["api_version"], "2024-06-20");
    assert_eq!(event["livemode"], false);
    assert_eq!(event["pending_webhooks"], 1);
    assert_eq!(
        event["request"],
        json!({ "id": null, "idempotency_key": null })
    );
    assert_near_now(&event["created"]);
    let completed = &event["data"]["object"];
    assert_eq!(completed["id"], session_id.as_str());
    assert_eq!(completed["status"], "complete");
    assert_eq!(completed["payment_status"], "paid");
    let sub_id = completed["subscription"]
        .as_str()
        .expect("the subscription")
        .to_owned();
    assert!(sub_id.starts_with("sub_"), "{sub_id}");
    assert_eq!(stripe.session(&session_id).as_ref(), Some(completed));

    let sub_path = format!("/v1/subscriptions/{sub_id}");
    let (status, sub) = call("GET", &sub_path, None, &[]);
    assert_eq!(status, 200, "{sub}");
    assert_eq!(stripe.subscription(&sub_id).as_ref(), Some(&sub));
    assert_eq!(sub["object"], "subscription");
    assert_eq!(sub["customer"], customer_id.as_str());
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["cancel_at_period_end"], false);
    assert!(
        sub["canceled_at"].is_null() && sub["ended_at"].is_null(),
        "{sub}"
    );
    assert_eq!(
        sub["metadata"],
        json!({ "user_id": "user_ada", "plan": "basic" }),
        "copied from subscription_data[metadata]"
    );
    assert!(
        sub["latest_invoice"]
            .as_str()
            .is_some_and(|i| i.starts_with("in_")),
        "{sub}"
    );
    assert_eq!(sub["livemode"], false);
    let start = sub["current_period_start"]
        .as_i64()
        .expect("a period start");
    assert_near_now(&sub["current_period_start"]);
    assert_eq!(
        sub["current_period_end"].as_i64(),
        Some(start + 30 * 86_400)
    );
    assert_eq!(sub["start_date"], sub["created"]);
    assert_eq!(sub["items"]["object"], "list");
    let items = sub["items"]["data"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{sub}");
    let item = &items[0];
    let item_id = item["id"].as_str().expect("an item id").to_owned();
    assert!(item_id.starts_with("si_"), "{item_id}");
    assert_eq!(item["object"], "subscription_item");
    assert_eq!(item["quantity"], 1);
    assert_eq!(item["current_period_end"], sub["current_period_end"]);
    let price = &item["price"];
    assert_eq!(price["id"], "price_basic");
    assert_eq!(price["object"], "price");
    assert_eq!(price["unit_amount"], 900);
    assert_eq!(price["currency"], "usd");
    assert_eq!(price["recurring"]["interval"], "month");
    assert!(
        price["product"]
            .as_str()
            .is_some_and(|p| p.starts_with("prod_")),
        "{price}"
    );
    let (status, body) = call("GET", "/v1/subscriptions/sub_unknown", None, &[]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "resource_missing", "{body}");

    // Updates: the price of the one item, checked before anything changes.
    let (status, body) = call(
        "POST",
        &sub_path,
        None,
        &[
            ("items[0][id]", &item_id),
            ("items[0][price]", "price_gold"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "items[0][price]", "{body}");
    let (status, body) = call(
        "POST",
        &sub_path,
        None,
        &[
            ("items[0][id]", "si_unknown"),
            ("items[0][price]", "price_pro"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = call("POST", &sub_path, None, &[("cancel_at_period_end", "yes")]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        stripe.subscription(&sub_id).as_ref(),
        Some(&sub),
        "nothing changed"
    );
    let (status, upgraded) = call(
        "POST",
        &sub_path,
        Some("k-sub-1"),
        &[
            ("items[0][id]", &item_id),
            ("items[0][price]", "price_pro"),
            ("proration_behavior", "create_prorations"),
        ],
    );
    assert_eq!(status, 200, "{upgraded}");
    let items = upgraded["items"]["data"].as_array().expect("items");
    assert_eq!(
        items.len(),
        1,
        "the item was changed, not added: {upgraded}"
    );
    assert_eq!(items[0]["id"], item_id.as_str());
    assert_eq!(items[0]["price"]["id"], "price_pro");
    assert_eq!(items[0]["price"]["unit_amount"], 2900);

    // Cancel at the period's end, then change one's mind.
    let (status, ending) = call("POST", &sub_path, None, &[("cancel_at_period_end", "true")]);
    assert_eq!(status, 200, "{ending}");
    assert_eq!(ending["cancel_at_period_end"], true);
    assert_eq!(ending["status"], "active");
    assert_eq!(ending["cancel_at"], ending["current_period_end"]);
    assert_near_now(&ending["canceled_at"]);
    let (status, kept) = call(
        "POST",
        &sub_path,
        None,
        &[("cancel_at_period_end", "false")],
    );
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["cancel_at_period_end"], false);
    assert!(
        kept["cancel_at"].is_null() && kept["canceled_at"].is_null(),
        "{kept}"
    );

    // Invoices, statuses and events as tests play them.
    let open = stripe.invoice(&sub_id, false);
    assert!(
        open["id"].as_str().is_some_and(|id| id.starts_with("in_")),
        "{open}"
    );
    assert_eq!(open["object"], "invoice");
    assert_eq!(open["customer"], customer_id.as_str());
    assert_eq!(open["subscription"], sub_id.as_str());
    assert_eq!(
        open["parent"]["subscription_details"]["subscription"],
        sub_id.as_str()
    );
    assert_eq!(open["status"], "open");
    assert_eq!(open["paid"], false);
    assert_eq!(open["amount_due"], 2900);
    assert_eq!(open["amount_paid"], 0);
    assert_eq!(open["currency"], "usd");
    assert_eq!(open["billing_reason"], "subscription_cycle");
    assert_eq!(open["lines"]["data"][0]["amount"], 2900);
    assert_eq!(
        stripe.subscription(&sub_id).unwrap()["latest_invoice"],
        open["id"]
    );
    let paid = stripe.invoice(&sub_id, true);
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["paid"], true);
    assert_eq!(paid["amount_paid"], 2900);
    assert_ne!(paid["id"], open["id"]);
    stripe.set_subscription_status(&sub_id, "past_due");
    let (_, past_due) = call("GET", &sub_path, None, &[]);
    assert_eq!(past_due["status"], "past_due");
    let updated = stripe.event_at(
        "customer.subscription.updated",
        past_due.clone(),
        1_700_000_000,
    );
    assert_eq!(updated["created"], 1_700_000_000);
    assert_eq!(updated["type"], "customer.subscription.updated");
    assert_eq!(updated["data"]["object"], past_due);
    assert_ne!(stripe.event("ping", json!({}))["id"], updated["id"]);

    // Targeted faults hit only the request they name, once each, and change nothing.
    stripe.fail_next("POST", "fault@example.com", Fault::Status(500));
    stripe.fail_next("DELETE", &sub_id, Fault::Status(502));
    let (status, body) = call(
        "POST",
        "/v1/customers",
        None,
        &[("email", "other@example.com")],
    );
    assert_eq!(status, 200, "another email does not take the fault: {body}");
    let fault_form = [("email", "fault@example.com")];
    let (status, body) = call("POST", "/v1/customers", Some("k-fault"), &fault_form);
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        json!({ "error": { "type": "api_error", "message": "injected fault" } })
    );
    assert!(stripe.customers_with_email("fault@example.com").is_empty());
    let (status, body) = call("POST", "/v1/customers", Some("k-fault"), &fault_form);
    assert_eq!(
        status, 200,
        "the fault is used up and its key was not saved: {body}"
    );
    assert_eq!(stripe.customers_with_email("fault@example.com").len(), 1);
    let (status, _) = call("DELETE", &sub_path, None, &[]);
    assert_eq!(status, 502);
    assert_eq!(stripe.subscription(&sub_id).unwrap()["status"], "past_due");

    // Cancel now; a canceled subscription is gone for a second cancel and keeps only its
    // metadata open to change.
    let (status, canceled) = call("DELETE", &sub_path, None, &[]);
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_near_now(&canceled["canceled_at"]);
    assert_near_now(&canceled["ended_at"]);
    let (status, body) = call("DELETE", &sub_path, None, &[]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "resource_missing", "{body}");
    let (status, body) = call("POST", &sub_path, None, &[("cancel_at_period_end", "true")]);
    assert_eq!(status, 400, "{body}");
    let (status, body) = call("POST", &sub_path, None, &[("metadata[note]", "churned")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["note"], "churned");
    assert_eq!(body["status"], "canceled");

    // The webhook signature is Stripe's scheme: HMAC-SHA256 over "{t}.{payload}".
    assert_eq!(
        stripe_signature(br#"{"id":"evt_1"}"#, "whsec_test_secret", 1_700_000_000),
        "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"
    );
}

fn clerk_metadata_update_merges_like_clerks(_world: &World) {
    // A private instance: its users are this case's alone.
    let clerk = FakeClerk::start("sk_c");
    let url = format!(
        "{}/v1/users/user_meta/metadata",
        clerk.upstream().base_url()
    );
    let patch = |auth: Option<&str>, body: &str| send("PATCH", &url, auth, Some(body));
    let bearer = Some("Bearer sk_c");

    for auth in [None, Some("Bearer sk_wrong")] {
        let (status, body) = patch(auth, r#"{"public_metadata":{"plan":"pro"}}"#);
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            body["errors"][0]["code"], "authentication_invalid",
            "{body}"
        );
    }
    assert_eq!(clerk.public_metadata("user_meta"), None);
    for bad in [
        "not json",
        "[]",
        r#"{"public_metadata": 5}"#,
        r#"{"publicMetadata": {}}"#,
    ] {
        let (status, body) = patch(bearer, bad);
        assert!(matches!(status, 400 | 422), "{bad}: {status} {body}");
        assert!(body["errors"][0]["code"].is_string(), "{body}");
    }
    assert_eq!(
        clerk.public_metadata("user_meta"),
        None,
        "nothing was stored"
    );

    // The first update makes the user's record.
    let first = json!({
        "public_metadata": { "plan": "pro", "billing": { "customer": "cus_1", "sub": "sub_1" } },
        "private_metadata": { "stripe": "cus_1" },
    });
    let (status, user) = patch(bearer, &first.to_string());
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["object"], "user");
    assert_eq!(user["id"], "user_meta");
    assert_eq!(user["public_metadata"], first["public_metadata"]);
    assert_eq!(user["private_metadata"], first["private_metadata"]);
    assert_eq!(user["unsafe_metadata"], json!({}));
    assert!(user["updated_at"].as_u64().is_some(), "{user}");

    // Later updates merge deeply; null removes a key at any level.
    let second = json!({
        "public_metadata": { "billing": { "sub": null, "status": "active" }, "gone": null },
        "unsafe_metadata": { "theme": "dark" },
    });
    let (status, user) = patch(bearer, &second.to_string());
    assert_eq!(status, 200, "{user}");
    let expected = json!({ "plan": "pro", "billing": { "customer": "cus_1", "status": "active" } });
    assert_eq!(user["public_metadata"], expected);
    assert_eq!(
        user["private_metadata"],
        json!({ "stripe": "cus_1" }),
        "untouched"
    );
    assert_eq!(user["unsafe_metadata"], json!({ "theme": "dark" }));
    assert_eq!(clerk.public_metadata("user_meta"), Some(expected));

    // Only PATCH on a user's metadata is served.
    let (status, body) = send("GET", &url, bearer, None);
    assert_eq!(status, 404, "{body}");
}

/// A Stripe call: a form body (none when empty), optional `Authorization` and
/// `Idempotency-Key` headers; the status and the JSON body of the answer.
fn stripe_call(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    idempotency_key: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = ureq::request(method, url);
    if let Some(authorization) = authorization {
        request = request.set("Authorization", authorization);
    }
    if let Some(key) = idempotency_key {
        request = request.set("Idempotency-Key", key);
    }
    let result = if form.is_empty() {
        request.call()
    } else {
        request.send_form(form)
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            let status = response.status();
            (status, response.into_json().expect("a JSON body"))
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Whether `s` is exactly `len` ASCII letters and digits.
fn is_alnum(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Asserts that `value` is a Unix time in seconds within a minute of now.
fn assert_near_now(value: &Value) {
    let secs = value
        .as_i64()
        .unwrap_or_else(|| panic!("a Unix time: {value}"));
    assert!((secs - now_s()).abs() <= 60, "{secs} is now");
}

/// A request with an optional `Authorization` header and JSON body; the status and the JSON
/// body of the answer.
fn send(method: &str, url: &str, authorization: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let mut request = ureq::request(method, url);
    if let Some(authorization) = authorization {
        request = request.set("Authorization", authorization);
    }
    let result = match body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(body),
        None => request.call(),
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            let status = response.status();
            (status, response.into_json().expect("a JSON body"))
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Whether `s` is exactly `len` lowercase hex digits.
fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` is an RFC 3339 UTC time to the second (`2025-08-24T10:30:00Z`) in this year or
/// the next (around New Year).
fn is_rfc3339_utc(s: &str) -> bool {
    let digits = |range: std::ops::Range<usize>| {
        s.get(range)
            .is_some_and(|part| part.bytes().all(|b| b.is_ascii_digit()))
    };
    let shape = s.len() == 20
        && digits(0..4)
        && &s[4..5] == "-"
        && digits(5..7)
        && &s[7..8] == "-"
        && digits(8..10)
        && &s[10..11] == "T"
        && digits(11..13)
        && &s[13..14] == ":"
        && digits(14..16)
        && &s[16..17] == ":"
        && digits(17..19)
        && &s[19..] == "Z";
    let approximate_year = 1970 + now_s() / 31_556_952;
    shape
        && s[0..4]
            .parse::<i64>()
            .is_ok_and(|year| (year - approximate_year).abs() <= 1)
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
