//! Webhook deliveries: signature rules (Svix, Stripe), the stored inbox, and Clerk's receiver.
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
