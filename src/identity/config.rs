//! Identity's settings: the operator's and the end users' Clerk instances, HMAC tokens,
//! operator roles, Clerk's Backend API key, webhook secret and sign-in page, and the OAuth
//! providers.

use crate::core::settings::{
    base_url, boolean, list, number, optional, ConfigError, Loader, Secret, VarSource,
};
use crate::identity::rules::publishable_key;
use crate::identity::rules::roles::RoleConfig;

/// Clerk session tokens are accepted when the instance is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkConfig {
    /// `CLERK_JWKS_URL`, or `https://<domain>/.well-known/jwks.json` where the domain is
    /// `CLERK_DOMAIN` or the host `CLERK_PUBLISHABLE_KEY` encodes (the end-user instance's
    /// settings are the same names prefixed `END_USER_`).
    pub jwks_url: String,
    /// `CLERK_ISSUER`, or `https://<domain>`; required with `CLERK_JWKS_URL`.
    pub issuer: String,
    /// `CLERK_AUTHORIZED_PARTIES`: comma-separated allowed `azp` origins; default any.
    pub authorized_parties: Vec<String>,
    /// `CLERK_JWKS_CACHE_TTL_SECS`: how long fetched keys are trusted; default 3600, min 60.
    pub jwks_cache_ttl_secs: u64,
    /// `CLERK_JWKS_MIN_REFETCH_SECS`: an unknown `kid` re-fetches the JWKS at most this
    /// often per isolate; default 30.
    pub jwks_min_refetch_secs: u64,
}

/// Identity settings: token verification, roles, Clerk's webhook and sign-in.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Clerk, when `CLERK_JWKS_URL` or `CLERK_DOMAIN` is set (and valid).
    pub clerk: Option<ClerkConfig>,
    /// The invalid setting that keeps Clerk tokens from being accepted, if any.
    pub clerk_problem: Option<&'static str>,
    /// The platforms' end-user Clerk instance, when `END_USER_CLERK_JWKS_URL` (with
    /// `END_USER_CLERK_ISSUER`), `END_USER_CLERK_DOMAIN` or `END_USER_CLERK_PUBLISHABLE_KEY`
    /// is set (and valid). Its tokens are accepted only on end-user routes, and never where
    /// an operator token is.
    pub end_user_clerk: Option<ClerkConfig>,
    /// The invalid setting that keeps end-user tokens from being accepted, if any.
    pub end_user_clerk_problem: Option<&'static str>,
    /// `JWT_SECRET` (alias `JWT_SECRET_CLOUD`): the HS256 secret; HMAC tokens are refused
    /// while it is unset.
    pub jwt_secret: Secret,
    /// `JWT_REQUIRE_EXP`: whether HMAC tokens must carry `exp`; default true.
    pub jwt_require_exp: bool,
    /// `JWT_TTL_SECS`: lifetime of HMAC tokens issued by `/api/auth/refresh`; default 3600.
    pub jwt_ttl_secs: i64,
    /// `JWT_CLOCK_SKEW_SECS`: tolerance on `exp`/`nbf`; default 5, at most 300.
    pub clock_skew_secs: i64,
    /// `ADMIN_USER_IDS`, `STAFF_USER_IDS`, `STAFF_ORG_ID`.
    pub roles: RoleConfig,
    /// `CLERK_SECRET_KEY`: Clerk's Backend API (session revoke, token refresh).
    pub clerk_secret_key: Secret,
    /// `CLERK_WEBHOOK_SECRET`: the `whsec_...` signing secret of the Clerk webhook endpoint.
    pub clerk_webhook_secret: Secret,
    /// `CLERK_SIGN_IN_URL`: the Clerk-hosted sign-in page OAuth sign-ins are sent to.
    pub clerk_sign_in_url: Option<String>,
    /// `OAUTH_PROVIDERS`: the providers `/api/auth/oauth/:provider` accepts; default
    /// google, github, apple, microsoft, discord.
    pub oauth_providers: Vec<String>,
}

