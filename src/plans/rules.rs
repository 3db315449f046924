//! The plan catalog: what each plan allows. It is configuration (`PLAN_CATALOG`, a JSON list),
//! validated when read; without it the catalog is the four default plans plus the platform API's `calls`
//! meter and rate limit.

use serde::{Deserialize, Serialize};

/// One plan. `None` in a limit means unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable id stored on users (`free`, `basic`, ...): 1–32 of `[a-z0-9_-]`.
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// Tokens per calendar month (UTC).
    #[serde(default)]
    #[schema(required = true)]
    pub tokens_per_month: Option<u64>,
    /// Metered calls per calendar month (the platform API).
    #[serde(default)]
    #[schema(required = true)]
    pub calls_per_month: Option<u64>,
    /// Characters of speech per calendar month (an org's voice sites).
    #[serde(default)]
    #[schema(required = true)]
    pub voice_chars_per_month: Option<u64>,
    /// User API keys a user may hold at once.
    #[serde(default)]
    #[schema(required = true)]
    pub api_keys: Option<u32>,
    /// Devices signed in at once.
    #[serde(default)]
    #[schema(required = true)]
    pub concurrent_sessions: Option<u32>,
    /// Requests per minute.
    #[serde(default)]
    #[schema(required = true)]
    pub requests_per_minute: Option<u32>,
    /// Monthly price in cents (USD); `None` for custom pricing.
    #[serde(default)]
    #[schema(required = true)]
    pub price_cents: Option<u64>,
    /// The Stripe price that sells this plan, if any.
    #[serde(default)]
    #[schema(required = true)]
    pub stripe_price_id: Option<String>,
}

/// Every plan users can be on. The first plan is the one new users start on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    plans: Vec<Plan>,
}

/// The largest limit a catalog may state (beyond it, say unlimited: `null`).
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

impl Default for PlanCatalog {
    /// The default tiers (free, basic, premium, enterprise) with the platform API's calls (free 5,
    /// paid 500) and 100 requests per minute.
    fn default() -> Self {
        let plan = |id: &str, name: &str, tokens, calls, keys, sessions, price| Plan {
            id: id.to_owned(),
            name: name.to_owned(),
            tokens_per_month: tokens,
            calls_per_month: calls,
            // A character of speech is worth about a hundred tokens to the operator's bill.
            voice_chars_per_month: tokens.map(|t: u64| t / 100),
            api_keys: keys,
            concurrent_sessions: sessions,
            requests_per_minute: Some(100),
            price_cents: price,
            stripe_price_id: None,
        };
        Self {
            plans: vec![
                plan(
                    "free",
                    "Free",
                    Some(1_000_000),
                    Some(5),
                    Some(1),
                    Some(1),
                    Some(0),
                ),
                plan(
                    "basic",
                    "Basic",
                    Some(10_000_000),
                    Some(500),
                    Some(3),
                    Some(3),
                    Some(999),
                ),
                plan(
                    "premium",
                    "Premium",
                    Some(50_000_000),
                    Some(500),
                    Some(10),
                    Some(10),
                    Some(2999),
                ),
                plan("enterprise", "Enterprise", None, None, None, None, None),
            ],
        }
    }
}

impl PlanCatalog {
    /// Parses and validates a `PLAN_CATALOG` JSON list; the error names the problem.
    pub fn parse(json: &str) -> Result<Self, String> {
        let plans: Vec<Plan> =
            serde_json::from_str(json).map_err(|e| format!("not a plan list: {e}"))?;
        Self::new(plans)
    }

