//! Bearer JWTs: Clerk session tokens (RS256, keys from the instance's JWKS) and HMAC tokens
//! (HS256, a shared secret). Pure functions of the token, the key, the policy and the time,
//! so every accept/reject rule is a host unit test.
//!
//! The algorithm is never taken from the token on trust: an `RS256` token is only checked
//! against a JWKS key and an `HS256` token only against the configured secret, so a token
//! "signed" with the RSA public key as an HMAC secret (algorithm confusion) cannot verify.

use jwt_compact::alg::{Hs256, Hs256Key, Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};

/// Why a token was refused. Each becomes `401 unauthorized` with [`Rejection::message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url parts with a JSON header.
    Malformed,
    /// The header names an algorithm this server does not accept (`none`, `RS512`, ...).
    UnsupportedAlgorithm(String),
    /// Tokens of this kind are not accepted here (no JWKS or no secret configured).
    NotAccepted(&'static str),
    /// An RS256 token without a `kid`, or whose `kid` is not in the JWKS even after a refresh.
    UnknownKey(String),
    /// The signature does not match the header and payload.
    BadSignature,
    /// The claims are not the expected JSON shape.
    MalformedClaims,
    /// `exp` is missing where it is required.
    MissingExpiry,
    /// `exp` is in the past (beyond the allowed skew).
    Expired,
    /// `nbf` is in the future (beyond the allowed skew).
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `azp` is not one of the authorized parties.
    UnauthorizedParty,
    /// No subject (`sub`, or `uid` for HMAC tokens).
    MissingSubject,
    /// A token of the platforms' end-user Clerk instance where an operator's token is
    /// expected: end users are never Tollgate users.
    EndUserTokenHere,
    /// Anything but a token of the end-user instance on an end-user route (an operator's
    /// Clerk, HMAC or account token never acts as an end user).
    NotEndUserToken,
}

impl Rejection {
    /// The precise sentence returned in the error envelope.
    pub fn message(&self) -> String {
        match self {
            Self::Malformed => "malformed bearer token".to_owned(),
            Self::UnsupportedAlgorithm(alg) => {
                format!("token algorithm `{alg}` is not accepted (RS256 or HS256 only)")
            }
            Self::NotAccepted(kind) => format!("{kind} tokens are not accepted by this server"),
            Self::UnknownKey(kid) if kid.is_empty() => "token has no key id (kid)".to_owned(),
            Self::UnknownKey(_) => "token signing key is unknown".to_owned(),
            Self::BadSignature => "token signature is invalid".to_owned(),
            Self::MalformedClaims => "token claims are malformed".to_owned(),
            Self::MissingExpiry => "token has no expiry (exp)".to_owned(),
            Self::Expired => "token has expired".to_owned(),
            Self::NotYetValid => "token is not valid yet (nbf)".to_owned(),
            Self::WrongIssuer => "token issuer is not accepted".to_owned(),
            Self::UnauthorizedParty => "token authorized party (azp) is not allowed".to_owned(),
            Self::MissingSubject => "token has no subject".to_owned(),
            Self::EndUserTokenHere => {
                "an end-user token is accepted only on end-user routes".to_owned()
            }
            Self::NotEndUserToken => "this route takes an end-user token from the platform's \
                                      end-user Clerk instance"
                .to_owned(),
        }
    }
}

/// The `exp` of a token, read without verifying it (for display only).
pub fn peek_expiry(token: &str) -> Option<i64> {
    let untrusted = UntrustedToken::new(token).ok()?;
    let claims = untrusted
        .deserialize_claims_unchecked::<serde_json::Map<String, serde_json::Value>>()
        .ok()?;
    claims.expiration.map(|t| t.timestamp())
}

/// The parts of a JWT header needed to pick a verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// `alg`, exactly as written.
    pub alg: String,
    /// `kid`, if any.
    pub kid: Option<String>,
}

/// Reads the header without trusting anything in it.
pub fn peek_header(token: &str) -> Result<TokenHeader, Rejection> {
    let untrusted = UntrustedToken::new(token).map_err(|_| Rejection::Malformed)?;
    Ok(TokenHeader {
        alg: untrusted.algorithm().to_owned(),
        kid: untrusted.header().key_id.clone(),
    })
}

/// The clock and the skew tolerated on `exp` and `nbf`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeCheck {
    /// Now, Unix seconds.
    pub now: i64,
    /// Allowed clock skew, seconds.
    pub skew: i64,
}

/// What a Clerk session token must satisfy beyond its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkPolicy {
    /// The instance's issuer, e.g. `https://clerk.example.com`.
    pub issuer: String,
    /// Allowed `azp` values; empty means any.
    pub authorized_parties: Vec<String>,
}

/// What an HMAC token must satisfy beyond its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HmacPolicy {
    /// Whether `exp` is required (default yes).
    pub require_exp: bool,
}

/// Which verifier accepted a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// RS256 session token from Clerk.
    Clerk,
    /// HS256 token signed with `JWT_SECRET`.
    Hmac,
    /// HS256 access token of Tollgate's own accounts, issued by [`ACCOUNT_ISSUER`] and signed
    /// with `ACCOUNT_TOKEN_SECRET`.
    Account,
}

/// The `iss` of Tollgate's own account access tokens. The HMAC verifier refuses a token
/// naming it, and the account verifier refuses any other, so neither kind passes for the
/// other even if the two secrets were the same.
pub const ACCOUNT_ISSUER: &str = "tollgate-accounts";

