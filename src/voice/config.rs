//! Voice's settings: the text-to-speech API `/voice` calls, its key, the default voice and
//! model, and the per-visitor rate.

use crate::core::settings::{base_url, number, optional, ConfigError, Loader, Secret};

/// ElevenLabs text to speech, for `/voice`.
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    /// `ELEVENLABS_API_URL`: default `https://api.elevenlabs.io`.
    pub api_url: String,
    /// `ELEVENLABS_API_KEY` (sent as `xi-api-key`); unset, `/voice` answers `not_configured`.
    pub api_key: Secret,
    /// `ELEVENLABS_VOICE_ID`: the voice when a request names none; default `21m00Tcm4TlvDq8ikWAM`.
    pub voice_id: String,
    /// `ELEVENLABS_MODEL_ID`: the model when a request names none; default
    /// `eleven_multilingual_v2`.
    pub model_id: String,
    /// `ELEVENLABS_TIMEOUT_MS`: how long the API may take to start answering; default 30000.
    pub timeout_ms: u64,
    /// `VOICE_RATE_PER_MINUTE`: requests one visitor of one site may make per minute; one
    /// address may make twice that. Default 10 (1 to 1000). Each rate is enforced by the
    /// binding `RATE_LIMIT_<n>` (default `RATE_LIMIT_10` and `RATE_LIMIT_20`); a rate with no
    /// binding answers `not_configured` naming it.
    pub rate_per_minute: u32,
}

impl VoiceConfig {
    /// Voice settings; an invalid one holds back `ELEVENLABS_API_KEY`.
    pub(crate) fn load(l: &mut Loader<'_>) -> Self {
        let source = l.source;
        let mark = l.mark();
        let api_url = l.or(
            base_url(source, "ELEVENLABS_API_URL", "https://api.elevenlabs.io"),
            String::new(),
        );
        let mut id = |name: &'static str, default: &str| {
            let value = optional(source, name).unwrap_or_else(|| default.to_owned());
            if crate::voice::rules::is_id(&value) {
                value
            } else {
                l.problems.push(ConfigError {
                    setting: name,
                    problem: format!("`{value}` is not 1 to 64 letters, digits, `_` or `-`"),
                });
                default.to_owned()
            }
        };
        let voice_id = id("ELEVENLABS_VOICE_ID", "21m00Tcm4TlvDq8ikWAM");
        let model_id = id("ELEVENLABS_MODEL_ID", "eleven_multilingual_v2");
        let timeout_ms = l.or(
            number(source, "ELEVENLABS_TIMEOUT_MS", 30_000, 100..=300_000),
            30_000,
        );
        let default_rate = crate::voice::rules::DEFAULT_RATE_PER_MINUTE;
        let rate_per_minute = l.or(
            number(source, "VOICE_RATE_PER_MINUTE", default_rate, 1..=1000),
            default_rate,
        );
        let mut api_key = l.secret(Secret::read(source, "ELEVENLABS_API_KEY"));
        if let Some(setting) = l.first_since(mark) {
            api_key.block(setting);
        }
        Self {
            api_url,
            api_key,
            voice_id,
            model_id,
            timeout_ms,
            rate_per_minute,
        }
    }
}
