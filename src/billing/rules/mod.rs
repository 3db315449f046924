//! Billing's pure rules: Stripe's events, read once into typed values.
pub mod stripe_event;
