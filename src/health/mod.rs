//! Health checks: liveness and the state of every binding and setting.
pub mod http;
pub mod store;
