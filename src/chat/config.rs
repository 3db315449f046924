//! Chat's settings: the OpenAI-compatible API the metered proxy calls, its key, the models
//! callers may name, and how long it may take.

use crate::core::settings::{base_url, list, number, optional, ConfigError, Loader, Secret};

/// The OpenAI-compatible chat API the metered proxy calls: OpenRouter by default, any
/// Chat Completions endpoint (Gemini's OpenAI-compatible one included) by configuration.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// `CHAT_API_URL`: the API's base, default `https://openrouter.ai/api/v1` (requests go to
    /// `{CHAT_API_URL}/chat/completions`).
    pub api_url: String,
    /// `CHAT_API_KEY`: its bearer key; unset, the chat routes answer `not_configured`.
    pub api_key: Secret,
    /// `CHAT_MODEL`: the model used when a request or an org names none; default
    /// `openai/gpt-4o-mini`.
    pub model: String,
    /// `CHAT_MODELS`: the models callers may name (comma-separated); default just
    /// `CHAT_MODEL`.
    pub models: Vec<String>,
    /// `CHAT_PROVIDER`: the provider label usage records carry; default `openrouter`.
    pub provider: String,
    /// `CHAT_TIMEOUT_MS`: how long the API may take to start answering; default 30000.
    pub timeout_ms: u64,
}

impl ChatConfig {
    /// Chat settings; an invalid one holds back `CHAT_API_KEY`, so the chat routes answer
    /// `not_configured` naming it.
    pub(crate) fn load(l: &mut Loader<'_>) -> Self {
        let source = l.source;
        let mark = l.mark();
        let api_url = l.or(
            base_url(source, "CHAT_API_URL", "https://openrouter.ai/api/v1"),
            String::new(),
        );
        let model = optional(source, "CHAT_MODEL").unwrap_or_else(|| "openai/gpt-4o-mini".into());
        let mut models = list(source, "CHAT_MODELS");
        if models.is_empty() {
            models.push(model.clone());
        }
        let label_ok = |v: &str| {
            (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic() && b != b',')
        };
        if let Some(bad) = std::iter::once(&model)
            .chain(&models)
            .find(|m| !label_ok(m))
        {
            l.problems.push(ConfigError {
                setting: "CHAT_MODELS",
                problem: format!("`{bad}` is not a model id (1 to 128 visible characters)"),
            });
        }
        let provider = optional(source, "CHAT_PROVIDER").unwrap_or_else(|| "openrouter".into());
        if !label_ok(&provider) {
            l.problems.push(ConfigError {
                setting: "CHAT_PROVIDER",
                problem: format!("`{provider}` is not a label (1 to 128 visible characters)"),
            });
        }
        let timeout_ms = l.or(
            number(source, "CHAT_TIMEOUT_MS", 30_000, 100..=300_000),
            30_000,
        );
        let mut api_key = l.secret(Secret::read(source, "CHAT_API_KEY"));
        if let Some(setting) = l.first_since(mark) {
            api_key.block(setting);
        }
        Self {
            api_url,
            api_key,
            model,
            models,
            provider,
            timeout_ms,
        }
    }
}
