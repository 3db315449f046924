//! Provider keys' settings: OpenRouter's provisioning key and credit policy, the keys that
//! seal provider keys at rest, and the sweep's retries.

use crate::core::sealed::Keyring;
use crate::core::settings::{number, optional, ConfigError, Loader, Secret, VarSource};
use crate::error::AppError;
use crate::provider_keys::rules::{self as credits, CreditPolicy, LimitReset};

/// Provider keys: OpenRouter provisioning with credits and the pool of pre-created keys,
/// both sealed at rest.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// `PROVISIONING_API_KEY`: OpenRouter's provisioning (management) key.
    pub provisioning_key: Secret,
    /// `KEY_ENCRYPTION_KEY`: base64url of 32 bytes; seals provider keys at rest.
    pub encryption_key: Secret,
    /// `KEY_ENCRYPTION_KEY_PREVIOUS`: comma-separated earlier keys, which only open.
    pub previous_encryption_keys: Secret,
    /// `CREDITS_INITIAL` (10), `OPENROUTER_KEY_LIMIT` (1), `CREDITS_RESET_AT` (0.1),
    /// `OPENROUTER_ROTATE_AT` (0.5): USD decimals, stored as micro-USD.
    pub credits: CreditPolicy,
    /// `OPENROUTER_KEY_LIMIT_RESET`: when OpenRouter resets each key's limit: `daily`
    /// (default; the seed's "$1 daily limits"), `weekly`, `monthly`, or `none` (never).
    pub key_limit_reset: Option<LimitReset>,
    /// `OPENROUTER_TIMEOUT_MS`: how long one OpenRouter call may take; default 10000.
    pub openrouter_timeout_ms: u64,
    /// `KEY_DELETE_RETRY_SECS`: a failed deletion of a retired key is retried by the sweep
    /// after this long, doubling per failure (at most six hours); default 60.
    pub delete_retry_secs: u64,
}

impl ProviderConfig {
    /// Provider key settings. An invalid sealing key holds back the sealing key (the pool
    /// and `POST /api/key` answer `not_configured`); any other invalid provider setting holds
    /// back the provisioning key (OpenRouter keys with credits and the sweep's deletions).
    pub(crate) fn load(l: &mut Loader<'_>) -> Self {
        let source = l.source;
        let defaults = CreditPolicy::default();
        let mark = l.mark();
        let mut config = Self {
            provisioning_key: l.secret(Secret::read(source, "PROVISIONING_API_KEY")),
            encryption_key: l.secret(Secret::read(source, "KEY_ENCRYPTION_KEY")),
            previous_encryption_keys: l.secret(Secret::read(source, "KEY_ENCRYPTION_KEY_PREVIOUS")),
            credits: CreditPolicy {
                initial_credits: l.or(
                    amount(source, "CREDITS_INITIAL", "10"),
                    defaults.initial_credits,
                ),
                key_limit: l.or(
                    amount(source, "OPENROUTER_KEY_LIMIT", "1"),
                    defaults.key_limit,
                ),
                reset_at_or_below: l.or(
                    amount(source, "CREDITS_RESET_AT", "0.1"),
                    defaults.reset_at_or_below,
                ),
                rotate_at_or_below: l.or(
                    amount(source, "OPENROUTER_ROTATE_AT", "0.5"),
                    defaults.rotate_at_or_below,
                ),
            },
            key_limit_reset: l.or(
                LimitReset::parse(
                    &optional(source, "OPENROUTER_KEY_LIMIT_RESET")
                        .unwrap_or_else(|| "daily".into()),
                )
                .map_err(|problem| ConfigError {
                    setting: "OPENROUTER_KEY_LIMIT_RESET",
                    problem,
                }),
                Some(LimitReset::Daily),
            ),
            openrouter_timeout_ms: l.or(
                number(source, "OPENROUTER_TIMEOUT_MS", 10_000, 100..=60_000),
                10_000,
            ),
            delete_retry_secs: l.or(number(source, "KEY_DELETE_RETRY_SECS", 60, 0..=3600), 60),
        };
        let policy = &config.credits;
        if policy.key_limit == 0 || policy.rotate_at_or_below >= policy.key_limit {
            l.problems.push(ConfigError {
                setting: "OPENROUTER_ROTATE_AT",
                problem: "must be below OPENROUTER_KEY_LIMIT, which must be above 0".to_owned(),
            });
        }
        if policy.reset_at_or_below >= policy.initial_credits {
            l.problems.push(ConfigError {
                setting: "CREDITS_RESET_AT",
                problem: "must be below CREDITS_INITIAL".to_owned(),
            });
        }
        if let (Ok(current), false) = (
            config.encryption_key.require(),
            config.previous_encryption_keys.is_blocked(),
        ) {
            let previous = config.previous_encryption_keys.require().ok();
            if let Err(problem) = Keyring::new(current, previous) {
                let setting = if problem.starts_with("KEY_ENCRYPTION_KEY_PREVIOUS") {
                    "KEY_ENCRYPTION_KEY_PREVIOUS"
                } else {
                    "KEY_ENCRYPTION_KEY"
                };
                l.problems.push(ConfigError { setting, problem });
            }
        }
        let sealing = ["KEY_ENCRYPTION_KEY", "KEY_ENCRYPTION_KEY_PREVIOUS"];
        let found = &l.problems[mark..];
        if let Some(bad) = found.iter().find(|p| sealing.contains(&p.setting)) {
            config.encryption_key.block(bad.setting);
        }
        let openrouter_api = l
            .is_invalid("OPENROUTER_API_URL")
            .then_some("OPENROUTER_API_URL");
        let other = found
            .iter()
            .find(|p| !sealing.contains(&p.setting))
            .map(|p| p.setting)
            .or(openrouter_api);
        if let Some(setting) = other {
            config.provisioning_key.block(setting);
        }
        config
    }

