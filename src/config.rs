//! Typed configuration, read from the worker's vars and secrets once per isolate.
//!
//! Optional settings have their default written next to their name. A secret that is unset
//! (or empty) is never replaced by a default: asking for it yields `not_configured`. An
//! invalid setting never stops the whole worker: [`Config::load`] records it and disables
//! only what needs it.
//!
//! Each capability owns its settings in its own `config` module (`chat::config`,
//! `identity::config`, ...: names, defaults, validation, the problems it records), read with
//! the mechanics of [`crate::core::settings`]. This module only assembles them, in one
//! order, and keeps what spans sections: the pipeline's own problem, the environment, and
//! the storage binding names.

use crate::accounts::config::AccountsConfig;
use crate::billing::config::BillingConfig;
use crate::chat::config::ChatConfig;
use crate::core::cors::CorsPolicy;
use crate::core::host_routes::HostRoutes;
use crate::core::settings::{optional, ConfigError, Loader, VarSource};
use crate::error::AppError;
use crate::identity::config::AuthConfig;
use crate::ledger::config::LedgerConfig;
use crate::log::RequestLogging;
use crate::plans::rules::PlanCatalog;
use crate::provider_keys::config::ProviderConfig;
use crate::upstream::config::Upstreams;
use crate::voice::config::VoiceConfig;

/// The D1 binding holding every table.
pub const D1_BINDING: &str = "DB";
/// The KV binding used as a cache (JWKS, session presence); never a source of truth.
pub const KV_BINDING: &str = "CACHE";

impl VarSource for worker::Env {
    fn get(&self, name: &str) -> Option<String> {
        // Plain vars and secrets are both string bindings; `var` reads either.
        self.var(name).ok().map(|v| v.to_string())
    }
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
    /// Who may call, and how their credentials are checked.
    pub auth: AuthConfig,
    /// `PLAN_CATALOG`: the plans (a JSON list); default the four default plans.
    pub plans: PlanCatalog,
    /// `RESERVATION_TTL_SECS`: how long an unsettled usage reservation holds quota before it
    /// is released; default 600 (10 minutes), 10 to 86400.
    pub reservation_ttl_secs: u64,
    /// Provider keys: OpenRouter keys bought with credits, and the pre-created key pool.
    pub providers: ProviderConfig,
    /// Stripe billing and its webhooks.
    pub billing: BillingConfig,
    /// The token ledger's catalogs: packs for sale and social tasks.
    pub ledger: LedgerConfig,
    /// Tollgate's own email and password accounts, and the mail they send.
    pub accounts: AccountsConfig,
    /// The model API the metered proxy calls (`/v1/chat/completions`, site chat).
    pub chat: ChatConfig,
    /// The text-to-speech API `/voice` calls.
    pub voice: VoiceConfig,
    /// `CHAT_LEGACY_SITE`: the site id (`site_...`) a `/chat` or `/voice` request without
    /// `X-Site-Key` is served as (legacy mode); unset (default), such a request is `401`.
    pub legacy_site: Option<String>,
    /// `HOST_ROUTES`: `host=/path,...`; a `POST /` (or `OPTIONS /`) to a mapped host is served
    /// as its path. Default none; invalid: recorded as a problem, no host is mapped.
    pub host_routes: HostRoutes,
    /// `REQUEST_LOG`: `all` (default) writes one line per request, `failures` only for
    /// 4xx and 5xx answers.
    pub request_log: RequestLogging,
    /// The first invalid setting the pipeline itself needs (every route but health is
    /// closed while there is one).
    pub core_problem: Option<&'static str>,
    /// Every invalid setting, for `/api/health` and the log.
    pub problems: Vec<ConfigError>,
}