impl AuthConfig {
    /// Identity settings. An invalid Clerk setting stops Clerk tokens (and Clerk's Backend
    /// API) with `not_configured`; an invalid token setting stops HMAC tokens the same way.
    pub(crate) fn load(l: &mut Loader<'_>) -> Self {
        let source = l.source;
        let clerk_mark = l.mark();
        let clerk = l.or(ClerkConfig::load(source, &OPERATOR_CLERK), None);
        let mut clerk_problem = l.first_since(clerk_mark);
        let end_user_mark = l.mark();
        let end_user_clerk = l.or(ClerkConfig::load(source, &END_USER_CLERK), None);
        if let (Some(operator), Some(end_user)) = (&clerk, &end_user_clerk) {
            // The issuer is what tells the two kinds of token apart.
            if operator.issuer == end_user.issuer {
                l.problems.push(ConfigError {
                    setting: ClerkConfig::issuer_setting(source, &END_USER_CLERK),
                    problem: "names the operator's Clerk instance (the same issuer): end users \
                              need an instance of their own"
                        .to_owned(),
                });
            }
        }
        let mut end_user_clerk_problem = l.first_since(end_user_mark);
        let token_mark = l.mark();
        let jwt_require_exp = l.or(boolean(source, "JWT_REQUIRE_EXP", true), true);
        let jwt_ttl_secs = l.or(number(source, "JWT_TTL_SECS", 3600, 60..=30 * 86_400), 3600);
        let clock_skew_secs = l.or(number(source, "JWT_CLOCK_SKEW_SECS", 5, 0..=300), 5);
        let mut jwt_secret = l.secret(Secret::read_with_alias(
            source,
            "JWT_SECRET",
            "JWT_SECRET_CLOUD",
        ));
        if let Some(setting) = l.first_since(token_mark) {
            jwt_secret.block(setting);
            // The clock skew applies to Clerk tokens as well.
            if setting == "JWT_CLOCK_SKEW_SECS" {
                clerk_problem = clerk_problem.or(Some(setting));
                end_user_clerk_problem = end_user_clerk_problem.or(Some(setting));
            }
        }
        let mut clerk_secret_key = l.secret(Secret::read(source, "CLERK_SECRET_KEY"));
        if l.is_invalid("CLERK_API_URL") {
            clerk_secret_key.block("CLERK_API_URL");
        }
        let clerk_sign_in_url = l.or(
            optional(source, "CLERK_SIGN_IN_URL")
                .map(|_| base_url(source, "CLERK_SIGN_IN_URL", ""))
                .transpose(),
            None,
        );
        Self {
            clerk: if clerk_problem.is_some() { None } else { clerk },
            clerk_problem,
            end_user_clerk: if end_user_clerk_problem.is_some() {
                None
            } else {
                end_user_clerk
            },
            end_user_clerk_problem,
            jwt_secret,
            jwt_require_exp,
            jwt_ttl_secs,
            clock_skew_secs,
            roles: RoleConfig {
                admin_user_ids: list(source, "ADMIN_USER_IDS"),
                staff_user_ids: list(source, "STAFF_USER_IDS"),
                staff_org_id: optional(source, "STAFF_ORG_ID"),
            },
            clerk_secret_key,
            clerk_webhook_secret: {
                let mut secret = l.secret(Secret::read(source, "CLERK_WEBHOOK_SECRET"));
                if let Ok(value) = secret.require() {
                    if crate::webhooks::rules::svix::check_secrets(value).is_err() {
                        l.problems.push(ConfigError {
                            setting: "CLERK_WEBHOOK_SECRET",
                            problem: "lists a value that is not a whsec_ secret (base64 after \
                                      the prefix)"
                                .to_owned(),
                        });
                        secret.block("CLERK_WEBHOOK_SECRET");
                    }
                }
                secret
            },
            clerk_sign_in_url,
            oauth_providers: {
                let configured = list(source, "OAUTH_PROVIDERS");
                if configured.is_empty() {
                    ["google", "github", "apple", "microsoft", "discord"]
                        .map(str::to_owned)
                        .to_vec()
                } else {
                    configured
                }
            },
        }
    }
}

/// The names of one Clerk instance's settings: the operator's (`CLERK_*`) or the platform
/// end users' (`END_USER_CLERK_*`).
struct ClerkSettings {
    domain: &'static str,
    publishable_key: &'static str,
    jwks_url: &'static str,
    issuer: &'static str,
    authorized_parties: &'static str,
    jwks_cache_ttl_secs: &'static str,
    jwks_min_refetch_secs: &'static str,
}

