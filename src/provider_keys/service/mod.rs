//! Buying and rotating OpenRouter keys with credits, the sweep that retires old ones, the
//! key pool, and the admin's view of users and their credits.
pub mod admin;
pub mod credits;
pub mod key_sweep;
pub mod pool;
