//! Health checks: liveness and the state of every binding and setting.
pub mod http;
pub mod service;
pub mod store;