    /// A catalog of these plans, if they are consistent.
    pub fn new(plans: Vec<Plan>) -> Result<Self, String> {
        if plans.is_empty() {
            return Err("the catalog has no plans".to_owned());
        }
        for (i, plan) in plans.iter().enumerate() {
            let id_ok = (1..=32).contains(&plan.id.len())
                && plan.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !id_ok {
                return Err(format!(
                    "plan {i}: id `{}` is not 1-32 of [a-z0-9_-]",
                    plan.id
                ));
            }
            if plans[..i].iter().any(|p| p.id == plan.id) {
                return Err(format!("plan `{}` is listed twice", plan.id));
            }
            if plan.name.trim().is_empty() {
                return Err(format!("plan `{}` has no name", plan.id));
            }
            let limits = [
                plan.tokens_per_month,
                plan.calls_per_month,
                plan.voice_chars_per_month,
                plan.price_cents,
            ];
            if limits.iter().flatten().any(|n| *n > MAX_LIMIT) {
                return Err(format!(
                    "plan `{}` states a limit above {MAX_LIMIT}; use null for unlimited",
                    plan.id
                ));
            }
            if plan.requests_per_minute == Some(0) {
                return Err(format!(
                    "plan `{}` allows 0 requests per minute; use null for unlimited",
                    plan.id
                ));
            }
        }
        Ok(Self { plans })
    }

    /// The plan with this id.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The plan new users start on: the first one listed.
    pub fn default_plan(&self) -> &Plan {
        &self.plans[0]
    }

    /// The plan with this id, or the default plan for an id the catalog no longer has.
    pub fn get_or_default(&self, id: &str) -> &Plan {
        self.get(id).unwrap_or_else(|| self.default_plan())
    }

    /// Every plan, in catalog order.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The plan one step up from `current` (an unknown id counts as the default plan): of the
    /// plans listed after it whose price is higher (a plan without a price counts as free
    /// here), the cheapest, the first listed on a tie. `None` at the top; plans with custom
    /// pricing (no price) are never a step up.
    pub fn next_up(&self, current: &str) -> Option<&Plan> {
        let current = self.get_or_default(current);
        let position = self.plans.iter().position(|p| p.id == current.id)?;
        let floor = current.price_cents.unwrap_or(0);
        self.plans[position + 1..]
            .iter()
            .filter(|p| p.price_cents.is_some_and(|price| price > floor))
            .min_by_key(|p| p.price_cents)
    }
}

