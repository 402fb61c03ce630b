//! `template.yaml` as CloudFormation will deploy it: the SAM transform
//! (aws-sam-translator, run offline by `tests/sam_transform.py` with the
//! interpreter of `FOXRELAY_PYTHON`, `target/venv` or `python3`) turns it into
//! plain CloudFormation, and the tests read that result, with the template's
//! conditions evaluated for the parameter values given and every reference
//! replaced by a realistic physical value (ARNs, queue URLs, names).
//!
//! They prove: each function's role grants exactly the actions its code calls
//! on exactly the resources it calls them on (no managed policies, no "*" but
//! where AWS requires it); the SQS event source reports batch item failures;
//! the poll queue's visibility timeout is at least 6x the poll function's
//! timeout; scan-stalled runs on `rate(5 minutes)`; every setting the code
//! reads is set on every function and parses; the orders API authorizes with
//! IAM by default, with JWT when asked.

use foxrelay_shared::settings::{ApiKeySource, FoxReloadAccess, Settings, names};
use foxrelay_tests::grants;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const STACK: &str = "foxrelay-test";
/// An existing secret an operator could pass as FoxReloadApiKeySecretArn.
const EXISTING_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:foxreload/api-key-Xy12Zw";

const FUNCTIONS: [&str; 4] = [
    "CreateOrderFunction",
    "PollOrderFunction",
    "ScanStalledFunction",
    "DeliverWebhookFunction",
];

// ------------------------------------------------------------------ the kit

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The interpreter with aws-sam-translator: the one the moto tests use.
fn python() -> PathBuf {
    if let Ok(python) = std::env::var(foxrelay_local::moto::PYTHON_ENV) {
        return python.into();
    }
    let venv = workspace().join("target/venv/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

/// Runs the SAM transform on the repository's template with `parameters`.
fn transform(parameters: &[(&str, &str)]) -> Value {
    let python = python();
    let output = Command::new(&python)
        .arg(workspace().join("tests/sam_transform.py"))
        .arg(workspace().join("template.yaml"))
        .args(parameters.iter().map(|(k, v)| format!("{k}={v}")))
        .env("AWS_DEFAULT_REGION", REGION)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run `bash .ci/setup` or set {}",
                python.display(),
                foxrelay_local::moto::PYTHON_ENV
            )
        });
    assert!(
        output.status.success(),
        "the SAM transform failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the transform prints JSON")
}

/// The transformed template as deployed with some parameter values: its
/// conditions evaluated, its references resolvable to physical values.
struct Deployment {
    template: Value,
    parameters: BTreeMap<String, Value>,
    conditions: BTreeMap<String, bool>,
}

impl Deployment {
    fn new(given: &[(&str, &str)]) -> Self {
        let template = transform(given);
        let given: BTreeMap<&str, &str> = given.iter().copied().collect();
        let mut parameters = BTreeMap::new();
        for (name, spec) in template["Parameters"].as_object().expect("Parameters") {
            let raw = match (given.get(name.as_str()), &spec["Default"]) {
                (Some(value), _) => (*value).to_owned(),
                (None, Value::String(s)) => s.clone(),
                (None, Value::Number(n)) => n.to_string(),
                (None, other) => panic!("parameter {name} has no value and no default ({other})"),
            };
            let value = if spec["Type"] == "CommaDelimitedList" {
                Value::Array(raw.split(',').map(|s| json!(s.trim())).collect())
            } else {
                Value::String(raw)
            };
            parameters.insert(name.clone(), value);
        }
        let mut deployment = Self {
            template,
            parameters,
            conditions: BTreeMap::new(),
        };
        let names: Vec<String> = deployment.template["Conditions"]
            .as_object()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        for name in names {
            let value = deployment.condition(&name);
            deployment.conditions.insert(name, value);
        }
        deployment
    }

    fn condition(&self, name: &str) -> bool {
        if let Some(value) = self.conditions.get(name) {
            return *value;
        }
        let body = &self.template["Conditions"][name];
        assert!(!body.is_null(), "no condition {name}");
        self.truth(body)
    }

    fn truth(&self, expression: &Value) -> bool {
        let (function, args) = single(expression).unwrap_or_else(|| panic!("{expression}"));
        let args = args.as_array();
        match function {
            "Condition" => self.condition(expression["Condition"].as_str().unwrap()),
            "Fn::Equals" => {
                let args = args.expect("Fn::Equals takes a list");
                self.value(&args[0]) == self.value(&args[1])
            }
            "Fn::Not" => !self.truth(&args.expect("Fn::Not takes a list")[0]),
            "Fn::And" => args.unwrap().iter().all(|c| self.truth(c)),
            "Fn::Or" => args.unwrap().iter().any(|c| self.truth(c)),
            other => panic!("condition function {other} is not known here"),
        }
    }

    /// The resources CloudFormation creates: those without a condition, or
    /// whose condition holds.
    fn resources(&self) -> BTreeMap<&str, &Value> {
        self.template["Resources"]
            .as_object()
            .expect("Resources")
            .iter()
            .filter(|(_, r)| r["Condition"].as_str().is_none_or(|c| self.condition(c)))
            .map(|(id, r)| (id.as_str(), r))
            .collect()
    }

