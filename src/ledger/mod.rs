//! The token ledger: an append-only account of each user's tokens (packs bought through
//! Stripe, spending, admin grants and adjustments, social rewards, refunds), whose newest
//! entry is the balance.
pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
