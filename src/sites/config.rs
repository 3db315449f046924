//! Sites' settings: the site that serves requests made without a site key (legacy mode).

use crate::core::settings::{optional, ConfigError, Loader, VarSource};

/// `CHAT_LEGACY_SITE`: unset, or a site id (`site_` and letters, digits, `_` or `-`).
/// Invalid: the problem is recorded and no site is served in legacy mode.
pub(crate) fn legacy_site(l: &mut Loader<'_>) -> Option<String> {
    let source = l.source;
    l.or(read(source), None)
}

/// The site id `CHAT_LEGACY_SITE` names, if set; why not a site id, naming it.
fn read(source: &dyn VarSource) -> Result<Option<String>, ConfigError> {
    let Some(id) = optional(source, "CHAT_LEGACY_SITE") else {
        return Ok(None);
    };
    let rest = id.strip_prefix("site_").unwrap_or_default();
    if rest.is_empty()
        || rest.len() > 64
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError {
            setting: "CHAT_LEGACY_SITE",
            problem: "must be a site id (`site_...`), not a site key or a name".to_owned(),
        });
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The legacy site alone, read from `vars`, with the problems it records.
    fn load(vars: &HashMap<&str, &str>) -> (Option<String>, Vec<ConfigError>) {
        let mut l = Loader::new(vars);
        let site = legacy_site(&mut l);
        (site, l.problems)
    }

    #[test]
    fn the_legacy_site_is_unset_by_default_and_must_be_a_site_id() {
        assert_eq!(load(&HashMap::new()).0, None);
        let (set, _) = load(&HashMap::from([("CHAT_LEGACY_SITE", "site_abc123")]));
        assert_eq!(set.as_deref(), Some("site_abc123"));
        for bad in [
            "sk_ab_live_abcdefghijklmnopqrstuvwxyz",
            "site_",
            "site_a b",
            "koby",
        ] {
            let (site, problems) = load(&HashMap::from([("CHAT_LEGACY_SITE", bad)]));
            assert_eq!(site, None, "{bad}");
            assert!(
                problems.iter().any(|p| p.setting == "CHAT_LEGACY_SITE"),
                "{bad}"
            );
        }
    }
}
