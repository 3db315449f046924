//! The plan catalog: limits, prices and what each plan allows.
pub mod config;
pub mod http;
pub mod rules;
