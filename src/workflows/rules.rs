//! Workflows' pure decisions: owners and triggers, the webhook URL rule (public https
//! receivers outside local development), the `whsec_` secret and the Standard Webhooks
//! signature, which usage thresholds a change crossed, the retry schedule, the classes of a
//! failed attempt and the event bodies.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Whose a workflow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKind {
    Org,
    User,
}

crate::stored_impls!(OwnerKind("workflow owner kind"), deserialize);

impl OwnerKind {
    /// Every kind.
    pub const ALL: [OwnerKind; 2] = [OwnerKind::Org, OwnerKind::User];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Org => "org",
            OwnerKind::User => "user",
        }
    }

    /// The field naming the owner in an event's `data`.
    pub fn id_field(self) -> &'static str {
        match self {
            OwnerKind::Org => "org_id",
            OwnerKind::User => "user_id",
        }
    }
}

/// An org (`org_...`) or a user (`usr_...`), already resolved from the caller's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: OwnerKind,
    pub id: String,
}

impl Owner {
    pub fn org(id: &str) -> Self {
        Self {
            kind: OwnerKind::Org,
            id: id.to_owned(),
        }
    }

    pub fn user(id: &str) -> Self {
        Self {
            kind: OwnerKind::User,
            id: id.to_owned(),
        }
    }
}

/// What fires a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub enum Trigger {
    /// The owner reached 80 % or 100 % of a monthly limit (once per threshold per period).
    #[serde(rename = "usage.threshold")]
    UsageThreshold,
    /// A chat session started on one of the owner's sites.
    #[serde(rename = "chat.session.started")]
    ChatSessionStarted,
}

crate::stored_impls!(Trigger("workflow trigger"));

impl Trigger {
    /// Every trigger.
    pub const ALL: [Trigger; 2] = [Trigger::UsageThreshold, Trigger::ChatSessionStarted];

    /// As stored and named in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::UsageThreshold => "usage.threshold",
            Trigger::ChatSessionStarted => "chat.session.started",
        }
    }

    /// The trigger named `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Stored; not yet answered with a 2xx, attempts remain.
    Pending,
    /// A 2xx was received.
    Delivered,
    /// Every attempt failed (or its workflow was disabled or deleted first).
    Failed,
}

crate::stored_impls!(DeliveryStatus("workflow delivery status"), deserialize);

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// Why a delivery attempt failed, as the deliveries pages show it and the attempt stores it:
/// a class, never the receiver's or the network's own words (those are only logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum AttemptFailure {
    /// No answer within [`SEND_TIMEOUT_MS`].
    #[serde(rename = "timeout")]
    Timeout,
    /// The receiver could not be reached (name lookup, connection refused or reset, TLS).
    #[serde(rename = "connection_failed")]
    ConnectionFailed,
    /// It answered a redirect, which is not followed.
    #[serde(rename = "http_3xx")]
    Http3xx,
    /// It answered 4xx.
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// It answered 5xx.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// It answered a status that is neither a success, a redirect nor an error (1xx, 6xx+).
    #[serde(rename = "invalid_response")]
    InvalidResponse,
    /// Not sent: the delivery could not be signed or its request built (Tollgate's side).
    #[serde(rename = "not_sent")]
    NotSent,
}

crate::stored_impls!(AttemptFailure("delivery attempt failure"), deserialize);

impl AttemptFailure {
    /// Every class.
    pub const ALL: [AttemptFailure; 7] = [
        AttemptFailure::Timeout,
        AttemptFailure::ConnectionFailed,
        AttemptFailure::Http3xx,
        AttemptFailure::Http4xx,
        AttemptFailure::Http5xx,
        AttemptFailure::InvalidResponse,
        AttemptFailure::NotSent,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptFailure::Timeout => "timeout",
            AttemptFailure::ConnectionFailed => "connection_failed",
            AttemptFailure::Http3xx => "http_3xx",
            AttemptFailure::Http4xx => "http_4xx",
            AttemptFailure::Http5xx => "http_5xx",
            AttemptFailure::InvalidResponse => "invalid_response",
            AttemptFailure::NotSent => "not_sent",
        }
    }

    /// The class of a receiver's answer, `None` for a 2xx (delivered).
    pub fn of_status(status: u16) -> Option<Self> {
        match status {
            200..=299 => None,
            300..=399 => Some(AttemptFailure::Http3xx),
            400..=499 => Some(AttemptFailure::Http4xx),
            500..=599 => Some(AttemptFailure::Http5xx),
            _ => Some(AttemptFailure::InvalidResponse),
        }
    }
}

