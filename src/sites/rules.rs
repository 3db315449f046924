//! Sites' rules: site keys (`sk_{slug}_{env}_{random}`), the origins a site allows, and the
//! validation of a new site and of a change to one. Pure: tested on the host.
//!
//! A site key is a public identifier (it sits in web pages); its shape is checked before any
//! lookup, so a malformed one costs nothing. What protects it is the origin binding: a
//! browser request is held to its site's origins, compared exactly after normalisation.

use serde::Deserialize;

use crate::core::body::FieldError;

/// Every site key starts with this.
pub const KEY_PREFIX: &str = "sk_";

/// Random characters in a key this service makes.
pub const KEY_RANDOM_LEN: usize = 32;

/// The fewest and most random characters a presented key may carry (keys made elsewhere,
/// e.g. by the seed script, may differ in length but not in alphabet).
pub const KEY_RANDOM_MIN: usize = 24;
pub const KEY_RANDOM_MAX: usize = 64;

/// Every site id starts with this.
pub const ID_PREFIX: &str = "site_";

/// The most origins one site may allow.
pub const MAX_ORIGINS: usize = 20;

/// The longest site name, in characters.
pub const MAX_NAME_CHARS: usize = 80;

/// The request header that carries a site key.
pub const KEY_HEADER: &str = "X-Site-Key";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Where a site's key is used: the `{env}` of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    Live,
    Test,
    Dev,
}

crate::stored_impls!(Env("site env"), serde);

impl Env {
    pub const ALL: [Env; 3] = [Env::Live, Env::Test, Env::Dev];

    pub fn as_str(self) -> &'static str {
        match self {
            Env::Live => "live",
            Env::Test => "test",
            Env::Dev => "dev",
        }
    }

    pub fn from_name(name: &str) -> Option<Env> {
        name.parse().ok()
    }
}

/// What a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chatbot,
    Voice,
}

crate::stored_impls!(Kind("site type"), serde);

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Chatbot, Kind::Voice];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chatbot => "chatbot",
            Kind::Voice => "voice",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        name.parse().ok()
    }
}

/// Whether a site answers its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Paused,
}

crate::stored_impls!(Status("site status"), serde);

impl Status {
    pub const ALL: [Status; 2] = [Status::Active, Status::Paused];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
        }
    }

    pub fn from_name(name: &str) -> Option<Status> {
        name.parse().ok()
    }
}

/// What is wrong with a widget's `visitor_id` (its own name for the person on the page), if
/// anything: 1 to 128 of letters, digits, `.`, `_`, `:`, `@` or `-`.
pub fn visitor_id(visitor: &str) -> Option<FieldError> {
    let ok = (1..=128).contains(&visitor.len())
        && visitor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'));
    (!ok).then(|| {
        FieldError::new(
            "visitor_id",
            "must be 1 to 128 characters of letters, digits, `.`, `_`, `:`, `@` or `-`",
        )
    })
}

/// Whether `slug` may be an org's slug (and so the `{slug}` of its keys): `[a-z0-9]{2,32}`.
pub fn is_slug(slug: &str) -> bool {
    (2..=32).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A presented site key, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub slug: &'a str,
    pub env: Env,
    pub random: &'a str,
}

/// Reads a presented site key; `Err` says what is wrong with its shape (no lookup needed).
pub fn parse_key(key: &str) -> Result<ParsedKey<'_>, &'static str> {
    const SHAPE: &str = "malformed site key: expected sk_{slug}_{live|test|dev}_{random}";
    let rest = key.strip_prefix(KEY_PREFIX).ok_or(SHAPE)?;
    let mut parts = rest.split('_');
    let (Some(slug), Some(env), Some(random), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SHAPE);
    };
    if !is_slug(slug) {
        return Err(SHAPE);
    }
    let env = Env::from_name(env).ok_or(SHAPE)?;
    let random_ok = (KEY_RANDOM_MIN..=KEY_RANDOM_MAX).contains(&random.len())
        && random.bytes().all(|b| b.is_ascii_alphanumeric());
    if !random_ok {
        return Err(SHAPE);
    }
    Ok(ParsedKey { slug, env, random })
}

