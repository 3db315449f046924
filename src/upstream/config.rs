//! The upstream clients' settings: the base URL of each service Tollgate calls.

use crate::core::settings::{base_url, Loader};

/// Base URLs of the services Tollgate calls; tests and local runs point them at fakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    /// `CLERK_API_URL`, default `https://api.clerk.com`.
    pub clerk_api: String,
    /// `OPENROUTER_API_URL`, default `https://openrouter.ai/api`.
    pub openrouter_api: String,
    /// `STRIPE_API_URL`, default `https://api.stripe.com`.
    pub stripe_api: String,
}

impl Upstreams {
    /// The base URLs; an invalid one is recorded and its default stands in (the feature that
    /// calls it holds back its secret: see the billing, provider key and identity sections).
    pub(crate) fn load(l: &mut Loader<'_>) -> Self {
        let source = l.source;
        let mut upstream = |name: &'static str, default: &'static str| {
            l.or(base_url(source, name, default), default.to_owned())
        };
        Self {
            clerk_api: upstream("CLERK_API_URL", "https://api.clerk.com"),
            openrouter_api: upstream("OPENROUTER_API_URL", "https://openrouter.ai/api"),
            stripe_api: upstream("STRIPE_API_URL", "https://api.stripe.com"),
        }
    }
}
