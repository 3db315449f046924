//! Buying and rotating OpenRouter keys with credits, and the sweep that retires old ones.
pub mod credits;
pub mod key_sweep;
