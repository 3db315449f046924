//! Subscriptions on Stripe: checkout, portal, changes, and applying Stripe's events.
pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
