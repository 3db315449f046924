//! A fake of Clerk: the instance's JWKS (`GET /.well-known/jwks.json`) and the Backend API
//! endpoints the worker calls, in the shapes Clerk documents: the two session endpoints
//! `POST /v1/sessions/{id}/revoke` and `POST /v1/sessions/{id}/tokens`, and
//! `PATCH /v1/users/{id}/metadata`, which deep-merges `public_metadata`, `private_metadata`
//! and `unsafe_metadata` into the user's (a key set to `null` is removed, at any depth) and
//! answers the User.
//!
//! Tests sign session tokens with [`FakeClerk::sign`]; the fake remembers each signed
//! session (by its `sid` claim) so that the Backend API can refresh or revoke it. The signing
//! key can be rotated: afterwards the JWKS serves only the new key, like Clerk's does. The
//! fake keeps no user directory: a user's record is made by the first metadata update, and
//! [`FakeClerk::public_metadata`] shows what the worker stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_compact::alg::{ModulusBits, Rsa, RsaPrivateKey, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Header};
use rand_core::RngCore;
use serde_json::{json, Map, Value};

use super::{FakeResponse, FakeUpstream, Recorded};

/// Where the fake serves the instance's public keys.
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The `client_id` every fake session belongs to.
const CLIENT_ID: &str = "client_test";

/// One signing key and its `kid`.
struct SigningKey {
    kid: String,
    private: RsaPrivateKey,
    public: RsaPublicKey,
}

impl SigningKey {
    /// A fresh 2048-bit key with a Clerk-like `kid` (`ins_test_<8 hex>`).
    fn generate() -> Self {
        let (private, public) = Rsa::generate(&mut rand_core::OsRng, ModulusBits::TwoKibibytes)
            .expect("generate an RSA key");
        Self {
            kid: format!("ins_test_{:08x}", rand_core::OsRng.next_u32()),
            private: private.into_inner(),
            public: public.into_inner(),
        }
    }

    /// RS256 over `claims` exactly as given, with `kid` in the header.
    fn sign(&self, claims: &Value, kid: &str) -> String {
        let header = Header::empty().with_key_id(kid).with_token_type("JWT");
        Rsa::rs256()
            .token(&header, &Claims::new(claims), &self.private)
            .expect("claims are a JSON object")
    }

    /// The key as one JWKS entry.
    fn jwk(&self) -> Value {
        let JsonWebKey::Rsa {
            modulus,
            public_exponent,
            ..
        } = JsonWebKey::from(&self.public)
        else {
            unreachable!("an RSA key is an RSA JWK")
        };
        json!({
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": b64url(&modulus),
            "e": b64url(&public_exponent),
        })
    }
}

/// A session the fake knows because a token for it was signed.
struct Session {
    claims: Value,
    created_at_ms: u64,
    updated_at_ms: u64,
    revoked: bool,
}

/// A user the fake knows because its metadata was updated.
struct User {
    public_metadata: Map<String, Value>,
    private_metadata: Map<String, Value>,
    unsafe_metadata: Map<String, Value>,
    created_at_ms: u64,
    updated_at_ms: u64,
}

/// The metadata fields `PATCH /v1/users/{id}/metadata` takes.
const METADATA_FIELDS: [&str; 3] = ["public_metadata", "private_metadata", "unsafe_metadata"];

struct ClerkState {
    key: SigningKey,
    sessions: HashMap<String, Session>,
    /// Revoked session ids, in the order they were revoked.
    revoked: Vec<String>,
    users: HashMap<String, User>,
    /// Organisation memberships (Backend API objects), by organisation id.
    memberships: HashMap<String, Vec<Value>>,
}

/// The fake Clerk: a [`FakeUpstream`] serving the JWKS and the session Backend API.
pub struct FakeClerk {
    upstream: FakeUpstream,
    state: Arc<Mutex<ClerkState>>,
}

impl FakeClerk {
    /// Starts the fake with one fresh signing key; Backend API calls must carry
    /// `Authorization: Bearer <secret_key>`.
    pub fn start(secret_key: &str) -> Self {
        Self::start_on(secret_key, "127.0.0.1:0").expect("bind the fake clerk")
    }

