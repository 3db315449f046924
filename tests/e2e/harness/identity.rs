//! Credentials for the tests: HMAC tokens signed with the worker's test secret, Clerk
//! session tokens signed by the fake Clerk, Svix-signed webhook deliveries, and ids unique
//! to one test so parallel cases never share a user.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header};
use rand_core::RngCore;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{Reply, World};
use crate::fakes::{CLERK_ISSUER, END_USER_CLERK_ISSUER};

/// The worker's `ACCOUNT_TOKEN_SECRET` in the tests.
pub const ACCOUNT_TOKEN_SECRET: &str = "e2e-account-secret-5a1f0c7e9b3d2a4c6e8f1b0d";
/// The worker's `APP_URL` in the tests: the mailed links start with it.
pub const APP_URL: &str = "https://app.tollgate.test";

/// The worker's `JWT_SECRET` in the tests.
pub const JWT_SECRET: &str = "e2e-hmac-secret-0f6b1c9d2e7a4b3c8d5e6f7a";
/// The raw key behind the worker's `CLERK_WEBHOOK_SECRET` (`whsec_` + base64 of this).
pub const SVIX_KEY: &[u8] = b"e2e-svix-signing-key-32-bytes!!!";
/// A second key in `CLERK_WEBHOOK_SECRET` (listed first): a rotation in progress.
pub const SVIX_KEY_NEXT: &[u8] = b"e2e-svix-next-signing-key-32by!!";
/// The only `azp` the worker accepts in the tests.
pub const AUTHORIZED_PARTY: &str = "http://localhost:5173";
/// The only `azp` the worker accepts on end-user tokens in the tests
/// (`END_USER_CLERK_AUTHORIZED_PARTIES`): a platform's web app.
pub const END_USER_AUTHORIZED_PARTY: &str = "https://platform.tollgate.test";
/// A Clerk user id listed bare in `ADMIN_USER_IDS` (as the seeds' settings list admins).
pub const ADMIN_CLERK_ID: &str = "user_e2e_admin";
/// A Clerk admin listed source-qualified (`clerk:...`), for the API key scope cases only.
pub const KEY_ADMIN_CLERK_ID: &str = "user_e2e_key_admin";
/// An HMAC admin, listed as `hmac:<uid>`.
pub const ADMIN_HMAC_UID: &str = "e2e-hmac-admin";
/// The organisation whose members are staff (`STAFF_ORG_ID`).
pub const STAFF_ORG_ID: &str = "org_e2e_staff";
/// `CLERK_JWKS_MIN_REFETCH_SECS` in the tests.
pub const JWKS_MIN_REFETCH_SECS: u64 = 3;
/// `CLERK_SIGN_IN_URL` in the tests.
pub const SIGN_IN_URL: &str = "https://accounts.tollgate.test/sign-in";

/// The identity settings the worker runs with in the tests.
pub fn worker_vars() -> Vec<(&'static str, String)> {
    vec![
        ("JWT_SECRET", JWT_SECRET.to_owned()),
        ("ACCOUNT_TOKEN_SECRET", ACCOUNT_TOKEN_SECRET.to_owned()),
        ("APP_URL", APP_URL.to_owned()),
        (
            "CLERK_WEBHOOK_SECRET",
            format!(
                "whsec_{},whsec_{}",
                B64.encode(SVIX_KEY_NEXT),
                B64.encode(SVIX_KEY)
            ),
        ),
        ("CLERK_AUTHORIZED_PARTIES", AUTHORIZED_PARTY.to_owned()),
        (
            "CLERK_JWKS_MIN_REFETCH_SECS",
            JWKS_MIN_REFETCH_SECS.to_string(),
        ),
        ("CLERK_SIGN_IN_URL", SIGN_IN_URL.to_owned()),
        (
            "END_USER_CLERK_AUTHORIZED_PARTIES",
            END_USER_AUTHORIZED_PARTY.to_owned(),
        ),
        (
            "END_USER_CLERK_JWKS_MIN_REFETCH_SECS",
            JWKS_MIN_REFETCH_SECS.to_string(),
        ),
        (
            "ADMIN_USER_IDS",
            format!("{ADMIN_CLERK_ID},clerk:{KEY_ADMIN_CLERK_ID},hmac:{ADMIN_HMAC_UID}"),
        ),
        ("STAFF_ORG_ID", STAFF_ORG_ID.to_owned()),
    ]
}

/// Now, Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// `prefix` plus 16 random hex digits: an id no other case uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand_core::OsRng.next_u64())
}