    fn of_type(&self, kind: &str) -> BTreeMap<&str, &Value> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| r["Type"] == kind)
            .collect()
    }

    fn resource(&self, id: &str) -> &Value {
        self.resources()
            .get(id)
            .copied()
            .unwrap_or_else(|| panic!("{id} is not created with these parameters"))
    }

    fn kind(&self, id: &str) -> &str {
        self.resource(id)["Type"].as_str().unwrap()
    }

    /// What `Ref: id` gives once deployed.
    fn reference(&self, id: &str) -> String {
        match id {
            "AWS::Region" => return REGION.into(),
            "AWS::AccountId" => return ACCOUNT.into(),
            "AWS::Partition" => return "aws".into(),
            "AWS::StackName" => return STACK.into(),
            "AWS::URLSuffix" => return "amazonaws.com".into(),
            _ => {}
        }
        if let Some(value) = self.parameters.get(id) {
            return match value {
                Value::String(s) => s.clone(),
                list => panic!("Ref {id} is a list ({list}) where a string is needed"),
            };
        }
        match self.kind(id) {
            "AWS::SQS::Queue" => {
                format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{STACK}-{id}")
            }
            "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-{id}"),
            "AWS::SecretsManager::Secret" => {
                format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{STACK}-{id}-AbCdEf")
            }
            "AWS::KMS::Key" => format!("{id}-0000-4000-8000-000000000000"),
            // Tables, functions, log groups, API ids and the rest: a name.
            _ => format!("{STACK}-{id}"),
        }
    }

    /// What `Fn::GetAtt: [id, attribute]` gives once deployed.
    fn attribute(&self, id: &str, attribute: &str) -> String {
        let name = format!("{STACK}-{id}");
        match (self.kind(id), attribute) {
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
            }
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            ("AWS::SQS::Queue", "QueueName") => name,
            ("AWS::SNS::Topic", "TopicArn") => self.reference(id),
            ("AWS::KMS::Key", "Arn") => {
                format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{}", self.reference(id))
            }
            ("AWS::Logs::LogGroup", "Arn") => {
                format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*")
            }
            ("AWS::Lambda::Function", "Arn") => {
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
            }
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
            ("AWS::Events::Rule", "Arn") => {
                format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}")
            }
            (kind, _) => panic!("no deployed value for {kind} {id}.{attribute}"),
        }
    }

    /// `value` with every intrinsic resolved; None for `AWS::NoValue`.
    fn value(&self, value: &Value) -> Option<Value> {
        if let Some((function, args)) = single(value) {
            match function {
                "Ref" if args == "AWS::NoValue" => return None,
                "Ref" => {
                    let id = args.as_str().unwrap();
                    return Some(match self.parameters.get(id) {
                        Some(list @ Value::Array(_)) => list.clone(),
                        _ => Value::String(self.reference(id)),
                    });
                }
                "Fn::GetAtt" => {
                    let (id, attribute) = match args {
                        Value::Array(parts) => (
                            parts[0].as_str().unwrap().to_owned(),
                            parts[1].as_str().unwrap().to_owned(),
                        ),
                        Value::String(dotted) => {
                            let (id, attribute) = dotted.split_once('.').unwrap();
                            (id.to_owned(), attribute.to_owned())
                        }
                        other => panic!("Fn::GetAtt {other}"),
                    };
                    return Some(Value::String(self.attribute(&id, &attribute)));
                }
                "Fn::Sub" => {
                    let text = args.as_str().expect("Fn::Sub with a plain string");
                    return Some(Value::String(self.substitute(text)));
                }
                "Fn::If" => {
                    let args = args.as_array().expect("Fn::If takes a list");
                    let chosen = if self.condition(args[0].as_str().unwrap()) {
                        &args[1]
                    } else {
                        &args[2]
                    };
                    return self.value(chosen);
                }
                "Fn::Join" => {
                    let args = args.as_array().expect("Fn::Join takes a list");
                    let parts = self.value(&args[1]).unwrap_or_default();
                    let parts: Vec<&str> = parts
                        .as_array()
                        .expect("Fn::Join joins a list")
                        .iter()
                        .map(|p| p.as_str().unwrap())
                        .collect();
                    return Some(Value::String(parts.join(args[0].as_str().unwrap())));
                }
                _ => {}
            }
        }
        Some(match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter_map(|(k, v)| self.value(v).map(|v| (k.clone(), v)))
                    .collect::<Map<_, _>>(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().filter_map(|v| self.value(v)).collect())
            }
            scalar => scalar.clone(),
        })
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closed ${") + start;
            let name = &rest[start + 2..end];
            match name.split_once('.') {
                Some((id, attribute)) if !name.starts_with("AWS::") => {
                    out.push_str(&self.attribute(id, attribute))
                }
                _ => out.push_str(&self.reference(name)),
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A resource's property, resolved.
    fn property(&self, id: &str, name: &str) -> Option<Value> {
        self.value(&self.resource(id)["Properties"][name])
            .filter(|v| !v.is_null())
    }

    fn number(&self, id: &str, name: &str) -> u64 {
        match self.property(id, name) {
            Some(Value::Number(n)) => n.as_u64().unwrap(),
            Some(Value::String(s)) => s.parse().unwrap(),
            other => panic!("{id}.{name} is not a number: {other:?}"),
        }
    }

    /// A function's environment, resolved.
    fn environment(&self, function: &str) -> BTreeMap<String, String> {
        let variables = self
            .property(function, "Environment")
            .and_then(|e| e.get("Variables").cloned())
            .unwrap_or_else(|| panic!("{function} has no environment"));
        variables
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }

    /// The role a function runs with: its logical id, and the resource.
    fn role_of(&self, function: &str) -> (String, &Value) {
        let role = &self.resource(function)["Properties"]["Role"];
        let id = role["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function}'s Role is not a GetAtt of a role: {role}"));
        assert_eq!(role["Fn::GetAtt"][1], "Arn", "{function}'s Role");
        (id.to_owned(), self.resource(id))
    }

    /// A role's policy statements, resolved.
    fn statements(&self, function: &str) -> Vec<Value> {
        let (_, role) = self.role_of(function);
        let policies = self
            .value(&role["Properties"]["Policies"])
            .unwrap_or_default();
        policies
            .as_array()
            .expect("inline Policies")
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
            .collect()
    }

    /// Whether a role may take `action` on `resource` with the KMS
    /// encryption context `context`, as IAM decides it: an explicit deny
    /// whose `StringEquals` conditions on the context all hold wins; else
    /// an allow on the action and resource. (The roles' only other
    /// condition, on partition keys, never concerns KMS.)
    fn may(
        &self,
        function: &str,
        action: &str,
        resource: &str,
        context: &BTreeMap<&str, &str>,
    ) -> bool {
        let applies = |statement: &Value| {
            strings(&statement["Action"]).iter().any(|a| a == action)
                && strings(&statement["Resource"])
                    .iter()
                    .any(|r| r == resource || r == "*")
        };
        let holds = |statement: &Value| match statement.get("Condition") {
            None => true,
            Some(condition) => {
                let equals = condition["StringEquals"].as_object().unwrap_or_else(|| {
                    panic!("{function}: only StringEquals conditions are known on KMS: {condition}")
                });
                equals.iter().all(|(key, want)| {
                    let name = key
                        .strip_prefix("kms:EncryptionContext:")
                        .unwrap_or_else(|| panic!("{function}: unknown condition key {key}"));
                    context.get(name).copied() == want.as_str()
                })
            }
        };
        let statements = self.statements(function);
        let denied = statements
            .iter()
            .any(|s| s["Effect"] == "Deny" && applies(s) && holds(s));
        let allowed = statements
            .iter()
            .any(|s| s["Effect"] == "Allow" && applies(s) && holds(s));
        allowed && !denied
    }

    /// Every (action, resource) pair a role's policies allow; a role's
    /// denials are checked apart ([`Deployment::may`]).
    fn grants(&self, function: &str) -> BTreeSet<(String, String)> {
        let (id, role) = self.role_of(function);
        assert_eq!(role["Type"], "AWS::IAM::Role");
        let properties = &role["Properties"];
        assert!(
            properties["ManagedPolicyArns"].is_null(),
            "{id} has managed policies: {}",
            properties["ManagedPolicyArns"]
        );
        assert_eq!(
            properties["AssumeRolePolicyDocument"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]),
            "{id} must be assumable by Lambda only"
        );
        let mut grants = BTreeSet::new();
        let policies = self.value(&properties["Policies"]).unwrap_or_default();
        for policy in policies.as_array().expect("inline Policies") {
            for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                if statement["Effect"] == "Deny" {
                    continue;
                }
                assert_eq!(statement["Effect"], "Allow", "{id}: {statement}");
                for key in ["NotAction", "NotResource", "Principal"] {
                    assert!(statement[key].is_null(), "{id} uses {key}: {statement}");
                }
                let keys = leading_keys_of(&id, statement);
                for action in strings(&statement["Action"]) {
                    for resource in strings(&statement["Resource"]) {
                        grants.insert((action.clone(), with_keys(resource, keys.as_deref())));
                    }
                }
            }
        }
        grants
    }
}

/// A statement's partition-key restriction, sorted; `None` without a
/// Condition. Any other condition is refused: the grants table knows only
/// this one.
fn leading_keys_of(role: &str, statement: &Value) -> Option<Vec<String>> {
    let condition = statement.get("Condition")?;
    let keys = &condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
    assert!(
        condition.as_object().map(Map::len) == Some(1)
            && condition["ForAllValues:StringLike"]
                .as_object()
                .map(Map::len)
                == Some(1)
            && keys.is_array(),
        "{role}: only ForAllValues:StringLike dynamodb:LeadingKeys conditions are known: {condition}"
    );
    let mut keys = strings(keys);
    keys.sort();
    Some(keys)
}