    /// Like [`Self::start`], listening on `address`.
    pub fn start_on(secret_key: &str, address: &str) -> Result<Self, String> {
        Self::start_named("clerk", secret_key, address)
    }

    /// Like [`Self::start_on`], named `name` in what it records (a second instance: the
    /// platforms' end users' Clerk, with a signing key of its own).
    pub fn start_named(
        name: &'static str,
        secret_key: &str,
        address: &str,
    ) -> Result<Self, String> {
        let state = Arc::new(Mutex::new(ClerkState {
            key: SigningKey::generate(),
            sessions: HashMap::new(),
            revoked: Vec::new(),
            users: HashMap::new(),
            memberships: HashMap::new(),
        }));
        let upstream = {
            let state = Arc::clone(&state);
            let authorization = format!("Bearer {secret_key}");
            FakeUpstream::start_on(name, address, move |request| {
                respond(request, &state, &authorization)
            })?
        };
        Ok(Self { upstream, state })
    }

    /// Makes `user_id` a member of the organisation `org_id` with `role` (`org:admin`,
    /// `org:member`), as `GET /v1/organizations/{id}/memberships` then lists them.
    pub fn add_member(&self, org_id: &str, user_id: &str, role: &str, first_name: &str) {
        let mut state = self.state.lock().unwrap();
        let members = state.memberships.entry(org_id.to_owned()).or_default();
        members.push(json!({
            "object": "organization_membership",
            "id": format!("orgmem_{}_{}", members.len() + 1, org_id.trim_start_matches("org_")),
            "role": role,
            "role_name": role.trim_start_matches("org:"),
            "permissions": [],
            "public_metadata": {},
            "private_metadata": {},
            "organization": { "object": "organization", "id": org_id },
            "public_user_data": {
                "user_id": user_id,
                "first_name": first_name,
                "last_name": null,
                "image_url": format!("https://img.clerk.test/{user_id}"),
                "has_image": false,
                "identifier": format!("{user_id}@example.test"),
            },
            "created_at": now_ms() as i64,
            "updated_at": now_ms() as i64,
        }));
    }

    /// The underlying server, for `received()`, `inject()` and `base_url()`.
    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    /// Where the JWKS is served.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.upstream.base_url())
    }

    /// How many times the JWKS has been fetched so far.
    pub fn jwks_fetches(&self) -> usize {
        self.upstream.count("GET", JWKS_PATH)
    }

    /// The `kid` of the key that signs now and that the JWKS serves.
    pub fn current_kid(&self) -> String {
        self.state.lock().unwrap().key.kid.clone()
    }

    /// Replaces the signing key with a new one under a new `kid`; from now on the JWKS serves
    /// only the new key. Returns the new `kid`.
    pub fn rotate(&self) -> String {
        let key = SigningKey::generate();
        let kid = key.kid.clone();
        self.state.lock().unwrap().key = key;
        kid
    }

    /// An RS256 token over exactly these claims, signed with the current key and carrying its
    /// `kid`. A string `sid` claim makes the session known to the Backend API.
    pub fn sign(&self, claims: &Value) -> String {
        let mut state = self.state.lock().unwrap();
        remember(&mut state, claims);
        let kid = state.key.kid.clone();
        state.key.sign(claims, &kid)
    }

    /// Like [`Self::sign`], but with this `kid` in the header (the signature is still made
    /// with the current key).
    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> String {
        let mut state = self.state.lock().unwrap();
        remember(&mut state, claims);
        state.key.sign(claims, kid)
    }

    /// The current public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> String {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        self.state
            .lock()
            .unwrap()
            .key
            .public
            .to_public_key_pem(LineEnding::LF)
            .expect("encode the public key as PEM")
    }

    /// The session ids revoked through the Backend API, in order.
    pub fn revoked_sessions(&self) -> Vec<String> {
        self.state.lock().unwrap().revoked.clone()
    }

    /// The user's `public_metadata` as the Backend API has stored it; `None` until the first
    /// metadata update for this user.
    pub fn public_metadata(&self, user_id: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state
            .users
            .get(user_id)
            .map(|user| Value::Object(user.public_metadata.clone()))
    }
}

