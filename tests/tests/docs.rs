//! The documentation cannot drift from the code: the settings table is
//! rendered from the code's ranges, each documented Parameter is the one the
//! template sets the variable from, and every relative link resolves.
//!
//! `FOXRELAY_BLESS=1 cargo test -p foxrelay-tests --test docs` rewrites the
//! settings table after a change to the settings.

use foxrelay_shared::settings::{CATALOG, settings_table};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const TABLE_START: &str = "<!-- settings table: generated from shared/src/settings by `FOXRELAY_BLESS=1 cargo test -p foxrelay-tests --test docs`; do not edit by hand -->";
const TABLE_END: &str = "<!-- end of settings table -->";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_settings_table_is_the_one_the_code_renders() {
    let path = workspace().join("docs/configuration.md");
    let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let start = text.find(TABLE_START).expect("the table's start marker") + TABLE_START.len();
    let end = text[start..]
        .find(TABLE_END)
        .expect("the table's end marker")
        + start;
    let rendered = format!("\n{}", settings_table());
    if std::env::var_os("FOXRELAY_BLESS").is_some() {
        let blessed = format!("{}{rendered}{}", &text[..start], &text[end..]);
        std::fs::write(&path, blessed).expect("docs/configuration.md is writable");
        return;
    }
    assert_eq!(
        text[start..end],
        rendered,
        "docs/configuration.md's settings table is not the code's: \
         run FOXRELAY_BLESS=1 cargo test -p foxrelay-tests --test docs"
    );
}

/// Every `Ref` inside `value`.
fn refs(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("Ref", Value::String(name)) => {
                        into.insert(name.clone());
                    }
                    _ => refs(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, into)),
        _ => {}
    }
}

#[test]
fn each_documented_parameter_is_the_one_the_template_sets_its_variable_from() {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let template: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut environments = vec![&template["Globals"]["Function"]["Environment"]["Variables"]];
    for resource in template["Resources"].as_object().unwrap().values() {
        if resource["Type"] == "AWS::Serverless::Function" {
            environments.push(&resource["Properties"]["Environment"]["Variables"]);
        }
    }
    let parameters = template["Parameters"].as_object().unwrap();
    for setting in CATALOG {
        let mut found = BTreeSet::new();
        for variables in &environments {
            refs(&variables[setting.name], &mut found);
        }
        let found: BTreeSet<_> = found
            .into_iter()
            .filter(|name| parameters.contains_key(name))
            .collect();
        let documented: BTreeSet<_> = setting.parameter.map(str::to_owned).into_iter().collect();
        assert_eq!(found, documented, "{}", setting.name);
    }
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
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

/// The lines of `text` outside fenced code blocks.
fn prose_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut in_code = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            return false;
        }
        !in_code
    })
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose_lines(text) {
        if let Some(heading) = line.strip_prefix('#') {
            let base = anchor(heading.trim_start_matches('#'));
            let mut name = base.clone();
            let mut n = 0;
            while !seen.insert(name.clone()) {
                n += 1;
                name = format!("{base}-{n}");
            }
        }
    }
    seen
}

/// The targets of the inline links `[text](target)` outside code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    found
}

fn markdown_files() -> Vec<PathBuf> {
    let root = workspace();
    let mut files: Vec<PathBuf> = ["README.md", "CHANGELOG.md", "SECURITY.md"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            if let Some(fragment) = fragment {
                let is_markdown = resolved.extension().is_some_and(|e| e == "md");
                let known = is_markdown
                    && anchors(&std::fs::read_to_string(&resolved).unwrap()).contains(fragment);
                if !known {
                    broken.push(format!("{}: {target} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(checked > 20, "links were found ({checked})");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_stays_short() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let lines = readme.lines().count();
    // Room for the two webhook receivers the README shows in full.
    assert!(
        lines <= 250,
        "README.md has {lines} lines; the rest goes to docs/"
    );
}

#[test]
fn the_readmes_rust_webhook_receiver_is_the_example_that_compiles() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let example =
        std::fs::read_to_string(workspace().join("infra/local/examples/webhook_receiver.rs"))
            .unwrap();
    let block = readme
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows a Rust receiver");
    let example_lines: Vec<&str> = example.lines().map(str::trim).collect();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            example_lines.contains(&line),
            "the README's line is not in the example: {line}"
        );
    }
}

#[test]
fn a_github_anchor_drops_punctuation_and_numbers_repeats() {
    assert_eq!(anchor(" Runbook: alarms"), "runbook-alarms");
    assert_eq!(
        anchor("What is deployed, and why"),
        "what-is-deployed-and-why"
    );
    assert_eq!(anchor("`foxrelay-local` CLI"), "foxrelay-local-cli");
    let seen = anchors("# A\n## A\n```\n# not a heading\n```\n");
    assert_eq!(seen, BTreeSet::from(["a".to_owned(), "a-1".to_owned()]));
}