/// Claims of a valid Clerk session token for `sub`, with a session of its own.
pub fn clerk_claims(sub: &str) -> Value {
    let now = now();
    json!({
        "sub": sub, "iss": CLERK_ISSUER, "azp": AUTHORIZED_PARTY, "sid": unique("sess_"),
        "iat": now - 5, "nbf": now - 5, "exp": now + 120, "v": 2,
    })
}

/// Claims of a valid session token of the end-user Clerk instance for the end user `sub` of
/// the platform `platform_id`, on `plan` if given (in `publicMetadata`, as a Clerk session
/// token template copies the user's public metadata), with a session of its own.
pub fn end_user_claims(sub: &str, platform_id: &str, plan: Option<&str>) -> Value {
    let now = now();
    let mut metadata = json!({ "platformId": platform_id });
    if let Some(plan) = plan {
        metadata["plan"] = json!(plan);
    }
    json!({
        "sub": sub, "iss": END_USER_CLERK_ISSUER, "azp": END_USER_AUTHORIZED_PARTY,
        "sid": unique("sess_"), "email": format!("{sub}@end-users.example.test"),
        "iat": now - 5, "nbf": now - 5, "exp": now + 120, "v": 2,
        "publicMetadata": metadata,
    })
}

/// Claims of a valid HMAC token for `uid`.
pub fn hmac_claims(uid: &str) -> Value {
    json!({ "uid": uid, "email": format!("{uid}@example.test"), "username": uid, "exp": now() + 600 })
}

/// An HS256 token over `claims` with `secret`.
pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    Hs256
        .token(
            &Header::empty().with_token_type("JWT"),
            &Claims::new(claims),
            &Hs256Key::new(secret),
        )
        .expect("claims serialise")
}

/// A Svix delivery's headers for `body`, signed with the worker's webhook secret.
pub fn svix_headers(id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    svix_headers_with(SVIX_KEY, id, timestamp, body)
}

/// A Svix delivery's headers for `body`, signed with `key`.
pub fn svix_headers_with(
    key: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    vec![
        ("svix-id", id.to_owned()),
        ("svix-timestamp", timestamp.to_string()),
        ("svix-signature", signature),
    ]
}

impl World {
    /// A Clerk session token for `sub`, signed by the fake Clerk's current key.
    pub fn clerk_token(&self, sub: &str) -> String {
        self.fakes.clerk.sign(&clerk_claims(sub))
    }

    /// A session token of the end-user Clerk instance for `sub` of `platform_id` (see
    /// [`end_user_claims`]), signed by the fake end-user Clerk's current key.
    pub fn end_user_token(&self, sub: &str, platform_id: &str, plan: Option<&str>) -> String {
        self.fakes
            .end_user_clerk
            .sign(&end_user_claims(sub, platform_id, plan))
    }

    /// An HMAC token for `uid`, signed with the worker's `JWT_SECRET`.
    pub fn hmac_token(&self, uid: &str) -> String {
        hs256(&hmac_claims(uid), JWT_SECRET.as_bytes())
    }

    /// `method path` with `Authorization: Bearer credential`.
    pub fn authed(&self, method: &str, path: &str, credential: &str) -> super::Call {
        self.call(method, path)
            .header("Authorization", &format!("Bearer {credential}"))
    }

    /// Delivers a Clerk webhook event, correctly signed, now.
    pub fn clerk_webhook(&self, id: &str, event: &Value) -> Reply {
        let body = event.to_string();
        let mut call = self.call("POST", "/api/auth/webhook/clerk");
        for (name, value) in svix_headers(id, now(), body.as_bytes()) {
            call = call.header(name, &value);
        }
        call.body("application/json", body.as_bytes())
    }
}

/// A Clerk `user.*` event for `id`, in the shape Clerk documents.
pub fn clerk_user_event(kind: &str, id: &str, updated_at_ms: i64, metadata: Value) -> Value {
    json!({
        "object": "event", "type": kind, "timestamp": updated_at_ms,
        "instance_id": "ins_e2e",
        "data": {
            "object": "user", "id": id,
            "email_addresses": [{ "id": "idn_1", "object": "email_address", "email_address": format!("{id}@example.test") }],
            "primary_email_address_id": "idn_1",
            "first_name": "Test", "last_name": "Person", "username": null,
            "image_url": "https://img.clerk.com/test.png",
            "public_metadata": metadata, "private_metadata": {}, "unsafe_metadata": {},
            "created_at": updated_at_ms, "updated_at": updated_at_ms,
        }
    })
}