/// A key for `slug` and `env` from random bytes; `None` when `random` holds too few usable
/// bytes (those that would bias the alphabet are skipped).
pub fn key_from_random(slug: &str, env: Env, random: &[u8]) -> Option<String> {
    let mut tail = String::with_capacity(KEY_RANDOM_LEN);
    // 248 = 4 * 62: bytes below it map uniformly onto the alphabet.
    for b in random.iter().filter(|b| **b < 248).take(KEY_RANDOM_LEN) {
        tail.push(BASE62[usize::from(*b % 62)] as char);
    }
    (tail.len() == KEY_RANDOM_LEN).then(|| format!("{KEY_PREFIX}{slug}_{}_{tail}", env.as_str()))
}

/// A fresh key for `slug` and `env` (32 base62 characters: about 190 bits).
pub fn generate_key(slug: &str, env: Env) -> String {
    loop {
        // 64 bytes leave room for the rare skipped ones.
        if let Some(key) = key_from_random(slug, env, &crate::core::random::bytes::<64>()) {
            return key;
        }
    }
}

/// A new site id.
pub fn new_id() -> String {
    crate::core::random::id::<12>(ID_PREFIX)
}

/// An origin as a site stores it: `https://host[:port]`, lower case, no path, no trailing
/// slash, no default port. Plain `http://` only for `localhost` and `127.0.0.1`, or anywhere
/// when `local` (the deployment's `ENVIRONMENT` is `local`). `Err` says what is wrong.
pub fn normalize_origin(origin: &str, local: bool) -> Result<String, String> {
    let origin = origin.trim();
    let origin = origin
        .strip_suffix('/')
        .unwrap_or(origin)
        .to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err("must be an origin: https://host[:port]".to_owned());
    };
    if authority.is_empty() {
        return Err("names no host".to_owned());
    }
    if authority.contains(['/', '?', '#']) {
        return Err("must be an origin only: no path, query or fragment".to_owned());
    }
    if authority.contains('@') {
        return Err("must not carry a user name or password".to_owned());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    }) && host.len() <= 253;
    if !host_ok {
        return Err(format!("`{host}` is not a host name"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('0') => Some(n),
            _ => return Err(format!("`{p}` is not a port")),
        },
    };
    let loopback = host == "localhost" || host == "127.0.0.1";
    let default_port = match scheme {
        "https" => 443,
        "http" if loopback || local => 80,
        "http" => {
            return Err("must use https (plain http only for localhost and 127.0.0.1)".to_owned())
        }
        _ => return Err("must use https".to_owned()),
    };
    Ok(match port {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Whether a request's `Origin` header is on a site's (normalised) origins: compared exactly
/// after the same normalisation, any scheme allowed for the comparison (what was stored
/// was checked when it was stored).
pub fn origin_allowed(allowed: &[String], presented: &str) -> bool {
    normalize_origin(presented, true).is_ok_and(|origin| allowed.contains(&origin))
}

/// `POST` body of a new site, as received.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSiteBody {
    /// Shown to the org's members: 1–80 characters.
    pub name: Option<String>,
    /// `chatbot` or `voice`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The origins the key may be used from (`https://host[:port]`), at most 20; none by
    /// default (then only server calls, if allowed, pass).
    #[serde(default)]
    pub origins: Option<Vec<String>>,
    /// Whether requests without `Origin` (a server) are accepted; default false.
    #[serde(default)]
    pub allow_server_calls: Option<bool>,
    /// The `{env}` of its key: `live` (default), `test` or `dev`.
    #[serde(default)]
    pub env: Option<String>,
}

/// A new site, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSite {
    pub name: String,
    pub kind: Kind,
    pub origins: Vec<String>,
    pub allow_server_calls: bool,
    pub env: Env,
}

/// `PATCH` body of a site, as received; absent fields are left as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SitePatchBody {
    /// 1–80 characters.
    pub name: Option<String>,
    /// `active` or `paused` (a paused site's key is refused).
    pub status: Option<String>,
    /// Replaces the whole list (at most 20).
    pub origins: Option<Vec<String>>,
    pub allow_server_calls: Option<bool>,
}

/// A change to a site, validated: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SitePatch {
    pub name: Option<String>,
    pub status: Option<Status>,
    pub origins: Option<Vec<String>>,
    pub allow_server_calls: Option<bool>,
}