/// The operator's instance: Tollgate's own users sign in with it.
const OPERATOR_CLERK: ClerkSettings = ClerkSettings {
    domain: "CLERK_DOMAIN",
    publishable_key: "CLERK_PUBLISHABLE_KEY",
    jwks_url: "CLERK_JWKS_URL",
    issuer: "CLERK_ISSUER",
    authorized_parties: "CLERK_AUTHORIZED_PARTIES",
    jwks_cache_ttl_secs: "CLERK_JWKS_CACHE_TTL_SECS",
    jwks_min_refetch_secs: "CLERK_JWKS_MIN_REFETCH_SECS",
};

/// The platforms' end users' instance: its tokens are accepted only on end-user routes.
const END_USER_CLERK: ClerkSettings = ClerkSettings {
    domain: "END_USER_CLERK_DOMAIN",
    publishable_key: "END_USER_CLERK_PUBLISHABLE_KEY",
    jwks_url: "END_USER_CLERK_JWKS_URL",
    issuer: "END_USER_CLERK_ISSUER",
    authorized_parties: "END_USER_CLERK_AUTHORIZED_PARTIES",
    jwks_cache_ttl_secs: "END_USER_CLERK_JWKS_CACHE_TTL_SECS",
    jwks_min_refetch_secs: "END_USER_CLERK_JWKS_MIN_REFETCH_SECS",
};

impl ClerkConfig {
    /// One instance, from its domain (`*_DOMAIN`, else the host a `*_PUBLISHABLE_KEY`
    /// names), or from `*_JWKS_URL` with `*_ISSUER` (each of which wins over the domain's).
    fn load(source: &dyn VarSource, names: &ClerkSettings) -> Result<Option<Self>, ConfigError> {
        let from_key = optional(source, names.publishable_key)
            .map(|key| {
                publishable_key::domain(&key).map_err(|problem| ConfigError {
                    setting: names.publishable_key,
                    problem,
                })
            })
            .transpose()?;
        let domain = optional(source, names.domain)
            .map(|d| {
                let d = d.trim_start_matches("https://").trim_end_matches('/');
                d.to_owned()
            })
            .or(from_key);
        let jwks_url = match (optional(source, names.jwks_url), &domain) {
            (Some(_), _) => base_url(source, names.jwks_url, "")?,
            (None, Some(domain)) => format!("https://{domain}/.well-known/jwks.json"),
            (None, None) => return Ok(None),
        };
        let issuer = match (optional(source, names.issuer), &domain) {
            (Some(issuer), _) => issuer.trim_end_matches('/').to_owned(),
            (None, Some(domain)) => format!("https://{domain}"),
            (None, None) => {
                return Err(ConfigError {
                    setting: names.issuer,
                    problem: format!(
                        "is required when {} is set (or set {} or {})",
                        names.jwks_url, names.domain, names.publishable_key
                    ),
                })
            }
        };
        Ok(Some(Self {
            jwks_url,
            issuer,
            authorized_parties: list(source, names.authorized_parties),
            jwks_cache_ttl_secs: number(source, names.jwks_cache_ttl_secs, 3600, 60..=86_400)?,
            jwks_min_refetch_secs: number(source, names.jwks_min_refetch_secs, 30, 0..=3600)?,
        }))
    }