/// The most workflows one owner may have.
pub const MAX_WORKFLOWS_PER_OWNER: u32 = 10;
/// The longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;
/// Attempts per delivery, the first included.
pub const MAX_ATTEMPTS: u32 = 8;
/// The wait after each failed attempt before the next (7 waits for 8 attempts): about 23
/// hours in all.
pub const BACKOFF_SECS: [u64; 7] = [60, 300, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600];
/// How long a delivery being sent is held from the schedule (an attempt in flight).
pub const LEASE_MS: u64 = 60_000;
/// How long the receiver may take to answer.
pub const SEND_TIMEOUT_MS: u64 = 10_000;
/// The thresholds alerted, in percent of a limit.
pub const THRESHOLDS: [u8; 2] = [80, 100];

/// Which receivers a webhook URL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receivers {
    /// Public https hosts only: no plain http, no loopback, private, link-local or other
    /// internal address, no `localhost`, `.local` or `.internal` name.
    Public,
    /// Any host, over http or https: local development and tests, whose receivers listen on
    /// loopback.
    Local,
}

/// The receivers allowed where `ENVIRONMENT` is `environment`: any in `local`, public ones
/// everywhere else.
pub fn receivers(environment: &str) -> Receivers {
    if environment == "local" {
        Receivers::Local
    } else {
        Receivers::Public
    }
}

const NOT_HTTPS: &str = "must be an https URL (plain http is allowed in local development only)";
const INTERNAL_ADDRESS: &str =
    "must not point at a loopback, private, link-local or other internal address";
const INTERNAL_NAME: &str =
    "must not name a local or internal host (localhost, *.localhost, *.local, *.internal)";
const NOT_DOTTED_QUAD: &str = "must write an IP address as four decimal numbers (a.b.c.d)";
const SINGLE_LABEL: &str = "must name a public host (a domain name with a dot)";
const INVALID_HOST: &str = "must name a valid host";

/// The webhook URL, checked: `https://host[:port][/path][?query]` without credentials,
/// whitespace or a fragment, at most [`MAX_URL_BYTES`]; where only [`Receivers::Public`] are
/// allowed, its host must be public too (see [`internal_host`]).
pub fn url(value: &str, receivers: Receivers) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_URL_BYTES {
        return Err(format!(
            "must be an https URL of at most {MAX_URL_BYTES} bytes"
        ));
    }
    let rest = if let Some(rest) = value.strip_prefix("https://") {
        rest
    } else if let Some(rest) = value.strip_prefix("http://") {
        if receivers == Receivers::Public {
            return Err(NOT_HTTPS.to_owned());
        }
        rest
    } else {
        return Err("must be an https URL".to_owned());
    };
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(
            "must not contain spaces, control or non-ASCII characters (percent-encode them)"
                .to_owned(),
        );
    }
    if value.contains('#') {
        return Err("must not have a fragment".to_owned());
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not carry credentials".to_owned());
    }
    let (host, port) = split_authority(authority).ok_or_else(|| INVALID_HOST.to_owned())?;
    let host = host.to_ascii_lowercase();
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.parse::<Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                })
        }
    };
    if !host_ok {
        return Err(INVALID_HOST.to_owned());
    }
    if let Some(port) = port {
        if port.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
            return Err("must have a port from 1 to 65535".to_owned());
        }
    }
    if receivers == Receivers::Public {
        if let Some(why) = internal_host(&host) {
            return Err(why.to_owned());
        }
    }
    Ok(value.to_owned())
}