impl SitePatch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.status.is_none()
            && self.origins.is_none()
            && self.allow_server_calls.is_none()
    }
}

fn check_name(name: &str, problems: &mut Vec<FieldError>) -> Option<String> {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        problems.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        problems.push(FieldError::new(
            "name",
            "must not contain control characters",
        ));
        return None;
    }
    Some(trimmed.to_owned())
}

fn check_origins(
    origins: &[String],
    local: bool,
    problems: &mut Vec<FieldError>,
) -> Option<Vec<String>> {
    if origins.len() > MAX_ORIGINS {
        problems.push(FieldError::new(
            "origins",
            format!("at most {MAX_ORIGINS} origins"),
        ));
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(origins.len());
    let before = problems.len();
    for (i, origin) in origins.iter().enumerate() {
        match normalize_origin(origin, local) {
            Ok(origin) if !out.contains(&origin) => out.push(origin),
            Ok(_) => {} // a repeat is harmless
            Err(why) => problems.push(FieldError::new(format!("origins[{i}]"), why)),
        }
    }
    (problems.len() == before).then_some(out)
}

/// Validates a new site; every problem is reported under its field. `local`: the
/// deployment is local (plain http origins allowed).
pub fn new_site(body: NewSiteBody, local: bool) -> Result<NewSite, Vec<FieldError>> {
    let mut problems = Vec::new();
    let name = match &body.name {
        Some(name) => check_name(name, &mut problems),
        None => {
            problems.push(FieldError::new("name", "is required"));
            None
        }
    };
    let kind = match body.kind.as_deref() {
        Some(kind) => Kind::from_name(kind).or_else(|| {
            problems.push(FieldError::new("type", "must be `chatbot` or `voice`"));
            None
        }),
        None => {
            problems.push(FieldError::new("type", "is required: `chatbot` or `voice`"));
            None
        }
    };
    let origins = check_origins(body.origins.as_deref().unwrap_or(&[]), local, &mut problems);
    let env = match body.env.as_deref() {
        None => Some(Env::Live),
        Some(env) => Env::from_name(env).or_else(|| {
            problems.push(FieldError::new("env", "must be `live`, `test` or `dev`"));
            None
        }),
    };
    match (name, kind, origins, env) {
        (Some(name), Some(kind), Some(origins), Some(env)) if problems.is_empty() => Ok(NewSite {
            name,
            kind,
            origins,
            allow_server_calls: body.allow_server_calls.unwrap_or(false),
            env,
        }),
        _ => Err(problems),
    }
}

/// Validates a change to a site; every problem is reported under its field. An empty
/// change is refused (`body`).
pub fn site_patch(body: SitePatchBody, local: bool) -> Result<SitePatch, Vec<FieldError>> {
    let mut problems = Vec::new();
    let name = body
        .name
        .as_deref()
        .and_then(|n| check_name(n, &mut problems));
    let status = body.status.as_deref().and_then(|s| {
        Status::from_name(s).or_else(|| {
            problems.push(FieldError::new("status", "must be `active` or `paused`"));
            None
        })
    });
    let origins = body
        .origins
        .as_deref()
        .and_then(|o| check_origins(o, local, &mut problems));
    if !problems.is_empty() {
        return Err(problems);
    }
    let patch = SitePatch {
        name,
        status,
        origins,
        allow_server_calls: body.allow_server_calls,
    };
    if patch.is_empty() {
        return Err(vec![FieldError::new(
            "body",
            "names nothing to change (name, status, origins, allow_server_calls)",
        )]);
    }
    Ok(patch)
}

/// Why a site key is refused once its site is known, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Paused,
    OrgInactive,
    OriginNotAllowed,
    NoServerCalls,
}

impl Refusal {
    /// The sentence of the `403 forbidden` answer.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Paused => "this site is paused",
            Refusal::OrgInactive => "this site's organisation is not active",
            Refusal::OriginNotAllowed => "this origin is not allowed for this site key",
            Refusal::NoServerCalls => {
                "this site key takes browser requests only (with Origin); server calls are \
                 not enabled for its site"
            }
        }
    }
}