/// Records the session a token is signed for.
fn remember(state: &mut ClerkState, claims: &Value) {
    let Some(sid) = claims.get("sid").and_then(Value::as_str) else {
        return;
    };
    let now = now_ms();
    match state.sessions.get_mut(sid) {
        Some(session) => {
            session.claims = claims.clone();
            session.updated_at_ms = now;
        }
        None => {
            state.sessions.insert(
                sid.to_owned(),
                Session {
                    claims: claims.clone(),
                    created_at_ms: now,
                    updated_at_ms: now,
                    revoked: false,
                },
            );
        }
    }
}

fn respond(request: &Recorded, state: &Mutex<ClerkState>, authorization: &str) -> FakeResponse {
    if request.method == "GET" && request.path == JWKS_PATH {
        let jwk = state.lock().unwrap().key.jwk();
        return FakeResponse::json(200, &json!({ "keys": [jwk] }));
    }
    let memberships_of = request
        .path
        .strip_prefix("/v1/organizations/")
        .and_then(|rest| rest.strip_suffix("/memberships"))
        .filter(|id| !id.is_empty() && !id.contains('/'));
    if let Some(org_id) = memberships_of.filter(|_| request.method == "GET") {
        if request.header("authorization") != Some(authorization) {
            return unauthorized();
        }
        let state = state.lock().unwrap();
        return match state.memberships.get(org_id) {
            Some(members) => FakeResponse::json(
                200,
                &json!({ "data": members, "total_count": members.len() }),
            ),
            None => not_found(&format!("No organization was found with id {org_id}")),
        };
    }
    let metadata_user = request
        .path
        .strip_prefix("/v1/users/")
        .and_then(|rest| rest.strip_suffix("/metadata"))
        .filter(|id| !id.is_empty() && !id.contains('/'));
    if let Some(user_id) = metadata_user.filter(|_| request.method == "PATCH") {
        if request.header("authorization") != Some(authorization) {
            return unauthorized();
        }
        return update_metadata(request, &mut state.lock().unwrap(), user_id);
    }
    let session_action = request
        .path
        .strip_prefix("/v1/sessions/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(id, action)| !id.is_empty() && matches!(*action, "revoke" | "tokens"));
    let Some((session_id, action)) = session_action.filter(|_| request.method == "POST") else {
        return not_found("The requested resource was not found.");
    };
    if request.header("authorization") != Some(authorization) {
        return unauthorized();
    }
    let mut state = state.lock().unwrap();
    let state = &mut *state;
    let Some(session) = state.sessions.get_mut(session_id) else {
        return not_found(&format!("No session was found with id {session_id}"));
    };
    let now = now_ms();
    match action {
        "revoke" => {
            if !session.revoked {
                session.revoked = true;
                session.updated_at_ms = now;
                state.revoked.push(session_id.to_owned());
            }
            FakeResponse::json(200, &session_object(session_id, session))
        }
        _ => {
            if session.revoked {
                return clerk_error(
                    400,
                    "session_not_active",
                    "Session is not active",
                    &format!("Session {session_id} is revoked, so no token can be created for it."),
                );
            }
            let now_s = now / 1000;
            let mut claims = session.claims.clone();
            claims["iat"] = json!(now_s);
            claims["nbf"] = json!(now_s);
            claims["exp"] = json!(now_s + 60);
            let jwt = state.key.sign(&claims, &state.key.kid);
            FakeResponse::json(200, &json!({ "object": "token", "jwt": jwt }))
        }
    }
}

/// `PATCH /v1/users/{id}/metadata`: deep-merges the body's metadata into the user's, making
/// the user's record on first use.
fn update_metadata(request: &Recorded, state: &mut ClerkState, user_id: &str) -> FakeResponse {
    let body = match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(body)) => body,
        _ => {
            return clerk_error(
                400,
                "malformed_request",
                "Malformed request",
                "The request body is not a valid JSON object.",
            )
        }
    };
    // Everything is checked before anything changes.
    for (name, value) in &body {
        if !METADATA_FIELDS.contains(&name.as_str()) {
            return clerk_error(
                422,
                "form_param_unknown",
                "is unknown",
                &format!("{name} is not a recognized parameter for this request."),
            );
        }
        if !value.is_object() && !value.is_null() {
            return clerk_error(
                422,
                "form_param_format_invalid",
                "is invalid",
                &format!("{name} must be a JSON object."),
            );
        }
    }
    let now = now_ms();
    let user = state
        .users
        .entry(user_id.to_owned())
        .or_insert_with(|| User {
            public_metadata: Map::new(),
            private_metadata: Map::new(),
            unsafe_metadata: Map::new(),
            created_at_ms: now,
            updated_at_ms: now,
        });
    for (name, value) in &body {
        let Value::Object(patch) = value else {
            continue;
        };
        let target = match name.as_str() {
            "public_metadata" => &mut user.public_metadata,
            "private_metadata" => &mut user.private_metadata,
            _ => &mut user.unsafe_metadata,
        };
        deep_merge(target, patch);
    }
    user.updated_at_ms = now;
    FakeResponse::json(200, &user_object(user_id, user))
}

