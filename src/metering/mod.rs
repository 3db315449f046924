//! Exact, idempotent metering: reservations, reports, quota, history and stats.
pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
