//! The mechanics every capability's settings are read with: where values come from
//! ([`VarSource`]), secrets that never print ([`Secret`]), a `Loader` that records what is
//! wrong instead of stopping at the first problem ([`ConfigError`]), and the parsers of plain
//! values (lists, booleans, numbers, byte sizes, base URLs).
//!
//! No `worker` types: the worker's `Env` is a [`VarSource`] by an impl in `crate::config`,
//! which assembles the capabilities' sections; tests read a map.

use crate::error::AppError;

/// Where configuration values come from: the worker's `Env` in production, a map in tests.
pub trait VarSource {
    /// The value of a var or secret, if it is set.
    fn get(&self, name: &str) -> Option<String>;
}

impl<S: std::hash::BuildHasher> VarSource for std::collections::HashMap<&str, &str, S> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| (*v).to_owned())
    }
}

/// What `.dev.vars.example` puts where `scripts/dev` generates a secret. Left in place (as
/// after `cp .dev.vars.example .dev.vars`), it would be a secret everyone knows.
pub const PLACEHOLDER: &str = "__GENERATE__";

/// A secret value: set, unset, or held back because its own value or a setting its
/// feature needs is invalid. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    name: &'static str,
    state: SecretState,
}

#[derive(Clone, PartialEq, Eq)]
enum SecretState {
    Set(String),
    Unset,
    /// Unusable until this (invalid) setting is fixed.
    Blocked(&'static str),
}

impl Secret {
    /// Reads a secret; an empty or whitespace-only value counts as unset.
    pub fn read(source: &dyn VarSource, name: &'static str) -> Self {
        let state = match source.get(name).filter(|v| !v.trim().is_empty()) {
            Some(value) => SecretState::Set(value),
            None => SecretState::Unset,
        };
        Self { name, state }
    }

    /// The value, or `not_configured` naming the setting that is unset or invalid.
    pub fn require(&self) -> Result<&str, AppError> {
        match &self.state {
            SecretState::Set(value) => Ok(value),
            SecretState::Unset => Err(AppError::NotConfigured {
                setting: self.name.into(),
            }),
            SecretState::Blocked(setting) => Err(AppError::NotConfigured {
                setting: (*setting).into(),
            }),
        }
    }

    /// Reads `name`, or its alias when `name` is unset (`JWT_SECRET` / `JWT_SECRET_CLOUD`).
    pub fn read_with_alias(
        source: &dyn VarSource,
        name: &'static str,
        alias: &'static str,
    ) -> Self {
        let primary = Self::read(source, name);
        if primary.is_set() {
            return primary;
        }
        Self {
            name,
            state: Self::read(source, alias).state,
        }
    }

    /// Whether the secret is set (and usable).
    pub fn is_set(&self) -> bool {
        matches!(self.state, SecretState::Set(_))
    }

    /// Whether the secret is simply unset (not set, and not held back by an invalid setting).
    pub fn is_unset(&self) -> bool {
        matches!(self.state, SecretState::Unset)
    }

    /// Whether the secret is unusable because a setting is invalid (as opposed to unset).
    pub fn is_blocked(&self) -> bool {
        matches!(self.state, SecretState::Blocked(_))
    }

    /// Holds the secret back until `setting` is fixed (its feature needs both).
    pub(crate) fn block(&mut self, setting: &'static str) {
        self.state = SecretState::Blocked(setting);
    }

    /// Whether the value is the example file's placeholder.
    fn is_placeholder(&self) -> bool {
        matches!(&self.state, SecretState::Set(v) if v.trim() == PLACEHOLDER)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            SecretState::Set(_) => "[set]",
            SecretState::Unset => "[unset]",
            SecretState::Blocked(_) => "[invalid]",
        };
        write!(f, "Secret({} {state})", self.name)
    }
}

/// Reads settings and collects what is wrong with them instead of stopping at the first: a
/// bad setting disables only the feature that uses it (see `Config::load`, which hands one
/// loader to every capability's section in turn).
pub(crate) struct Loader<'a> {
    pub(crate) source: &'a dyn VarSource,
    pub(crate) problems: Vec<ConfigError>,
}

impl<'a> Loader<'a> {
    pub(crate) fn new(source: &'a dyn VarSource) -> Self {
        Self {
            source,
            problems: Vec::new(),
        }
    }