/// Whether a request may use a known site's key: the site is active, its org is active,
/// and the request's `Origin` (if any) is on the site's list, or it has none and the site
/// allows server calls.
pub fn admit(
    site_status: Status,
    org_active: bool,
    origins: &[String],
    allow_server_calls: bool,
    origin: Option<&str>,
) -> Result<(), Refusal> {
    if site_status != Status::Active {
        return Err(Refusal::Paused);
    }
    if !org_active {
        return Err(Refusal::OrgInactive);
    }
    match origin {
        Some(origin) if origin_allowed(origins, origin) => Ok(()),
        Some(_) => Err(Refusal::OriginNotAllowed),
        None if allow_server_calls => Ok(()),
        None => Err(Refusal::NoServerCalls),
    }
}

/// The address a request without `CF-Connecting-IP` counts as (only local runs send none:
/// on Cloudflare's edge every request carries it). All such requests share one budget.
pub const UNKNOWN_ADDRESS: &str = "local";

/// The client address a site visitor's request counts against: `CF-Connecting-IP` as the
/// edge set it (trimmed, at most 64 characters), else [`UNKNOWN_ADDRESS`].
pub fn client_address(header: Option<&str>) -> String {
    header
        .map(str::trim)
        .filter(|ip| !ip.is_empty() && ip.len() <= 64)
        .unwrap_or(UNKNOWN_ADDRESS)
        .to_owned()
}

/// How many requests per minute one address may make to one site's `product`, given what one
/// visitor may: twice a visitor's rate, so a second visitor behind the same address still
/// gets through while a client minting a fresh `visitor_id` per request is held.
pub fn per_address(per_visitor: u32) -> u32 {
    per_visitor.saturating_mul(2)
}

