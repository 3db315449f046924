//! The documentation's checks, run by `cargo test --lib` on the host:
//!
//! - `docs/configuration.md` lists exactly the settings the code reads. A setting is read by
//!   its name, an ALL_CAPS string literal, in a configuration source: `src/config.rs`, any
//!   `config.rs` under `src/`, or any file under a `src/**/config/` folder (so settings may
//!   move between those files freely). Comments and `#[cfg(test)]` items are not read. A
//!   binding the table lists (`DB`, `CACHE`) must be named by a literal anywhere in `src/`;
//!   rows whose name is a pattern (`RATE_LIMIT_<n>`) are not checked.
//! - `.dev.vars.example` assigns only documented settings, and shows every secret.
//! - every manual in `docs/` is linked from the README's index, and every relative link in
//!   the README and `docs/` leads to a file (and, with `#`, a heading) that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::layout::rust_files;

/// The table of every setting.
const CONFIGURATION: &str = "docs/configuration.md";
/// The README's section that indexes `docs/`.
const DOCS_INDEX: &str = "## Documentation";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `path` relative to the repository, with `/`.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Whether a source file (relative to `src/`) is where settings are read: a `config.rs`
/// anywhere, or a file in a `config` folder.
fn is_config_source(relative: &Path) -> bool {
    relative.file_name().is_some_and(|n| n == "config.rs")
        || relative
            .parent()
            .is_some_and(|dir| dir.components().any(|c| c.as_os_str() == "config"))
}

