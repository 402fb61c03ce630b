//! Reads `template.yaml`, the single source of truth for the stack's
//! resources, so the local stack creates exactly what is deployed.
//!
//! The template keeps to long-form intrinsics (`Ref:`, `Fn::GetAtt:`), so a
//! plain YAML parser reads it. Only the resources the local stack creates
//! (DynamoDB tables, SQS queues, SNS topics) and the function environment are
//! interpreted; everything else is left to CloudFormation.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Why the template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
}

/// The parts of the template the local stack reads.
#[derive(Clone, Debug)]
pub struct StackTemplate {
    /// Parameter name → its Default (parameters without one are absent).
    pub parameter_defaults: BTreeMap<String, Value>,
    /// Logical id → resource (`Type`, `Properties`).
    pub resources: BTreeMap<String, Resource>,
    /// `Globals.Function.Environment.Variables`, then every function's own
    /// (`Environment.Variables`), unresolved: what any of the functions is
    /// given.
    pub function_environment: Map<String, Value>,
}

/// One resource of the template.
#[derive(Clone, Debug)]
pub struct Resource {
    pub kind: String,
    pub properties: Map<String, Value>,
}

impl StackTemplate {
    /// The repository's own `template.yaml`, found from this crate's folder.
    pub fn repository_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
    }

    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_yaml_ng::from_str(text)?;
        let section = |name: &str| doc.get(name).and_then(Value::as_object).cloned();
        let parameter_defaults = section("Parameters")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, p)| p.get("Default").cloned().map(|d| (name, d)))
            .collect();
        let mut resources = BTreeMap::new();
        for (id, body) in section("Resources")
            .ok_or_else(|| TemplateError::Shape("no Resources section".into()))?
        {
            let kind = body
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| TemplateError::Shape(format!("resource {id} has no Type")))?
                .to_owned();
            let properties = body
                .get("Properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            resources.insert(id, Resource { kind, properties });
        }
        let mut function_environment = doc
            .pointer("/Globals/Function/Environment/Variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for resource in resources.values() {
            if resource.kind == "AWS::Serverless::Function"
                && let Some(own) = resource
                    .properties
                    .get("Environment")
                    .and_then(|e| e.get("Variables"))
                    .and_then(Value::as_object)
            {
                function_environment.extend(own.clone());
            }
        }
        Ok(Self {
            parameter_defaults,
            resources,
            function_environment,
        })
    }

    /// Logical ids of the resources of one CloudFormation type, in id order.
    pub fn ids_of(&self, kind: &str) -> Vec<&str> {
        self.resources
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// Turns `OrderEventsTopic` into `order-events-topic`.
pub fn kebab(logical_id: &str) -> String {
    let mut out = String::with_capacity(logical_id.len() + 4);
    for (i, c) in logical_id.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_template_parses_with_the_resources_the_stack_needs() {
        let t = StackTemplate::load(&StackTemplate::repository_path()).expect("template parses");
        assert_eq!(t.ids_of("AWS::DynamoDB::Table"), vec!["OrdersTable"]);
        assert_eq!(
            t.ids_of("AWS::SQS::Queue"),
            vec![
                "PollDeadLetterQueue",
                "PollQueue",
                "WebhookDeadLetterQueue",
                "WebhookQueue"
            ]
        );
        assert_eq!(
            t.ids_of("AWS::SNS::Topic"),
            vec!["OpsAlertsTopic", "OrderEventsTopic"]
        );
        assert!(t.function_environment.contains_key("TABLE_NAME"));
        // A function's own variable, beside the globals.
        assert!(t.function_environment.contains_key("CODES_KMS_KEY_ID"));
        assert!(
            t.function_environment
                .contains_key("WEBHOOK_SECRETS_PREFIX")
        );
        assert_eq!(t.ids_of("AWS::KMS::Key"), vec!["StackKey"]);
        assert_eq!(
            t.parameter_defaults.get("AutoPay"),
            Some(&Value::from("true"))
        );
    }

    #[test]
    fn short_form_tags_are_refused_loudly() {
        let err = StackTemplate::parse(
            "Resources:\n  X:\n    Type: T\n    Properties:\n      A: !Ref Y\n",
        );
        assert!(err.is_err(), "a !Ref tag must not be silently accepted");
    }

    #[test]
    fn logical_ids_become_kebab_names() {
        assert_eq!(kebab("OrderEventsTopic"), "order-events-topic");
        assert_eq!(kebab("PollQueue"), "poll-queue");
    }
}