/// The `iss` claim of a token, read without verifying anything (to pick a verifier).
pub fn peek_issuer(token: &str) -> Option<String> {
    let untrusted = UntrustedToken::new(token).ok()?;
    let claims = untrusted
        .deserialize_claims_unchecked::<serde_json::Map<String, serde_json::Value>>()
        .ok()?;
    claims
        .custom
        .get("iss")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// The claims of an account access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountClaims<'a> {
    /// [`ACCOUNT_ISSUER`].
    pub iss: &'a str,
    /// The user's stable external id (not the email, which can change).
    pub sub: &'a str,
    /// The session family id.
    pub sid: &'a str,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// The claims of a fresh account access token for `subject` in session `session_id`, valid
/// from `now` for `ttl_secs`.
pub fn account_claims<'a>(
    subject: &'a str,
    session_id: &'a str,
    now: i64,
    ttl_secs: i64,
) -> AccountClaims<'a> {
    AccountClaims {
        iss: ACCOUNT_ISSUER,
        sub: subject,
        sid: session_id,
        iat: now,
        exp: now + ttl_secs,
    }
}

/// Signs account access token claims (HS256).
pub fn sign_account(secret: &[u8], claims: &AccountClaims<'_>) -> Result<String, String> {
    let header = jwt_compact::Header::empty().with_token_type("JWT");
    Hs256
        .token(&header, &Claims::new(claims), &Hs256Key::new(secret))
        .map_err(|e| e.to_string())
}

/// Verifies an account access token: HS256 with the accounts secret, issuer
/// [`ACCOUNT_ISSUER`], an `exp` (always required), a subject and a session (`sid`).
pub fn verify_account(
    token: &str,
    secret: &[u8],
    time: TimeCheck,
) -> Result<VerifiedToken, Rejection> {
    let untrusted = UntrustedToken::new(token).map_err(|_| Rejection::Malformed)?;
    let key = Hs256Key::new(secret);
    let verified = Hs256
        .validator::<RawClaims>(&key)
        .validate(&untrusted)
        .map_err(signature_rejection)?;
    let claims = verified.claims();
    let expires_at = check_times(claims, time, true)?;
    let raw = claims.custom.clone();
    if raw.iss.as_deref() != Some(ACCOUNT_ISSUER) {
        return Err(Rejection::WrongIssuer);
    }
    let subject = non_empty(raw.sub.map(Text::into_string)).ok_or(Rejection::MissingSubject)?;
    let session_id = non_empty(raw.sid).ok_or(Rejection::MalformedClaims)?;
    Ok(VerifiedToken {
        kind: TokenKind::Account,
        subject,
        email: None,
        username: None,
        session_id: Some(session_id),
        org: None,
        expires_at,
    })
}

/// An organisation role, normalised from Clerk's v1 (`org:admin`) and v2 (`admin`) forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgRole {
    /// `org:admin` / `admin`.
    Admin,
    /// `org:member` / `member` / `basic_member`.
    Member,
    /// Any custom role, kept as written.
    Custom(String),
}

impl OrgRole {
    /// Parses either claim form.
    pub fn parse(raw: &str) -> Self {
        match raw.strip_prefix("org:").unwrap_or(raw) {
            "admin" => Self::Admin,
            "member" | "basic_member" => Self::Member,
            _ => Self::Custom(raw.to_owned()),
        }
    }

    /// The role as the API shows it: `admin`, `member`, or the custom role.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Custom(role) => role,
        }
    }
}

/// The caller's active organisation, whichever claim form carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgClaim {
    /// `org_...` id.
    pub id: String,
    /// The caller's role in it.
    pub role: OrgRole,
    /// The organisation's slug, if present.
    pub slug: Option<String>,
}

/// A verified token, reduced to what Tollgate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Which verifier accepted it.
    pub kind: TokenKind,
    /// The subject at the issuer: Clerk's `user_...`, or the HMAC token's `uid`/`sub`.
    pub subject: String,
    /// `email`, if present.
    pub email: Option<String>,
    /// `username`, if present.
    pub username: Option<String>,
    /// The session this token belongs to: `sid` (or `jti` for HMAC tokens).
    pub session_id: Option<String>,
    /// The active organisation, if any.
    pub org: Option<OrgClaim>,
    /// `exp`, Unix seconds.
    pub expires_at: Option<i64>,
}

/// A claim that may be a string or a number (`uid: 42`), kept as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Text {
    Str(String),
    Num(serde_json::Number),
}

impl Text {
    fn into_string(self) -> String {
        match self {
            Self::Str(s) => s,
            Self::Num(n) => n.to_string(),
        }
    }
}

/// Clerk's v2 organisation claim: `o: {id, rol, slg}`.
#[derive(Debug, Clone, Deserialize)]
struct OrgV2 {
    id: String,
    #[serde(default)]
    rol: Option<String>,
    #[serde(default)]
    slg: Option<String>,
}

/// The custom claims either kind of token may carry.
#[derive(Debug, Clone, Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<Text>,
    #[serde(default)]
    uid: Option<Text>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    org_role: Option<String>,
    #[serde(default)]
    org_slug: Option<String>,
    #[serde(default)]
    o: Option<OrgV2>,
}

