//! The first step of every route's access rule, taken by the pipeline before the handler
//! runs: a route that is not public refuses a request that presents no credential, or one
//! that is not `Authorization: Bearer <credential>`, with `401` — whatever its handler
//! would have done with the body.
//!
//! Who the credential belongs to (and whether it may call the route: an API key's scopes, a
//! session, the admin role) is decided next, by [`crate::identity::service::auth`].

use crate::error::AppError;
use crate::identity::rules::scopes::Access;

/// The access rule of a route anyone may call: no credential is read, and its handler takes
/// no principal (health, the plan catalog, the contract, OAuth, signed webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Public;

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
/// whoever it comes from.
pub fn gate(access: Access, presented: &Presented<'_>) -> Result<(), AppError> {
    match access {
        Access::Public => Ok(()),
        _ => credential(presented).map(|_| ()),
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

    #[test]
    fn public_routes_take_anyone_and_others_need_a_bearer_credential() {
        for presented in [
            Presented::Nothing,
            Presented::Malformed("x"),
            Presented::Bearer("t"),
        ] {
            assert_eq!(gate(Access::Public, &presented), Ok(()));
        }
        for access in [Access::Session, Access::Scoped(Scope::Usage)] {
            assert_eq!(gate(access, &Presented::Bearer("t")), Ok(()));
            let refused = gate(access, &Presented::Nothing).unwrap_err();
            assert_eq!(refused.status(), 401);
        }
    }
}