/// The string literals of Rust `code`, leaving out comments and `#[cfg(test)]` items.
fn literals(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    let mut found = Vec::new();
    let mut depth = 0usize;
    // While inside a `#[cfg(test)]` item: the depth it started at, and whether its body
    // has opened yet.
    let mut skipping: Option<(usize, bool)> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if at(i, "/*") {
            i += 2;
            while i < chars.len() && !at(i, "*/") {
                i += 1;
            }
            i += 2;
            continue;
        }
        if at(i, "#[cfg(test)]") {
            skipping = skipping.or(Some((depth, false)));
            i += "#[cfg(test)]".len();
            continue;
        }
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        // A raw string: r"...", r#"..."#.
        if c == 'r' && !ident_before && matches!(chars.get(i + 1), Some('"' | '#')) {
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) == Some(&'"') {
                let start = i + 2 + hashes;
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let mut end = start;
                while end < chars.len() && !at(end, &close) {
                    end += 1;
                }
                if skipping.is_none() {
                    found.push(chars[start..end.min(chars.len())].iter().collect());
                }
                i = end + close.chars().count();
                continue;
            }
        }
        match c {
            '"' => {
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    if let Some(&ch) = chars.get(i) {
                        text.push(ch);
                    }
                    i += 1;
                }
                if skipping.is_none() {
                    found.push(text);
                }
            }
            '\'' => {
                // A char literal ('x', '\n', '\''); otherwise a lifetime.
                if chars.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 2;
                }
            }
            '{' => {
                depth += 1;
                if let Some((_, opened)) = &mut skipping {
                    *opened = true;
                }
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if skipping.is_some_and(|(start, opened)| opened && depth == start) {
                    skipping = None;
                }
            }
            ';' if skipping.is_some_and(|(start, opened)| !opened && depth == start) => {
                skipping = None;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Whether `text` is a setting's or binding's name: ALL_CAPS, digits and `_`, starting with a
/// letter and not ending with `_` (a prefix such as `END_USER_` is not a name).
fn is_name(text: &str) -> bool {
    text.len() >= 2
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && !text.ends_with('_')
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Every name the code reads, with the first file that names it: ALL_CAPS literals of the
/// configuration sources.
fn settings_read() -> BTreeMap<String, String> {
    let src = root().join("src");
    let mut read_by = BTreeMap::new();
    for path in rust_files(&src) {
        let relative = path.strip_prefix(&src).expect("under src");
        if !is_config_source(relative) {
            continue;
        }
        for name in literals(&read(&path)).into_iter().filter(|l| is_name(l)) {
            read_by.entry(name).or_insert_with(|| shown(&path));
        }
    }
    read_by
}

/// Every ALL_CAPS literal anywhere in `src/` (outside tests): where bindings are named.
fn names_in_source() -> BTreeSet<String> {
    rust_files(&root().join("src"))
        .iter()
        .flat_map(|path| literals(&read(path)))
        .filter(|l| is_name(l))
        .collect()
}

/// The cells of a Markdown table row, or `None` for any other line and for a table's
/// header separator.
fn cells(line: &str) -> Option<Vec<&str>> {
    let row = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
    if cells
        .iter()
        .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ' | '|')))
    {
        return None;
    }
    Some(cells)
}

/// The `code` spans of `text`.
fn code_spans(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// Every name the configuration table lists, with its kind (`var`, `secret`, `binding`):
/// the `code` spans of each row's first cell (`JWT_SECRET` (alias `JWT_SECRET_CLOUD`) lists
/// both).
fn settings_documented(doc: &str) -> BTreeMap<String, String> {
    let mut listed = BTreeMap::new();
    for line in doc.lines() {
        let Some(cells) = cells(line) else { continue };
        let (Some(first), Some(kind)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        for name in code_spans(first).filter(|n| is_name(n)) {
            listed.insert(name.to_owned(), (*kind).to_owned());
        }
    }
    listed
}

#[test]
fn the_configuration_table_lists_exactly_the_settings_the_code_reads() {
    let doc = read(&root().join(CONFIGURATION));
    let documented = settings_documented(&doc);
    let read_by = settings_read();
    assert!(
        read_by.len() >= 20 && documented.len() >= 20,
        "the check found only {} settings in the code and {} in {CONFIGURATION}: is it still \
         reading the right files?",
        read_by.len(),
        documented.len()
    );
    let in_source = names_in_source();
    let mut problems = Vec::new();
    for (name, file) in &read_by {
        if !documented.contains_key(name) {
            problems.push(format!(
                "`{name}` is read by {file}, but {CONFIGURATION} does not list it (add a row)"
            ));
        }
    }
    for (name, kind) in &documented {
        let known = if kind == "binding" {
            in_source.contains(name)
        } else {
            read_by.contains_key(name)
        };
        if !known {
            problems.push(format!(
                "`{name}` ({kind}) is listed in {CONFIGURATION}, but the code never reads it \
                 (remove the row, or read it in a config.rs)"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_example_env_file_assigns_only_documented_settings_and_shows_every_secret() {
    let doc = read(&root().join(CONFIGURATION));
    let documented = settings_documented(&doc);
    let example = read(&root().join(".dev.vars.example"));
    let mut problems = Vec::new();
    for line in example.lines() {
        let assignment = line.trim_start_matches(['#', ' ']);
        let Some((name, _)) = assignment.split_once('=') else {
            continue;
        };
        if is_name(name) && !documented.contains_key(name) {
            problems.push(format!(
                ".dev.vars.example sets `{name}`, which {CONFIGURATION} does not list"
            ));
        }
    }
    let words: BTreeSet<&str> = example
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    for (name, kind) in &documented {
        if kind == "secret" && !words.contains(name.as_str()) {
            problems.push(format!(
                "the secret `{name}` is not in .dev.vars.example (add it, commented if optional)"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The Markdown files checked for links: the README and every manual.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    files.extend(manuals());
    files
}

/// Every `docs/*.md`, sorted.
fn manuals() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

/// The text of a Markdown file outside fenced code blocks, with every inline code span's
/// content blanked (a span never crosses a blank line).
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    let mut blanked = String::with_capacity(out.len());
    let mut in_code = false;
    let mut previous = ' ';
    for c in out.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if c == '\n' && previous == '\n' {
            in_code = false;
        }
        blanked.push(if in_code && c != '`' && c != '\n' {
            ' '
        } else {
            c
        });
        previous = c;
    }
    blanked
}

/// The targets of the inline links `[text](target)` in `markdown`'s prose.
fn links(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            let end = rest.find(')')?;
            Some(rest[..end].trim().to_owned())
        })
        .collect()
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (a repeated one gets `-1`, `-2`, ... as on
/// GitHub).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if fenced || hashes == 0 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = anchor(&line[hashes..].replace('`', ""));
        let count = seen.entry(base.clone()).or_insert(0);
        found.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    found
}

#[test]
fn every_relative_link_leads_to_a_file_and_heading_that_exist() {
    let mut problems = Vec::new();
    for file in markdown_files() {
        let markdown = read(&file);
        let dir = file.parent().expect("a file's folder");
        for target in links(&markdown) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, heading) = match target.split_once('#') {
                Some((path, heading)) => (path, Some(heading)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !linked.exists() {
                problems.push(format!("{}: `{target}` leads to no file", shown(&file)));
                continue;
            }
            if let Some(heading) = heading {
                let is_markdown = linked.extension().is_some_and(|e| e == "md");
                if is_markdown && !anchors(&read(&linked)).contains(heading) {
                    problems.push(format!(
                        "{}: `{target}`: {} has no heading `#{heading}`",
                        shown(&file),
                        shown(&linked)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_manual_is_in_the_readmes_index() {
    let readme = read(&root().join("README.md"));
    let start = readme
        .find(&format!("\n{DOCS_INDEX}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{DOCS_INDEX}` section"));
    let section = &readme[start + 1..];
    let section = match section[DOCS_INDEX.len()..].find("\n## ") {
        Some(end) => &section[..DOCS_INDEX.len() + end],
        None => section,
    };
    let indexed: BTreeSet<String> = links(section).into_iter().collect();
    let missing: Vec<String> = manuals()
        .iter()
        .map(|m| shown(m))
        .filter(|m| !indexed.contains(m))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's `{DOCS_INDEX}` does not link: {}",
        missing.join(", ")
    );
}

#[test]
fn the_scanner_reads_literals_outside_comments_and_tests() {
    let code = r##"
        // "IN_A_COMMENT"
        /* "IN_A_BLOCK" */
        const A: &str = "READ_ME";
        fn f<'a>(x: &'a str) -> char { let _ = r#"RAW_ONE"#; '"' }
        fn g() { number(source, "ANOTHER_ONE", 5, 1..=9); let q = '{'; }
        #[cfg(test)]
        mod tests { fn t() { let _ = "ONLY_IN_TESTS"; { "NESTED_TEST" }; } }
        #[cfg(test)]
        use crate::x::"NOT_AN_ITEM_BODY";
        const B: &str = "AFTER_TESTS";
        const P: &str = "PREFIX_";
    "##;
    let names: Vec<String> = literals(code).into_iter().filter(|l| is_name(l)).collect();
    assert_eq!(
        names,
        ["READ_ME", "RAW_ONE", "ANOTHER_ONE", "AFTER_TESTS"],
        "{:?}",
        literals(code)
    );
}

#[test]
fn files_named_config_and_config_folders_are_configuration_sources() {
    assert!(is_config_source(Path::new("config.rs")));
    assert!(is_config_source(Path::new("chat/config.rs")));
    assert!(is_config_source(Path::new("config/mod.rs")));
    assert!(is_config_source(Path::new("identity/config/clerk.rs")));
    assert!(!is_config_source(Path::new("chat/service.rs")));
    assert!(!is_config_source(Path::new("configuration.rs")));
}

#[test]
fn a_table_row_lists_every_name_of_its_first_cell() {
    let doc = "| name | kind | meaning |\n|---|---|---|\n\
               | `JWT_SECRET` (alias `JWT_SECRET_CLOUD`) | secret | x `NOT_THIS` |\n\
               | `RATE_LIMIT_<n>` | binding | y |\n| `DB` | binding | z |\n";
    let listed = settings_documented(doc);
    let names: Vec<&str> = listed.keys().map(String::as_str).collect();
    assert_eq!(names, ["DB", "JWT_SECRET", "JWT_SECRET_CLOUD"]);
    assert_eq!(listed["JWT_SECRET_CLOUD"], "secret");
}

#[test]
fn headings_become_githubs_anchors_and_code_is_not_read_for_links() {
    let markdown =
        "# Model proxy (/v1)\n## The developer's own plan\n## Try it (scripts/dev --fakes)\n\
                    ## Notes\n## Notes\n```\n# not a heading [x](nowhere.md)\n```\n\
                    See `[y](code.md)` and [z](real.md#notes-1).\n";
    let found = anchors(markdown);
    for expected in [
        "model-proxy-v1",
        "the-developers-own-plan",
        "try-it-scriptsdev---fakes",
        "notes",
        "notes-1",
    ] {
        assert!(found.contains(expected), "{expected} in {found:?}");
    }
    assert!(!found.contains("not-a-heading-xnowheremd"));
    assert_eq!(links(markdown), ["real.md#notes-1"]);
}
