//! Accounts' settings: the access token's secret and lifetimes, the password hash cost, the
//! mail API that carries the links, and the rates of sign-ups and reset requests.

use crate::core::settings::{base_url, boolean, number, optional, ConfigError, Loader, Secret};

/// Tollgate's own accounts: the access token's secret and lifetimes, the password hash cost,
/// and the mail API that carries verification and reset links.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// `ACCOUNT_TOKEN_SECRET`: signs account access tokens (HS256). Unset: every account
    /// endpoint answers `not_configured` and no account token is accepted.
    pub token_secret: Secret,
    /// `ACCOUNT_TOKEN_TTL_SECS`: access token lifetime; default 900, 60 to 86400.
    pub token_ttl_secs: i64,
    /// `ACCOUNT_REFRESH_TTL_SECS`: refresh token lifetime; default 2592000 (30 days), 300 to
    /// 31536000.
    pub refresh_ttl_secs: u64,
    /// `PASSWORD_RESET_TTL_SECS`: how long a mailed reset link works; default 3600, 300 to
    /// 86400.
    pub reset_ttl_secs: u64,
    /// `EMAIL_VERIFY_TTL_SECS`: how long a mailed verification link works; default 604800
    /// (7 days), 300 to 2592000.
    pub verify_ttl_secs: u64,
    /// `PASSWORD_HASH_MEMORY_KIB` (default 19456, 1024 to 262144) and
    /// `PASSWORD_HASH_ITERATIONS` (default 2, 1 to 10); one lane.
    pub hash_cost: crate::accounts::rules::password::HashCost,
    /// `MAIL_API_URL`: a Resend-shaped mail API; default `https://api.resend.com`.
    pub mail_api_url: String,
    /// `MAIL_API_KEY`: its key. Unset: mail is written to the log instead (local runs).
    pub mail_api_key: Secret,
    /// `MAIL_FROM`: the sender; default `Tollgate <onboarding@resend.dev>` (Resend's test
    /// sender).
    pub mail_from: String,
    /// `APP_URL`: the app that opens the mailed links (`/verify-email?token=`,
    /// `/reset-password?token=`); default `http://localhost:5173`.
    pub app_url: String,
    /// `REQUIRE_VERIFIED_EMAIL`: `true` refuses everything that costs the operator money
    /// (`403 email_not_verified`: provider keys, model calls, token use and purchase, social
    /// rewards, API-key creation) to password accounts whose email is not verified yet;
    /// default `true`. `false` is for operators who verify elsewhere.
    pub require_verified_email: bool,
    /// Whether mail may be written to the log instead of sent while `MAIL_API_KEY` is unset:
    /// only where `ENVIRONMENT` is `local`. Elsewhere the routes that mail answer
    /// `not_configured` until it is set.
    pub log_mail: bool,
    /// `SIGNUP_PER_IP_PER_HOUR`: account sign-ups one client IP may make an hour; default 5,
    /// 1 to 100000.
    pub signups_per_ip_per_hour: u32,
    /// `RESET_PER_IP_PER_HOUR`: password reset requests one client IP may make an hour;
    /// default 10, 1 to 100000.
    pub resets_per_ip_per_hour: u32,
    /// `RESET_PER_EMAIL_PER_HOUR`: password reset requests for one email an hour; default 3,
    /// 1 to 100.
    pub resets_per_email_per_hour: u32,
}

