//! The metered model proxy: every model call, whoever makes it (a user through
//! `/v1/chat/completions`, a site's visitor through `/chat`), is admitted against the
//! payer's quota before the model is called, asks the model for no more reply than the quota
//! can still afford, and is settled from what the provider reports — streamed or not, an
//! answer never costs more than the quota allows.

pub mod http;
pub mod rules;
pub mod service;