/// A URL authority (no credentials) as its host (an IPv6 literal keeps its brackets) and its
/// port, if it names one; `None` when an IPv6 literal is not closed or is followed by more
/// than a port.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let (host, rest) = authority.split_at(authority.find(']')? + 1);
        match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        }
    } else {
        Some(match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        })
    }
}

/// Why a valid, lowercase `host` is not a public receiver, if it is not: an IP literal in a
/// loopback, private, link-local, CGNAT, unique-local or unspecified range (IPv4-mapped,
/// -compatible and NAT64 IPv6 forms read as their IPv4 address); a number that only some
/// parsers read as IPv4 (`2130706433`, `0x7f.1`, `127.1`: anything whose last label is a
/// number but is not a canonical dotted quad); `localhost`, a `.localhost`, `.local` or
/// `.internal` name; or a single label (resolved by search domains, never public).
pub fn internal_host(host: &str) -> Option<&'static str> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => internal_v6(ip).then_some(INTERNAL_ADDRESS),
            Err(_) => Some(INVALID_HOST),
        };
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    let numeric = |label: &str| {
        let hex = label
            .strip_prefix("0x")
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
        hex || (!label.is_empty() && label.chars().all(|c| c.is_ascii_digit()))
    };
    if numeric(last) {
        return match host.parse::<Ipv4Addr>() {
            Ok(ip) if ip.to_string() == host => internal_v4(ip).then_some(INTERNAL_ADDRESS),
            _ => Some(NOT_DOTTED_QUAD),
        };
    }
    let internal_name = ["localhost", "local", "internal"]
        .iter()
        .any(|tld| host == *tld || host.ends_with(&format!(".{tld}")));
    if internal_name {
        return Some(INTERNAL_NAME);
    }
    if !host.contains('.') {
        return Some(SINGLE_LABEL);
    }
    None
}

/// Whether an IPv4 address is unspecified (0/8), loopback (127/8), private (10/8,
/// 172.16/12, 192.168/16), link-local (169.254/16) or shared CGNAT space (100.64/10).
fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b))
}

/// Whether an IPv6 address is unspecified, loopback, link-local (fe80::/10), site-local
/// (fec0::/10, deprecated), unique-local (fc00::/7), or an IPv4-mapped (::ffff:0:0/96),
/// -compatible (::/96) or NAT64 (64:ff9b::/96) form of an internal IPv4 address.
fn internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let [.., a, b, c, d] = ip.octets();
    let embedded = Ipv4Addr::new(a, b, c, d);
    let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let compatible = s[..6] == [0; 6];
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] & 0xfe00) == 0xfc00
        || ((mapped || compatible || nat64) && internal_v4(embedded))
}

/// The host (and port) of a checked URL: what the audit log keeps of it, since a webhook URL
/// may itself carry a secret in its path or query.
pub fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or("")
}

/// A workflow's signing secret from 24+ random bytes: `whsec_` + base64.
pub fn secret(random: &[u8]) -> String {
    format!("whsec_{}", B64.encode(random))
}

/// The key bytes of a `whsec_` secret (the base64-decoded part after the prefix).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix("whsec_")?)
        .ok()
        .filter(|k| !k.is_empty())
}

/// The Standard Webhooks `webhook-signature` of a message: `v1,` + base64 of
/// HMAC-SHA256(key, "{id}.{timestamp}.{body}").
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The thresholds (percent) a counter passed on its way from `before` to `after` under
/// `limit`: each `t` with `before < t% of limit <= after`. An unlimited or zero limit has
/// none.
pub fn crossed(before: u64, after: u64, limit: Option<u64>) -> Vec<u8> {
    let Some(limit) = limit.filter(|l| *l > 0) else {
        return Vec::new();
    };
    let (before, after, limit) = (u128::from(before), u128::from(after), u128::from(limit));
    THRESHOLDS
        .into_iter()
        .filter(|t| {
            let mark = u128::from(*t) * limit;
            before * 100 < mark && mark <= after * 100
        })
        .collect()
}

