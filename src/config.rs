//! Typed configuration, read from the worker's vars and secrets once per request.
//!
//! Optional settings have their default written next to their name. A secret that is unset
//! (or empty) is never replaced by a default: asking for it yields `not_configured`.

use crate::core::body::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WEBHOOK_BODY_BYTES};
use crate::core::cors::CorsPolicy;
use crate::error::AppError;

/// The D1 binding holding every table.
pub const D1_BINDING: &str = "DB";
/// The KV binding used as a cache (JWKS, session presence); never a source of truth.
pub const KV_BINDING: &str = "CACHE";

/// Where configuration values come from: the worker's `Env` in production, a map in tests.
pub trait VarSource {
    /// The value of a var or secret, if it is set.
    fn get(&self, name: &str) -> Option<String>;
}

impl VarSource for worker::Env {
    fn get(&self, name: &str) -> Option<String> {
        // Plain vars and secrets are both string bindings; `var` reads either.
        self.var(name).ok().map(|v| v.to_string())
    }
}

impl<S: std::hash::BuildHasher> VarSource for std::collections::HashMap<&str, &str, S> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| (*v).to_owned())
    }
}

/// A secret value: present, or absent with the name of the setting that would provide it.
/// Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    name: &'static str,
    value: Option<String>,
}

impl Secret {
    /// Reads a secret; an empty or whitespace-only value counts as unset.
    pub fn read(source: &dyn VarSource, name: &'static str) -> Self {
        let value = source.get(name).filter(|v| !v.trim().is_empty());
        Self { name, value }
    }

    /// The value, or `not_configured` naming the setting.
    pub fn require(&self) -> Result<&str, AppError> {
        self.value
            .as_deref()
            .ok_or(AppError::NotConfigured { setting: self.name })
    }

    /// Whether the secret is set.
    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_set() { "[set]" } else { "[unset]" };
        write!(f, "Secret({} {state})", self.name)
    }
}

/// Base URLs of the services Tollgate calls; tests and local runs point them at fakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    /// `CLERK_API_URL`, default `https://api.clerk.com`.
    pub clerk_api: String,
    /// `OPENROUTER_API_URL`, default `https://openrouter.ai/api`.
    pub openrouter_api: String,
    /// `STRIPE_API_URL`, default `https://api.stripe.com`.
    pub stripe_api: String,
}

/// Everything the request pipeline and handlers read from configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ENVIRONMENT`: the deployment's name, shown by `/api/health`; default `local`.
    pub environment: String,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins; default none.
    pub cors: CorsPolicy,
    /// `MAX_BODY_BYTES`: limit for API request bodies; default 65536 (64 KiB).
    pub max_body_bytes: usize,
    /// `MAX_WEBHOOK_BODY_BYTES`: limit for webhook deliveries; default 1048576 (1 MiB).
    pub max_webhook_body_bytes: usize,
    /// Base URLs of upstream services.
    pub upstreams: Upstreams,
}

/// A setting whose value cannot be used; names the setting and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The var or secret at fault.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid configuration {}: {}",
            self.setting, self.problem
        )
    }
}

impl From<ConfigError> for AppError {
    fn from(err: ConfigError) -> Self {
        AppError::Internal(err.to_string())
    }
}