    /// The setting that named this instance's issuer, for a problem with it.
    fn issuer_setting(source: &dyn VarSource, names: &ClerkSettings) -> &'static str {
        if optional(source, names.issuer).is_some() {
            names.issuer
        } else if optional(source, names.domain).is_some() {
            names.domain
        } else {
            names.publishable_key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::testing::not_configured;
    use crate::core::settings::PLACEHOLDER;
    use std::collections::HashMap;

    /// Identity's settings alone, read from `vars`, with the problems they record.
    fn load(vars: &HashMap<&str, &str>) -> (AuthConfig, Vec<ConfigError>) {
        let mut l = Loader::new(vars);
        let auth = AuthConfig::load(&mut l);
        (auth, l.problems)
    }

    /// Identity's settings alone, read from `vars`.
    fn auth_from(vars: &HashMap<&str, &str>) -> AuthConfig {
        load(vars).0
    }

    /// The first problem loading `vars` records (the test expects one).
    fn first_problem(vars: &HashMap<&str, &str>) -> ConfigError {
        load(vars)
            .1
            .into_iter()
            .next()
            .expect("an invalid setting is recorded")
    }

    #[test]
    fn a_placeholder_jwt_secret_is_never_a_signing_key() {
        let auth = auth_from(&HashMap::from([("JWT_SECRET", PLACEHOLDER)]));
        assert!(auth.jwt_secret.is_blocked());
        assert_eq!(auth.jwt_secret.require(), Err(not_configured("JWT_SECRET")));
    }

    #[test]
    fn a_clerk_webhook_secret_list_with_a_bad_entry_is_named() {
        // A well-formed made-up secret (24 zero bytes), built here rather than written out.
        let good = format!("whsec_{}", "A".repeat(32));
        let good = good.as_str();
        let list = format!("{good}, not-a-secret!");
        let (auth, problems) = load(&HashMap::from([("CLERK_WEBHOOK_SECRET", list.as_str())]));
        assert_eq!(
            auth.clerk_webhook_secret.require(),
            Err(not_configured("CLERK_WEBHOOK_SECRET"))
        );
        assert_eq!(problems[0].setting, "CLERK_WEBHOOK_SECRET");
        assert!(!problems[0].problem.contains("AAAA"));
        let (auth, problems) = load(&HashMap::from([("CLERK_WEBHOOK_SECRET", good)]));
        assert!(problems.is_empty());
        assert_eq!(auth.clerk_webhook_secret.require(), Ok(good));
    }

    #[test]
    fn clerk_is_configured_by_jwks_url_or_domain() {
        assert!(auth_from(&HashMap::new()).clerk.is_none());
        let by_domain = HashMap::from([("CLERK_DOMAIN", "clerk.example.com")]);
        let clerk = auth_from(&by_domain).clerk.unwrap();
        assert_eq!(
            clerk.jwks_url,
            "https://clerk.example.com/.well-known/jwks.json"
        );
        assert_eq!(clerk.issuer, "https://clerk.example.com");
        let by_url = HashMap::from([
            ("CLERK_JWKS_URL", "http://127.0.0.1:9/jwks"),
            ("CLERK_ISSUER", "https://clerk.test/"),
            ("CLERK_AUTHORIZED_PARTIES", "https://a.test, https://b.test"),
        ]);
        let clerk = auth_from(&by_url).clerk.unwrap();
        assert_eq!(clerk.issuer, "https://clerk.test");
        assert_eq!(
            clerk.authorized_parties,
            ["https://a.test", "https://b.test"]
        );
        let no_issuer = HashMap::from([("CLERK_JWKS_URL", "https://clerk.test/jwks")]);
        assert_eq!(first_problem(&no_issuer).setting, "CLERK_ISSUER");
    }

    /// A publishable key for `host` (base64 of `host$`, as Clerk makes them).
    fn publishable(prefix: &str, host: &str) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{host}$"));
        format!("{prefix}{encoded}")
    }

    #[test]
    fn a_publishable_key_names_the_instance_domain() {
        let key = publishable("pk_live_", "clerk.example.com");
        let clerk = auth_from(&HashMap::from([("CLERK_PUBLISHABLE_KEY", key.as_str())]))
            .clerk
            .unwrap();
        assert_eq!(
            clerk.jwks_url,
            "https://clerk.example.com/.well-known/jwks.json"
        );
        assert_eq!(clerk.issuer, "https://clerk.example.com");
        // The explicit domain, JWKS URL and issuer win over what the key encodes.
        let both = HashMap::from([
            ("CLERK_PUBLISHABLE_KEY", key.as_str()),
            ("CLERK_DOMAIN", "clerk.other.test"),
        ]);
        assert_eq!(
            auth_from(&both).clerk.unwrap().issuer,
            "https://clerk.other.test"
        );
        let explicit = HashMap::from([
            ("CLERK_PUBLISHABLE_KEY", key.as_str()),
            ("CLERK_JWKS_URL", "http://127.0.0.1:9/jwks"),
            ("CLERK_ISSUER", "https://issuer.test"),
        ]);
        let clerk = auth_from(&explicit).clerk.unwrap();
        assert_eq!(
            (clerk.jwks_url.as_str(), clerk.issuer.as_str()),
            ("http://127.0.0.1:9/jwks", "https://issuer.test")
        );
    }