/// Merges `patch` into `target` as Clerk documents: nested objects are merged too, and a key
/// set to `null` is removed at any level.
fn deep_merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => match target.get_mut(key) {
                Some(Value::Object(existing)) => deep_merge(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    deep_merge(&mut fresh, inner);
                    target.insert(key.clone(), Value::Object(fresh));
                }
            },
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// A Clerk User object for a user the fake knows only by id and metadata.
fn user_object(id: &str, user: &User) -> Value {
    json!({
        "object": "user",
        "id": id,
        "username": null,
        "first_name": null,
        "last_name": null,
        "image_url": "https://img.clerk.com/default",
        "has_image": false,
        "primary_email_address_id": null,
        "primary_phone_number_id": null,
        "primary_web3_wallet_id": null,
        "password_enabled": false,
        "two_factor_enabled": false,
        "totp_enabled": false,
        "backup_code_enabled": false,
        "email_addresses": [],
        "phone_numbers": [],
        "web3_wallets": [],
        "passkeys": [],
        "external_accounts": [],
        "saml_accounts": [],
        "public_metadata": user.public_metadata,
        "private_metadata": user.private_metadata,
        "unsafe_metadata": user.unsafe_metadata,
        "external_id": null,
        "last_sign_in_at": null,
        "banned": false,
        "locked": false,
        "lockout_expires_in_seconds": null,
        "verification_attempts_remaining": 100,
        "delete_self_enabled": true,
        "create_organization_enabled": true,
        "last_active_at": null,
        "legal_accepted_at": null,
        "created_at": user.created_at_ms,
        "updated_at": user.updated_at_ms,
    })
}

/// The answer to a Backend API call without the right secret key.
fn unauthorized() -> FakeResponse {
    clerk_error(
        401,
        "authentication_invalid",
        "Unauthorized request",
        "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is \
         correct.",
    )
}

/// A Clerk Session object.
fn session_object(id: &str, session: &Session) -> Value {
    const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    json!({
        "object": "session",
        "id": id,
        "user_id": session.claims.get("sub").cloned().unwrap_or(Value::Null),
        "client_id": CLIENT_ID,
        "status": if session.revoked { "revoked" } else { "active" },
        "last_active_at": session.updated_at_ms,
        "expire_at": session.created_at_ms + 7 * DAY_MS,
        "abandon_at": session.created_at_ms + 30 * DAY_MS,
        "created_at": session.created_at_ms,
        "updated_at": session.updated_at_ms,
    })
}

fn not_found(long_message: &str) -> FakeResponse {
    clerk_error(404, "resource_not_found", "not found", long_message)
}

/// Clerk's error envelope.
fn clerk_error(status: u16, code: &str, message: &str, long_message: &str) -> FakeResponse {
    FakeResponse::json(
        status,
        &json!({
            "errors": [{
                "message": message,
                "long_message": long_message,
                "code": code,
                "meta": {},
            }],
            "clerk_trace_id": format!("{:016x}", rand_core::OsRng.next_u64()),
        }),
    )
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}