impl AccountsConfig {
    /// Account settings; any invalid one holds back `ACCOUNT_TOKEN_SECRET` (so the account
    /// endpoints answer `not_configured` naming it) and the mail key.
    pub(crate) fn load(l: &mut Loader<'_>, environment: &str) -> Self {
        use crate::accounts::rules::password::HashCost;
        let mark = l.mark();
        let source = l.source;
        let default = HashCost::DEFAULT;
        let local = environment == "local";
        let mut config = Self {
            token_secret: l.secret(Secret::read(source, "ACCOUNT_TOKEN_SECRET")),
            require_verified_email: l.or(boolean(source, "REQUIRE_VERIFIED_EMAIL", true), true),
            log_mail: local,
            signups_per_ip_per_hour: l
                .or(number(source, "SIGNUP_PER_IP_PER_HOUR", 5, 1..=100_000), 5),
            resets_per_ip_per_hour: l
                .or(number(source, "RESET_PER_IP_PER_HOUR", 10, 1..=100_000), 10),
            resets_per_email_per_hour: l
                .or(number(source, "RESET_PER_EMAIL_PER_HOUR", 3, 1..=100), 3),
            token_ttl_secs: l.or(
                number(source, "ACCOUNT_TOKEN_TTL_SECS", 900, 60..=86_400),
                900,
            ),
            refresh_ttl_secs: l.or(
                number(
                    source,
                    "ACCOUNT_REFRESH_TTL_SECS",
                    30 * 86_400,
                    300..=365 * 86_400,
                ),
                30 * 86_400,
            ),
            reset_ttl_secs: l.or(
                number(source, "PASSWORD_RESET_TTL_SECS", 3600, 300..=86_400),
                3600,
            ),
            verify_ttl_secs: l.or(
                number(
                    source,
                    "EMAIL_VERIFY_TTL_SECS",
                    7 * 86_400,
                    300..=30 * 86_400,
                ),
                7 * 86_400,
            ),
            hash_cost: HashCost {
                memory_kib: l.or(
                    number(
                        source,
                        "PASSWORD_HASH_MEMORY_KIB",
                        default.memory_kib,
                        1024..=262_144,
                    ),
                    default.memory_kib,
                ),
                iterations: l.or(
                    number(
                        source,
                        "PASSWORD_HASH_ITERATIONS",
                        default.iterations,
                        1..=10,
                    ),
                    default.iterations,
                ),
                parallelism: 1,
            },
            mail_api_url: l.or(
                base_url(source, "MAIL_API_URL", "https://api.resend.com"),
                "https://api.resend.com".to_owned(),
            ),
            mail_api_key: l.secret(Secret::read(source, "MAIL_API_KEY")),
            mail_from: optional(source, "MAIL_FROM")
                .unwrap_or_else(|| "Tollgate <onboarding@resend.dev>".to_owned()),
            app_url: l.or(
                base_url(source, "APP_URL", "http://localhost:5173"),
                "http://localhost:5173".to_owned(),
            ),
        };
        if let Some(setting) = l.first_since(mark) {
            config.token_secret.block(setting);
            config.mail_api_key.block(setting);
        }
        // The mailed links must lead to the operator's app, not to a developer's machine:
        // only the mail waits for it (sign-in and sessions work without it).
        if !local && optional(source, "APP_URL").is_none() {
            l.problems.push(ConfigError {
                setting: "APP_URL",
                problem: format!(
                    "must be set where ENVIRONMENT is not local (it is {environment}): the \
                     mailed links open it"
                ),
            });
            config.mail_api_key.block("APP_URL");
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::testing::not_configured;
    use std::collections::HashMap;

    /// Accounts' settings alone, read from `vars` where `ENVIRONMENT` is `environment`, with
    /// the problems they record.
    fn load(vars: &HashMap<&str, &str>, environment: &str) -> (AccountsConfig, Vec<ConfigError>) {
        let mut l = Loader::new(vars);
        let accounts = AccountsConfig::load(&mut l, environment);
        (accounts, l.problems)
    }

    #[test]
    fn mail_is_logged_only_locally_and_needs_the_app_url_elsewhere() {
        use crate::accounts::service::mail;
        let (local, problems) = load(&HashMap::new(), "local");
        assert!(local.log_mail);
        assert!(local.require_verified_email, "on by default");
        assert_eq!(mail::ready(&local), Ok(()));
        assert!(problems.is_empty(), "{problems:?}");

        let (deployed, _) = load(
            &HashMap::from([("APP_URL", "https://app.example.com")]),
            "prod",
        );
        assert!(!deployed.log_mail);
        assert_eq!(mail::ready(&deployed), Err(not_configured("MAIL_API_KEY")));
        let (sending, _) = load(
            &HashMap::from([
                ("APP_URL", "https://app.example.com"),
                ("MAIL_API_KEY", "re_live"),
            ]),
            "prod",
        );
        assert_eq!(mail::ready(&sending), Ok(()));

        let (no_app, _) = load(&HashMap::from([("MAIL_API_KEY", "re_live")]), "prod");
        assert_eq!(load(&HashMap::new(), "prod").1[0].setting, "APP_URL");
        assert_eq!(mail::ready(&no_app), Err(not_configured("APP_URL")));
        // Sign-in does not need it.
        assert!(no_app.token_secret.is_unset());
    }
}
