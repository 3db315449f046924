//! The first step of every route's access rule, taken by the pipeline before the handler
//! runs, whatever its handler would have done with the body:
//!
//! - a route with a caller ([`Access::Session`], [`Access::Scoped`]) refuses a request that
//!   presents no credential, or one that is not `Authorization: Bearer <credential>`, with
//!   `401`; who the credential belongs to (and whether it may call the route: an API key's
//!   scopes, a session, the admin role) is decided next, by
//!   [`crate::identity::service::auth`];
//! - a [`Signed`] route (a webhook receiver) verifies the delivery's signature over the raw
//!   body with the provider's configured secrets: `503 not_configured` while they are unset,
//!   `401` for a missing or bad signature; its handler gets the verified [`SignedDelivery`];
//! - a [`Public`] route reads nothing.

use crate::config::Config;
use crate::error::AppError;
use crate::identity::rules::scopes::Access;
use crate::webhooks::rules::signed::{self, Refusal, SignedDelivery, Signer};

/// The access rule of a route anyone may call: no credential is read, and its handler takes
/// no principal (health, the plan catalog, the contract, OAuth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Public;

/// The access rule of a route that receives webhook deliveries signed by a provider: no
/// credential is read; the signature is verified before the handler runs, and the handler
/// takes the verified [`SignedDelivery`] instead of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed(pub Signer);

/// The access rule of a route a platform calls with its platform key alone; the handler
/// takes the resolved [`crate::platforms::service::Tenant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformKey;

/// The access rule of a route that acts for a platform's end user (a platform key with
/// `X-User-Id`, or an end-user token); the handler takes the resolved
/// [`crate::platforms::service::Tenant`], with its end user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndUser;

/// The access rule of a portal route any member of the org acted on may call (or staff);
/// the handler takes the resolved [`crate::orgs::service::PortalCaller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgMember;

/// The access rule of a portal route only an admin of the org acted on (or staff) may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgAdmin;

/// The access rule of a portal route for staff only (it acts on no one org).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staff;
/// The access rule of a route a site's widget calls with its site key (`X-Site-Key`); the
/// handler takes the resolved [`crate::sites::service::SiteCaller`]. The key is public, so
/// the request is held to the site's origins (see [`crate::sites::rules::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteKey;

/// The access rule of a route a site's widget calls with its site key, or without one in
/// legacy mode (the seed's clients send none): a request without `X-Site-Key` is served as
/// the site `CHAT_LEGACY_SITE` names (`401` while it is unset). The site's status and its
/// org's still apply; a legacy request is admitted from the legacy site's origins or with no
/// `Origin` (see [`crate::sites::service::admit`]). The handler takes the
/// [`crate::sites::service::SiteCaller`], whose `legacy` says how it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteKeyOrLegacy;

/// What a request shows a route's access rule before its handler runs.
pub struct Arrival<'a> {
    /// Its `Authorization` header, read.
    pub authorization: Presented<'a>,
    /// Reads one of its headers by name.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    /// Its body, exactly as received.
    pub body: &'a [u8],
    /// The current Unix time.
    pub now_secs: i64,
}

/// What the access rule let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Anyone (a public route).
    Anyone,
    /// A bearer credential, still to be resolved to its caller.
    Bearer,
    /// A delivery whose signature verified.
    Delivery(SignedDelivery),
}

/// What a request's `Authorization` header presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No `Authorization` header.
    Nothing,
    /// A header that is not `Bearer <credential>`; why.
    Malformed(&'static str),
    /// A bearer credential (a token or an API key).
    Bearer(&'a str),
}

/// Reads an `Authorization` header.
pub fn presented(authorization: Option<&str>) -> Presented<'_> {
    let Some(header) = authorization else {
        return Presented::Nothing;
    };
    let Some((scheme, credential)) = header.trim().split_once(' ') else {
        return Presented::Malformed("malformed Authorization header");
    };
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Presented::Malformed("Authorization must be `Bearer <token>`");
    }
    Presented::Bearer(credential)
}