/// A resource as the grants compare it: with its key restriction, if any.
fn with_keys(resource: String, keys: Option<&[String]>) -> String {
    match keys {
        Some(keys) => format!("{resource} on keys {}", keys.join(" ")),
        None => resource,
    }
}

/// `{"Name": args}`: the one key of an intrinsic function's object.
fn single(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (key, args) = map.iter().next()?;
    (key == "Ref" || key == "Condition" || key.starts_with("Fn::")).then_some((key.as_str(), args))
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_else(|| panic!("{i}")).to_owned())
            .collect(),
        other => panic!("expected a string or a list of strings: {other}"),
    }
}

/// The template with every parameter at its default (IAM auth, a secret
/// created by the stack).
fn defaults() -> &'static Deployment {
    static DEFAULTS: OnceLock<Deployment> = OnceLock::new();
    DEFAULTS.get_or_init(|| Deployment::new(&[]))
}

// ------------------------------------------------------------ permissions

/// What each function's code calls, on what: the expected table.
fn expected_grants(
    d: &Deployment,
    secret: &str,
) -> BTreeMap<&'static str, BTreeSet<(String, String)>> {
    let table = d.attribute("OrdersTable", "Arn");
    let pending_index = format!("{table}/index/pending-orders");
    let poll_queue = d.attribute("PollQueue", "Arn");
    let webhook_queue = d.attribute("WebhookQueue", "Arn");
    let webhook_dead_letters = d.attribute("WebhookDeadLetterQueue", "Arn");
    let webhook_secrets = d.substitute(
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/webhooks/*",
    );
    let order_events = d.reference("OrderEventsTopic");
    let ops_alerts = d.reference("OpsAlertsTopic");
    let key = d.attribute("StackKey", "Arn");
    let pairs = |list: &[(&[&str], &[&str])]| -> BTreeSet<(String, String)> {
        list.iter()
            .flat_map(|(actions, resources)| {
                actions.iter().flat_map(move |a| {
                    resources
                        .iter()
                        .map(move |r| ((*a).to_owned(), (*r).to_owned()))
                })
            })
            .collect()
    };
    // Every function: its own log group, X-Ray (Resource "*" is what AWS
    // requires for these two actions), the API key's secret, and the stack
    // key (environment, secret, encrypted queue and topics).
    let common = |log_group: &str| {
        pairs(&[
            (
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                &[&d.attribute(log_group, "Arn")],
            ),
            (
                &["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                &["*"],
            ),
            (&["kms:Decrypt", "kms:GenerateDataKey"], &[&key]),
        ])
    };
    let with = |mut base: BTreeSet<(String, String)>, more: BTreeSet<(String, String)>| {
        base.extend(more);
        base
    };
    // The code's own calls (the table the IAM-calls test holds the code
    // to), on the deployed resources.
    let arn_of = |logical: &str| match logical {
        grants::ORDERS_TABLE => table.clone(),
        grants::PENDING_INDEX => pending_index.clone(),
        grants::POLL_QUEUE => poll_queue.clone(),
        grants::ORDER_EVENTS_TOPIC => order_events.clone(),
        grants::OPS_ALERTS_TOPIC => ops_alerts.clone(),
        grants::STACK_KEY => key.clone(),
        grants::WEBHOOK_QUEUE => webhook_queue.clone(),
        grants::WEBHOOK_DEAD_LETTER_QUEUE => webhook_dead_letters.clone(),
        grants::WEBHOOK_SECRETS => webhook_secrets.clone(),
        other => panic!("no ARN for {other}"),
    };
    let log_groups = BTreeMap::from([
        ("CreateOrderFunction", "CreateOrderLogGroup"),
        ("PollOrderFunction", "PollOrderLogGroup"),
        ("ScanStalledFunction", "ScanStalledLogGroup"),
        ("DeliverWebhookFunction", "DeliverWebhookLogGroup"),
    ]);
    let narrowed = grants::leading_keys();
    grants::code_calls()
        .into_iter()
        .map(|(function, calls)| {
            let code: BTreeSet<(String, String)> = calls
                .into_iter()
                .map(|(action, resource)| {
                    let keys = narrowed.get(&(function, action)).map(|keys| {
                        let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
                        keys.sort();
                        keys
                    });
                    let keys = keys.filter(|_| resource == grants::ORDERS_TABLE);
                    (
                        action.to_owned(),
                        with_keys(arn_of(resource), keys.as_deref()),
                    )
                })
                .collect();
            let mut granted = with(common(log_groups[function]), code);
            // Only the functions that call FoxReload read its API key.
            if access_of(function) == FoxReloadAccess::Needed {
                granted.insert((
                    "secretsmanager:GetSecretValue".to_owned(),
                    secret.to_owned(),
                ));
            }
            // Lambda's SQS event source mappings, under the role of the
            // function each feeds.
            let fed_by = match function {
                "PollOrderFunction" => Some(&poll_queue),
                "DeliverWebhookFunction" => Some(&webhook_queue),
                _ => None,
            };
            if let Some(queue) = fed_by {
                granted.extend(pairs(&[(
                    &[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                    ],
                    &[queue],
                )]));
            }
            (function, granted)
        })
        .collect()
}

fn assert_exact_grants(d: &Deployment, secret: &str) {
    let expected = expected_grants(d, secret);
    for function in FUNCTIONS {
        let granted = d.grants(function);
        let want = &expected[function];
        let extra: Vec<_> = granted.difference(want).collect();
        let missing: Vec<_> = want.difference(&granted).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{function}'s role differs from what its code calls:\n  granted but not expected: {extra:?}\n  expected but not granted: {missing:?}"
        );
    }
}

#[test]
fn each_function_role_grants_exactly_the_actions_its_code_calls_on_its_own_resources() {
    let d = defaults();
    let created_secret = d.reference("FoxReloadApiKeySecret");
    assert_exact_grants(d, &created_secret);
}

#[test]
fn only_the_functions_that_handle_codes_may_unwrap_their_data_keys_and_deliver_webhook_seals_none()
{
    use foxrelay_shared::sealing::{CODES_PURPOSE, PURPOSE_CONTEXT_KEY};
    let d = defaults();
    let key = d.attribute("StackKey", "Arn");
    let codes = BTreeMap::from([(PURPOSE_CONTEXT_KEY, CODES_PURPOSE)]);
    // What SQS asks KMS with when a function sends to the encrypted queue.
    let queue = BTreeMap::from([("aws:sqs:arn", "arn:aws:sqs:us-east-1:123456789012:q")]);
    for function in FUNCTIONS {
        let reads_codes = function != "ScanStalledFunction";
        // deliver-webhook opens codes to send them; it never stores one.
        let seals_codes = reads_codes && function != "DeliverWebhookFunction";
        for (action, allowed) in [
            ("kms:Decrypt", reads_codes),
            ("kms:GenerateDataKey", seals_codes),
        ] {
            assert_eq!(
                d.may(function, action, &key, &codes),
                allowed,
                "{function}: {action} of a codes data key"
            );
            assert!(
                d.may(function, action, &key, &queue),
                "{function}: {action} for its queue and topics"
            );
        }
        // Only the functions that handle codes are told the key.
        assert_eq!(
            d.environment(function).get(names::CODES_KMS_KEY_ID),
            reads_codes.then_some(&key),
            "{function}"
        );
    }
}

/// The partition keys a table grant is narrowed to (it must be).
fn narrowed_keys<'a>(action: &str, resource: &'a str) -> Vec<&'a str> {
    resource
        .split_once(" on keys ")
        .unwrap_or_else(|| panic!("{action} on the whole table: {resource}"))
        .1
        .split(' ')
        .collect()
}

#[test]
fn scan_stalled_may_neither_read_nor_change_a_code_item() {
    let d = defaults();
    let table = d.attribute("OrdersTable", "Arn");
    let mut item_grants = 0;
    for (action, resource) in d.grants("ScanStalledFunction") {
        if !resource.starts_with(&table) || resource.contains("/index/") {
            continue;
        }
        item_grants += 1;
        let keys = narrowed_keys(&action, &resource);
        assert!(
            !keys.iter().any(|k| grants::string_like(k, "CODES#x")),
            "{action} may touch codes: {keys:?}"
        );
    }
    assert_eq!(item_grants, 3, "GetItem, UpdateItem, ConditionCheckItem");
}

#[test]
fn create_order_may_write_no_code_and_delete_nothing_but_idempotency_keys() {
    let d = defaults();
    let table = d.attribute("OrdersTable", "Arn");
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ];
    let mut seen = 0;
    for (action, resource) in d.grants("CreateOrderFunction") {
        if !writes.contains(&action.as_str()) || !resource.starts_with(&table) {
            continue;
        }
        seen += 1;
        let keys = narrowed_keys(&action, &resource);
        for code in ["CODES#0b6f3c1e-2f7d-4c7e-9d55-2d8f0b7a1e11", "CODES#x"] {
            assert!(
                !keys.iter().any(|k| grants::string_like(k, code)),
                "{action} may touch {code}: {keys:?}"
            );
        }
        if action == "dynamodb:DeleteItem" {
            assert!(
                keys.iter().all(|k| k.starts_with("IDEMPOTENCY#")),
                "{keys:?}"
            );
        }
    }
    assert_eq!(seen, 3);
}

#[test]
fn iam_string_like_matches_as_iam_does() {
    use grants::string_like;
    assert!(string_like("ORDER#*", "ORDER#abc"));
    assert!(string_like("ORDER#*", "ORDER#"));
    assert!(!string_like("ORDER#*", "CODES#abc"));
    assert!(!string_like("ORDER#*", "XORDER#abc"));
    assert!(string_like("A?C", "ABC"));
    assert!(!string_like("A?C", "AC"));
    assert!(string_like("*", ""));
}

#[test]
fn an_existing_api_key_secret_is_granted_instead_of_a_created_one() {
    let d = Deployment::new(&[("FoxReloadApiKeySecretArn", EXISTING_SECRET)]);
    assert!(
        d.of_type("AWS::SecretsManager::Secret").is_empty(),
        "no secret is created when one is given"
    );
    assert_exact_grants(&d, EXISTING_SECRET);
}

#[test]
fn no_role_has_a_wildcard_action_or_resource_but_x_ray_nor_a_managed_policy() {
    let d = defaults();
    for function in FUNCTIONS {
        for (action, resource) in d.grants(function) {
            assert!(
                !action.contains('*'),
                "{function}: wildcard action {action}"
            );
            if resource == "*" {
                assert!(
                    ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
                        .contains(&action.as_str()),
                    "{function}: {action} on \"*\""
                );
            }
        }
    }
    // SAM generated no role of its own, and nothing attaches policies
    // elsewhere: the four roles are all there is, one per function.
    let roles: BTreeSet<&str> = d.of_type("AWS::IAM::Role").into_keys().collect();
    let used: BTreeSet<String> = FUNCTIONS.iter().map(|f| d.role_of(f).0).collect();
    assert_eq!(roles.len(), FUNCTIONS.len(), "roles: {roles:?}");
    assert_eq!(
        used,
        roles.iter().map(|r| (*r).to_owned()).collect(),
        "each function has its own role"
    );
    for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        assert!(d.of_type(kind).is_empty(), "unexpected {kind}");
    }
}

// ------------------------------------------------------- event sources

#[test]
fn each_queue_event_source_feeds_its_function_and_reports_batch_item_failures() {
    let d = defaults();
    let mappings = d.of_type("AWS::Lambda::EventSourceMapping");
    let mut fed = BTreeMap::new();
    for id in mappings.keys() {
        assert_eq!(
            d.property(id, "FunctionResponseTypes"),
            Some(json!(["ReportBatchItemFailures"])),
            "{id}"
        );
        fed.insert(
            d.property(id, "EventSourceArn").unwrap().to_string(),
            d.property(id, "FunctionName").unwrap().to_string(),
        );
    }
    assert_eq!(
        fed,
        BTreeMap::from([
            (
                json!(d.attribute("PollQueue", "Arn")).to_string(),
                json!(d.reference("PollOrderFunction")).to_string()
            ),
            (
                json!(d.attribute("WebhookQueue", "Arn")).to_string(),
                json!(d.reference("DeliverWebhookFunction")).to_string()
            ),
        ])
    );
}

#[test]
fn each_queue_hides_a_message_for_at_least_six_timeouts_of_the_function_it_feeds() {
    let d = defaults();
    for (queue, function) in [
        ("PollQueue", "PollOrderFunction"),
        ("WebhookQueue", "DeliverWebhookFunction"),
    ] {
        let visibility = d.number(queue, "VisibilityTimeout");
        let timeout = d.number(function, "Timeout");
        assert!(
            visibility >= 6 * timeout,
            "{queue} VisibilityTimeout {visibility} < 6 x {function} Timeout {timeout}"
        );
    }
}

#[test]
fn only_the_order_events_topic_may_send_to_the_webhook_queue_and_only_with_endpoints() {
    let d = defaults();
    let policies = d.of_type("AWS::SQS::QueuePolicy");
    assert_eq!(policies.len(), 1);
    let (id, _) = policies.into_iter().next().unwrap();
    let document = d.property(id, "PolicyDocument").unwrap();
    let statements = document["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{document}");
    let only = &statements[0];
    assert_eq!(only["Effect"], "Allow");
    assert_eq!(only["Principal"], json!({"Service": "sns.amazonaws.com"}));
    assert_eq!(only["Action"], "sqs:SendMessage");
    assert_eq!(only["Resource"], json!(d.attribute("WebhookQueue", "Arn")));
    assert_eq!(
        only["Condition"],
        json!({"ArnEquals": {"aws:SourceArn": d.reference("OrderEventsTopic")}})
    );
    // No endpoints (the default): no subscription, nothing delivered.
    assert!(d.of_type("AWS::SNS::Subscription").is_empty());
    let with = Deployment::new(&[(
        "WebhookEndpoints",
        r#"[{"id":"shop","url":"https://hooks.example.com/foxrelay"}]"#,
    )]);
    let subscriptions = with.of_type("AWS::SNS::Subscription");
    assert_eq!(subscriptions.len(), 1);
    let (id, _) = subscriptions.into_iter().next().unwrap();
    assert_eq!(
        with.property(id, "Endpoint"),
        Some(json!(with.attribute("WebhookQueue", "Arn")))
    );
    assert_eq!(with.property(id, "RawMessageDelivery"), Some(json!(true)));
    assert_eq!(
        settings_of(&with, "DeliverWebhookFunction")
            .webhooks
            .endpoints[0]
            .id,
        "shop"
    );
}

#[test]
fn a_poll_message_that_moves_its_chain_on_past_its_budget_still_ends_inside_the_timeout() {
    use foxrelay_shared::settings::{POLL_MESSAGE_BUDGET, POLL_MOVE_GRACE};
    let timeout = defaults().number("PollOrderFunction", "Timeout");
    let worst = POLL_MESSAGE_BUDGET + POLL_MOVE_GRACE;
    assert!(
        worst + Duration::from_secs(2) <= Duration::from_secs(timeout),
        "{worst:?} against a {timeout} s timeout"
    );
}

#[test]
fn scan_stalled_runs_every_five_minutes_exactly() {
    let d = defaults();
    let function_arn = json!(d.attribute("ScanStalledFunction", "Arn"));
    let rules: Vec<&str> = d
        .of_type("AWS::Events::Rule")
        .into_keys()
        .filter(|id| {
            d.property(id, "Targets")
                .and_then(|t| t.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .any(|t| t["Arn"] == function_arn)
        })
        .collect();
    assert_eq!(rules.len(), 1, "rules targeting scan-stalled: {rules:?}");
    let rule = rules[0];
    assert_eq!(
        d.property(rule, "ScheduleExpression"),
        Some(json!("rate(5 minutes)"))
    );
    assert_ne!(d.property(rule, "State"), Some(json!("DISABLED")));
    // EventBridge may invoke the function for this rule.
    let rule_arn = json!(d.attribute(rule, "Arn"));
    assert!(
        d.of_type("AWS::Lambda::Permission").into_keys().any(|p| {
            d.property(p, "Principal") == Some(json!("events.amazonaws.com"))
                && d.property(p, "SourceArn") == Some(rule_arn.clone())
                && d.property(p, "FunctionName") == Some(json!(d.reference("ScanStalledFunction")))
        }),
        "no permission for the schedule to invoke scan-stalled"
    );
}

// ------------------------------------------------------------ settings

/// A function's environment as Lambda gives it to the process.
fn lambda_environment(d: &Deployment, function: &str) -> BTreeMap<String, String> {
    let mut env = d.environment(function);
    env.insert(
        names::AWS_LAMBDA_FUNCTION_NAME.into(),
        d.reference(function),
    );
    env
}

/// Whether a function calls FoxReload, as its crate says.
fn access_of(function: &str) -> FoxReloadAccess {
    match function {
        "CreateOrderFunction" => create_order::FOXRELOAD_ACCESS,
        "PollOrderFunction" => poll_order::FOXRELOAD_ACCESS,
        "ScanStalledFunction" => scan_stalled::FOXRELOAD_ACCESS,
        "DeliverWebhookFunction" => deliver_webhook::FOXRELOAD_ACCESS,
        other => panic!("{other} is not a function"),
    }
}

fn settings_of(d: &Deployment, function: &str) -> Settings {
    let env = lambda_environment(d, function);
    Settings::from_lookup_for(|name| env.get(name).cloned(), access_of(function))
        .unwrap_or_else(|e| panic!("{function} would not start: {e}"))
}

#[test]
fn every_function_sets_every_deployed_setting_and_only_its_own() {
    let d = defaults();
    for function in FUNCTIONS {
        let env = d.environment(function);
        let mut wanted: Vec<&str> = names::DEPLOYED.to_vec();
        let mut unwanted = vec![names::FOXRELOAD_API_KEY];
        let calls_foxreload = access_of(function) == FoxReloadAccess::Needed;
        let opens_codes = access_of(function) != FoxReloadAccess::NotNeeded;
        for (names, set) in [
            (names::SUPPLIER_KEY, calls_foxreload),
            (names::CODES, opens_codes),
            (names::EVENTS, function == "PollOrderFunction"),
            (names::WEBHOOKS, function == "DeliverWebhookFunction"),
            (names::API, function == "CreateOrderFunction"),
        ] {
            if set {
                wanted.extend(names);
            } else {
                unwanted.extend(names);
            }
        }
        let missing: Vec<&str> = wanted
            .into_iter()
            .filter(|name| !env.contains_key(*name))
            .collect();
        assert!(missing.is_empty(), "{function} lacks {missing:?}");
        let extra: Vec<&str> = unwanted
            .into_iter()
            .filter(|name| env.contains_key(*name))
            .collect();
        assert!(extra.is_empty(), "{function} must not have {extra:?}");
    }
}

#[test]
fn scan_stalled_starts_without_the_api_key_and_the_others_need_it() {
    let d = defaults();
    assert_eq!(
        settings_of(d, "ScanStalledFunction").foxreload.api_key,
        ApiKeySource::NotGiven
    );
    // Even with a secret named (an older configuration mid-update), it is
    // never read: its role may not.
    let mut env = lambda_environment(d, "ScanStalledFunction");
    env.insert(
        names::FOXRELOAD_API_KEY_SECRET_ARN.into(),
        EXISTING_SECRET.into(),
    );
    let scan = Settings::from_lookup_for(|name| env.get(name).cloned(), FoxReloadAccess::NotNeeded)
        .unwrap();
    assert_eq!(scan.foxreload.api_key, ApiKeySource::NotGiven);
    for function in ["CreateOrderFunction", "PollOrderFunction"] {
        let mut env = lambda_environment(d, function);
        env.remove(names::FOXRELOAD_API_KEY_SECRET_ARN);
        let refused = Settings::from_lookup_for(|name| env.get(name).cloned(), access_of(function))
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains(names::FOXRELOAD_API_KEY_SECRET_ARN),
            "{function}: {refused}"
        );
    }
}

#[test]
fn the_orders_api_parameters_reach_create_order() {
    let d = defaults();
    let api = settings_of(d, "CreateOrderFunction").api;
    assert_eq!(
        (api.principal_claim.as_str(), api.require_idempotency_key),
        ("sub", false)
    );
    let d = Deployment::new(&[
        ("JwtPrincipalClaim", "client_id"),
        ("RequireIdempotencyKey", "true"),
    ]);
    let api = settings_of(&d, "CreateOrderFunction").api;
    assert_eq!(
        (api.principal_claim.as_str(), api.require_idempotency_key),
        ("client_id", true)
    );
}

#[test]
fn production_requires_an_idempotency_key() {
    let text = std::fs::read_to_string(workspace().join("samconfig.toml")).unwrap();
    let prod = text
        .split("[prod.deploy.parameters]")
        .nth(1)
        .expect("a prod deploy section");
    assert!(prod.contains("\"RequireIdempotencyKey=true\""), "{prod}");
}

#[test]
fn every_function_starts_with_the_default_parameters() {
    let d = defaults();
    for function in FUNCTIONS {
        let s = settings_of(d, function);
        assert_eq!(s.resources.table_name, d.reference("OrdersTable"));
        assert_eq!(s.resources.poll_queue_url, d.reference("PollQueue"));
        assert_eq!(
            s.resources.order_events_topic_arn,
            d.reference("OrderEventsTopic")
        );
        assert_eq!(
            s.resources.ops_alerts_topic_arn,
            d.reference("OpsAlertsTopic")
        );
        if access_of(function) == FoxReloadAccess::Needed {
            assert_eq!(
                s.foxreload.api_key,
                ApiKeySource::SecretArn(d.reference("FoxReloadApiKeySecret")),
                "{function} reads the key from the secret the stack created"
            );
        }
        assert_eq!(s.metrics_namespace, "foxrelay");
        assert_eq!(
            s.schedule,
            foxrelay_shared::domain::schedule::Schedule::default()
        );
    }
}

#[test]
fn the_poll_schedule_parameter_picks_a_preset_and_a_figure_overrides_it() {
    use foxrelay_shared::domain::schedule::Schedule;
    let guide = Deployment::new(&[("PollSchedule", "guide")]);
    let tuned = Deployment::new(&[("PollSchedule", "guide"), ("PollSteadyCapSecs", "20")]);
    for function in FUNCTIONS {
        assert_eq!(settings_of(&guide, function).schedule, Schedule::guide());
        let s = settings_of(&tuned, function).schedule;
        assert_eq!(
            s,
            Schedule {
                steady_cap: Duration::from_secs(20),
                ..Schedule::guide()
            }
        );
    }
}

#[test]
fn every_parameter_reaches_the_setting_it_names_on_every_function() {
    let d = Deployment::new(&[
        ("FoxReloadApiKeySecretArn", EXISTING_SECRET),
        ("FoxReloadBaseUrl", "https://api.foxreload.example"),
        ("AutoPay", "false"),
        ("MockOrders", "true"),
        ("FoxReloadCurrency", "usd"),
        ("FoxReloadLanguage", "ru"),
        ("FoxReloadConnectTimeoutMs", "1500"),
        ("FoxReloadRequestTimeoutMs", "8500"),
        ("StallAfterSecs", "900"),
        ("StallRealertSecs", "7200"),
        ("PollFastIntervalSecs", "7"),
        ("PollFastUntilSecs", "90"),
        ("PollSteadyStartSecs", "20"),
        ("PollGrowthPercent", "175"),
        ("PollSteadyCapSecs", "45"),
        ("PollSlowCapSecs", "600"),
        ("PollJitterPercent", "10"),
        ("PollHorizonSecs", "172800"),
        ("MetricsNamespace", "foxrelay-prod"),
        ("RustLog", "debug"),
    ]);
    let secs = Duration::from_secs;
    for function in FUNCTIONS {
        let s = settings_of(&d, function);
        let f = &s.foxreload;
        if access_of(function) == FoxReloadAccess::Needed {
            assert_eq!(f.api_key, ApiKeySource::SecretArn(EXISTING_SECRET.into()));
        }
        assert_eq!(f.base_url, "https://api.foxreload.example");
        assert!(!f.auto_pay && f.mock_orders, "{function}");
        assert_eq!(f.currency.as_deref(), Some("usd"));
        assert_eq!(f.language.as_deref(), Some("ru"));
        assert_eq!(f.connect_timeout, Duration::from_millis(1500));
        assert_eq!(f.request_timeout, Duration::from_millis(8500));
        assert_eq!((s.stall.after, s.stall.realert), (secs(900), secs(7200)));
        let p = &s.schedule;
        assert_eq!(
            (p.fast_interval, p.fast_until, p.steady_start, p.steady_cap),
            (secs(7), secs(90), secs(20), secs(45)),
            "{function}"
        );
        assert_eq!(
            (p.slow_cap, p.horizon, p.stall_after),
            (secs(600), secs(172800), secs(900))
        );
        assert!((p.growth - 1.75).abs() < 1e-9 && (p.jitter - 0.10).abs() < 1e-9);
        assert_eq!(s.metrics_namespace, "foxrelay-prod");
        assert_eq!(lambda_environment(&d, function)["RUST_LOG"], "debug");
    }
}

/// Each Parameter that sets a whole-number setting, and that setting.
const RANGED: &[(&str, &str)] = &[
    (
        "FoxReloadConnectTimeoutMs",
        names::FOXRELOAD_CONNECT_TIMEOUT_MS,
    ),
    (
        "FoxReloadRequestTimeoutMs",
        names::FOXRELOAD_REQUEST_TIMEOUT_MS,
    ),
    ("FoxReloadMaxRps", names::FOXRELOAD_MAX_RPS),
    ("StallAfterSecs", names::STALL_AFTER_SECS),
    ("StallRealertSecs", names::STALL_REALERT_SECS),
    ("PollFastIntervalSecs", names::POLL_FAST_INTERVAL_SECS),
    ("PollFastUntilSecs", names::POLL_FAST_UNTIL_SECS),
    ("PollSteadyStartSecs", names::POLL_STEADY_START_SECS),
    ("PollGrowthPercent", names::POLL_GROWTH_PERCENT),
    ("PollSteadyCapSecs", names::POLL_STEADY_CAP_SECS),
    ("PollSlowCapSecs", names::POLL_SLOW_CAP_SECS),
    ("PollHorizonSecs", names::POLL_HORIZON_SECS),
    ("PollJitterPercent", names::POLL_JITTER_PERCENT),
    ("PollTargetP95LagSecs", names::POLL_TARGET_P95_LAG_SECS),
    (
        "PollLearnMinObservations",
        names::POLL_LEARN_MIN_OBSERVATIONS,
    ),
    ("PollPlanCacheSecs", names::POLL_PLAN_CACHE_SECS),
    ("WebhookTimeoutMs", names::WEBHOOK_TIMEOUT_MS),
];

#[test]
fn every_parameter_range_is_the_range_the_code_accepts() {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let template: Value = serde_yaml_ng::from_str(&text).unwrap();
    let parameters = &template["Parameters"];
    for (parameter, setting) in RANGED {
        let spec = &parameters[*parameter];
        let range = foxrelay_shared::settings::range(setting);
        match spec["Type"].as_str() {
            Some("Number") => {
                assert_eq!(
                    (spec["MinValue"].as_u64(), spec["MaxValue"].as_u64()),
                    (Some(range.min), Some(range.max)),
                    "{parameter} against {setting}"
                );
                if let Some(default) = range.default {
                    assert_eq!(spec["Default"].as_u64(), Some(default), "{parameter}");
                }
            }
            // Empty means "the schedule's figure": the range is stated.
            _ => {
                let stated = format!("{} to {}", range.min, range.max);
                for field in ["Description", "ConstraintDescription"] {
                    let text = spec[field].as_str().unwrap_or_default();
                    assert!(text.contains(&stated), "{parameter} {field}: {text}");
                }
            }
        }
    }
    // Every ranged setting is a Parameter.
    for range in foxrelay_shared::settings::RANGES {
        assert!(
            RANGED.iter().any(|(_, setting)| *setting == range.name),
            "{} has no Parameter",
            range.name
        );
    }
}

// ------------------------------------------------------------ orders API

const ROUTES: [&str; 2] = ["POST /orders", "GET /orders/{orderId}"];

fn routes(d: &Deployment) -> BTreeMap<String, Value> {
    d.of_type("AWS::ApiGatewayV2::Route")
        .into_keys()
        .map(|id| {
            let properties = d.value(&d.resource(id)["Properties"]).unwrap();
            (
                properties["RouteKey"].as_str().unwrap().to_owned(),
                properties,
            )
        })
        .collect()
}

#[test]
fn every_route_reaches_create_order_and_only_these_routes_may_invoke_it() {
    let d = defaults();
    let routes = routes(d);
    assert_eq!(
        routes.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(ROUTES)
    );
    let integrations = d.of_type("AWS::ApiGatewayV2::Integration");
    assert_eq!(integrations.len(), 1);
    let integration = *integrations.keys().next().unwrap();
    assert_eq!(
        d.property(integration, "IntegrationUri"),
        Some(json!(d.attribute("CreateOrderFunction", "Arn")))
    );
    assert_eq!(
        d.property(integration, "PayloadFormatVersion"),
        Some(json!("2.0"))
    );
    for (key, route) in &routes {
        assert_eq!(
            route["Target"],
            json!(format!("integrations/{}", d.reference(integration))),
            "{key}"
        );
    }
    // One invoke permission per route, for that method and path only.
    let api = d.reference("OrdersApi");
    let expected: BTreeSet<String> = ROUTES
        .iter()
        .map(|key| {
            let (method, path) = key.split_once(' ').unwrap();
            let path = path.replace("{orderId}", "*");
            format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/*/{method}{path}")
        })
        .collect();
    let granted: BTreeSet<String> = d
        .of_type("AWS::Lambda::Permission")
        .into_keys()
        .filter(|p| d.property(p, "Principal") == Some(json!("apigateway.amazonaws.com")))
        .map(|p| {
            assert_eq!(
                d.property(p, "FunctionName"),
                Some(json!(d.reference("CreateOrderFunction")))
            );
            d.property(p, "SourceArn")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(granted, expected);
}

#[test]
fn iam_authorization_is_the_default_on_every_route() {
    let d = defaults();
    for (key, route) in routes(d) {
        assert_eq!(route["AuthorizationType"], "AWS_IAM", "{key}");
        assert!(route.get("AuthorizerId").is_none(), "{key}");
        assert!(route.get("AuthorizationScopes").is_none(), "{key}");
    }
    assert!(d.of_type("AWS::ApiGatewayV2::Authorizer").is_empty());
}

fn jwt_authorizer(d: &Deployment) -> (String, Value) {
    let authorizers = d.of_type("AWS::ApiGatewayV2::Authorizer");
    assert_eq!(authorizers.len(), 1, "{:?}", authorizers.keys());
    let id = *authorizers.keys().next().unwrap();
    (
        d.reference(id),
        d.value(&d.resource(id)["Properties"]).unwrap(),
    )
}

#[test]
fn jwt_authorization_checks_the_given_issuer_and_audience_on_every_route() {
    let issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
    let d = Deployment::new(&[
        ("ApiAuth", "JWT"),
        ("JwtIssuer", issuer),
        ("JwtAudience", "client-a,client-b"),
    ]);
    let (authorizer, properties) = jwt_authorizer(&d);
    assert_eq!(properties["AuthorizerType"], "JWT");
    assert_eq!(
        properties["JwtConfiguration"],
        json!({"Issuer": issuer, "Audience": ["client-a", "client-b"]})
    );
    assert_eq!(
        properties["IdentitySource"],
        json!(["$request.header.Authorization"])
    );
    for (key, route) in routes(&d) {
        assert_eq!(route["AuthorizationType"], "JWT", "{key}");
        assert_eq!(route["AuthorizerId"], json!(authorizer), "{key}");
        assert!(
            route.get("AuthorizationScopes").is_none(),
            "{key}: no scopes asked"
        );
    }
}

#[test]
fn jwt_scopes_when_given_are_required_on_every_route() {
    let d = Deployment::new(&[
        ("ApiAuth", "JWT"),
        ("JwtIssuer", "https://issuer.example.com"),
        ("JwtAudience", "orders-api"),
        ("JwtScopes", "orders/write,orders/admin"),
    ]);
    for (key, route) in routes(&d) {
        assert_eq!(
            route["AuthorizationScopes"],
            json!(["orders/write", "orders/admin"]),
            "{key}"
        );
    }
}

// ------------------------------------------------------------ signals

/// The template as written (before the SAM transform).
fn raw_template() -> Value {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// The functions' metric sets, by the `Function` dimension they write.
fn metric_sets() -> BTreeMap<&'static str, foxrelay_shared::metrics::MetricSet> {
    [
        create_order::METRICS,
        poll_order::METRICS,
        scan_stalled::METRICS,
        deliver_webhook::METRICS,
    ]
    .into_iter()
    .map(|set| (set.function, set))
    .collect()
}

/// Whether `function` writes `metric` on every flush (zeros included), so an
/// alarm on it always has data.
fn declared(function: &str, metric: &str) -> bool {
    metric_sets()
        .get(function)
        .is_some_and(|set| set.declared.iter().any(|m| m.name() == metric))
}

/// Every (metric name, Function value) an alarm reads from foxrelay's
/// namespace, directly or in metric math.
fn own_metrics_of(alarm: &Value) -> Vec<(String, String)> {
    let mut stats: Vec<&Value> = vec![alarm];
    if let Some(metrics) = alarm["Metrics"].as_array() {
        stats.extend(metrics.iter().map(|m| &m["MetricStat"]["Metric"]));
    }
    stats
        .into_iter()
        .filter(|m| m["Namespace"] == json!({"Ref": "MetricsNamespace"}))
        .map(|m| {
            let dimensions = m["Dimensions"].as_array().cloned().unwrap_or_default();
            // The counters the alarms read are written with `Function`
            // alone: another dimension set is another metric, with no data.
            assert_eq!(dimensions.len(), 1, "{m}");
            let function = dimensions
                .iter()
                .find(|d| d["Name"] == "Function")
                .and_then(|d| d["Value"].as_str())
                .unwrap_or_else(|| panic!("{m} has no Function dimension"));
            (
                m["MetricName"].as_str().unwrap().to_owned(),
                function.to_owned(),
            )
        })
        .collect()
}

fn alarms(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, r)| (id.clone(), r["Properties"].clone()))
        .collect()
}