    #[test]
    fn an_invalid_publishable_key_disables_that_instance_by_name() {
        for name in ["CLERK_PUBLISHABLE_KEY", "END_USER_CLERK_PUBLISHABLE_KEY"] {
            for bad in ["sk_test_abc", "pk_test_%%%", "pk_test_bm90IGEgaG9zdA=="] {
                let vars = HashMap::from([(name, bad)]);
                let (auth, problems) = load(&vars);
                let problem = &problems[0];
                assert_eq!(problem.setting, name, "{bad}");
                assert!(
                    problem.fix().contains("publishable key"),
                    "{}",
                    problem.fix()
                );
                assert!(auth.clerk.is_none() && auth.end_user_clerk.is_none());
            }
        }
        let auth = auth_from(&HashMap::from([("CLERK_PUBLISHABLE_KEY", "pk_test_%%%")]));
        assert_eq!(auth.clerk_problem, Some("CLERK_PUBLISHABLE_KEY"));
        assert_eq!(auth.end_user_clerk_problem, None);
    }

    #[test]
    fn the_end_user_instance_has_settings_of_its_own() {
        let none = auth_from(&HashMap::from([("CLERK_DOMAIN", "clerk.example.com")]));
        assert!(none.end_user_clerk.is_none() && none.end_user_clerk_problem.is_none());

        let by_domain = HashMap::from([
            ("CLERK_DOMAIN", "clerk.example.com"),
            ("END_USER_CLERK_DOMAIN", "https://clerk.users.example.com/"),
            (
                "END_USER_CLERK_AUTHORIZED_PARTIES",
                "https://app.example.com",
            ),
            ("END_USER_CLERK_JWKS_CACHE_TTL_SECS", "600"),
            ("END_USER_CLERK_JWKS_MIN_REFETCH_SECS", "5"),
        ]);
        let auth = auth_from(&by_domain);
        let end_user = auth.end_user_clerk.unwrap();
        assert_eq!(
            end_user,
            ClerkConfig {
                jwks_url: "https://clerk.users.example.com/.well-known/jwks.json".to_owned(),
                issuer: "https://clerk.users.example.com".to_owned(),
                authorized_parties: vec!["https://app.example.com".to_owned()],
                jwks_cache_ttl_secs: 600,
                jwks_min_refetch_secs: 5,
            }
        );
        // The operator's instance keeps its own defaults.
        let operator = auth.clerk.unwrap();
        assert_eq!(operator.issuer, "https://clerk.example.com");
        assert!(operator.authorized_parties.is_empty());
        assert_eq!(
            (operator.jwks_cache_ttl_secs, operator.jwks_min_refetch_secs),
            (3600, 30)
        );

        let key = publishable("pk_test_", "users.clerk.accounts.dev");
        let by_key = HashMap::from([("END_USER_CLERK_PUBLISHABLE_KEY", key.as_str())]);
        let auth = auth_from(&by_key);
        assert!(auth.clerk.is_none());
        assert_eq!(
            auth.end_user_clerk.unwrap().issuer,
            "https://users.clerk.accounts.dev"
        );

        let by_url = HashMap::from([
            ("END_USER_CLERK_JWKS_URL", "http://127.0.0.1:9/jwks"),
            ("END_USER_CLERK_ISSUER", "https://users.test/"),
        ]);
        let end_user = auth_from(&by_url).end_user_clerk.unwrap();
        assert_eq!(end_user.issuer, "https://users.test");
        assert_eq!(end_user.jwks_url, "http://127.0.0.1:9/jwks");
    }

