//! The plan catalog: what each plan allows. Today this is Sokuji's table; making the catalog
//! a validated JSON setting (and adding meters) belongs to the metering work.

use serde::Serialize;

/// One plan. `None` means unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Stable id stored on users (`free`, `basic`, ...).
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// Tokens per calendar month (UTC).
    pub tokens_per_month: Option<u64>,
    /// User API keys a user may hold at once.
    pub api_keys: Option<u32>,
    /// Devices signed in at once.
    pub concurrent_sessions: Option<u32>,
    /// Monthly price in cents (USD); `None` for custom pricing.
    pub price_cents: Option<u64>,
}

/// Every plan users can be on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    plans: Vec<Plan>,
}

/// The plan every new user starts on.
pub const DEFAULT_PLAN: &str = "free";

impl Default for PlanCatalog {
    /// Sokuji's tiers: free, basic, premium, enterprise.
    fn default() -> Self {
        let plan = |id: &str, name: &str, tokens, keys, sessions, price| Plan {
            id: id.to_owned(),
            name: name.to_owned(),
            tokens_per_month: tokens,
            api_keys: keys,
            concurrent_sessions: sessions,
            price_cents: price,
        };
        Self {
            plans: vec![
                plan("free", "Free", Some(1_000_000), Some(1), Some(1), Some(0)),
                plan(
                    "basic",
                    "Basic",
                    Some(10_000_000),
                    Some(3),
                    Some(3),
                    Some(999),
                ),
                plan(
                    "premium",
                    "Premium",
                    Some(50_000_000),
                    Some(10),
                    Some(10),
                    Some(2999),
                ),
                plan("enterprise", "Enterprise", None, None, None, None),
            ],
        }
    }
}

impl PlanCatalog {
    /// The plan with this id.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The plan with this id, or the default plan for an id the catalog no longer has.
    pub fn get_or_default(&self, id: &str) -> &Plan {
        self.get(id)
            .or_else(|| self.get(DEFAULT_PLAN))
            .unwrap_or(&self.plans[0])
    }

    /// Every plan, cheapest first.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_sokujis_table() {
        let catalog = PlanCatalog::default();
        let ids: Vec<&str> = catalog.plans().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["free", "basic", "premium", "enterprise"]);
        assert_eq!(catalog.get("basic").unwrap().api_keys, Some(3));
        assert_eq!(
            catalog.get("premium").unwrap().tokens_per_month,
            Some(50_000_000)
        );
        assert_eq!(catalog.get("enterprise").unwrap().api_keys, None);
    }

    #[test]
    fn unknown_plans_fall_back_to_free() {
        let catalog = PlanCatalog::default();
        assert_eq!(catalog.get("gold"), None);
        assert_eq!(catalog.get_or_default("gold").id, "free");
    }
}
