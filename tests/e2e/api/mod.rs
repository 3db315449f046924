//! The test cases, grouped like the API they exercise.

mod accounts;
mod api_keys;
mod audit;
mod auth;
mod billing;
mod chat;
mod clerk_faults;
mod clerk_webhook;
mod contract;
mod conventions;
mod cors;
mod developer_plan;
mod devices;
mod end_user_tokens;
mod fakes;
mod health;
mod identity;
mod jwks;
mod metrics;
mod platforms;
mod portal;
mod profile;
mod provider_keys;
mod proxy;
mod rate_limits;
mod signed_access;
mod signup_guards;
mod sites;
mod subjects;
mod tokens;
mod usage;
mod voice;
mod workflows;

use crate::harness::World;

/// A test case: a name and a function that panics when the behaviour is wrong.
pub type Case = (&'static str, fn(&World));

/// Lists a module's test functions as cases named `group::function`.
#[macro_export]
macro_rules! cases {
    ($group:ident: $($name:ident),* $(,)?) => {
        vec![$((
            concat!(stringify!($group), "::", stringify!($name)),
            $name as fn(&$crate::harness::World),
        )),*]
    };
}

/// Every end-to-end case.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(health::cases());
    cases.extend(conventions::cases());
    cases.extend(cors::cases());
    cases.extend(voice::cases());
    cases.extend(fakes::cases());
    cases.extend(identity::cases());
    cases.extend(end_user_tokens::cases());
    cases.extend(api_keys::cases());
    cases.extend(profile::cases());
    cases.extend(auth::cases());
    cases.extend(clerk_webhook::cases());
    cases.extend(signed_access::cases());
    cases.extend(usage::cases());
    cases.extend(subjects::cases());
    cases.extend(devices::cases());
    cases.extend(rate_limits::cases());
    cases.extend(provider_keys::cases());
    cases.extend(billing::cases());
    cases.extend(platforms::cases());
    cases.extend(portal::cases());
    cases.extend(sites::cases());
    cases.extend(developer_plan::cases());
    cases.extend(audit::cases());
    cases.extend(tokens::cases());
    cases.extend(accounts::cases());
    cases.extend(signup_guards::cases());
    cases.extend(workflows::cases());
    cases.extend(proxy::cases());
    cases.extend(chat::cases());
    cases.extend(metrics::cases());
    cases.extend(contract::cases());
    cases
}

/// Cases that change what every other case depends on; they run last, one at a time.
pub fn serial() -> Vec<Case> {
    // Uploads that the worker answers while they are still streaming: wrangler dev's proxy
    // relays those answers reliably only with no other traffic, and the one left mid-body
    // goes last (see the cases).
    let mut cases = conventions::serial_first_cases();
    cases.extend(clerk_faults::serial_cases());
    cases.extend(jwks::serial_cases());
    cases.extend(end_user_tokens::serial_cases());
    cases.extend(provider_keys::serial_cases());
    cases.extend(billing::serial_cases());
    cases.extend(developer_plan::serial_cases());
    cases.extend(tokens::serial_cases());
    cases.extend(accounts::serial_cases());
    // They flood the worker; last but for the case that must be last.
    cases.extend(contract::serial_cases());
    cases.extend(conventions::serial_last_cases());
    cases
}
