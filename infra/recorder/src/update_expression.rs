//! Which attributes a DynamoDB update expression sets and removes (enough
//! of its grammar to size the item afterwards).

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The top-level attributes an update expression sets (`SET`, `ADD`) and
/// removes (`REMOVE`), with `#name` placeholders resolved.
pub fn update_targets(
    expression: &str,
    names: Option<&Map<String, Value>>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let resolve = |path: &str| -> String {
        let top = path
            .trim()
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_owned();
        match names.and_then(|n| n.get(&top)).and_then(Value::as_str) {
            Some(name) if top.starts_with('#') => name.to_owned(),
            _ => top,
        }
    };
    let mut clauses: Vec<(String, String)> = Vec::new();
    for word in expression.split_whitespace() {
        let upper = word.to_ascii_uppercase();
        if matches!(upper.as_str(), "SET" | "REMOVE" | "ADD" | "DELETE") {
            clauses.push((upper, String::new()));
        } else if let Some((_, text)) = clauses.last_mut() {
            text.push(' ');
            text.push_str(word);
        }
    }
    let (mut set, mut removed) = (BTreeSet::new(), BTreeSet::new());
    for (keyword, text) in clauses {
        for action in split_top_level(&text) {
            match keyword.as_str() {
                "SET" => {
                    let path = action.split('=').next().unwrap_or_default();
                    set.insert(resolve(path));
                }
                "REMOVE" => {
                    removed.insert(resolve(&action));
                }
                // ADD and DELETE: `path value`.
                _ => {
                    let path = action.split_whitespace().next().unwrap_or_default();
                    set.insert(resolve(path));
                }
            }
        }
    }
    set.remove("");
    removed.remove("");
    (set, removed)
}

/// `text` split at the commas outside parentheses, each part trimmed.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().expect("never empty").push(c);
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn update_expressions_yield_the_attributes_they_set_and_remove() {
        let names = json!({"#status": "status"});
        let (set, removed) = update_targets(
            "SET #status = :s, n = if_not_exists(n, :zero) + :one REMOVE pendingPk, pendingSk",
            names.as_object(),
        );
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec!["n".to_owned(), "status".to_owned()]
        );
        assert_eq!(
            removed.into_iter().collect::<Vec<_>>(),
            vec!["pendingPk".to_owned(), "pendingSk".to_owned()]
        );
    }
}