/// Refuses, before any handler or lookup, a request the route's access rule cannot admit
/// whoever it comes from. `secret` gives a signer's configured secrets (see
/// [`signing_secret`]).
pub fn gate<'s>(
    access: Access,
    arrival: &Arrival<'_>,
    secret: &dyn Fn(Signer) -> Result<&'s str, AppError>,
) -> Result<Admitted, AppError> {
    match access {
        Access::Public => Ok(Admitted::Anyone),
        Access::Signed(signer) => {
            let secrets = secret(signer)?;
            signed::verify(
                signer,
                secrets,
                arrival.header,
                arrival.body,
                arrival.now_secs,
            )
            .map(Admitted::Delivery)
            .map_err(|refusal| match refusal {
                // Checked when the configuration loaded; kept for completeness.
                Refusal::BadSecret => AppError::NotConfigured {
                    setting: signer.secret_setting().into(),
                },
                Refusal::Unsigned(why) => AppError::Unauthorized(why),
            })
        }
        Access::Session
        | Access::Scoped(_)
        | Access::PlatformKey
        | Access::EndUser
        | Access::Portal(_) => credential(&arrival.authorization).map(|_| Admitted::Bearer),
        // Whose key it is (and whether its origin may use it) is decided next, by
        // crate::sites::service::admit; no Authorization header is read.
        Access::SiteKey => match (arrival.header)(crate::sites::rules::KEY_HEADER) {
            Some(key) if !key.trim().is_empty() => Ok(Admitted::Anyone),
            _ => Err(AppError::Unauthorized(format!(
                "missing site key: send it in {}",
                crate::sites::rules::KEY_HEADER
            ))),
        },
        // With or without a key: whether legacy mode serves a keyless request is decided by
        // crate::sites::service::admit, which reads the configuration.
        Access::SiteKeyOrLegacy => Ok(Admitted::Anyone),
    }
}

/// The secrets `signer`'s deliveries are signed with, or `not_configured` naming the setting.
pub fn signing_secret(config: &Config, signer: Signer) -> Result<&str, AppError> {
    match signer {
        Signer::Clerk => config.auth.clerk_webhook_secret.require(),
        Signer::Stripe => config.billing.webhook_secret.require(),
    }
}

