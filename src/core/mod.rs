//! Pure rules with no `worker` types: each is a function of its inputs, tested on the host.

pub mod api_key;
pub mod body;
pub mod clerk_event;
pub mod cors;
pub mod credits;
pub mod devices;
pub mod form;
pub mod jwt;
pub mod key_cache;
pub mod meter;
pub mod page;
pub mod plans;
pub mod profile;
pub mod random;
pub mod rate_limit;
pub mod request_id;
pub mod roles;
pub mod scopes;
pub mod sealed;
pub mod stripe_signature;
pub mod svix;
pub mod time;
