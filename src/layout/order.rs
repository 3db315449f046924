//! The order of the capabilities: each may use only those below it, so nothing imports
//! upward and no two capabilities import each other (which also rules out every cycle).
//!
//! [`ORDER`] is written once, lowest first; modules on one rung may not use each other. Where
//! a lower capability needs something above it (the webhook inbox dispatching to billing,
//! access resolution for platform and site callers, identity needing a plan), it defines a
//! trait or takes a function that the module above (or `routes.rs`) wires in.
//!
//! The source does not keep the order everywhere yet: [`KNOWN_UPWARD`] lists each import
//! that still goes up or sideways, as `"user -> used"`. The check fails on any such import
//! not in the list (a new one), and on any listed one that is gone (so the list only
//! shrinks). Burning it down is issue 26's item 1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The rungs, lowest first. Why this order (changed from the sketch where the code's
/// real dependencies said so):
/// - `storage` and `upstream` (bindings and HTTP clients of other services) are
///   infrastructure every capability may reach, so they sit just above the primitives;
/// - `metering` is the exact counter every paying capability (ledger, provider keys,
///   platforms, orgs, chat, voice, proxy) calls, so it sits low, with `metrics` beside it;
/// - `webhooks` is the signed inbox; billing and identity's Clerk receiver sit above it and
///   the inbox dispatches up through a function the route table wires in;
/// - `audit` is below `accounts` (every capability records into it);
/// - `billing` is below `ledger` and `platforms`, which sell through its Stripe client;
/// - `sites` is below `orgs` (an org owns sites), `proxy` below `chat` and `voice` (which
///   pay through it);
/// - the wiring modules are on top, `config` (which assembles every capability's settings)
///   lowest of them and `routes` (the only file that knows every endpoint) highest.
pub const ORDER: &[&[&str]] = &[
    &["core"],
    &["error", "clock", "log"],
    &["storage", "upstream"],
    &["http"],
    &["identity"],
    &["audit", "devices", "plans"],
    &["accounts"],
    &["metering", "metrics"],
    &["webhooks", "workflows"],
    &["billing", "provider_keys"],
    &["ledger"],
    &["sites"],
    &["platforms", "orgs"],
    &["proxy"],
    &["chat", "voice"],
    &["config"],
    &["health", "scheduled"],
    &["contract"],
    &["routes"],
];

/// Imports that do not keep the order yet, `"user -> used"`; see the module's docs.
pub const KNOWN_UPWARD: &[&str] = &[
    // Services and stores that take the whole assembled `Config` instead of their own
    // section (issue 26, item 2: a service receives its own config section).
    "billing -> config",
    "http -> config",
    "identity -> config",
    "ledger -> config",
    "provider_keys -> config",
    "storage -> config",
    "webhooks -> config",
    "workflows -> config",
    // Calls up or sideways that need a trait or a function wired in from above.
    "billing -> ledger",
    "billing -> platforms",
    "contract -> routes",
    "core -> error",
    "http -> identity",
    "http -> orgs",
    "http -> platforms",
    "http -> routes",
    "http -> sites",
    "http -> webhooks",
    "identity -> accounts",
    "identity -> audit",
    "identity -> billing",
    "identity -> devices",
    "identity -> orgs",
    "identity -> plans",
    "identity -> provider_keys",
    "identity -> webhooks",
    "metering -> workflows",
    "plans -> billing",
    "provider_keys -> billing",
    "upstream -> provider_keys",
    "webhooks -> billing",
];

/// The rung of a top-level module, if it is in the order.
fn rung(module: &str) -> Option<usize> {
    ORDER.iter().position(|rung| rung.contains(&module))
}

/// Every top-level module `code` names through `crate::` (`crate::x::...` and the modules of
/// a grouped `use crate::{x::..., y}`).
fn modules_named(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Only the first segment of each entry: `a::b::{c, d}` names `a`.
            let mut depth = 0usize;
            let mut entry_start = true;
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !word.is_empty() {
                            found.insert(std::mem::take(&mut word));
                        }
                        entry_start = true;
                        continue;
                    }
                    _ => {}
                }
                if entry_start && depth == 0 {
                    if c.is_alphanumeric() || c == '_' {
                        word.push(c);
                        continue;
                    }
                    if !word.is_empty() {
                        found.insert(std::mem::take(&mut word));
                        entry_start = false;
                    }
                }
            }
            if !word.is_empty() {
                found.insert(word);
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                found.insert(word);
            }
        }
    }
    found
}

/// Which top-level modules each top-level module uses (its code outside tests).
pub fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in super::rust_files(src) {
        let relative = path
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let module = relative
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "layout" {
            continue;
        }
        for used in modules_named(&super::code(&path)) {
            if used != module && rung(&used).is_some() {
                edges.entry(module.clone()).or_default().insert(used);
            }
        }
    }
    edges
}

/// Every import that uses a module on the same rung or above, `"user -> used"`, and every
/// module that is not in the order.
pub fn upward(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (module, used) in imports(src) {
        let Some(own) = rung(&module) else {
            found.push(format!("{module}: not in layout::order::ORDER"));
            continue;
        };
        for other in used {
            if rung(&other).is_some_and(|theirs| theirs >= own) {
                found.push(format!("{module} -> {other}"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_use_only_those_below_them_but_for_the_known_list() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = upward(&src);
        let new: Vec<&String> = found
            .iter()
            .filter(|f| !KNOWN_UPWARD.contains(&f.as_str()))
            .collect();
        let gone: Vec<&&str> = KNOWN_UPWARD
            .iter()
            .filter(|k| !found.iter().any(|f| f == **k))
            .collect();
        assert!(
            new.is_empty(),
            "imports that go up or sideways in layout::order::ORDER (invert them: a trait or \
             a function the module above wires in):\n{}",
            new.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            gone.is_empty(),
            "these no longer happen; remove them from KNOWN_UPWARD:\n{}",
            gone.iter().map(|s| **s).collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn every_module_is_on_one_rung() {
        let mut seen = BTreeSet::new();
        for module in ORDER.iter().flat_map(|rung| rung.iter()) {
            assert!(seen.insert(*module), "{module} is on two rungs");
        }
    }

    #[test]
    fn imports_are_read_from_paths_and_groups() {
        let named = modules_named(
            "use crate::http::{self, Ctx};\nuse crate::{audit::rules::{A, B}, plans, \
             identity::service::users};\nlet x = crate::clock::now();",
        );
        let expected: BTreeSet<String> = ["http", "audit", "plans", "identity", "clock"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(named, expected);
    }
}