impl RawClaims {
    /// v2 (`o`) wins over v1 (`org_id`/`org_role`) when a token carries both.
    fn org(&self) -> Option<OrgClaim> {
        if let Some(o) = &self.o {
            return Some(OrgClaim {
                id: o.id.clone(),
                role: OrgRole::parse(o.rol.as_deref().unwrap_or("member")),
                slug: o.slg.clone(),
            });
        }
        self.org_id.as_ref().map(|id| OrgClaim {
            id: id.clone(),
            role: OrgRole::parse(self.org_role.as_deref().unwrap_or("member")),
            slug: self.org_slug.clone(),
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn signature_rejection(err: ValidationError) -> Rejection {
    match err {
        ValidationError::AlgorithmMismatch { actual, .. } => {
            Rejection::UnsupportedAlgorithm(actual)
        }
        ValidationError::MalformedClaims(_) => Rejection::MalformedClaims,
        _ => Rejection::BadSignature,
    }
}

fn check_times<T>(
    claims: &Claims<T>,
    time: TimeCheck,
    require_exp: bool,
) -> Result<Option<i64>, Rejection> {
    let exp = claims.expiration.map(|t| t.timestamp());
    match exp {
        None if require_exp => return Err(Rejection::MissingExpiry),
        Some(exp) if time.now > exp.saturating_add(time.skew) => return Err(Rejection::Expired),
        _ => {}
    }
    if let Some(nbf) = claims.not_before.map(|t| t.timestamp()) {
        if time.now < nbf.saturating_sub(time.skew) {
            return Err(Rejection::NotYetValid);
        }
    }
    Ok(exp)
}

/// The issuer and authorized party a Clerk instance's policy requires.
fn check_clerk_policy(raw: &RawClaims, policy: &ClerkPolicy) -> Result<(), Rejection> {
    if raw.iss.as_deref() != Some(policy.issuer.as_str()) {
        return Err(Rejection::WrongIssuer);
    }
    if !policy.authorized_parties.is_empty() {
        // Clerk omits `azp` for requests without an Origin (e.g. server to server); when a
        // list is configured, a token must name one of the parties.
        let allowed = raw
            .azp
            .as_ref()
            .is_some_and(|azp| policy.authorized_parties.iter().any(|p| p == azp));
        if !allowed {
            return Err(Rejection::UnauthorizedParty);
        }
    }
    Ok(())
}

/// A session token of the platforms' end-user Clerk instance, verified. End users are not
/// Tollgate users: nothing here names a users row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUserToken {
    /// The end user at the end-user instance (`sub`, Clerk's `user_...`).
    pub subject: String,
    /// The platform the end user belongs to: [`end_user_claim`] of `platformId` /
    /// `platform_id`.
    pub platform_id: Option<String>,
    /// The end user's plan on that platform: [`end_user_claim`] of `plan`.
    pub plan: Option<String>,
    /// `email`, if present.
    pub email: Option<String>,
    /// `sid`, if present.
    pub session_id: Option<String>,
    /// `exp`, Unix seconds.
    pub expires_at: Option<i64>,
}

/// The spellings of a public-metadata claim, in the order they are read: `publicMetadata`
/// and `public_metadata` (as a Clerk session token template may copy the user's public
/// metadata), then a claim of its own at the top level.
pub struct MetadataClaim {
    /// The key inside the metadata object (`platformId`, `plan`).
    pub nested: &'static str,
    /// The top-level claim (`platform_id`, `plan`).
    pub top: &'static str,
}

/// The platform an end user belongs to.
pub const PLATFORM_ID_CLAIM: MetadataClaim = MetadataClaim {
    nested: "platformId",
    top: "platform_id",
};

/// The end user's plan on their platform.
pub const PLAN_CLAIM: MetadataClaim = MetadataClaim {
    nested: "plan",
    top: "plan",
};

/// A metadata claim of an end-user token: the first of `publicMetadata.<nested>`,
/// `public_metadata.<nested>` and `<top>` that is present (and not `null`) decides. It counts
/// only as a non-empty string; any other value there (a number, an object, `""`) yields
/// `None`, never a later spelling, so one token cannot say two things.
pub fn end_user_claim(
    claims: &serde_json::Map<String, serde_json::Value>,
    claim: &MetadataClaim,
) -> Option<String> {
    let nested = |object: &str| {
        claims
            .get(object)
            .and_then(|metadata| metadata.get(claim.nested))
    };
    let first = [
        nested("publicMetadata"),
        nested("public_metadata"),
        claims.get(claim.top),
    ]
    .into_iter()
    .flatten()
    .find(|value| !value.is_null())?;
    first
        .as_str()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The `kid` of a token that may be verified as an end-user token: RS256 and naming the
/// end-user instance's `issuer` (read unverified, to choose the JWKS; the signature check
/// then proves it). Anything else, an API key or a string that is no JWT included, is
/// [`Rejection::NotEndUserToken`], before any JWKS is fetched.
pub fn end_user_kid(token: &str, issuer: &str) -> Result<String, Rejection> {
    // Not a JWT at all (an API key, say) is not an end-user token either.
    let header = peek_header(token).map_err(|_| Rejection::NotEndUserToken)?;
    if header.alg != "RS256" || peek_issuer(token).as_deref() != Some(issuer) {
        return Err(Rejection::NotEndUserToken);
    }
    header
        .kid
        .ok_or_else(|| Rejection::UnknownKey(String::new()))
}

/// Verifies a session token of the end-user Clerk instance against one of its JWKS keys and
/// its policy (issuer, authorized parties, `exp` required, `exp`/`nbf` with the skew).
pub fn verify_end_user(
    token: &str,
    key: &RsaPublicKey,
    policy: &ClerkPolicy,
    time: TimeCheck,
) -> Result<EndUserToken, Rejection> {
    type Object = serde_json::Map<String, serde_json::Value>;
    let untrusted = UntrustedToken::new(token).map_err(|_| Rejection::Malformed)?;
    let verified = Rsa::rs256()
        .validator::<Object>(key)
        .validate(&untrusted)
        .map_err(signature_rejection)?;
    let claims = verified.claims();
    let expires_at = check_times(claims, time, true)?;
    let object = &claims.custom;
    let raw: RawClaims = serde_json::from_value(serde_json::Value::Object(object.clone()))
        .map_err(|_| Rejection::MalformedClaims)?;
    check_clerk_policy(&raw, policy)?;
    let subject = non_empty(raw.sub.map(Text::into_string)).ok_or(Rejection::MissingSubject)?;
    Ok(EndUserToken {
        subject,
        platform_id: end_user_claim(object, &PLATFORM_ID_CLAIM),
        plan: end_user_claim(object, &PLAN_CLAIM),
        email: non_empty(raw.email),
        session_id: non_empty(raw.sid),
        expires_at,
    })
}

/// Verifies a Clerk session token against one JWKS key and the policy.
pub fn verify_clerk(
    token: &str,
    key: &RsaPublicKey,
    policy: &ClerkPolicy,
    time: TimeCheck,
) -> Result<VerifiedToken, Rejection> {
    let untrusted = UntrustedToken::new(token).map_err(|_| Rejection::Malformed)?;
    let verified = Rsa::rs256()
        .validator::<RawClaims>(key)
        .validate(&untrusted)
        .map_err(signature_rejection)?;
    let claims = verified.claims();
    let expires_at = check_times(claims, time, true)?;
    let raw = &claims.custom;
    check_clerk_policy(raw, policy)?;
    let raw = raw.clone();
    let org = raw.org();
    let subject = non_empty(raw.sub.map(Text::into_string)).ok_or(Rejection::MissingSubject)?;
    Ok(VerifiedToken {
        kind: TokenKind::Clerk,
        subject,
        email: non_empty(raw.email),
        username: non_empty(raw.username),
        session_id: non_empty(raw.sid),
        org,
        expires_at,
    })
}

/// Verifies an HMAC (HS256) token with the shared secret.
pub fn verify_hmac(
    token: &str,
    secret: &[u8],
    policy: HmacPolicy,
    time: TimeCheck,
) -> Result<VerifiedToken, Rejection> {
    let untrusted = UntrustedToken::new(token).map_err(|_| Rejection::Malformed)?;
    let key = Hs256Key::new(secret);
    let verified = Hs256
        .validator::<RawClaims>(&key)
        .validate(&untrusted)
        .map_err(signature_rejection)?;
    let claims = verified.claims();
    let expires_at = check_times(claims, time, policy.require_exp)?;
    let raw = claims.custom.clone();
    // An account access token is never an HMAC token, whichever secret signed it.
    if raw.iss.as_deref() == Some(ACCOUNT_ISSUER) {
        return Err(Rejection::WrongIssuer);
    }
    let org = raw.org();
    let subject = non_empty(raw.uid.map(Text::into_string))
        .or_else(|| non_empty(raw.sub.map(Text::into_string)))
        .ok_or(Rejection::MissingSubject)?;
    Ok(VerifiedToken {
        kind: TokenKind::Hmac,
        subject,
        email: non_empty(raw.email),
        username: non_empty(raw.username),
        session_id: non_empty(raw.sid).or_else(|| non_empty(raw.jti)),
        org,
        expires_at,
    })
}

/// The claims of a fresh HMAC token for `token`'s subject and session, valid from `now`
/// for `ttl_secs` (what `POST /api/auth/refresh` issues for HMAC sessions).
pub fn sign_hmac(
    secret: &[u8],
    token: &VerifiedToken,
    now: i64,
    ttl_secs: i64,
) -> Result<String, String> {
    #[derive(Serialize)]
    struct Fresh<'a> {
        sub: &'a str,
        uid: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sid: Option<&'a str>,
        iat: i64,
        exp: i64,
    }
    let fresh = Fresh {
        sub: &token.subject,
        uid: &token.subject,
        email: token.email.as_deref(),
        username: token.username.as_deref(),
        sid: token.session_id.as_deref(),
        iat: now,
        exp: now + ttl_secs,
    };
    let header = jwt_compact::Header::empty().with_token_type("JWT");
    Hs256
        .token(&header, &Claims::new(fresh), &Hs256Key::new(secret))
        .map_err(|e| e.to_string())
}

/// One RSA signing key from a JWKS.
#[derive(Debug, Clone)]
pub struct JwksKey {
    /// `kid`.
    pub kid: String,
    /// The parsed public key.
    pub key: RsaPublicKey,
}

/// Parses a JWKS document, keeping the RSA signature keys that have a `kid`. Keys of other
/// types (or marked for encryption) are skipped; a document that is not a JWKS is an error.
pub fn parse_jwks(document: &str) -> Result<Vec<JwksKey>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<serde_json::Value>,
    }
    let jwks: Jwks = serde_json::from_str(document).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for entry in jwks.keys {
        let kid = entry.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        let usable = entry.get("kty").and_then(|k| k.as_str()) == Some("RSA")
            && entry.get("use").and_then(|u| u.as_str()).unwrap_or("sig") == "sig"
            && entry.get("alg").and_then(|a| a.as_str()).unwrap_or("RS256") == "RS256";
        let (Some(kid), true) = (kid, usable) else {
            continue;
        };
        let jwk: JsonWebKey<'_> =
            serde_json::from_value(entry).map_err(|e| format!("key {kid}: {e}"))?;
        let key = RsaPublicKey::try_from(&jwk).map_err(|e| format!("key {kid}: {e}"))?;
        keys.push(JwksKey { kid, key });
    }
    if keys.is_empty() {
        return Err("the JWKS has no RS256 signing key".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use jwt_compact::alg::{ModulusBits, RsaPrivateKey};
    use jwt_compact::Header;
    use serde_json::{json, Value};
    use std::sync::OnceLock;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://clerk.example.test";
    const SECRET: &[u8] = b"a-test-secret-that-is-32-bytes!!";

    /// One RSA key pair for the whole test run (generation is the slow part).
    pub(crate) fn rsa_pair() -> &'static (RsaPrivateKey, RsaPublicKey) {
        static PAIR: OnceLock<(RsaPrivateKey, RsaPublicKey)> = OnceLock::new();
        PAIR.get_or_init(|| {
            let (private, public) =
                Rsa::generate(&mut rand_core::OsRng, ModulusBits::TwoKibibytes).unwrap();
            (private.into_inner(), public.into_inner())
        })
    }

    fn time() -> TimeCheck {
        TimeCheck { now: NOW, skew: 5 }
    }

    fn policy() -> ClerkPolicy {
        ClerkPolicy {
            issuer: ISSUER.to_owned(),
            authorized_parties: vec!["https://app.example.test".to_owned()],
        }
    }

    fn clerk_claims() -> Value {
        json!({
            "sub": "user_2abc", "iss": ISSUER, "azp": "https://app.example.test",
            "sid": "sess_1", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 60,
        })
    }

    fn rs256(claims: &Value) -> String {
        let header = Header::empty().with_key_id("kid-1");
        Rsa::rs256()
            .token(&header, &Claims::new(claims.clone()), &rsa_pair().0)
            .unwrap()
    }

    fn hs256(claims: &Value, secret: &[u8]) -> String {
        Hs256
            .token(
                &Header::empty(),
                &Claims::new(claims.clone()),
                &Hs256Key::new(secret),
            )
            .unwrap()
    }

    fn clerk(token: &str) -> Result<VerifiedToken, Rejection> {
        verify_clerk(token, &rsa_pair().1, &policy(), time())
    }

    fn hmac(token: &str) -> Result<VerifiedToken, Rejection> {
        verify_hmac(token, SECRET, HmacPolicy { require_exp: true }, time())
    }

    #[test]
    fn account_tokens_carry_the_accounts_issuer_subject_session_and_expiry() {
        let token = sign_account(SECRET, &account_claims("acct_1", "ses_1", NOW, 900)).unwrap();
        let verified = verify_account(&token, SECRET, time()).unwrap();
        assert_eq!(verified.kind, TokenKind::Account);
        assert_eq!(verified.subject, "acct_1");
        assert_eq!(verified.session_id.as_deref(), Some("ses_1"));
        assert_eq!(verified.expires_at, Some(NOW + 900));
        assert_eq!(peek_issuer(&token).as_deref(), Some(ACCOUNT_ISSUER));
        let late = TimeCheck {
            now: NOW + 906,
            skew: 5,
        };
        assert_eq!(
            verify_account(&token, SECRET, late),
            Err(Rejection::Expired)
        );
        assert_eq!(
            verify_account(&token, b"another-secret-another-secret-32", time()),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn account_and_hmac_tokens_never_pass_for_each_other() {
        // Same secret on purpose: the issuer alone keeps the kinds apart.
        let account = sign_account(SECRET, &account_claims("acct_1", "ses_1", NOW, 900)).unwrap();
        assert_eq!(hmac(&account), Err(Rejection::WrongIssuer));
        let plain = hs256(&json!({"uid": "u1", "sid": "s1", "exp": NOW + 60}), SECRET);
        assert_eq!(
            verify_account(&plain, SECRET, time()),
            Err(Rejection::WrongIssuer)
        );
        let no_session = hs256(
            &json!({"iss": ACCOUNT_ISSUER, "sub": "acct_1", "exp": NOW + 60}),
            SECRET,
        );
        assert_eq!(
            verify_account(&no_session, SECRET, time()),
            Err(Rejection::MalformedClaims)
        );
        let no_expiry = hs256(
            &json!({"iss": ACCOUNT_ISSUER, "sub": "acct_1", "sid": "ses_1"}),
            SECRET,
        );
        assert_eq!(
            verify_account(&no_expiry, SECRET, time()),
            Err(Rejection::MissingExpiry)
        );
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    /// A token with its payload replaced by `claims`, signature left as it was.
    fn tampered(token: &str, claims: &Value) -> String {
        let mut parts: Vec<&str> = token.split('.').collect();
        let payload = B64.encode(claims.to_string());
        parts[1] = &payload;
        parts.join(".")
    }

    #[test]
    fn a_valid_clerk_token_is_accepted() {
        let verified = clerk(&rs256(&clerk_claims())).unwrap();
        assert_eq!(verified.kind, TokenKind::Clerk);
        assert_eq!(verified.subject, "user_2abc");
        assert_eq!(verified.session_id.as_deref(), Some("sess_1"));
        assert_eq!(verified.expires_at, Some(NOW + 60));
        assert_eq!(verified.org, None);
    }

    #[test]
    fn clerk_time_claims_allow_only_the_skew() {
        let c = clerk_claims();
        assert!(clerk(&rs256(&with(c.clone(), "exp", json!(NOW - 3)))).is_ok());
        assert_eq!(
            clerk(&rs256(&with(c.clone(), "exp", json!(NOW - 6)))),
            Err(Rejection::Expired)
        );
        assert!(clerk(&rs256(&with(c.clone(), "nbf", json!(NOW + 4)))).is_ok());
        assert_eq!(
            clerk(&rs256(&with(c.clone(), "nbf", json!(NOW + 60)))),
            Err(Rejection::NotYetValid)
        );
        assert_eq!(
            clerk(&rs256(&without(c, "exp"))),
            Err(Rejection::MissingExpiry)
        );
    }

    #[test]
    fn clerk_issuer_and_party_are_enforced() {
        let c = clerk_claims();
        assert_eq!(
            clerk(&rs256(&with(c.clone(), "iss", json!("https://evil.test")))),
            Err(Rejection::WrongIssuer)
        );
        assert_eq!(
            clerk(&rs256(&without(c.clone(), "iss"))),
            Err(Rejection::WrongIssuer)
        );
        assert_eq!(
            clerk(&rs256(&with(c.clone(), "azp", json!("https://evil.test")))),
            Err(Rejection::UnauthorizedParty)
        );
        assert_eq!(
            clerk(&rs256(&without(c.clone(), "azp"))),
            Err(Rejection::UnauthorizedParty)
        );
        let open = ClerkPolicy {
            authorized_parties: vec![],
            ..policy()
        };
        let token = rs256(&with(c.clone(), "azp", json!("https://any.test")));
        assert!(verify_clerk(&token, &rsa_pair().1, &open, time()).is_ok());
        assert_eq!(
            clerk(&rs256(&without(c, "sub"))),
            Err(Rejection::MissingSubject)
        );
    }

    const END_USER_ISSUER: &str = "https://clerk.users.example.test";

    fn end_user_policy() -> ClerkPolicy {
        ClerkPolicy {
            issuer: END_USER_ISSUER.to_owned(),
            authorized_parties: vec!["https://platform.example.test".to_owned()],
        }
    }

    fn end_user_token_claims() -> Value {
        json!({
            "sub": "user_end1", "iss": END_USER_ISSUER, "azp": "https://platform.example.test",
            "sid": "sess_e1", "email": "e1@example.test", "iat": NOW - 10, "nbf": NOW - 10,
            "exp": NOW + 60, "publicMetadata": { "platformId": "plt_1", "plan": "pro" },
        })
    }

    fn end_user(token: &str) -> Result<EndUserToken, Rejection> {
        verify_end_user(token, &rsa_pair().1, &end_user_policy(), time())
    }

    fn object(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn an_end_user_token_carries_its_platform_and_plan() {
        let verified = end_user(&rs256(&end_user_token_claims())).unwrap();
        assert_eq!(
            verified,
            EndUserToken {
                subject: "user_end1".to_owned(),
                platform_id: Some("plt_1".to_owned()),
                plan: Some("pro".to_owned()),
                email: Some("e1@example.test".to_owned()),
                session_id: Some("sess_e1".to_owned()),
                expires_at: Some(NOW + 60),
            }
        );
        let bare = without(without(end_user_token_claims(), "publicMetadata"), "email");
        let verified = end_user(&rs256(&without(bare, "sid"))).unwrap();
        assert_eq!(
            (
                verified.platform_id,
                verified.plan,
                verified.email,
                verified.session_id
            ),
            (None, None, None, None)
        );
    }

    #[test]
    fn end_user_claims_are_read_in_all_three_spellings() {
        for claims in [
            json!({ "publicMetadata": { "platformId": "plt_a", "plan": "free" } }),
            json!({ "public_metadata": { "platformId": "plt_a", "plan": "free" } }),
            json!({ "platform_id": "plt_a", "plan": "free" }),
            // The first spelling present decides.
            json!({ "publicMetadata": { "platformId": "plt_a", "plan": "free" },
                    "public_metadata": { "platformId": "plt_b", "plan": "pro" },
                    "platform_id": "plt_c", "plan": "team" }),
            json!({ "public_metadata": { "platformId": "plt_a" }, "platform_id": "plt_c",
                    "publicMetadata": { "plan": "free" }, "plan": "team" }),
            // `null`, or metadata without the key, is absent: the next spelling is read.
            json!({ "publicMetadata": { "platformId": null, "plan": null },
                    "public_metadata": {}, "platform_id": "plt_a", "plan": "free" }),
            json!({ "publicMetadata": "not an object", "platform_id": " plt_a ",
                    "plan": "free" }),
        ] {
            let claims = object(claims);
            assert_eq!(
                end_user_claim(&claims, &PLATFORM_ID_CLAIM).as_deref(),
                Some("plt_a"),
                "{claims:?}"
            );
            assert_eq!(
                end_user_claim(&claims, &PLAN_CLAIM).as_deref(),
                Some("free"),
                "{claims:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_non_string_end_user_claim_is_none() {
        for claims in [
            json!({}),
            json!({ "sub": "user_1", "publicMetadata": {}, "public_metadata": {} }),
            // Present but not a non-empty string: the claim is unusable, and a later spelling
            // is not consulted.
            json!({ "publicMetadata": { "platformId": 42, "plan": true },
                    "platform_id": "plt_c", "plan": "team" }),
            json!({ "public_metadata": { "platformId": { "id": "plt_a" }, "plan": ["pro"] } }),
            json!({ "platform_id": "", "plan": "   " }),
            json!({ "platform_id": 7, "plan": 3 }),
        ] {
            let claims = object(claims);
            assert_eq!(
                end_user_claim(&claims, &PLATFORM_ID_CLAIM),
                None,
                "{claims:?}"
            );
            assert_eq!(end_user_claim(&claims, &PLAN_CLAIM), None, "{claims:?}");
        }
        // A token with an unusable claim still verifies; the route decides what it needs.
        let token = rs256(&with(
            end_user_token_claims(),
            "publicMetadata",
            json!({"platformId": 1}),
        ));
        assert_eq!(end_user(&token).unwrap().platform_id, None);
    }

    #[test]
    fn end_user_tokens_are_held_to_their_instance_policy() {
        let c = end_user_token_claims();
        for (claims, rejection) in [
            (
                with(c.clone(), "iss", json!(ISSUER)),
                Rejection::WrongIssuer,
            ),
            (without(c.clone(), "iss"), Rejection::WrongIssuer),
            (
                with(c.clone(), "azp", json!("https://evil.test")),
                Rejection::UnauthorizedParty,
            ),
            (without(c.clone(), "azp"), Rejection::UnauthorizedParty),
            (without(c.clone(), "sub"), Rejection::MissingSubject),
            (without(c.clone(), "exp"), Rejection::MissingExpiry),
            (with(c.clone(), "exp", json!(NOW - 6)), Rejection::Expired),
            (
                with(c.clone(), "nbf", json!(NOW + 6)),
                Rejection::NotYetValid,
            ),
            (
                with(c.clone(), "sub", json!({"id": 1})),
                Rejection::MalformedClaims,
            ),
        ] {
            assert_eq!(end_user(&rs256(&claims)), Err(rejection), "{claims}");
        }
        // Within the skew.
        assert!(end_user(&rs256(&with(c.clone(), "exp", json!(NOW - 5)))).is_ok());
        assert!(end_user(&rs256(&with(c.clone(), "nbf", json!(NOW + 5)))).is_ok());
        // Signed by another key, or tampered with.
        let token = rs256(&c);
        let forged = tampered(&token, &with(c.clone(), "platform_id", json!("plt_other")));
        assert_eq!(end_user(&forged), Err(Rejection::BadSignature));
        let hmac = hs256(&c, SECRET);
        assert_eq!(
            end_user(&hmac),
            Err(Rejection::UnsupportedAlgorithm("HS256".to_owned()))
        );
    }

    #[test]
    fn only_rs256_tokens_naming_the_end_user_issuer_reach_its_jwks() {
        let c = end_user_token_claims();
        assert_eq!(
            end_user_kid(&rs256(&c), END_USER_ISSUER),
            Ok("kid-1".to_owned())
        );
        // An operator's Clerk token, an HMAC or account token, or an HS256 token that
        // claims the end-user issuer: refused before any key is looked up.
        for token in [
            rs256(&clerk_claims()),
            rs256(&without(c.clone(), "iss")),
            hs256(&c, SECRET),
            hs256(&hmac_like(), SECRET),
            sign_account(SECRET, &account_claims("acct_1", "ses_1", NOW, 900)).unwrap(),
        ] {
            assert_eq!(
                end_user_kid(&token, END_USER_ISSUER),
                Err(Rejection::NotEndUserToken)
            );
        }
        for other in ["not.a.jwt", "tg_live_0123456789abcdef", ""] {
            assert_eq!(
                end_user_kid(other, END_USER_ISSUER),
                Err(Rejection::NotEndUserToken)
            );
        }
        let no_kid = Rsa::rs256()
            .token(&Header::empty(), &Claims::new(c), &rsa_pair().0)
            .unwrap();
        assert_eq!(
            end_user_kid(&no_kid, END_USER_ISSUER),
            Err(Rejection::UnknownKey(String::new()))
        );
        assert!(Rejection::NotEndUserToken
            .message()
            .contains("end-user token from the platform's end-user Clerk instance"));
        assert_eq!(
            Rejection::EndUserTokenHere.message(),
            "an end-user token is accepted only on end-user routes"
        );
    }

    fn hmac_like() -> Value {
        json!({"uid": "u1", "exp": NOW + 60})
    }

    #[test]
    fn clerk_signature_must_match() {
        let token = rs256(&clerk_claims());
        let forged = tampered(&token, &with(clerk_claims(), "sub", json!("user_admin")));
        assert_eq!(clerk(&forged), Err(Rejection::BadSignature));
        // A character in the middle of the signature (the last may hold only padding bits).
        let mut bad_sig = token.clone().into_bytes();
        let i = bad_sig.len() - 20;
        bad_sig[i] = if bad_sig[i] == b'A' { b'B' } else { b'A' };
        let bad_sig = String::from_utf8(bad_sig).unwrap();
        assert_eq!(clerk(&bad_sig), Err(Rejection::BadSignature));
    }

    #[test]
    fn algorithm_none_and_confusion_are_refused() {
        let payload = B64.encode(clerk_claims().to_string());
        let none = format!("{}.{payload}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(peek_header(&none).unwrap().alg, "none");
        assert_eq!(
            clerk(&none),
            Err(Rejection::UnsupportedAlgorithm("none".into()))
        );
        assert_eq!(
            hmac(&none),
            Err(Rejection::UnsupportedAlgorithm("none".into()))
        );
        // An HS256 token whose secret is the RSA public key: refused by the RS256 verifier
        // (wrong algorithm) and by the HS256 verifier (wrong secret).
        let public_jwk = serde_json::to_string(&JsonWebKey::from(&rsa_pair().1)).unwrap();
        let confused = hs256(&clerk_claims(), public_jwk.as_bytes());
        assert_eq!(
            clerk(&confused),
            Err(Rejection::UnsupportedAlgorithm("HS256".into()))
        );
        assert_eq!(hmac(&confused), Err(Rejection::BadSignature));
        // And an RS256 token offered to the HMAC verifier.
        assert_eq!(
            hmac(&rs256(&clerk_claims())),
            Err(Rejection::UnsupportedAlgorithm("RS256".into()))
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in ["", "abc", "a.b", "a.b.c", "!!!.???.***", "e30.e30"] {
            assert_eq!(peek_header(token), Err(Rejection::Malformed), "{token:?}");
            assert_eq!(hmac(token), Err(Rejection::Malformed), "{token:?}");
        }
        let bad_claims = hs256(&json!({ "uid": "u1", "exp": "tomorrow" }), SECRET);
        assert_eq!(hmac(&bad_claims), Err(Rejection::MalformedClaims));
    }

    #[test]
    fn hmac_tokens_take_uid_or_sub() {
        let with_uid = hs256(
            &json!({ "uid": "u-1", "sub": "ignored", "email": "a@b.test", "username": "ann", "exp": NOW + 60 }),
            SECRET,
        );
        let verified = hmac(&with_uid).unwrap();
        assert_eq!(verified.kind, TokenKind::Hmac);
        assert_eq!(verified.subject, "u-1");
        assert_eq!(verified.email.as_deref(), Some("a@b.test"));
        assert_eq!(verified.username.as_deref(), Some("ann"));
        let numeric = hs256(&json!({ "uid": 42, "exp": NOW + 60 }), SECRET);
        assert_eq!(hmac(&numeric).unwrap().subject, "42");
        let with_sub = hs256(
            &json!({ "sub": "s-1", "exp": NOW + 60, "jti": "j1" }),
            SECRET,
        );
        let verified = hmac(&with_sub).unwrap();
        assert_eq!(verified.subject, "s-1");
        assert_eq!(verified.session_id.as_deref(), Some("j1"));
        let nobody = hs256(&json!({ "email": "a@b.test", "exp": NOW + 60 }), SECRET);
        assert_eq!(hmac(&nobody), Err(Rejection::MissingSubject));
    }

    #[test]
    fn hmac_expiry_is_required_unless_configured_off() {
        let no_exp = hs256(&json!({ "uid": "u-1" }), SECRET);
        assert_eq!(hmac(&no_exp), Err(Rejection::MissingExpiry));
        let lenient = verify_hmac(&no_exp, SECRET, HmacPolicy { require_exp: false }, time());
        assert_eq!(lenient.unwrap().expires_at, None);
        let expired = hs256(&json!({ "uid": "u-1", "exp": NOW - 60 }), SECRET);
        assert_eq!(hmac(&expired), Err(Rejection::Expired));
        let wrong_secret = hs256(&json!({ "uid": "u-1", "exp": NOW + 60 }), b"another-secret");
        assert_eq!(hmac(&wrong_secret), Err(Rejection::BadSignature));
    }

    #[test]
    fn org_claims_v1_and_v2_normalise_to_one_type() {
        let v1 = with(
            with(clerk_claims(), "org_id", json!("org_1")),
            "org_role",
            json!("org:admin"),
        );
        let org = clerk(&rs256(&v1)).unwrap().org.unwrap();
        assert_eq!(org.id, "org_1");
        assert_eq!(org.role, OrgRole::Admin);
        let v2 = with(
            clerk_claims(),
            "o",
            json!({ "id": "org_2", "rol": "admin", "slg": "acme" }),
        );
        let org = clerk(&rs256(&v2)).unwrap().org.unwrap();
        assert_eq!(
            org,
            OrgClaim {
                id: "org_2".into(),
                role: OrgRole::Admin,
                slug: Some("acme".into())
            }
        );
        assert_eq!(OrgRole::parse("org:member"), OrgRole::Member);
        assert_eq!(OrgRole::parse("basic_member"), OrgRole::Member);
        assert_eq!(
            OrgRole::parse("org:billing"),
            OrgRole::Custom("org:billing".into())
        );
    }

    #[test]
    fn refreshed_hmac_tokens_verify_and_keep_the_session() {
        let original = hmac(&hs256(
            &json!({ "uid": "u-1", "sid": "s-9", "email": "a@b.test", "exp": NOW + 5 }),
            SECRET,
        ))
        .unwrap();
        let fresh = sign_hmac(SECRET, &original, NOW, 3600).unwrap();
        assert_eq!(peek_expiry(&fresh), Some(NOW + 3600));
        let verified = hmac(&fresh).unwrap();
        assert_eq!(verified.subject, "u-1");
        assert_eq!(verified.session_id.as_deref(), Some("s-9"));
        assert_eq!(verified.expires_at, Some(NOW + 3600));
    }

    #[test]
    fn jwks_documents_are_parsed_and_filtered() {
        let jwk = JsonWebKey::from(&rsa_pair().1);
        let mut rsa = serde_json::to_value(&jwk).unwrap();
        rsa["kid"] = json!("kid-1");
        rsa["use"] = json!("sig");
        let doc = json!({ "keys": [ { "kty": "EC", "kid": "ec", "crv": "P-256" }, rsa ] });
        let keys = parse_jwks(&doc.to_string()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, "kid-1");
        let verified = verify_clerk(&rs256(&clerk_claims()), &keys[0].key, &policy(), time());
        assert!(verified.is_ok());
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_jwks("not json").is_err());
    }
}
