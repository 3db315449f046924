//! Shared primitives with no `worker` types, used by every capability: request bodies and
//! ids, CORS rules, form encoding, pagination, randomness, sealing (AES-GCM), time, and the
//! mechanics every capability reads its settings with.
pub mod body;
pub mod cors;
pub mod form;
pub mod host_routes;
pub mod page;
pub mod random;
pub mod request_id;
pub mod sealed;
pub mod secret_key;
pub mod settings;
pub mod stored;
pub mod time;
