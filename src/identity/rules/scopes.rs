//! API key scopes and route access: what a key may be used for (chosen when it is created)
//! and what each route asks of the caller, as the route table declares it.
//!
//! Tokens (Clerk, HMAC) act with the user's full authority; an API key acts only within its
//! scopes, and never on routes that need a signed-in session.

use std::fmt;

pub use crate::orgs::rules::Need;
pub use crate::webhooks::rules::signed::Signer;

/// One thing an API key may be used for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Metering and reading one's own state: reserve, report, quota, sync, history, stats,
    /// sessions, the profile and plan. The default.
    Usage,
    /// Provider keys: `POST /api/key`, `GET /api/user/provider-keys`.
    Keys,
    /// Billing: checkout, portal, cancel, update, upgrade, subscription state.
    Billing,
    /// Admin routes; the key's owner must also hold the admin role.
    Admin,
}

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 4] = [Scope::Usage, Scope::Keys, Scope::Billing, Scope::Admin];

    /// The scope's name on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Usage => "usage",
            Scope::Keys => "keys",
            Scope::Billing => "billing",
            Scope::Admin => "admin",
        }
    }

    /// The scope with this exact name.
    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of scopes a key holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// What a key gets when its creator names no scopes: `usage`.
    pub const DEFAULT: Scopes = Scopes(1 << Scope::Usage as u8);

    /// No scope at all.
    pub const NONE: Scopes = Scopes(0);

    /// Whether the set holds `scope`.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The set with `scope` added.
    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    /// The scopes held, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The names of the scopes held, in canonical order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// The stored form: the names in canonical order, separated by single spaces.
    pub fn to_stored(self) -> String {
        self.names().join(" ")
    }

    /// Reads the stored form. A name it does not know grants nothing (a key never gains
    /// authority from a value it cannot read).
    pub fn from_stored(text: &str) -> Scopes {
        text.split_ascii_whitespace()
            .filter_map(Scope::from_name)
            .fold(Scopes::NONE, Scopes::with)
    }

    /// The scopes a creator asked for: `None` is [`Scopes::DEFAULT`]; the list must name at
    /// least one scope and only known ones (repeats are harmless). The error is a sentence
    /// about the `scopes` field.
    pub fn requested(names: Option<&[String]>) -> Result<Scopes, String> {
        let Some(names) = names else {
            return Ok(Scopes::DEFAULT);
        };
        if names.is_empty() {
            return Err(format!("must name at least one scope of: {}", known()));
        }
        names.iter().try_fold(Scopes::NONE, |set, name| {
            Scope::from_name(name)
                .map(|scope| set.with(scope))
                .ok_or_else(|| format!("unknown scope `{name}`; known scopes: {}", known()))
        })
    }
}

impl serde::Serialize for Scopes {
    /// A list of names, in canonical order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

fn known() -> String {
    Scope::ALL.map(Scope::as_str).join(", ")
}

/// Who may call a route, as the route table declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential is read: health, the plan catalog, the contract, the OAuth redirect.
    Public,
    /// A webhook delivery signed by this provider: no credential is read; the pipeline
    /// verifies the signature over the raw body before the handler runs.
    Signed(Signer),
    /// A signed-in session (a Clerk or HMAC token) only; API keys are refused.
    Session,
    /// Any token, or an API key holding this scope.
    Scoped(Scope),
    /// A platform key (`pk_live_...`) alone: the platform is the caller.
    PlatformKey,
    /// A platform's end user: a platform key with `X-User-Id`, or an end-user token from
    /// the platform end-user identity instance. Operator tokens and API keys are refused.
    EndUser,
    /// The portal: a signed-in session (API keys are refused) acting on one org, as a
    /// member, an admin or staff, as [`Need`] says (see `orgs::service::admit`).
    Portal(Need),
    /// A site key (`X-Site-Key: sk_...`) of an active site, from one of its origins (or
    /// without `Origin` where the site takes server calls): a widget of an org's site.
    SiteKey,
    /// As [`Access::SiteKey`]; a request without `X-Site-Key` is served as the site
    /// `CHAT_LEGACY_SITE` names (legacy mode: its origins, or no `Origin`), `401` while unset.
    SiteKeyOrLegacy,
}

/// Why an API key may not call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The route needs a signed-in session.
    NeedsSession,
    /// The key lacks this scope.
    MissingScope(Scope),
}