    /// The value, or `fallback` with the problem recorded.
    pub(crate) fn or<T>(&mut self, result: Result<T, ConfigError>, fallback: T) -> T {
        result.unwrap_or_else(|err| {
            self.problems.push(err);
            fallback
        })
    }

    /// A secret; the example file's placeholder is a problem, and the secret is held back.
    pub(crate) fn secret(&mut self, secret: Secret) -> Secret {
        let mut secret = secret;
        if secret.is_placeholder() {
            self.problems.push(ConfigError {
                setting: secret.name,
                problem: format!("is still the placeholder {PLACEHOLDER}"),
            });
            secret.block(secret.name);
        }
        secret
    }

    /// How many problems are recorded so far (to ask later what a section added).
    pub(crate) fn mark(&self) -> usize {
        self.problems.len()
    }

    /// The first setting found invalid since `mark`, if any.
    pub(crate) fn first_since(&self, mark: usize) -> Option<&'static str> {
        self.problems.get(mark).map(|p| p.setting)
    }

    /// Whether `setting` was found invalid.
    pub(crate) fn is_invalid(&self, setting: &str) -> bool {
        self.problems.iter().any(|p| p.setting == setting)
    }
}

/// A setting whose value cannot be used; names the setting and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The var or secret at fault.
    pub setting: &'static str,
    /// What is wrong with it (never a secret's value).
    pub problem: String,
}

impl ConfigError {
    /// How to fix it, for the log.
    pub fn fix(&self) -> &'static str {
        match self.setting {
            "KEY_ENCRYPTION_KEY" | "KEY_ENCRYPTION_KEY_PREVIOUS" | "JWT_SECRET" => {
                "generate 32 random bytes, base64url: \
                 `head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\\n'` \
                 (scripts/dev does this when it creates .dev.vars); deployed: `wrangler secret put`"
            }
            "PLAN_CATALOG" => {
                "fix the JSON list of plans (docs/configuration.md) or unset it for the default"
            }
            "CLERK_PUBLISHABLE_KEY" | "END_USER_CLERK_PUBLISHABLE_KEY" => {
                "copy the instance's publishable key (pk_test_... or pk_live_...) from the Clerk \
                 dashboard, or set the _DOMAIN setting instead"
            }
            s if s.ends_with("_SECRET") || s.ends_with("_KEY") => {
                "set the real value with `wrangler secret put` (locally in .dev.vars), or unset it"
            }
            _ => "fix the value or unset it for the default (docs/configuration.md)",
        }
    }
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

/// A comma-separated list; blanks dropped.
pub(crate) fn list(source: &dyn VarSource, name: &str) -> Vec<String> {
    optional(source, name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn boolean(
    source: &dyn VarSource,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match optional(source, name).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(ConfigError {
            setting: name,
            problem: format!("`{other}` is not true or false"),
        }),
    }
}

pub(crate) fn number<T>(
    source: &dyn VarSource,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = optional(source, name) else {
        return Ok(default);
    };
    match raw.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError {
            setting: name,
            problem: format!(
                "`{raw}` is not a number between {} and {}",
                range.start(),
                range.end()
            ),
        }),
    }
}

pub(crate) fn optional(source: &dyn VarSource, name: &str) -> Option<String> {
    source
        .get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Largest body limit accepted from configuration: 100 MiB, the platform's own ceiling.
const MAX_CONFIGURABLE_BODY_BYTES: usize = 100 * 1024 * 1024;

pub(crate) fn byte_size(
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

pub(crate) fn base_url(
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

/// What tests of the settings sections share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::error::AppError;

    /// The error a feature answers while `setting` is unset or invalid.
    pub(crate) fn not_configured(setting: &str) -> AppError {
        AppError::NotConfigured {
            setting: setting.to_owned().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn an_unset_or_empty_secret_is_not_configured() {
        let vars = HashMap::from([("EMPTY", "  "), ("SET", "s3cret")]);
        for name in ["MISSING", "EMPTY"] {
            let secret = Secret::read(&vars, name);
            assert!(!secret.is_set());
            assert_eq!(
                secret.require(),
                Err(AppError::NotConfigured {
                    setting: name.into()
                })
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