impl Config {
    /// Reads every setting. It never fails: an invalid setting is recorded in
    /// [`Config::problems`] and disables only what needs it —
    /// - a setting of the pipeline itself (CORS, body limits, plans, reservations) closes
    ///   every route but health ([`Config::core_problem`]);
    /// - a Stripe, provider-key or Clerk setting holds back that feature's secrets, so its
    ///   routes answer `503 not_configured` naming the setting;
    /// - a token setting stops that kind of token from being accepted.
    ///
    /// The sections are read in this order, which is the order their problems are listed in;
    /// a section may look at what an earlier one found (an invalid upstream URL holds back
    /// the secrets of the feature that calls it).
    pub fn load(source: &dyn VarSource) -> Self {
        let mut l = Loader::new(source);
        let core = l.mark();
        let cors = crate::http::config::cors(&mut l);
        let max_body_bytes = crate::http::config::max_body_bytes(&mut l);
        let max_webhook_body_bytes = crate::http::config::max_webhook_body_bytes(&mut l);
        let plans = crate::plans::config::catalog(&mut l);
        let reservation_ttl_secs = crate::metering::config::reservation_ttl_secs(&mut l);
        let core_problem = l.first_since(core);
        let upstreams = Upstreams::load(&mut l);
        let auth = AuthConfig::load(&mut l);
        let providers = ProviderConfig::load(&mut l);
        let mut billing = BillingConfig::load(&mut l);
        billing.load_platform_upgrade_plan(&mut l, &plans);
        let ledger = LedgerConfig::load(&mut l);
        let environment = optional(source, "ENVIRONMENT").unwrap_or_else(|| "local".to_owned());
        let accounts = AccountsConfig::load(&mut l, &environment);
        let chat = ChatConfig::load(&mut l);
        let voice = VoiceConfig::load(&mut l);
        let legacy_site = crate::sites::config::legacy_site(&mut l);
        let host_routes = crate::http::config::host_routes(&mut l);
        let request_log = crate::http::config::request_log(&mut l);
        Self {
            environment,
            cors,
            max_body_bytes,
            max_webhook_body_bytes,
            upstreams,
            auth,
            plans,
            reservation_ttl_secs,
            providers,
            billing,
            ledger,
            accounts,
            chat,
            voice,
            legacy_site,
            host_routes,
            request_log,
            core_problem,
            problems: l.problems,
        }
    }

