//! Webhook signature verification, pure.
pub mod stripe_signature;
pub mod svix;