#[test]
fn every_alarm_on_our_metrics_reads_a_counter_its_function_writes_as_zero_too() {
    let template = raw_template();
    let mut checked = BTreeSet::new();
    for (id, alarm) in alarms(&template) {
        for (metric, function) in own_metrics_of(&alarm) {
            assert!(
                declared(&function, &metric),
                "{id}: {function} does not write {metric} on every invocation"
            );
            checked.insert(metric);
        }
    }
    for metric in [
        "StalledOrders",
        "SupplierErrorResponses",
        "ReconciliationsUndecided",
    ] {
        assert!(checked.contains(metric), "no alarm reads {metric}");
    }
}

#[test]
fn every_alarm_notifies_operations_when_it_fires_and_when_it_clears() {
    let template = raw_template();
    let alarms = alarms(&template);
    for id in [
        "CreateOrderSupplierErrorsAlarm",
        "ApiServerErrorsAlarm",
        "OrderEventsDeliveryFailedAlarm",
        "CreateOrderDurationNearTimeoutAlarm",
        "PollOrderDurationNearTimeoutAlarm",
        "ScanStalledDurationNearTimeoutAlarm",
        "UndecidedReconciliationsAlarm",
        "StalledOrdersAlarm",
    ] {
        assert!(alarms.contains_key(id), "{id} is missing");
    }
    let ops = json!([{"Ref": "OpsAlertsTopic"}]);
    for (id, alarm) in &alarms {
        assert_eq!(alarm["AlarmActions"], ops, "{id}");
        assert_eq!(alarm["OKActions"], ops, "{id}");
        let description = alarm["AlarmDescription"].as_str().unwrap_or_default();
        assert!(description.starts_with("foxrelay:"), "{id}: {description}");
    }
    let api = &alarms["ApiServerErrorsAlarm"];
    assert_eq!(
        (&api["Namespace"], &api["MetricName"]),
        (&json!("AWS/ApiGateway"), &json!("5xx"))
    );
    let sns = &alarms["OrderEventsDeliveryFailedAlarm"];
    assert_eq!(sns["MetricName"], "NumberOfNotificationsFailed");
    assert_eq!(
        sns["Dimensions"][0]["Value"],
        json!({"Fn::GetAtt": ["OrderEventsTopic", "TopicName"]})
    );
}

