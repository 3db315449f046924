//! Business rules that span storage and upstream calls.

pub mod api_keys;
pub mod billing;
pub mod clerk_events;
pub mod credits;
pub mod key_sweep;
pub mod scheduled;
pub mod stripe_events;
