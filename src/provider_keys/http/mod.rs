//! Handing out provider keys, and the admin endpoints for keys and credits.
pub mod admin;
pub mod keys;