#[test]
fn each_duration_alarm_fires_before_its_functions_timeout_and_past_its_own_budget() {
    let template = raw_template();
    let alarms = alarms(&template);
    for (alarm, function) in [
        ("CreateOrderDurationNearTimeoutAlarm", "CreateOrderFunction"),
        ("PollOrderDurationNearTimeoutAlarm", "PollOrderFunction"),
        ("ScanStalledDurationNearTimeoutAlarm", "ScanStalledFunction"),
    ] {
        let alarm = &alarms[alarm];
        assert_eq!(alarm["MetricName"], "Duration");
        assert_eq!(alarm["Statistic"], "Maximum");
        assert_eq!(alarm["Dimensions"][0]["Value"], json!({"Ref": function}));
        let timeout = template["Resources"][function]["Properties"]["Timeout"]
            .as_u64()
            .unwrap();
        let threshold = alarm["Threshold"].as_u64().unwrap();
        assert!(
            (timeout * 1_000 * 4 / 5..timeout * 1_000).contains(&threshold),
            "{function}: {threshold} ms against a {timeout} s timeout"
        );
        if function == "CreateOrderFunction" {
            // Past the budget the API's handler gives itself, or every
            // reconciliation that waits for its deadline would page.
            assert!(
                threshold > create_order::http::MAX_BUDGET.as_millis() as u64,
                "{threshold}"
            );
        }
    }
}

