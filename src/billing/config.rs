//! Billing's settings: Stripe's secrets, where Checkout and the portal send the customer
//! back to, webhook retries, and the upgrade instructions shown while Stripe is not
//! configured.

use crate::core::settings::{base_url, number, optional, ConfigError, Loader, Secret};
use crate::error::AppError;
use crate::plans::rules::PlanCatalog;

/// Stripe billing: the API key, the webhook endpoint secret, where Checkout and the portal
/// send the customer back to, and webhook retries.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// `STRIPE_SECRET_KEY`: Stripe's API key (`sk_live_...`, `sk_test_...`, or restricted).
    pub secret_key: Secret,
    /// `STRIPE_WEBHOOK_SECRET`: the `whsec_...` signing secret of the webhook endpoint.
    pub webhook_secret: Secret,
    /// `STRIPE_SUCCESS_URL`: where Checkout sends a customer who paid (a request may name
    /// another URL on an allowed origin).
    pub success_url: Option<String>,
    /// `STRIPE_CANCEL_URL`: where Checkout sends a customer who gave up.
    pub cancel_url: Option<String>,
    /// `STRIPE_PORTAL_RETURN_URL`: where the Billing Portal sends the customer back to.
    pub portal_return_url: Option<String>,
    /// `STRIPE_TIMEOUT_MS`: how long one Stripe call may take; default 10000.
    pub timeout_ms: u64,
    /// `WEBHOOK_MAX_ATTEMPTS`: a failed event is retried until it has been tried this often;
    /// default 10.
    pub webhook_max_attempts: u32,
    /// `UPGRADE_URL`: where people upgrade while Stripe is not configured (the plan endpoints' upgrade
    /// instructions); default none. Invalid: the instructions answer `not_configured`.
    upgrade_url: Result<Option<String>, &'static str>,
    /// `PLATFORM_UPGRADE_PLAN`: the plan `POST /create-checkout` sells a developer when the
    /// body names none; default `basic`. Not a plan of the catalog: a recorded problem, and
    /// that route answers `not_configured` naming it.
    platform_upgrade_plan: Result<String, &'static str>,
}

impl BillingConfig {
    /// Billing settings; any invalid one holds back both Stripe secrets, so billing answers
    /// `not_configured` naming it instead of running half-configured.
    pub(crate) fn load(l: &mut Loader<'_>) -> Self {
        let mark = l.mark();
        let source = l.source;
        let url = |name: &'static str| {
            optional(source, name)
                .map(|_| base_url(source, name, ""))
                .transpose()
        };
        let mut config = Self {
            secret_key: l.secret(Secret::read(source, "STRIPE_SECRET_KEY")),
            webhook_secret: l.secret(Secret::read(source, "STRIPE_WEBHOOK_SECRET")),
            success_url: l.or(url("STRIPE_SUCCESS_URL"), None),
            cancel_url: l.or(url("STRIPE_CANCEL_URL"), None),
            portal_return_url: l.or(url("STRIPE_PORTAL_RETURN_URL"), None),
            timeout_ms: l.or(
                number(source, "STRIPE_TIMEOUT_MS", 10_000, 100..=60_000),
                10_000,
            ),
            webhook_max_attempts: l.or(number(source, "WEBHOOK_MAX_ATTEMPTS", 10, 1..=100), 10),
            upgrade_url: Ok(None),
            platform_upgrade_plan: Ok(DEFAULT_PLATFORM_UPGRADE_PLAN.to_owned()),
        };
        let stripe_api = l.is_invalid("STRIPE_API_URL").then_some("STRIPE_API_URL");
        if let Some(setting) = l.first_since(mark).or(stripe_api) {
            config.secret_key.block(setting);
            config.webhook_secret.block(setting);
        }
        // Not a Stripe setting: a bad one breaks only the instructions that show it.
        config.upgrade_url = url("UPGRADE_URL").map_err(|err| {
            l.problems.push(err);
            "UPGRADE_URL"
        });
        config
    }
}

/// The plan `POST /create-checkout` sells when neither the body nor `PLATFORM_UPGRADE_PLAN`
/// names one.
const DEFAULT_PLATFORM_UPGRADE_PLAN: &str = "basic";