/// The budgets a site visitor's request to `product` (`chat`, `voice`) counts against: the
/// visitor's (by their label, else by their address) and the address's (whatever label it
/// sends), both within the site.
pub fn visitor_rate_keys(
    product: &str,
    site_id: &str,
    visitor: Option<&str>,
    address: &str,
) -> (String, String) {
    let visitor = match visitor {
        Some(visitor) => format!("{product}:{site_id}:v:{visitor}"),
        None => format!("{product}:{site_id}:ip:{address}"),
    };
    (visitor, format!("{product}:{site_id}:addr:{address}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visitor_counts_against_their_label_and_their_address() {
        assert_eq!(
            visitor_rate_keys("chat", "site_1", Some("v"), "1.2.3.4"),
            (
                "chat:site_1:v:v".to_owned(),
                "chat:site_1:addr:1.2.3.4".to_owned()
            )
        );
        // Without a label the address is the visitor too; each product counts apart.
        assert_eq!(
            visitor_rate_keys("voice", "site_1", None, "1.2.3.4"),
            (
                "voice:site_1:ip:1.2.3.4".to_owned(),
                "voice:site_1:addr:1.2.3.4".to_owned()
            )
        );
        assert_eq!(per_address(20), 40);
        assert_eq!(per_address(u32::MAX), u32::MAX);
    }

    #[test]
    fn a_request_without_an_address_counts_as_the_local_one() {
        assert_eq!(client_address(Some(" 203.0.113.9 ")), "203.0.113.9");
        assert_eq!(client_address(Some("")), UNKNOWN_ADDRESS);
        assert_eq!(client_address(Some(&"1".repeat(65))), UNKNOWN_ADDRESS);
        assert_eq!(client_address(None), UNKNOWN_ADDRESS);
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn generated_keys_have_the_documented_shape_and_parse() {
        let a = generate_key("chadis", Env::Live);
        let b = generate_key("chadis", Env::Live);
        assert_ne!(a, b);
        assert!(a.starts_with("sk_chadis_live_"), "{a}");
        assert_eq!(a.len(), "sk_chadis_live_".len() + KEY_RANDOM_LEN);
        let parsed = parse_key(&a).unwrap();
        assert_eq!((parsed.slug, parsed.env), ("chadis", Env::Live));
        assert_eq!(parsed.random.len(), KEY_RANDOM_LEN);
        let dev = generate_key("pannudental", Env::Dev);
        assert_eq!(parse_key(&dev).unwrap().env, Env::Dev);
    }

    #[test]
    fn keys_from_random_bytes_skip_biased_bytes_and_need_enough() {
        let bytes: Vec<u8> = (0..=255).collect();
        let key = key_from_random("ab", Env::Test, &bytes).unwrap();
        assert_eq!(
            key,
            format!("sk_ab_test_{}", &std::str::from_utf8(BASE62).unwrap()[..32])
        );
        assert_eq!(key_from_random("ab", Env::Test, &[250; 64]), None);
        assert_eq!(key_from_random("ab", Env::Test, &[1; 31]), None);
    }

    #[test]
    fn malformed_keys_are_refused_before_any_lookup() {
        let random = "A".repeat(32);
        for key in [
            String::new(),
            "sk_".to_owned(),
            format!("pk_chadis_live_{random}"),
            format!("sk_Chadis_live_{random}"),
            format!("sk_c_live_{random}"),
            format!("sk_{}_live_{random}", "a".repeat(33)),
            format!("sk_chadis_prod_{random}"),
            format!("sk_chadis_live_{}", "A".repeat(23)),
            format!("sk_chadis_live_{}", "A".repeat(65)),
            format!("sk_chadis_live_{}!", "A".repeat(31)),
            format!("sk_chadis_live_{random}_x"),
            format!("sk_chadis_live{random}"),
            format!(" sk_chadis_live_{random}"),
        ] {
            assert!(parse_key(&key).is_err(), "{key:?} was accepted");
        }
        assert!(parse_key(&format!("sk_ab_test_{}", "z".repeat(24))).is_ok());
    }

    #[test]
    fn slugs_are_lower_case_letters_and_digits() {
        assert!(is_slug("chadis") && is_slug("pannudental") && is_slug("a1"));
        assert!(!is_slug("a") && !is_slug("Chadis") && !is_slug("pannu-dental"));
        assert!(!is_slug("pannu_dental") && !is_slug(&"a".repeat(33)));
    }

    #[test]
    fn origins_are_normalised_to_scheme_host_and_port() {
        let ok = |o: &str| normalize_origin(o, false).unwrap();
        assert_eq!(ok("https://Example.COM/"), "https://example.com");
        assert_eq!(
            ok(" https://app.example.com:8443 "),
            "https://app.example.com:8443"
        );
        assert_eq!(ok("https://example.com:443"), "https://example.com");
        assert_eq!(ok("http://localhost:5173"), "http://localhost:5173");
        assert_eq!(ok("http://127.0.0.1:5173/"), "http://127.0.0.1:5173");
        assert_eq!(ok("http://localhost:80"), "http://localhost");
    }

    #[test]
    fn origins_that_are_not_bare_https_origins_are_refused() {
        for origin in [
            "example.com",
            "https://",
            "https://example.com/path",
            "https://example.com//",
            "https://example.com?x=1",
            "https://example.com#x",
            "https://user@example.com",
            "https://*.example.com",
            "https://exa mple.com",
            "https://example..com",
            "https://-example.com",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com:port",
            "ftp://example.com",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            "null",
            "http://example.com",
            "http://192.168.1.10:5173",
        ] {
            assert!(
                normalize_origin(origin, false).is_err(),
                "{origin} accepted"
            );
        }
        // A local deployment may name plain http origins.
        assert_eq!(
            normalize_origin("http://dev.test:3000", true).unwrap(),
            "http://dev.test:3000"
        );
    }

    #[test]
    fn a_presented_origin_is_compared_exactly_after_normalisation() {
        let allowed = strings(&["https://shop.example.com", "http://localhost:5173"]);
        assert!(origin_allowed(&allowed, "https://shop.example.com"));
        assert!(origin_allowed(&allowed, "HTTPS://SHOP.EXAMPLE.COM"));
        assert!(origin_allowed(&allowed, "https://shop.example.com:443"));
        assert!(origin_allowed(&allowed, "http://localhost:5173"));
        for other in [
            "https://shop.example.com.evil.io",
            "https://evil.shop.example.com",
            "http://shop.example.com",
            "https://shop.example.com:8443",
            "http://localhost:5174",
            "null",
            "",
        ] {
            assert!(!origin_allowed(&allowed, other), "{other}");
        }
    }

    fn new_body(name: &str, kind: &str, origins: &[&str]) -> NewSiteBody {
        NewSiteBody {
            name: Some(name.to_owned()),
            kind: Some(kind.to_owned()),
            origins: Some(strings(origins)),
            allow_server_calls: None,
            env: None,
        }
    }

    #[test]
    fn a_new_site_gets_its_defaults() {
        let site = new_site(
            new_body(
                " Front desk ",
                "chatbot",
                &["https://A.example/", "https://a.example"],
            ),
            false,
        )
        .unwrap();
        assert_eq!(
            site,
            NewSite {
                name: "Front desk".to_owned(),
                kind: Kind::Chatbot,
                origins: strings(&["https://a.example"]),
                allow_server_calls: false,
                env: Env::Live,
            }
        );
    }

    #[test]
    fn every_problem_of_a_new_site_is_reported_under_its_field() {
        let mut body = new_body("", "widget", &["https://ok.example", "http://bad.example"]);
        body.env = Some("prod".to_owned());
        let problems = new_site(body, false).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "type", "origins[1]", "env"]);

        let problems = new_site(NewSiteBody::default(), false).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "type"]);

        let many: Vec<String> = (0..21).map(|i| format!("https://s{i}.example")).collect();
        let mut body = new_body(&"x".repeat(81), "voice", &[]);
        body.origins = Some(many);
        let problems = new_site(body, false).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "origins"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let new: Result<NewSiteBody, _> =
            serde_json::from_str(r#"{"name":"a","type":"voice","org_id":"org_x"}"#);
        assert!(new.unwrap_err().to_string().contains("org_id"));
        let patch: Result<SitePatchBody, _> = serde_json::from_str(r#"{"site_key":"sk_x"}"#);
        assert!(patch.unwrap_err().to_string().contains("site_key"));
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_must_name_something() {
        let patch = site_patch(
            SitePatchBody {
                status: Some("paused".to_owned()),
                origins: Some(vec![]),
                ..SitePatchBody::default()
            },
            false,
        )
        .unwrap();
        assert_eq!(patch.status, Some(Status::Paused));
        assert_eq!(patch.origins, Some(vec![]));
        assert_eq!((patch.name, patch.allow_server_calls), (None, None));

        let problems = site_patch(SitePatchBody::default(), false).unwrap_err();
        assert_eq!(problems[0].field, "body");

        let problems = site_patch(
            SitePatchBody {
                name: Some(" ".to_owned()),
                status: Some("deleted".to_owned()),
                origins: Some(strings(&["https://x.example/a"])),
                allow_server_calls: Some(true),
            },
            false,
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "status", "origins[0]"]);
    }

    #[test]
    fn a_key_is_admitted_only_for_an_active_site_of_an_active_org_from_its_origins() {
        let origins = strings(&["https://shop.example.com"]);
        let admit = |site: &str, org: &str, server: bool, origin: Option<&str>| {
            admit(
                site.parse().unwrap(),
                org == "active",
                &origins,
                server,
                origin,
            )
        };
        assert_eq!(
            admit("active", "active", false, Some("https://shop.example.com")),
            Ok(())
        );
        assert_eq!(
            admit("active", "active", false, Some("https://other.example")),
            Err(Refusal::OriginNotAllowed)
        );
        assert_eq!(
            admit("active", "active", false, None),
            Err(Refusal::NoServerCalls)
        );
        assert_eq!(admit("active", "active", true, None), Ok(()));
        // With Origin, allowing server calls does not open other origins.
        assert_eq!(
            admit("active", "active", true, Some("https://other.example")),
            Err(Refusal::OriginNotAllowed)
        );
        let listed = Some("https://shop.example.com");
        assert_eq!(
            admit("paused", "active", true, listed),
            Err(Refusal::Paused)
        );
        for org in ["inactive", "churned"] {
            assert_eq!(
                admit("active", org, true, listed),
                Err(Refusal::OrgInactive)
            );
        }
    }

    #[test]
    fn site_types_statuses_and_envs_map_to_their_columns_both_ways() {
        use crate::core::stored::check;
        check::<Kind>();
        check::<Status>();
        check::<Env>();
        assert_eq!(Env::from_name("test"), Some(Env::Test));
        assert_eq!(Kind::from_name("Voice"), None);
        assert_eq!(Status::from_name("deleted"), None);
    }
}
