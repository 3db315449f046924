//! The devices (sessions) a user meters from, and the plan's limit on concurrent ones.
pub mod rules;
pub mod store;
