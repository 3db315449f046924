//! Webhook signature verification, pure.
pub mod signed;
pub mod stripe_signature;
pub mod svix;