impl Config {
    /// Reads and validates every setting; the first invalid one is reported by name.
    pub fn load(source: &dyn VarSource) -> Result<Self, ConfigError> {
        let cors_list = optional(source, "CORS_ALLOWED_ORIGINS").unwrap_or_default();
        let cors = CorsPolicy::parse(&cors_list).map_err(|problem| ConfigError {
            setting: "CORS_ALLOWED_ORIGINS",
            problem,
        })?;
        Ok(Self {
            environment: optional(source, "ENVIRONMENT").unwrap_or_else(|| "local".to_owned()),
            cors,
            max_body_bytes: byte_size(source, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            max_webhook_body_bytes: byte_size(
                source,
                "MAX_WEBHOOK_BODY_BYTES",
                DEFAULT_MAX_WEBHOOK_BODY_BYTES,
            )?,
            upstreams: Upstreams {
                clerk_api: base_url(source, "CLERK_API_URL", "https://api.clerk.com")?,
                openrouter_api: base_url(
                    source,
                    "OPENROUTER_API_URL",
                    "https://openrouter.ai/api",
                )?,
                stripe_api: base_url(source, "STRIPE_API_URL", "https://api.stripe.com")?,
            },
        })
    }
}

fn optional(source: &dyn VarSource, name: &str) -> Option<String> {
    source
        .get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Largest body limit accepted from configuration: 100 MiB, the platform's own ceiling.
const MAX_CONFIGURABLE_BODY_BYTES: usize = 100 * 1024 * 1024;

fn byte_size(
    source: &dyn VarSource,
    name: &'static str,
    default: usize,
) -> Result<usize, ConfigError> {
    let Some(raw) = optional(source, name) else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(n) if n > 0 && n <= MAX_CONFIGURABLE_BODY_BYTES => Ok(n),
        _ => Err(ConfigError {
            setting: name,
            problem: format!(
                "`{raw}` is not a byte count between 1 and {MAX_CONFIGURABLE_BODY_BYTES}"
            ),
        }),
    }
}

fn base_url(
    source: &dyn VarSource,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let url = optional(source, name).unwrap_or_else(|| default.to_owned());
    let url = url.trim_end_matches('/').to_owned();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url),
        _ => Err(ConfigError {
            setting: name,
            problem: format!("`{url}` is not an http(s) base URL"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::load(&HashMap::new()).unwrap();
        assert_eq!(config.environment, "local");
        assert_eq!(config.max_body_bytes, 64 * 1024);
        assert_eq!(config.max_webhook_body_bytes, 1024 * 1024);
        assert_eq!(config.upstreams.stripe_api, "https://api.stripe.com");
        assert!(config.cors.origins().is_empty());
    }

    #[test]
    fn settings_override_defaults() {
        let vars = HashMap::from([
            ("ENVIRONMENT", "prod"),
            ("MAX_BODY_BYTES", "1024"),
            ("STRIPE_API_URL", "http://127.0.0.1:9000/"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com"),
        ]);
        let config = Config::load(&vars).unwrap();
        assert_eq!(config.environment, "prod");
        assert_eq!(config.max_body_bytes, 1024);
        assert_eq!(config.upstreams.stripe_api, "http://127.0.0.1:9000");
        assert!(config.cors.allows("https://app.example.com"));
    }

    #[test]
    fn invalid_settings_are_named() {
        for (name, value) in [
            ("MAX_BODY_BYTES", "lots"),
            ("MAX_BODY_BYTES", "0"),
            ("MAX_WEBHOOK_BODY_BYTES", "-5"),
            ("CLERK_API_URL", "ftp://clerk"),
            ("CORS_ALLOWED_ORIGINS", "https://*.example.com"),
        ] {
            let err = Config::load(&HashMap::from([(name, value)])).unwrap_err();
            assert_eq!(err.setting, name, "{err}");
        }
    }

    #[test]
    fn an_unset_or_empty_secret_is_not_configured() {
        let vars = HashMap::from([("EMPTY", "  "), ("SET", "s3cret")]);
        for name in ["MISSING", "EMPTY"] {
            let secret = Secret::read(&vars, name);
            assert!(!secret.is_set());
            assert_eq!(
                secret.require(),
                Err(AppError::NotConfigured { setting: name })
            );
        }
        assert_eq!(Secret::read(&vars, "SET").require(), Ok("s3cret"));
    }

    #[test]
    fn a_secret_never_prints_its_value() {
        let vars = HashMap::from([("SET", "s3cret")]);
        let shown = format!("{:?}", Secret::read(&vars, "SET"));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("[set]"));
    }
}