/// The bearer credential presented, or why the header cannot carry one (`401`).
pub fn credential<'a>(presented: &Presented<'a>) -> Result<&'a str, AppError> {
    match presented {
        Presented::Bearer(credential) => Ok(credential),
        Presented::Nothing => Err(AppError::Unauthorized("missing bearer token".to_owned())),
        Presented::Malformed(why) => Err(AppError::Unauthorized((*why).to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::rules::scopes::Scope;

    #[test]
    fn the_header_is_read_as_a_bearer_credential_or_refused_with_why() {
        assert_eq!(presented(None), Presented::Nothing);
        assert_eq!(presented(Some("Bearer abc")), Presented::Bearer("abc"));
        assert_eq!(presented(Some("bearer  abc ")), Presented::Bearer("abc"));
        assert!(matches!(presented(Some("abc")), Presented::Malformed(_)));
        assert!(matches!(
            presented(Some("Basic abc")),
            Presented::Malformed(_)
        ));
        assert!(matches!(
            presented(Some("Bearer ")),
            Presented::Malformed(_)
        ));
    }

    const SECRET: &str = "whsec_test_stripe"; // a made-up test secret
    const NOW: i64 = 1_700_000_000;

    fn no_headers(_: &str) -> Option<String> {
        None
    }

    fn arrival<'a>(
        authorization: Presented<'a>,
        header: &'a dyn Fn(&str) -> Option<String>,
    ) -> Arrival<'a> {
        Arrival {
            authorization,
            header,
            body: b"{}",
            now_secs: NOW,
        }
    }

    fn configured(_: Signer) -> Result<&'static str, AppError> {
        Ok(SECRET)
    }

    #[test]
    fn public_routes_take_anyone_and_others_need_a_bearer_credential() {
        for presented in [
            Presented::Nothing,
            Presented::Malformed("x"),
            Presented::Bearer("t"),
        ] {
            let admitted = gate(
                Access::Public,
                &arrival(presented, &no_headers),
                &configured,
            );
            assert_eq!(admitted, Ok(Admitted::Anyone));
        }
        for access in [Access::Session, Access::Scoped(Scope::Usage)] {
            let bearer = arrival(Presented::Bearer("t"), &no_headers);
            assert_eq!(gate(access, &bearer, &configured), Ok(Admitted::Bearer));
            let nothing = arrival(Presented::Nothing, &no_headers);
            let refused = gate(access, &nothing, &configured).unwrap_err();
            assert_eq!(refused.status(), 401);
        }
    }

    #[test]
    fn a_site_key_route_needs_the_site_key_header_and_reads_no_bearer() {
        let keyed = |name: &str| {
            name.eq_ignore_ascii_case("x-site-key")
                .then(|| "sk_ab_live_x".to_owned())
        };
        let admitted = gate(
            Access::SiteKey,
            &arrival(Presented::Nothing, &keyed),
            &configured,
        );
        assert_eq!(admitted, Ok(Admitted::Anyone));
        let blank = |_: &str| Some("  ".to_owned());
        for header in [&no_headers as &dyn Fn(&str) -> Option<String>, &blank] {
            let refused = gate(
                Access::SiteKey,
                &arrival(Presented::Bearer("t"), header),
                &configured,
            )
            .unwrap_err();
            assert_eq!((refused.status(), refused.code()), (401, "unauthorized"));
        }
    }

    #[test]
    fn a_legacy_site_route_takes_a_request_with_or_without_a_key_to_the_site_lookup() {
        let keyed = |name: &str| {
            name.eq_ignore_ascii_case("x-site-key")
                .then(|| "sk_ab_live_x".to_owned())
        };
        for header in [&no_headers as &dyn Fn(&str) -> Option<String>, &keyed] {
            let admitted = gate(
                Access::SiteKeyOrLegacy,
                &arrival(Presented::Nothing, header),
                &configured,
            );
            assert_eq!(admitted, Ok(Admitted::Anyone));
        }
        // The strict rule still refuses a keyless request before any lookup.
        let refused = gate(
            Access::SiteKey,
            &arrival(Presented::Nothing, &no_headers),
            &configured,
        )
        .unwrap_err();
        assert_eq!(refused.status(), 401);
    }

    #[test]
    fn a_signed_route_admits_only_a_verified_delivery_and_reads_no_bearer() {
        let stripe = Access::Signed(Signer::Stripe);
        let signature = crate::webhooks::rules::stripe_signature::header(SECRET, NOW, b"{}");
        let signed = move |name: &str| {
            name.eq_ignore_ascii_case("stripe-signature")
                .then(|| signature.clone())
        };
        let admitted = gate(stripe, &arrival(Presented::Nothing, &signed), &configured);
        assert_eq!(
            admitted,
            Ok(Admitted::Delivery(SignedDelivery {
                signer: Signer::Stripe,
                id: None,
                body: b"{}".to_vec(),
            }))
        );
        // A bearer credential is no signature.
        let bearer = arrival(Presented::Bearer("t"), &no_headers);
        let refused = gate(stripe, &bearer, &configured).unwrap_err();
        assert_eq!((refused.status(), refused.code()), (401, "unauthorized"));
        // No secret configured: 503 naming the setting, whatever was sent.
        let unset = |_: Signer| -> Result<&'static str, AppError> {
            Err(AppError::NotConfigured {
                setting: "STRIPE_WEBHOOK_SECRET".into(),
            })
        };
        let refused = gate(stripe, &arrival(Presented::Nothing, &signed), &unset).unwrap_err();
        assert_eq!((refused.status(), refused.code()), (503, "not_configured"));
    }
}
