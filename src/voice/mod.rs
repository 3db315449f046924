//! Site voice: text to speech through ElevenLabs for a site's visitors (`POST /voice`, with the
//! site key or in legacy mode). The text's characters are admitted exactly against the org's
//! monthly voice characters before the provider is called, and given back if it fails.

pub mod config;
pub mod http;
pub mod rules;
pub mod service;
pub mod store;