    #[test]
    fn an_invalid_end_user_setting_disables_only_end_user_tokens() {
        for (name, value, named) in [
            (
                "END_USER_CLERK_JWKS_URL",
                "https://users.test/jwks",
                "END_USER_CLERK_ISSUER",
            ),
            (
                "END_USER_CLERK_JWKS_URL",
                "users.test/jwks",
                "END_USER_CLERK_JWKS_URL",
            ),
            (
                "END_USER_CLERK_JWKS_CACHE_TTL_SECS",
                "5",
                "END_USER_CLERK_JWKS_CACHE_TTL_SECS",
            ),
            (
                "END_USER_CLERK_JWKS_MIN_REFETCH_SECS",
                "soon",
                "END_USER_CLERK_JWKS_MIN_REFETCH_SECS",
            ),
        ] {
            let mut vars = HashMap::from([("CLERK_DOMAIN", "clerk.example.com"), (name, value)]);
            if name != "END_USER_CLERK_JWKS_URL" {
                vars.insert("END_USER_CLERK_DOMAIN", "clerk.users.example.com");
            }
            let auth = auth_from(&vars);
            assert!(auth.end_user_clerk.is_none(), "{name}={value}");
            assert_eq!(auth.end_user_clerk_problem, Some(named), "{name}={value}");
            assert!(auth.clerk.is_some() && auth.clerk_problem.is_none());
        }
        // The operator's settings never configure (or break) the end users' instance.
        let auth = auth_from(&HashMap::from([
            ("CLERK_DOMAIN", "clerk.example.com"),
            ("END_USER_CLERK_DOMAIN", "clerk.users.example.com"),
            ("CLERK_JWKS_CACHE_TTL_SECS", "5"),
        ]));
        assert_eq!(auth.clerk_problem, Some("CLERK_JWKS_CACHE_TTL_SECS"));
        assert!(auth.end_user_clerk.is_some());
        // The clock skew applies to both.
        let auth = auth_from(&HashMap::from([
            ("END_USER_CLERK_DOMAIN", "clerk.users.example.com"),
            ("JWT_CLOCK_SKEW_SECS", "-1"),
        ]));
        assert_eq!(auth.end_user_clerk_problem, Some("JWT_CLOCK_SKEW_SECS"));
        assert!(auth.end_user_clerk.is_none());
    }

    #[test]
    fn two_instances_with_one_issuer_is_a_problem_of_the_end_user_one() {
        let key = publishable("pk_live_", "clerk.example.com");
        for (vars, named) in [
            (
                vec![
                    ("CLERK_DOMAIN", "clerk.example.com"),
                    ("END_USER_CLERK_DOMAIN", "clerk.example.com"),
                ],
                "END_USER_CLERK_DOMAIN",
            ),
            (
                vec![
                    ("CLERK_DOMAIN", "clerk.example.com"),
                    ("END_USER_CLERK_PUBLISHABLE_KEY", key.as_str()),
                ],
                "END_USER_CLERK_PUBLISHABLE_KEY",
            ),
            (
                vec![
                    ("CLERK_PUBLISHABLE_KEY", key.as_str()),
                    ("END_USER_CLERK_JWKS_URL", "http://127.0.0.1:9/jwks"),
                    ("END_USER_CLERK_ISSUER", "https://clerk.example.com/"),
                ],
                "END_USER_CLERK_ISSUER",
            ),
        ] {
            let (auth, problems) = load(&vars.into_iter().collect::<HashMap<_, _>>());
            assert_eq!(auth.end_user_clerk_problem, Some(named));
            assert!(auth.end_user_clerk.is_none());
            assert!(auth.clerk.is_some(), "the operator's instance stays");
            assert_eq!(problems[0].setting, named);
            assert!(problems[0].problem.contains("operator"));
        }
    }

    #[test]
    fn auth_settings_have_defaults_and_bounds() {
        let auth = auth_from(&HashMap::new());
        assert!(auth.jwt_require_exp);
        assert_eq!(auth.clock_skew_secs, 5);
        assert!(!auth.jwt_secret.is_set());
        let cloud = HashMap::from([("JWT_SECRET_CLOUD", "s3cret")]);
        assert_eq!(auth_from(&cloud).jwt_secret.require(), Ok("s3cret"));
        for (name, value) in [
            ("JWT_REQUIRE_EXP", "maybe"),
            ("JWT_CLOCK_SKEW_SECS", "3600"),
            ("CLERK_SIGN_IN_URL", "accounts.example.com"),
        ] {
            let err = first_problem(&HashMap::from([(name, value)]));
            assert_eq!(err.setting, name, "{err}");
        }
        let admins = HashMap::from([("ADMIN_USER_IDS", "user_a, usr_b,")]);
        let roles = auth_from(&admins).roles;
        assert_eq!(roles.admin_user_ids, ["user_a", "usr_b"]);
    }
}