impl KeyRefusal {
    /// The sentence the `403 forbidden` answer carries.
    pub fn message(self) -> String {
        match self {
            KeyRefusal::NeedsSession => {
                "this action needs a signed-in session, not an API key".to_owned()
            }
            KeyRefusal::MissingScope(scope) => format!(
                "this API key lacks the `{scope}` scope; create a key with `{scope}` in its scopes"
            ),
        }
    }
}

/// Whether an API key holding `held` may call a route declared with `access`. A route
/// declared `Public` or `Signed` authenticates nobody, so a key reaching one is refused as
/// for `Session` (a route that forgot its declaration fails closed).
pub fn admit_key(access: Access, held: Scopes) -> Result<(), KeyRefusal> {
    match access {
        Access::Scoped(scope) if held.contains(scope) => Ok(()),
        Access::Scoped(scope) => Err(KeyRefusal::MissingScope(scope)),
        Access::Public
        | Access::Signed(_)
        | Access::Session
        | Access::PlatformKey
        | Access::EndUser
        | Access::Portal(_)
        | Access::SiteKey
        | Access::SiteKeyOrLegacy => Err(KeyRefusal::NeedsSession),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_scopes_requested_means_usage_only() {
        let scopes = Scopes::requested(None).unwrap();
        assert_eq!(scopes, Scopes::DEFAULT);
        assert_eq!(scopes.names(), ["usage"]);
    }

    #[test]
    fn requested_scopes_are_kept_in_canonical_order_without_repeats() {
        let scopes = Scopes::requested(Some(&names(&["admin", "usage", "admin"]))).unwrap();
        assert_eq!(scopes.names(), ["usage", "admin"]);
        assert!(!scopes.contains(Scope::Billing) && !scopes.contains(Scope::Keys));
    }

    #[test]
    fn unknown_or_no_scopes_are_refused() {
        let err = Scopes::requested(Some(&names(&["usage", "everything"]))).unwrap_err();
        assert!(err.contains("`everything`") && err.contains("usage, keys, billing, admin"));
        assert!(Scopes::requested(Some(&names(&["Usage"]))).is_err());
        assert!(Scopes::requested(Some(&[])).is_err());
    }

    #[test]
    fn the_stored_form_round_trips_and_unknown_names_grant_nothing() {
        let all = Scope::ALL.into_iter().fold(Scopes::NONE, Scopes::with);
        assert_eq!(all.to_stored(), "usage keys billing admin");
        assert_eq!(Scopes::from_stored(&all.to_stored()), all);
        assert_eq!(Scopes::from_stored("usage"), Scopes::DEFAULT);
        assert_eq!(Scopes::from_stored("root admin2"), Scopes::NONE);
        assert_eq!(
            Scopes::from_stored(" billing  usage ").names(),
            ["usage", "billing"]
        );
    }

    #[test]
    fn scopes_are_shown_as_a_list_of_names() {
        let scopes = Scopes::DEFAULT.with(Scope::Keys);
        assert_eq!(
            serde_json::to_value(scopes).unwrap(),
            serde_json::json!(["usage", "keys"])
        );
    }

    #[test]
    fn a_key_may_call_only_routes_of_its_scopes() {
        let usage = Scopes::DEFAULT;
        assert_eq!(admit_key(Access::Scoped(Scope::Usage), usage), Ok(()));
        for scope in [Scope::Keys, Scope::Billing, Scope::Admin] {
            assert_eq!(
                admit_key(Access::Scoped(scope), usage),
                Err(KeyRefusal::MissingScope(scope))
            );
        }
        let billing = Scopes::NONE.with(Scope::Billing);
        assert_eq!(admit_key(Access::Scoped(Scope::Billing), billing), Ok(()));
        assert_eq!(
            admit_key(Access::Scoped(Scope::Usage), billing),
            Err(KeyRefusal::MissingScope(Scope::Usage))
        );
    }

    #[test]
    fn no_key_may_call_session_or_public_routes() {
        let all = Scope::ALL.into_iter().fold(Scopes::NONE, Scopes::with);
        for access in [
            Access::Session,
            Access::Public,
            Access::Signed(Signer::Stripe),
        ] {
            assert_eq!(admit_key(access, all), Err(KeyRefusal::NeedsSession));
        }
    }

    #[test]
    fn the_refusal_names_the_missing_scope() {
        let message = KeyRefusal::MissingScope(Scope::Billing).message();
        assert!(message.contains("`billing` scope"), "{message}");
    }
}
