//! The audit log: one row for every state-changing action (accounts, sessions, keys, plans,
//! subscriptions, the token ledger, admin actions, webhooks applied), read by admins.
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