/// When the next attempt is due after `attempts` failed ones (epoch ms), or `None` when that
/// was the last.
pub fn next_attempt_ms(attempts: u32, now_ms: u64) -> Option<u64> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let wait = BACKOFF_SECS
        .get(attempts.saturating_sub(1) as usize)
        .copied()
        .unwrap_or(BACKOFF_SECS[BACKOFF_SECS.len() - 1]);
    Some(now_ms + wait * 1000)
}

/// A usage crossing: who, which meter and period, which threshold, the counter and limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing<'a> {
    pub owner: &'a Owner,
    pub meter: &'a str,
    pub period: &'a str,
    pub threshold: u8,
    pub used: u64,
    pub limit: u64,
}

impl Crossing<'_> {
    /// What the crossing is named by in its deliveries (one per workflow).
    pub fn event_key(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.owner.kind.as_str(),
            self.owner.id,
            self.meter,
            self.period,
            self.threshold
        )
    }

    /// The delivery body: `{"type": "usage.threshold", "timestamp", "data": {...}}`.
    pub fn payload(&self, timestamp: &str) -> String {
        let mut data = json!({
            "threshold": self.threshold,
            "meter": self.meter,
            "used": self.used,
            "limit": self.limit,
            "period": self.period,
        });
        data[self.owner.kind.id_field()] = json!(self.owner.id);
        json!({
            "type": Trigger::UsageThreshold.as_str(),
            "timestamp": timestamp,
            "data": data,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Receivers::{Local, Public};

    /// Why `value` is refused as a public receiver.
    fn refused(value: &str) -> String {
        url(value, Public).expect_err(value)
    }

    #[test]
    fn urls_are_https_unless_local() {
        assert_eq!(
            url(" https://hooks.example.com/x?a=1 ", Public).unwrap(),
            "https://hooks.example.com/x?a=1"
        );
        assert!(url("https://hooks.example.com:8443", Public).is_ok());
        assert!(url("http://127.0.0.1:9000/hook", Local).is_ok());
        assert_eq!(refused("http://hooks.example.com/hook"), NOT_HTTPS);
        for bad in [
            "",
            "ftp://example.com",
            "https://",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            "https://example.com/#frag",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://-bad-.com/",
            "https://ex..com/",
            "https://[::1/",
            "https://[::1]x/",
            "https://[not-v6]/",
            "example.com",
        ] {
            assert!(url(bad, Local).is_err(), "{bad:?}");
        }
        assert!(url(
            &format!("https://a.com/{}", "x".repeat(MAX_URL_BYTES)),
            Public
        )
        .is_err());
        assert_eq!(receivers("local"), Local);
        assert_eq!(receivers("e2e"), Public);
        assert_eq!(receivers("prod"), Public);
        assert_eq!(
            host("https://hooks.example.com:8443/t/abc?k=1"),
            "hooks.example.com:8443"
        );
        assert_eq!(host("http://127.0.0.1:9000"), "127.0.0.1:9000");
    }

    #[test]
    fn public_receivers_may_be_any_public_host_or_address() {
        assert!(url("https://203.0.113.5/hook", Public).is_ok());
        assert!(url("https://8.8.8.8:8443/", Public).is_ok());
        assert!(url("https://100.63.255.255/", Public).is_ok());
        assert!(url("https://100.128.0.1/", Public).is_ok());
        assert!(url("https://172.32.0.1/", Public).is_ok());
        assert!(url("https://[2001:db8::1]/", Public).is_ok());
        assert!(url("https://[2001:db8::1]:8443/x", Public).is_ok());
        assert!(url("https://[::ffff:8.8.8.8]/", Public).is_ok());
        assert!(url("https://hooks.local.example.com/", Public).is_ok());
        assert!(url("https://internal.example.com/", Public).is_ok());
        assert!(url("https://h00ks.example.com/", Public).is_ok());
        assert!(url("https://example.a1/", Public).is_ok());
    }

    #[test]
    fn local_receivers_may_be_loopback_and_internal() {
        assert!(url("http://127.0.0.1:9000/hook", Local).is_ok());
        assert!(url("http://localhost:9000/hook", Local).is_ok());
        assert!(url("https://[::1]:9000/", Local).is_ok());
        assert!(url("https://10.0.0.1/", Local).is_ok());
    }

    #[test]
    fn internal_addresses_are_refused() {
        assert_eq!(refused("https://127.0.0.1/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://127.255.0.9:8443/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://10.0.0.1/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://172.16.0.1/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://172.31.255.255/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://192.168.1.1/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://169.254.169.254/latest"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://100.64.0.1/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://100.127.255.255/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://0.0.0.0/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://0.1.2.3/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[::1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[::]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[0:0:0:0:0:0:0:1]:443/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[fe80::1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[febf::1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[fec0::1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[fc00::1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[FD12:3456::1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[::ffff:127.0.0.1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[::ffff:7f00:1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[::ffff:10.0.0.1]/"), INTERNAL_ADDRESS);
        assert_eq!(
            refused("https://[::ffff:169.254.169.254]/"),
            INTERNAL_ADDRESS
        );
        assert_eq!(refused("https://[::127.0.0.1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[::192.168.0.1]/"), INTERNAL_ADDRESS);
        assert_eq!(refused("https://[64:ff9b::10.0.0.1]/"), INTERNAL_ADDRESS);
    }

    #[test]
    fn numbers_that_only_some_parsers_read_as_ipv4_are_refused() {
        assert_eq!(refused("https://2130706433/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://0x7f.1/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://0x7F000001/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://127.1/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://127.0.1/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://0177.0.0.1/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://010.0.0.1/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://8.8.8.8.8/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://256.0.0.1/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://example.0x1/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://example.123/"), NOT_DOTTED_QUAD);
        assert_eq!(refused("https://0x/"), NOT_DOTTED_QUAD);
    }

    #[test]
    fn local_and_internal_names_are_refused() {
        assert_eq!(refused("https://localhost/"), INTERNAL_NAME);
        assert_eq!(refused("https://LocalHost:8443/"), INTERNAL_NAME);
        assert_eq!(refused("https://api.localhost/"), INTERNAL_NAME);
        assert_eq!(refused("https://printer.local/"), INTERNAL_NAME);
        assert_eq!(refused("https://metadata.internal/"), INTERNAL_NAME);
        assert_eq!(refused("https://metadata.google.internal/x"), INTERNAL_NAME);
        assert_eq!(refused("https://internal/"), INTERNAL_NAME);
        assert_eq!(refused("https://metadata/"), SINGLE_LABEL);
        assert_eq!(refused("https://localhost./"), INVALID_HOST);
    }

    #[test]
    fn an_attempts_failure_is_a_class_stored_and_shown_as_one_text() {
        crate::core::stored::check::<AttemptFailure>();
        assert_eq!("timeout".parse(), Ok(AttemptFailure::Timeout));
        assert_eq!("http_5xx".parse(), Ok(AttemptFailure::Http5xx));
        assert!("answered 500".parse::<AttemptFailure>().is_err());
        assert_eq!(AttemptFailure::of_status(200), None);
        assert_eq!(AttemptFailure::of_status(204), None);
        assert_eq!(
            AttemptFailure::of_status(302),
            Some(AttemptFailure::Http3xx)
        );
        assert_eq!(
            AttemptFailure::of_status(404),
            Some(AttemptFailure::Http4xx)
        );
        assert_eq!(
            AttemptFailure::of_status(500),
            Some(AttemptFailure::Http5xx)
        );
        assert_eq!(
            AttemptFailure::of_status(599),
            Some(AttemptFailure::Http5xx)
        );
        assert_eq!(
            AttemptFailure::of_status(101),
            Some(AttemptFailure::InvalidResponse)
        );
        assert_eq!(
            AttemptFailure::of_status(600),
            Some(AttemptFailure::InvalidResponse)
        );
    }

    #[test]
    fn the_schema_accepts_every_failure_class() {
        // A class the code writes but the CHECK refuses would lose the attempt's record.
        let schema = include_str!("../../schema/0019_delivery_failure_class.sql");
        let check = &schema[schema.find("CHECK (failure IN (").unwrap()..];
        let check = &check[..check.find("))").unwrap()];
        for failure in AttemptFailure::ALL {
            assert!(
                check.contains(&format!("'{}'", failure.as_str())),
                "{failure:?}"
            );
        }
        assert_eq!(check.matches('\'').count(), 2 * AttemptFailure::ALL.len());
    }

    #[test]
    fn a_secret_is_whsec_base64_and_its_key_decodes_back() {
        let s = secret(&[7u8; 24]);
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap(), vec![7u8; 24]);
        assert!(secret_key("whsec_").is_none());
        assert!(secret_key("nope").is_none());
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The Standard Webhooks specification's example.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn thresholds_are_crossed_once_on_the_way_up() {
        assert_eq!(crossed(0, 79, Some(100)), Vec::<u8>::new());
        assert_eq!(crossed(79, 80, Some(100)), vec![80]);
        assert_eq!(crossed(80, 99, Some(100)), Vec::<u8>::new());
        assert_eq!(crossed(99, 100, Some(100)), vec![100]);
        assert_eq!(crossed(10, 150, Some(100)), vec![80, 100]);
        assert_eq!(crossed(100, 200, Some(100)), Vec::<u8>::new());
        assert_eq!(crossed(0, 1000, None), Vec::<u8>::new());
        assert_eq!(crossed(0, 1000, Some(0)), Vec::<u8>::new());
        // 80 % of 1 001 is 800.8: 800 is below it, 801 reaches it.
        assert_eq!(crossed(0, 800, Some(1001)), Vec::<u8>::new());
        assert_eq!(crossed(800, 801, Some(1001)), vec![80]);
        assert_eq!(crossed(0, u64::MAX, Some(u64::MAX)), vec![80, 100]);
    }

    #[test]
    fn retries_back_off_and_stop_after_eight_attempts() {
        assert_eq!(next_attempt_ms(1, 0), Some(60_000));
        assert_eq!(next_attempt_ms(2, 0), Some(300_000));
        assert_eq!(next_attempt_ms(7, 0), Some(12 * 3600 * 1000));
        assert_eq!(next_attempt_ms(8, 0), None);
        let total: u64 = BACKOFF_SECS.iter().sum();
        assert!((20 * 3600..=26 * 3600).contains(&total), "{total}");
    }

    #[test]
    fn a_payload_names_the_owner_and_the_crossing() {
        let owner = Owner::user("usr_1");
        let crossing = Crossing {
            owner: &owner,
            meter: "tokens",
            period: "2026-11",
            threshold: 80,
            used: 850,
            limit: 1000,
        };
        assert_eq!(crossing.event_key(), "user:usr_1:tokens:2026-11:80");
        let body: serde_json::Value =
            serde_json::from_str(&crossing.payload("2026-11-28T05:00:00Z")).unwrap();
        assert_eq!(
            body,
            json!({"type": "usage.threshold", "timestamp": "2026-11-28T05:00:00Z",
                   "data": {"threshold": 80, "meter": "tokens", "used": 850, "limit": 1000,
                            "period": "2026-11", "user_id": "usr_1"}})
        );
        let org = Owner::org("org_1");
        let crossing = Crossing {
            owner: &org,
            ..crossing
        };
        assert!(crossing.payload("t").contains(r#""org_id":"org_1""#));
    }

    #[test]
    fn owner_kinds_triggers_and_delivery_statuses_map_to_their_columns_both_ways() {
        use crate::core::stored::check;
        check::<OwnerKind>();
        check::<Trigger>();
        check::<DeliveryStatus>();
        assert_eq!(
            Trigger::parse("chat.session.started"),
            Some(Trigger::ChatSessionStarted)
        );
        assert_eq!(Trigger::parse("usage"), None);
    }
}