#[test]
fn the_saved_queries_read_every_function_log_group_by_the_fields_the_functions_write() {
    use foxrelay_shared::telemetry::json_lines::{ORDER_ID, REQUEST_ID, TRACE_ID};
    let template = raw_template();
    let queries: BTreeMap<&str, &Value> = template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Logs::QueryDefinition")
        .map(|(id, r)| (id.as_str(), &r["Properties"]))
        .collect();
    let groups: Vec<Value> = [
        "CreateOrderLogGroup",
        "PollOrderLogGroup",
        "ScanStalledLogGroup",
    ]
    .iter()
    .map(|g| json!({"Ref": g}))
    .collect();
    for (id, must_say) in [
        (
            "OneOrderQuery",
            vec![
                format!("filter {ORDER_ID} = "),
                REQUEST_ID.into(),
                TRACE_ID.into(),
            ],
        ),
        (
            "SupplierErrorsQuery",
            vec![
                "\"FoxReload call failed\"".into(),
                "error_kind".into(),
                "operation".into(),
            ],
        ),
        (
            "UndecidedReconciliationsQuery",
            vec![
                "\"reconciliation decided\"".into(),
                "reconciliation = \"undecided\"".into(),
            ],
        ),
    ] {
        let query = queries.get(id).unwrap_or_else(|| panic!("{id} is missing"));
        let text = query["QueryString"].as_str().unwrap();
        for said in must_say {
            assert!(text.contains(&said), "{id} does not say {said}: {text}");
        }
        let names = query["LogGroupNames"].as_array().unwrap();
        for group in &groups {
            assert!(names.contains(group), "{id} does not read {group}");
        }
        if id == "OneOrderQuery" {
            // An order's webhook deliveries are part of its story.
            let group = json!({"Ref": "DeliverWebhookLogGroup"});
            assert!(names.contains(&group), "{id} does not read {group}");
        }
    }
}

