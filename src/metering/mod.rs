//! Exact, idempotent metering: reservations, reports, quota, history and stats.
pub mod http;
pub mod rules;
pub mod store;