    /// `not_configured` naming the first invalid setting the pipeline itself needs, if any.
    pub fn core_unusable(&self) -> Option<AppError> {
        self.core_problem.map(|setting| AppError::NotConfigured {
            setting: setting.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::testing::not_configured;
    use crate::core::settings::PLACEHOLDER;
    use std::collections::HashMap;

    /// The first problem loading `vars` records (the test expects one).
    fn first_problem(vars: &HashMap<&str, &str>) -> ConfigError {
        Config::load(vars)
            .problems
            .into_iter()
            .next()
            .expect("an invalid setting is recorded")
    }

    const GOOD_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn a_placeholder_sealing_key_disables_only_what_seals() {
        let vars = HashMap::from([
            ("KEY_ENCRYPTION_KEY", PLACEHOLDER),
            ("PROVISIONING_API_KEY", "sk-or-prov"),
            ("STRIPE_SECRET_KEY", "sk_test_x"),
        ]);
        let config = Config::load(&vars);
        assert_eq!(config.core_problem, None);
        assert!(config.core_unusable().is_none());
        assert_eq!(
            config.providers.keyring().unwrap_err(),
            not_configured("KEY_ENCRYPTION_KEY")
        );
        assert_eq!(
            config.providers.provisioning_key.require(),
            Ok("sk-or-prov")
        );
        assert_eq!(config.billing.secret_key.require(), Ok("sk_test_x"));
        let names: Vec<_> = config.problems.iter().map(|p| p.setting).collect();
        assert_eq!(names, ["KEY_ENCRYPTION_KEY"]);
        assert!(config.problems[0].fix().contains("/dev/urandom"));
    }

    #[test]
    fn an_invalid_feature_setting_disables_that_feature_by_name() {
        let vars = HashMap::from([
            ("STRIPE_SECRET_KEY", "sk_test_x"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("STRIPE_TIMEOUT_MS", "soon"),
            ("PROVISIONING_API_KEY", "sk-or-prov"),
            ("OPENROUTER_API_URL", "openrouter"),
            ("KEY_ENCRYPTION_KEY", GOOD_KEY),
            ("JWT_SECRET", "s3cret"),
            ("JWT_CLOCK_SKEW_SECS", "-1"),
            ("CLERK_DOMAIN", "clerk.example.com"),
        ]);
        let config = Config::load(&vars);
        assert_eq!(config.core_problem, None);
        for secret in [&config.billing.secret_key, &config.billing.webhook_secret] {
            assert_eq!(secret.require(), Err(not_configured("STRIPE_TIMEOUT_MS")));
        }
        assert_eq!(
            config.providers.provisioning_key.require(),
            Err(not_configured("OPENROUTER_API_URL"))
        );
        assert!(
            config.providers.keyring().is_ok(),
            "sealing needs no OpenRouter"
        );
        assert_eq!(
            config.auth.jwt_secret.require(),
            Err(not_configured("JWT_CLOCK_SKEW_SECS"))
        );
        assert!(config.auth.clerk.is_none());
        assert_eq!(config.auth.clerk_problem, Some("JWT_CLOCK_SKEW_SECS"));
    }

    #[test]
    fn an_invalid_pipeline_setting_closes_all_but_health() {
        for (name, value) in [
            ("PLAN_CATALOG", "[]"),
            ("MAX_BODY_BYTES", "lots"),
            ("CORS_ALLOWED_ORIGINS", "https://*.example.com"),
            ("RESERVATION_TTL_SECS", "5"),
        ] {
            let config = Config::load(&HashMap::from([(name, value)]));
            assert_eq!(config.core_problem, Some(name));
            assert_eq!(config.core_unusable(), Some(not_configured(name)));
        }
        assert_eq!(Config::load(&HashMap::new()).core_problem, None);
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::load(&HashMap::new());
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
        let config = Config::load(&vars);
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
            ("PLAN_CATALOG", "[]"),
            ("PLAN_CATALOG", r#"[{"id":"free"}]"#),
            ("RESERVATION_TTL_SECS", "5"),
        ] {
            let err = first_problem(&HashMap::from([(name, value)]));
            assert_eq!(err.setting, name, "{err}");
        }
    }

    #[test]
    fn a_feature_setting_never_closes_the_pipeline() {
        let tasks = r#"[{"id":"a","title":"T","platform":"x","url":"https://x.com","reward":5}]"#;
        for vars in [
            HashMap::from([("PLATFORM_UPGRADE_PLAN", "platinum")]),
            HashMap::from([("TOKEN_PACKS", "[{\"id\": 1}]"), ("SOCIAL_TASKS", tasks)]),
        ] {
            let config = Config::load(&vars);
            assert!(!config.problems.is_empty(), "{vars:?}");
            assert_eq!(config.core_problem, None, "the rest of the API is open");
        }
    }

    #[test]
    fn the_environment_reaches_the_sections_that_read_it() {
        let local = Config::load(&HashMap::new());
        assert!(local.accounts.log_mail);
        assert!(local.problems.is_empty(), "{:?}", local.problems);
        // Deployed, the mailed links need the app's URL, and nothing else is missing.
        let deployed = HashMap::from([("ENVIRONMENT", "prod")]);
        assert!(!Config::load(&deployed).accounts.log_mail);
        assert_eq!(first_problem(&deployed).setting, "APP_URL");
    }

    #[test]
    fn each_section_is_assembled_into_the_config() {
        let config = Config::load(&HashMap::from([("CHAT_LEGACY_SITE", "site_abc123")]));
        assert_eq!(config.legacy_site.as_deref(), Some("site_abc123"));
        assert_eq!(config.reservation_ttl_secs, 600);
        assert_eq!(config.plans.default_plan().id, "free");
        assert_eq!(config.request_log, RequestLogging::All);
        assert!(config.host_routes.is_empty());
    }
}
