//! Tests of code whose behaviour depends on the wasm runtime, run under Node by
//! `wasm-bindgen-test-runner` (`scripts/test` does this). On the host this file is empty.
#![cfg(target_arch = "wasm32")]

use tollgate::core::{random, request_id, sealed};
use tollgate::identity::rules::api_key;
use tollgate::identity::rules::jwt::{
    self, ClerkPolicy, HmacPolicy, Rejection, TimeCheck, TokenKind,
};
use tollgate::webhooks::rules::svix;
use wasm_bindgen_test::wasm_bindgen_test;

/// Randomness reaches the JS runtime's `crypto.getRandomValues` (getrandom's `js` backend):
/// ids are well-formed and do not repeat.
#[wasm_bindgen_test]
fn request_ids_are_random_on_wasm() {
    let ids: std::collections::HashSet<String> = (0..64).map(|_| request_id::generate()).collect();
    assert_eq!(ids.len(), 64);
    assert!(ids
        .iter()
        .all(|id| request_id::is_acceptable(id) && id.len() == 36));
}

/// API keys are generated from the runtime's randomness and have the documented shape.
#[wasm_bindgen_test]
fn api_keys_are_random_on_wasm() {
    let keys: std::collections::HashSet<String> = (0..32).map(|_| api_key::generate()).collect();
    assert_eq!(keys.len(), 32);
    assert!(keys.iter().all(|k| api_key::looks_like_key(k)));
}

/// AES-256-GCM seals and opens in wasm with nonces from the runtime's randomness.
#[wasm_bindgen_test]
fn secrets_seal_and_open_on_wasm() {
    let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
    let ring = sealed::Keyring::new(key, None).expect("32 bytes of base64url");
    let a = ring.seal("sk-or-v1-wasm", "row_1", random::bytes());
    let b = ring.seal("sk-or-v1-wasm", "row_1", random::bytes());
    assert_ne!(a, b, "a fresh nonce each time");
    assert_eq!(ring.open(&a, "row_1").as_deref(), Ok("sk-or-v1-wasm"));
    assert_eq!(ring.open(&b, "row_2"), Err(sealed::OpenError::Tampered));
}

/// A public test key (a JWKS) and an RS256 token it signed, made once on the host. Public
/// material only: the private half was never stored.
const FIXTURE_JWKS: &str = r#"{"keys":[{"e":"AQAB","kid":"wasm-fixture","kty":"RSA","n":"8cXJ8_uzpquzpS4oOJF4_HVpTb0nsWfbDgss0K7zNUcYYnvN-BRhW0Zc6DD-IR_iAVYSJc93wzpjtUA3X9epRerYV508rv54kK2Zaa29CZ-oBRQFXBkxrxU3VJq6W81I-8TP7IHuvQZ2RwE-wnTDsD-TTdu86WqL3LyQDnVjrchirm6TFrXvSPDo_xyf2Ddulk6PG_WQUs0d6_WL1f_oor16JDL_FsfjxeUYKkVF1rY6BZdO6Sr7knys1pEgqyPn8kBExHlkr9M_hswe1uVD3Kd39-Vn4jhfy39gNyadcvanAz1IMw5ymlmbKHPaIbONI7Szudao9xO4KHptarEDCw"}]}"#;
const FIXTURE_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Indhc20tZml4dHVyZSJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlzcyI6Imh0dHBzOi8vY2xlcmsud2FzbS50ZXN0IiwibmJmIjoxNzAwMDAwMDAwLCJzaWQiOiJzZXNzX3dhc20iLCJzdWIiOiJ1c2VyX3dhc20ifQ.qe-JowkzcquQQ1yGZ9lkyo8Ap9L3R8hBXLUijqVcSQ6G_ckIbw9LfH1gg8MQ2L0iDy-Lf7bzy7MkoMNrg3ZYtg3fSHW_K7TbuyB7iwDfAkpOJ30rO94L3MfV1o2L6UdAxd4na8HU5YO8-iW5DLa1z_nab2CfYbY8QX6RoidAQPsiKvCWwop3WGhd-8fnjUalqFkmdbT5-do7U5qWxVd7gZF2C7QNFx4JCNKHSWfDJPXMS0SMS_tiLSVEt9kLSwKyQzJ0LPDtZM5eEi87ZMygnj4YwGYjBwcldfrB6hNrlEXQmismcy9DB5yx8gSkPDkUCeyxqUFvnc7toofpbU5j5Q";

/// RS256 verification (the rsa crate's bignum arithmetic) gives the same answers in wasm.
#[wasm_bindgen_test]
fn rs256_tokens_verify_on_wasm() {
    let keys = jwt::parse_jwks(FIXTURE_JWKS).expect("the fixture JWKS parses");
    let policy = ClerkPolicy {
        issuer: "https://clerk.wasm.test".to_owned(),
        authorized_parties: vec![],
    };
    let time = TimeCheck {
        now: 1_800_000_000,
        skew: 5,
    };
    let verified = jwt::verify_clerk(FIXTURE_TOKEN, &keys[0].key, &policy, time).unwrap();
    assert_eq!(verified.kind, TokenKind::Clerk);
    assert_eq!(verified.subject, "user_wasm");
    let mut tampered = FIXTURE_TOKEN.to_owned().into_bytes();
    let i = tampered.len() - 20;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        jwt::verify_clerk(&tampered, &keys[0].key, &policy, time),
        Err(Rejection::BadSignature)
    );
}

/// HS256 signing and verification round-trip in wasm.
#[wasm_bindgen_test]
fn hs256_tokens_round_trip_on_wasm() {
    let secret = b"wasm-test-secret-0123456789abcdef";
    let time = TimeCheck {
        now: 1_800_000_000,
        skew: 5,
    };
    let keys = jwt::parse_jwks(FIXTURE_JWKS).unwrap();
    let original = jwt::verify_clerk(
        FIXTURE_TOKEN,
        &keys[0].key,
        &ClerkPolicy {
            issuer: "https://clerk.wasm.test".to_owned(),
            authorized_parties: vec![],
        },
        time,
    )
    .unwrap();
    let token = jwt::sign_hmac(secret, &original, time.now, 60).unwrap();
    let verified =
        jwt::verify_hmac(&token, secret, HmacPolicy { require_exp: true }, time).unwrap();
    assert_eq!(verified.subject, "user_wasm");
    assert_eq!(verified.session_id.as_deref(), Some("sess_wasm"));
}

/// Svix's documented example verifies in wasm.
#[wasm_bindgen_test]
fn svix_signatures_verify_on_wasm() {
    let headers = svix::SvixHeaders {
        id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        timestamp: Some("1614265330"),
        signature: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    };
    let body = br#"{"test": 2432232314}"#;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(svix::verify(secret, headers, body, 1_614_265_330).is_ok());
}
