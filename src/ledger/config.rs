//! The ledger's settings: the catalogs of token packs for sale and of social tasks.

use crate::core::settings::{optional, ConfigError, Loader};
use crate::error::AppError;
use crate::ledger::rules::{self as ledger, Pack, Task};

/// The token ledger's catalogs. An invalid one is recorded, and only the routes that read it
/// answer `not_configured` naming it.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// `TOKEN_PACKS`: a JSON list of `{id, name, tokens, price_cents, currency,
    /// stripe_price_id}`; default none (nothing for sale).
    packs: Result<Vec<Pack>, &'static str>,
    /// `SOCIAL_TASKS`: a JSON list of `{id, title, platform, url, reward}`; default none.
    tasks: Result<Vec<Task>, &'static str>,
}

impl LedgerConfig {
    pub(crate) fn load(l: &mut Loader<'_>) -> Self {
        Self {
            packs: catalog(l, "TOKEN_PACKS", ledger::parse_packs),
            tasks: catalog(l, "SOCIAL_TASKS", ledger::parse_tasks),
        }
    }

    /// The packs for sale; `not_configured` while `TOKEN_PACKS` is invalid.
    pub fn packs(&self) -> Result<&[Pack], AppError> {
        self.packs
            .as_deref()
            .map_err(|setting| AppError::NotConfigured {
                setting: (*setting).into(),
            })
    }

    /// The social tasks; `not_configured` while `SOCIAL_TASKS` is invalid.
    pub fn tasks(&self) -> Result<&[Task], AppError> {
        self.tasks
            .as_deref()
            .map_err(|setting| AppError::NotConfigured {
                setting: (*setting).into(),
            })
    }
}

/// A JSON catalog setting: empty when unset; invalid, its name, with the problem recorded.
fn catalog<T>(
    l: &mut Loader<'_>,
    name: &'static str,
    parse: fn(&str) -> Result<Vec<T>, String>,
) -> Result<Vec<T>, &'static str> {
    let Some(json) = optional(l.source, name) else {
        return Ok(Vec::new());
    };
    parse(&json).map_err(|problem| {
        l.problems.push(ConfigError {
            setting: name,
            problem,
        });
        name
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The ledger's settings alone, read from `vars`, with the problems they record.
    fn load(vars: &HashMap<&str, &str>) -> (LedgerConfig, Vec<ConfigError>) {
        let mut l = Loader::new(vars);
        let ledger = LedgerConfig::load(&mut l);
        (ledger, l.problems)
    }

    #[test]
    fn a_bad_token_catalog_disables_only_its_routes() {
        let (empty, _) = load(&HashMap::new());
        assert_eq!(
            empty.packs().map(<[_]>::len),
            Ok(0),
            "none for sale by default"
        );
        assert_eq!(empty.tasks().map(<[_]>::len), Ok(0));
        let tasks = r#"[{"id":"a","title":"T","platform":"x","url":"https://x.com","reward":5}]"#;
        let vars = HashMap::from([("TOKEN_PACKS", "[{\"id\": 1}]"), ("SOCIAL_TASKS", tasks)]);
        let (ledger, problems) = load(&vars);
        assert_eq!(problems[0].setting, "TOKEN_PACKS");
        let err = ledger.packs().unwrap_err();
        assert_eq!(err.code(), "not_configured");
        assert!(err.public_message().contains("TOKEN_PACKS"));
        assert_eq!(ledger.tasks().unwrap()[0].reward, 5);
    }
}
