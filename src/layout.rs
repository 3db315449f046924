//! The layout's rules, checked on every `cargo test --lib` (so by `scripts/test`):
//!
//! - a pure-rules file (`<capability>/rules.rs`, `<capability>/rules/*`, `core/*`) never
//!   names `worker`: its decisions are plain functions, tested on the host;
//! - a settings file (`<capability>/config.rs`) never names `worker` either (it reads through
//!   [`crate::core::settings::VarSource`], tested on the host with a map), and never uses
//!   [`crate::config`], which assembles the sections: the dependency points one way only;
//! - a handler (`<capability>/http.rs`, `<capability>/http/*`) never touches a store: it
//!   parses, calls its service (handing it the D1 or KV binding from [`crate::storage`]),
//!   and renders a view;
//! - a service or handler uses another capability through that capability's service, never
//!   its store;
//! - every log line goes through [`crate::log::Logger`]: nothing else writes to the console;
//! - the time is read from [`crate::clock`] only: nothing else calls `Date::now`;
//! - modules say the domain: the seed products' names appear only in the route table's
//!   comments (and the README and the manuals in `docs/`), never in a module, its docs, or
//!   the API document.

use std::fs;
use std::path::{Path, PathBuf};

pub mod order;

/// The products Tollgate replaces, by the names their READMEs use.
const SEEDS: &[&str] = &["Sokuji", "Puku", "dream-api", "Koby", "Audio Studio"];

/// Every `.rs` file under `dir`, recursively, sorted.
pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The file's code, without comments and without its `#[cfg(test)]` tail.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("a readable source file");
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a file is: (capability, layer), from its path under `src/`.
fn role(relative: &str) -> Option<(&str, &str)> {
    let mut parts = relative.split('/');
    let capability = parts.next()?;
    let layer = parts.next()?.trim_end_matches(".rs");
    Some((capability, layer))
}

/// Whether `code` names `word` as a path segment (not as part of a longer identifier).
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

/// Every breach of the layout's rules, one line each.
pub fn breaches(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for path in rust_files(src) {
        let relative = path
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = fs::read_to_string(&path).expect("a readable source file");
        // The route table's comments say which seed each path serves; this file states the rule.
        if relative != "routes.rs" && relative != "layout.rs" {
            for seed in SEEDS {
                if text.contains(seed) {
                    found.push(format!("{relative}: names the seed product `{seed}`"));
                }
            }
        }
        if relative != "log.rs" && relative != "layout.rs" {
            let code = code(&path);
            for console in [
                "console_log!",
                "console_warn!",
                "console_error!",
                "console_debug!",
            ] {
                if code.contains(console) {
                    found.push(format!("{relative}: writes with {console}, not the logger"));
                }
            }
            if relative != "clock.rs" && code.contains("Date::now") {
                found.push(format!("{relative}: reads Date::now, not the clock"));
            }
        }
        let Some((capability, layer)) = role(&relative) else {
            continue;
        };
        let code = code(&path);
        let pure = layer == "rules" || capability == "core";
        if pure && names(&code, "worker") {
            found.push(format!("{relative}: a rules file names `worker`"));
        }
        // A capability's settings are read from any VarSource, so they are as pure as rules.
        if layer == "config" && names(&code, "worker") {
            found.push(format!("{relative}: a settings file names `worker`"));
        }
        if layer == "config" && names(&code, "crate::config") {
            found.push(format!(
                "{relative}: a settings file uses crate::config (it assembles the sections)"
            ));
        }
        if layer == "http" && code.contains("::store") {
            found.push(format!("{relative}: a handler touches a store"));
        }
        if layer == "http" || layer == "service" {
            for (at, _) in code.match_indices("crate::") {
                let path: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut segments = path.split("::");
                if let (Some(other), Some("store")) = (segments.next(), segments.next()) {
                    if other != capability {
                        found.push(format!(
                            "{relative}: uses {other}'s store (go through its service)"
                        ));
                    }
                }
            }
        }
    }
    let document = fs::read_to_string(src.join("contract/openapi.json")).unwrap_or_default();
    for seed in SEEDS {
        if document.contains(seed) {
            found.push(format!(
                "contract/openapi.json: names the seed product `{seed}`"
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_keeps_the_layouts_rules() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let breaches = breaches(&src);
        assert!(breaches.is_empty(), "{}", breaches.join("\n"));
    }

    #[test]
    fn a_word_is_named_only_as_a_whole_path_segment() {
        assert!(names("use worker::Env;", "worker"));
        assert!(!names("fn workers_count()", "worker"));
        assert!(names("crate::storage::database", "storage"));
        assert!(!names("storage_class", "storage"));
        assert!(names("use worker::{Env};", "worker"));
        assert!(names("use crate::config::Config;", "crate::config"));
        assert!(!names(
            "use crate::core::settings::Loader;",
            "crate::config"
        ));
    }

    #[test]
    fn files_are_read_by_capability_and_layer() {
        assert_eq!(role("metering/rules.rs"), Some(("metering", "rules")));
        assert_eq!(role("identity/http/user.rs"), Some(("identity", "http")));
        assert_eq!(role("chat/config.rs"), Some(("chat", "config")));
        assert_eq!(role("lib.rs"), None);
    }
}
