//! Webhook signature verification and the inbox's stored states, pure.
pub mod signed;
pub mod status;
pub mod stripe_signature;
pub mod svix;