/// The dashboard's body with every `${...}` replaced: the namespace by
/// `NS`, anything else by `X`.
fn dashboard_body(template: &Value) -> Value {
    let body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the dashboard body is one Fn::Sub string");
    let mut text = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("${") {
        text.push_str(&rest[..at]);
        let end = rest[at..].find('}').unwrap() + at;
        text.push_str(if &rest[at + 2..end] == "MetricsNamespace" {
            "NS"
        } else {
            "X"
        });
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    serde_json::from_str(&text).expect("the dashboard body is JSON")
}

#[test]
fn the_dashboard_shows_every_alarm_and_only_metrics_the_functions_write() {
    let template = raw_template();
    let body = dashboard_body(&template);
    let widgets = body["widgets"].as_array().unwrap();
    let raw = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .unwrap();
    for id in alarms(&template).keys() {
        assert!(
            raw.contains(&format!("${{{id}.Arn}}")),
            "the dashboard does not show {id}"
        );
    }
    // Written when there is something to write, not as zeros.
    let timings = [
        ("TimeToNotify", &["poll-order"][..]),
        ("SupplierLatency", &["create-order", "poll-order"]),
        (
            foxrelay_shared::metrics::FOXRELOAD_BUDGET,
            &["create-order", "poll-order"],
        ),
    ];
    let mut shown = BTreeSet::new();
    for widget in widgets {
        let Some(rows) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        for row in rows {
            let row = row.as_array().unwrap();
            if let Some(search) = row
                .first()
                .and_then(|first| first["expression"].as_str())
                .filter(|e| e.starts_with("SEARCH("))
            {
                // Per-product figures, and the budget's slots per priority:
                // the dimension set the functions write them with, exactly,
                // and a metric written so.
                use foxrelay_shared::metrics::{
                    BUDGET_DENIED, BUDGET_GRANTED, FUNCTION, POLLS_PER_ORDER, PRIORITY, PRODUCT,
                    SCHEDULE,
                };
                let searched = [
                    (
                        format!("{{\"NS\",{FUNCTION},{PRODUCT},{SCHEDULE}}}"),
                        [POLLS_PER_ORDER, "TimeToNotify"],
                    ),
                    (
                        format!("{{\"NS\",{FUNCTION},{PRIORITY}}}"),
                        [BUDGET_GRANTED, BUDGET_DENIED],
                    ),
                ];
                let (_, metrics) = searched
                    .iter()
                    .find(|(schema, _)| search.contains(schema.as_str()))
                    .unwrap_or_else(|| panic!("{search} searches no dimension set written"));
                let metric = metrics
                    .iter()
                    .find(|m| search.contains(&format!("MetricName=\"{m}\"")))
                    .unwrap_or_else(|| panic!("{search} names no metric of its dimensions"));
                shown.insert((*metric).to_owned());
                continue;
            }
            if row.first().and_then(Value::as_str) != Some("NS") {
                continue;
            }
            let metric = row[1].as_str().unwrap();
            assert_eq!(row[2], "Function", "{row:?}");
            let function = row[3].as_str().unwrap();
            // Supplier latency is written per operation, and only so.
            let operations = [
                foxrelay_shared::foxreload::Operation::CreateOrder,
                foxrelay_shared::foxreload::Operation::PayOrder,
                foxrelay_shared::foxreload::Operation::GetOrder,
                foxrelay_shared::foxreload::Operation::ListOrders,
            ]
            .map(|op| op.key());
            if metric == "SupplierLatency" {
                assert_eq!(row[4], "Operation", "{row:?}");
                assert!(operations.contains(&row[5].as_str().unwrap()), "{row:?}");
            } else if metric == "SupplierErrors" && row[4] == "ErrorKind" {
                // Also written per kind of failure.
                let kind = row[5].as_str().unwrap();
                assert!(
                    ["rate_limited", "unavailable", "ambiguous", "unauthorized"].contains(&kind),
                    "{row:?}"
                );
            } else {
                assert!(
                    row.get(4).is_none_or(Value::is_object),
                    "{metric} has one dimension: {row:?}"
                );
            }
            let written = declared(function, metric)
                || timings
                    .iter()
                    .any(|(name, by)| *name == metric && by.contains(&function));
            assert!(
                written,
                "the dashboard shows {metric} of {function}: never written"
            );
            shown.insert(metric.to_owned());
        }
    }
    for metric in [
        "OrdersCreated",
        "OrdersCompleted",
        "OrdersFailed",
        "TimeToNotify",
        "Polls",
        "SupplierErrors",
        "SupplierLatency",
        "StalledOrders",
        "PollsPerOrder",
    ] {
        assert!(
            shown.contains(metric),
            "the dashboard does not show {metric}"
        );
    }
    assert!(
        raw.contains("PollDeadLetterQueue.QueueName")
            && raw.contains("ApproximateAgeOfOldestMessage"),
        "the dashboard shows the queues"
    );
}