impl BillingConfig {
    /// Reads `PLATFORM_UPGRADE_PLAN` against the catalog (loaded before billing).
    pub(crate) fn load_platform_upgrade_plan(&mut self, l: &mut Loader<'_>, plans: &PlanCatalog) {
        let set = optional(l.source, "PLATFORM_UPGRADE_PLAN");
        let id = set
            .clone()
            .unwrap_or_else(|| DEFAULT_PLATFORM_UPGRADE_PLAN.to_owned());
        self.platform_upgrade_plan = if plans.get(&id).is_some() {
            Ok(id)
        } else {
            // A catalog without the default plan is not a mistake by itself: only a set
            // value naming no plan is recorded; either way the route names the setting.
            if set.is_some() {
                let known: Vec<&str> = plans.plans().iter().map(|p| p.id.as_str()).collect();
                l.problems.push(ConfigError {
                    setting: "PLATFORM_UPGRADE_PLAN",
                    problem: format!("`{id}` is not a plan of the catalog ({})", known.join(", ")),
                });
            }
            Err("PLATFORM_UPGRADE_PLAN")
        };
    }

    /// The plan a developer's `POST /create-checkout` buys by default; `not_configured`
    /// naming `PLATFORM_UPGRADE_PLAN` while it names no plan of the catalog.
    pub fn platform_upgrade_plan(&self) -> Result<&str, AppError> {
        self.platform_upgrade_plan
            .as_deref()
            .map_err(|setting| AppError::NotConfigured {
                setting: (*setting).into(),
            })
    }

    /// `UPGRADE_URL`, if set; `not_configured` naming it while it is invalid.
    pub fn upgrade_url(&self) -> Result<Option<&str>, AppError> {
        match &self.upgrade_url {
            Ok(url) => Ok(url.as_deref()),
            Err(setting) => Err(AppError::NotConfigured {
                setting: (*setting).into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::settings::testing::not_configured;
    use std::collections::HashMap;

    /// Billing's settings alone, read from `vars` against the default catalog, with the
    /// problems they record.
    fn load(vars: &HashMap<&str, &str>) -> (BillingConfig, Vec<ConfigError>) {
        let mut l = Loader::new(vars);
        let mut billing = BillingConfig::load(&mut l);
        billing.load_platform_upgrade_plan(&mut l, &PlanCatalog::default());
        (billing, l.problems)
    }

    #[test]
    fn the_platform_upgrade_plan_must_be_a_plan_of_the_catalog() {
        let (billing, _) = load(&HashMap::new());
        assert_eq!(billing.platform_upgrade_plan(), Ok("basic"));
        let (billing, _) = load(&HashMap::from([("PLATFORM_UPGRADE_PLAN", "free")]));
        assert_eq!(billing.platform_upgrade_plan(), Ok("free"));
        let (billing, problems) = load(&HashMap::from([("PLATFORM_UPGRADE_PLAN", "platinum")]));
        assert_eq!(
            billing.platform_upgrade_plan(),
            Err(not_configured("PLATFORM_UPGRADE_PLAN"))
        );
        assert!(problems
            .iter()
            .any(|p| p.setting == "PLATFORM_UPGRADE_PLAN" && p.problem.contains("platinum")));
    }

    #[test]
    fn an_invalid_upgrade_url_breaks_only_the_upgrade_instructions() {
        let vars = HashMap::from([
            ("STRIPE_SECRET_KEY", "sk_test_x"),
            ("UPGRADE_URL", "pricing"),
        ]);
        let (billing, _) = load(&vars);
        assert_eq!(billing.upgrade_url(), Err(not_configured("UPGRADE_URL")));
        assert_eq!(billing.secret_key.require(), Ok("sk_test_x"));
        let set = HashMap::from([("UPGRADE_URL", "https://example.com/pricing/")]);
        assert_eq!(
            load(&set).0.upgrade_url(),
            Ok(Some("https://example.com/pricing"))
        );
        assert_eq!(load(&HashMap::new()).0.upgrade_url(), Ok(None));
    }
}
