//! Organisations: the operator's clients, each mapped to one Clerk organisation, with a plan,
//! a status and a configuration their sites use; and the portal through which their members
//! (and the operator's staff) see and change them.

pub mod http;
pub mod rules;
pub mod service;
pub mod store;
