//! Site chat: a site's visitors talk to the org's model through `POST /chat`, carrying the
//! site key (or, in legacy mode, none). Each conversation is a session the server names; its
//! recent messages go with every new one, every message is logged, and the org's monthly
//! tokens pay for the answers through the metered model proxy ([`crate::proxy`]), so no
//! answer costs more than the org's quota allows.

pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
