//! Starting and changing subscriptions, and applying Stripe's events to them.
pub mod stripe_events;
pub mod subscriptions;