/// What to tell someone who asks to upgrade from `current` to `target` when Tollgate cannot
/// sell it (billing is not configured): where to upgrade (`upgrade_url`, `UPGRADE_URL`), or
/// to contact the operator when there is no such page.
pub fn upgrade_instructions(current: &Plan, target: &Plan, upgrade_url: Option<&str>) -> String {
    let price = match target.price_cents {
        Some(cents) => format!(" ({}.{:02} USD a month)", cents / 100, cents % 100),
        None => String::new(),
    };
    match upgrade_url {
        Some(url) => format!(
            "To upgrade from the {} plan to the {} plan{price}, open {url} and choose {}. \
             Your new limits apply as soon as the change is made.",
            current.name, target.name, target.name
        ),
        None => format!(
            "Upgrades are not sold online here. To move from the {} plan to the {} plan{price}, \
             contact the operator of this service; your new limits apply as soon as they \
             change your plan.",
            current.name, target.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_sokujis_table_with_dream_apis_calls() {
        let catalog = PlanCatalog::default();
        let ids: Vec<&str> = catalog.plans().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["free", "basic", "premium", "enterprise"]);
        assert_eq!(catalog.default_plan().id, "free");
        assert_eq!(catalog.get("basic").unwrap().api_keys, Some(3));
        assert_eq!(
            catalog.get("premium").unwrap().tokens_per_month,
            Some(50_000_000)
        );
        assert_eq!(catalog.get("free").unwrap().calls_per_month, Some(5));
        assert_eq!(catalog.get("basic").unwrap().calls_per_month, Some(500));
        assert_eq!(catalog.get("enterprise").unwrap().api_keys, None);
    }

    #[test]
    fn unknown_plans_fall_back_to_the_default() {
        let catalog = PlanCatalog::default();
        assert_eq!(catalog.get("gold"), None);
        assert_eq!(catalog.get_or_default("gold").id, "free");
    }

    #[test]
    fn the_next_plan_up_is_the_cheapest_dearer_plan_listed_after() {
        let catalog = PlanCatalog::default();
        let next = |id: &str| catalog.next_up(id).map(|p| p.id.as_str());
        assert_eq!(next("free"), Some("basic"));
        assert_eq!(next("basic"), Some("premium"));
        assert_eq!(next("premium"), None, "enterprise is custom pricing");
        assert_eq!(next("enterprise"), None);
        assert_eq!(
            next("gold"),
            Some("basic"),
            "unknown ids count as the default"
        );
        let unordered = PlanCatalog::parse(
            r#"[{"id":"hobby","name":"Hobby"},
                {"id":"team","name":"Team","price_cents":5000},
                {"id":"pro","name":"Pro","price_cents":1000},
                {"id":"pro2","name":"Pro 2","price_cents":1000}]"#,
        )
        .unwrap();
        assert_eq!(
            unordered.next_up("hobby").unwrap().id,
            "pro",
            "cheapest, first on a tie"
        );
        assert_eq!(
            unordered.next_up("pro"),
            None,
            "only plans listed after count"
        );
        assert_eq!(unordered.next_up("team"), None);
    }

    #[test]
    fn upgrade_instructions_name_the_page_or_the_operator() {
        let catalog = PlanCatalog::default();
        let (free, basic) = (catalog.get("free").unwrap(), catalog.get("basic").unwrap());
        let with_url = upgrade_instructions(free, basic, Some("https://example.test/upgrade"));
        assert!(
            with_url.contains("https://example.test/upgrade"),
            "{with_url}"
        );
        assert!(
            with_url.contains("Basic") && with_url.contains("9.99 USD"),
            "{with_url}"
        );
        let without = upgrade_instructions(free, basic, None);
        assert!(without.contains("contact the operator"), "{without}");
        assert!(
            without.contains("Free") && without.contains("Basic"),
            "{without}"
        );
    }

    #[test]
    fn a_configured_catalog_is_parsed() {
        let catalog = PlanCatalog::parse(
            r#"[{"id":"hobby","name":"Hobby","tokens_per_month":1000},
                {"id":"pro","name":"Pro","tokens_per_month":null,"stripe_price_id":"price_1"}]"#,
        )
        .unwrap();
        assert_eq!(catalog.default_plan().id, "hobby");
        assert_eq!(catalog.get("pro").unwrap().tokens_per_month, None);
        assert_eq!(
            catalog.get("pro").unwrap().stripe_price_id.as_deref(),
            Some("price_1")
        );
    }

    #[test]
    fn bad_catalogs_name_the_problem() {
        for (json, problem) in [
            ("{}", "not a plan list"),
            ("[]", "no plans"),
            (r#"[{"id":"Free","name":"F"}]"#, "is not 1-32"),
            (r#"[{"id":"a","name":"A"},{"id":"a","name":"B"}]"#, "twice"),
            (r#"[{"id":"a","name":" "}]"#, "no name"),
            (
                r#"[{"id":"a","name":"A","tokens_per_month":-1}]"#,
                "not a plan list",
            ),
            (
                r#"[{"id":"a","name":"A","tokens_per_month":1.5}]"#,
                "not a plan list",
            ),
            (
                r#"[{"id":"a","name":"A","tokens_per_month":1e15}]"#,
                "not a plan list",
            ),
            (
                r#"[{"id":"a","name":"A","tokens_per_month":10000000000000}]"#,
                "above",
            ),
            (
                r#"[{"id":"a","name":"A","requests_per_minute":0}]"#,
                "0 requests",
            ),
            (r#"[{"id":"a","name":"A","tokens":5}]"#, "unknown field"),
        ] {
            let err = PlanCatalog::parse(json).unwrap_err();
            assert!(err.contains(problem), "{json}: {err}");
        }
    }
}