    /// The keyring that seals and opens provider keys; `not_configured` while
    /// `KEY_ENCRYPTION_KEY` is unset.
    pub fn keyring(&self) -> Result<Keyring, AppError> {
        let current = self.encryption_key.require()?;
        let previous = self.previous_encryption_keys.require().ok();
        // Checked when the configuration loaded; the message never contains a key.
        Keyring::new(current, previous).map_err(AppError::Internal)
    }
}

/// A USD decimal setting, as micro-USD.
fn amount(source: &dyn VarSource, name: &'static str, default: &str) -> Result<i64, ConfigError> {
    let raw = optional(source, name).unwrap_or_else(|| default.to_owned());
    credits::parse_usd(&raw).ok_or_else(|| ConfigError {
        setting: name,
        problem: format!("`{raw}` is not a USD amount such as 10 or 0.5"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::testing::not_configured;
    use std::collections::HashMap;

    /// Provider keys' settings alone, read from `vars`, with the problems they record.
    fn load(vars: &HashMap<&str, &str>) -> (ProviderConfig, Vec<ConfigError>) {
        let mut l = Loader::new(vars);
        let providers = ProviderConfig::load(&mut l);
        (providers, l.problems)
    }

    /// The first problem loading `vars` records (the test expects one).
    fn first_problem(vars: &HashMap<&str, &str>) -> ConfigError {
        load(vars)
            .1
            .into_iter()
            .next()
            .expect("an invalid setting is recorded")
    }

    const GOOD_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn a_malformed_sealing_key_is_named_never_shown() {
        let (providers, problems) =
            load(&HashMap::from([("KEY_ENCRYPTION_KEY", "not-a-key-AAAA")]));
        assert_eq!(
            providers.keyring().unwrap_err(),
            not_configured("KEY_ENCRYPTION_KEY")
        );
        assert_eq!(problems[0].setting, "KEY_ENCRYPTION_KEY");
        assert!(!problems[0].problem.contains("AAAA"));
        assert!(!format!("{:?}", providers.encryption_key).contains("AAAA"));
    }

    #[test]
    fn keys_reset_their_limit_daily_unless_configured_otherwise() {
        let reset = |value: &'static str| {
            let (providers, problems) =
                load(&HashMap::from([("OPENROUTER_KEY_LIMIT_RESET", value)]));
            assert!(problems.is_empty(), "{problems:?}");
            providers.key_limit_reset
        };
        let (default, _) = load(&HashMap::new());
        assert_eq!(default.key_limit_reset, Some(LimitReset::Daily));
        assert_eq!(reset("monthly"), Some(LimitReset::Monthly));
        assert_eq!(reset("weekly"), Some(LimitReset::Weekly));
        assert_eq!(reset("none"), None);
        let err = first_problem(&HashMap::from([("OPENROUTER_KEY_LIMIT_RESET", "hourly")]));
        assert_eq!(err.setting, "OPENROUTER_KEY_LIMIT_RESET", "{err}");
    }

    #[test]
    fn provider_amounts_are_usd_decimals_stored_as_micros() {
        let (providers, _) = load(&HashMap::new());
        assert_eq!(providers.credits, CreditPolicy::default());
        assert_eq!(providers.openrouter_timeout_ms, 10_000);
        assert_eq!(
            providers.keyring().unwrap_err(),
            AppError::NotConfigured {
                setting: "KEY_ENCRYPTION_KEY".into()
            }
        );
        let vars = HashMap::from([
            ("CREDITS_INITIAL", "25"),
            ("OPENROUTER_KEY_LIMIT", "2.5"),
            ("CREDITS_RESET_AT", "0.25"),
            ("OPENROUTER_ROTATE_AT", "0.75"),
            ("KEY_ENCRYPTION_KEY", GOOD_KEY),
        ]);
        let (providers, _) = load(&vars);
        assert_eq!(providers.credits.initial_credits, 25_000_000);
        assert_eq!(providers.credits.key_limit, 2_500_000);
        assert_eq!(providers.credits.reset_at_or_below, 250_000);
        assert_eq!(providers.credits.rotate_at_or_below, 750_000);
        assert!(providers.keyring().is_ok());
        for (name, value) in [
            ("CREDITS_INITIAL", "-1"),
            ("OPENROUTER_KEY_LIMIT", "lots"),
            ("OPENROUTER_ROTATE_AT", "1"),
            ("CREDITS_RESET_AT", "10"),
            ("OPENROUTER_TIMEOUT_MS", "5"),
            ("KEY_ENCRYPTION_KEY", "too-short"),
            ("KEY_ENCRYPTION_KEY_PREVIOUS", "AAAA"),
        ] {
            let mut vars = HashMap::from([(name, value)]);
            if name == "KEY_ENCRYPTION_KEY_PREVIOUS" {
                vars.insert("KEY_ENCRYPTION_KEY", GOOD_KEY);
            }
            let err = first_problem(&vars);
            assert_eq!(err.setting, name, "{err}");
            assert!(!err.problem.contains("AAAA"), "{err}");
        }
    }
}
