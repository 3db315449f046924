//! Provider API keys: OpenRouter keys bought with credits, and the shared key pool.
pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
