//! The plans' settings: the catalog.

use crate::core::settings::{optional, ConfigError, Loader};
use crate::plans::rules::PlanCatalog;

/// `PLAN_CATALOG`: the plans (a JSON list); default the four default plans. Invalid: the
/// problem is recorded and the default plans stand in.
pub(crate) fn catalog(l: &mut Loader<'_>) -> PlanCatalog {
    match optional(l.source, "PLAN_CATALOG") {
        None => PlanCatalog::default(),
        Some(json) => l.or(
            PlanCatalog::parse(&json).map_err(|problem| ConfigError {
                setting: "PLAN_CATALOG",
                problem,
            }),
            PlanCatalog::default(),
        ),
    }
}
