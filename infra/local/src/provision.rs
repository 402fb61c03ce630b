//! Creates the template's table, queues and topics through the real AWS SDK
//! (against moto locally), and resolves the functions' environment from the
//! same template.

use crate::template::{Resource, StackTemplate, kebab};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, SseSpecification, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use foxrelay_shared::aws::AwsClients;
use foxrelay_shared::sealing::{KeyLimits, KmsDataKeys, Sealer};
use foxrelay_shared::settings::names;
use foxrelay_shared::store::DynamoStore;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const TOPIC: &str = "AWS::SNS::Topic";
const KEY: &str = "AWS::KMS::Key";

/// Why a resource could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("template.yaml, {id}: {reason}")]
    Template { id: String, reason: String },
    #[error("creating {id} failed: {source}")]
    Aws {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ProvisionError {
    fn template(id: &str, reason: impl Into<String>) -> Self {
        Self::Template {
            id: id.to_owned(),
            reason: reason.into(),
        }
    }

    fn aws(id: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Aws {
            id: id.to_owned(),
            source: Box::new(source),
        }
    }
}

/// What was created, by logical id.
#[derive(Clone, Debug, Default)]
pub struct Provisioned {
    /// Logical id → what `Ref` gives (table name, queue URL, topic ARN).
    pub refs: BTreeMap<String, String>,
    /// Logical id → what `Fn::GetAtt [id, Arn]` gives.
    pub arns: BTreeMap<String, String>,
    /// Parameter defaults from the template.
    parameters: BTreeMap<String, Value>,
    /// What `${AWS::StackName}` gives: the runner's prefix.
    stack_name: String,
}

impl Provisioned {
    /// What `Ref: logical_id` resolves to.
    pub fn get(&self, logical_id: &str) -> Option<&str> {
        self.refs.get(logical_id).map(String::as_str)
    }

    pub fn table_name(&self) -> &str {
        self.get("OrdersTable").unwrap_or_default()
    }
    pub fn poll_queue_url(&self) -> &str {
        self.get("PollQueue").unwrap_or_default()
    }
    pub fn dead_letter_queue_url(&self) -> &str {
        self.get("PollDeadLetterQueue").unwrap_or_default()
    }
    pub fn order_events_topic_arn(&self) -> &str {
        self.get("OrderEventsTopic").unwrap_or_default()
    }
    pub fn ops_alerts_topic_arn(&self) -> &str {
        self.get("OpsAlertsTopic").unwrap_or_default()
    }

    /// The sealer of the functions that handle codes: data keys under the
    /// stack's key, for this stack's table (`None` without a key).
    pub fn sealer(&self, clients: &AwsClients) -> Option<Arc<Sealer>> {
        let key = self.arns.get("StackKey")?;
        Some(Arc::new(Sealer::new(
            KmsDataKeys::new(clients.kms.clone(), key),
            KeyLimits::default(),
        )))
    }

    /// The order store on this stack's table as the functions that handle
    /// codes hold it: sealing the codes it writes, opening those it reads.
    pub fn store(&self, clients: &AwsClients) -> DynamoStore {
        let store = DynamoStore::new(clients.dynamodb.clone(), self.table_name());
        match self.sealer(clients) {
            Some(sealer) => store.with_sealer(sealer),
            None => store,
        }
    }

    /// Every item of the stack's table, page by page, as anyone allowed to
    /// read the table sees it.
    pub async fn every_item(
        &self,
        clients: &AwsClients,
    ) -> Result<
        Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        String,
    > {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = clients
                .dynamodb
                .scan()
                .table_name(self.table_name())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| format!("cannot read the table: {e}"))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// The functions' environment as the template sets it (the globals and
    /// each function's own), resolved against what was created. The API
    /// key's secret ARN is left out: locally the key is given directly.
    pub fn function_environment(
        &self,
        template: &StackTemplate,
    ) -> Result<BTreeMap<String, String>, ProvisionError> {
        let mut env = BTreeMap::new();
        for (name, value) in &template.function_environment {
            if name == names::FOXRELOAD_API_KEY_SECRET_ARN {
                continue;
            }
            env.insert(name.clone(), self.resolve(name, value)?);
        }
        Ok(env)
    }

    fn created(&mut self, logical_id: &str, physical: String, arn: String) {
        self.refs.insert(logical_id.to_owned(), physical);
        self.arns.insert(logical_id.to_owned(), arn);
    }

    /// Resolves a literal, `Ref` or `Fn::GetAtt [id, Arn]`.
    fn resolve(&self, context: &str, value: &Value) -> Result<String, ProvisionError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Object(map) if map.len() == 1 => {
                if let Some(Value::String(target)) = map.get("Ref") {
                    if let Some(physical) = self.refs.get(target) {
                        return Ok(physical.clone());
                    }
                    if let Some(default) = self.parameters.get(target) {
                        return self.resolve(context, default);
                    }
                    return Err(ProvisionError::template(
                        context,
                        format!(
                            "Ref {target} is neither a created resource nor a parameter with a default"
                        ),
                    ));
                }
                if let Some(Value::Array(parts)) = map.get("Fn::GetAtt")
                    && let [Value::String(target), Value::String(attr)] = parts.as_slice()
                {
                    return match self.arns.get(target) {
                        Some(arn) if attr == "Arn" => Ok(arn.clone()),
                        _ => Err(ProvisionError::template(
                            context,
                            format!("Fn::GetAtt {target}.{attr} is not known locally"),
                        )),
                    };
                }
                if let Some(Value::String(text)) = map.get("Fn::Sub") {
                    return self.substitute(context, text);
                }
                Err(ProvisionError::template(
                    context,
                    format!("unsupported intrinsic {value}"),
                ))
            }
            other => Err(ProvisionError::template(
                context,
                format!("cannot use {other} as a value"),
            )),
        }
    }
}

impl Provisioned {
    /// `Fn::Sub`'s text form: `${AWS::StackName}`, and `${Id}` of a
    /// created resource or a parameter.
    fn substitute(&self, context: &str, text: &str) -> Result<String, ProvisionError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                ProvisionError::template(context, format!("unclosed ${{ in {text}"))
            })?;
            let name = &after[..end];
            if name == "AWS::StackName" {
                out.push_str(&self.stack_name);
            } else {
                let reference = serde_json::json!({ "Ref": name });
                out.push_str(&self.resolve(context, &reference)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Creates every table, queue and topic of `template`, each named
/// `{prefix}-{kebab-case logical id}` so runs and tests stay apart.
pub async fn provision(
    template: &StackTemplate,
    clients: &AwsClients,
    prefix: &str,
) -> Result<Provisioned, ProvisionError> {
    let mut done = Provisioned {
        parameters: template.parameter_defaults.clone(),
        stack_name: prefix.to_owned(),
        ..Provisioned::default()
    };
    // The stack's key seals codes (CODES_KMS_KEY_ID names it).
    for id in template.ids_of(KEY) {
        create_key(id, clients, prefix, &mut done).await?;
    }
    for id in template.ids_of(TOPIC) {
        let name = format!("{prefix}-{}", kebab(id));
        let out = clients
            .sns
            .create_topic()
            .name(&name)
            .send()
            .await
            .map_err(|e| ProvisionError::aws(id, e))?;
        let arn = out.topic_arn().unwrap_or_default().to_owned();
        done.created(id, arn.clone(), arn);
    }
    // Queues that others point at (dead-letter queues) first.
    let mut queues = template.ids_of(QUEUE);
    queues.sort_by_key(|id| {
        template.resources[*id]
            .properties
            .contains_key("RedrivePolicy")
    });
    for id in queues {
        create_queue(id, &template.resources[id], clients, prefix, &mut done).await?;
    }
    for id in template.ids_of(TABLE) {
        create_table(id, &template.resources[id], clients, prefix, &mut done).await?;
    }
    Ok(done)
}

/// The key `alias/{prefix}-{id}`, created unless it is there: a stack
/// started again over its resources keeps its key, since the table's codes
/// are sealed under it.
async fn create_key(
    id: &str,
    clients: &AwsClients,
    prefix: &str,
    done: &mut Provisioned,
) -> Result<(), ProvisionError> {
    let alias = format!("alias/{prefix}-{}", kebab(id));
    let key = match clients.kms.describe_key().key_id(&alias).send().await {
        Ok(found) => found.key_metadata,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) =>
        {
            let created = clients
                .kms
                .create_key()
                .description(format!("foxrelay ({prefix}): local stack key"))
                .send()
                .await
                .map_err(|e| ProvisionError::aws(id, e))?
                .key_metadata;
            if let Some(key) = &created {
                clients
                    .kms
                    .create_alias()
                    .alias_name(&alias)
                    .target_key_id(&key.key_id)
                    .send()
                    .await
                    .map_err(|e| ProvisionError::aws(id, e))?;
            }
            created
        }
        Err(e) => return Err(ProvisionError::aws(id, e)),
    };
    let key = key.ok_or_else(|| ProvisionError::template(id, "KMS answered without the key"))?;
    let arn = key.arn.clone().unwrap_or_default();
    done.created(id, key.key_id, arn);
    Ok(())
}

async fn create_queue(
    id: &str,
    resource: &Resource,
    clients: &AwsClients,
    prefix: &str,
    done: &mut Provisioned,
) -> Result<(), ProvisionError> {
    let name = format!("{prefix}-{}", kebab(id));
    let mut request = clients.sqs.create_queue().queue_name(&name);
    for (property, attribute) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
    ] {
        if let Some(value) = resource.properties.get(property) {
            request = request.attributes(attribute, done.resolve(id, value)?);
        }
    }
    if let Some(Value::Object(redrive)) = resource.properties.get("RedrivePolicy") {
        let mut policy = Map::new();
        for (key, value) in redrive {
            policy.insert(key.clone(), Value::String(done.resolve(id, value)?));
        }
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            Value::Object(policy).to_string(),
        );
    }
    let url = request
        .send()
        .await
        .map_err(|e| ProvisionError::aws(id, e))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let arn = crate::subscription::queue_arn(&clients.sqs, &url)
        .await
        .map_err(|e| ProvisionError::aws(id, e))?
        .ok_or_else(|| ProvisionError::template(id, "the created queue reports no ARN"))?;
    done.created(id, url, arn);
    Ok(())
}

fn str_field<'a>(id: &str, value: &'a Value, field: &str) -> Result<&'a str, ProvisionError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ProvisionError::template(id, format!("{field} missing or not a string")))
}

fn list<'a>(
    id: &str,
    value: Option<&'a Value>,
    field: &str,
) -> Result<&'a [Value], ProvisionError> {
    match value {
        Some(Value::Array(items)) => Ok(items),
        None => Ok(&[]),
        Some(_) => Err(ProvisionError::template(
            id,
            format!("{field} must be a list"),
        )),
    }
}

fn key_schema(id: &str, value: Option<&Value>) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    list(id, value, "KeySchema")?
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(str_field(id, k, "AttributeName")?)
                .key_type(KeyType::from(str_field(id, k, "KeyType")?))
                .build()
                .map_err(|e| ProvisionError::aws(id, e))
        })
        .collect()
}

async fn create_table(
    id: &str,
    resource: &Resource,
    clients: &AwsClients,
    prefix: &str,
    done: &mut Provisioned,
) -> Result<(), ProvisionError> {
    let props = &resource.properties;
    let name = format!("{prefix}-{}", kebab(id));
    let mut request = clients
        .dynamodb
        .create_table()
        .table_name(&name)
        .set_key_schema(Some(key_schema(id, props.get("KeySchema"))?));
    for a in list(
        id,
        props.get("AttributeDefinitions"),
        "AttributeDefinitions",
    )? {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_field(id, a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_field(
                    id,
                    a,
                    "AttributeType",
                )?))
                .build()
                .map_err(|e| ProvisionError::aws(id, e))?,
        );
    }
    let billing = props
        .get("BillingMode")
        .and_then(Value::as_str)
        .unwrap_or("PROVISIONED");
    if billing != "PAY_PER_REQUEST" {
        return Err(ProvisionError::template(
            id,
            "only PAY_PER_REQUEST tables are supported locally",
        ));
    }
    request = request.billing_mode(BillingMode::PayPerRequest);
    for index in list(
        id,
        props.get("GlobalSecondaryIndexes"),
        "GlobalSecondaryIndexes",
    )? {
        let projection = index.get("Projection").cloned().unwrap_or_default();
        let mut p = Projection::builder().projection_type(ProjectionType::from(
            projection
                .get("ProjectionType")
                .and_then(Value::as_str)
                .unwrap_or("ALL"),
        ));
        for attr in list(id, projection.get("NonKeyAttributes"), "NonKeyAttributes")? {
            p = p.non_key_attributes(attr.as_str().unwrap_or_default());
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_field(id, index, "IndexName")?)
                .set_key_schema(Some(key_schema(id, index.get("KeySchema"))?))
                .projection(p.build())
                .build()
                .map_err(|e| ProvisionError::aws(id, e))?,
        );
    }
    if props
        .get("SSESpecification")
        .and_then(|sse| sse.get("SSEEnabled"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        request = request.sse_specification(SseSpecification::builder().enabled(true).build());
    }
    match request.send().await {
        Ok(_) => {}
        // Already there (a restart against the same endpoint): keep it, and
        // what it holds.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            return record_table(id, &name, clients, done).await;
        }
        Err(e) => return Err(ProvisionError::aws(id, e)),
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(str_field(id, ttl, "AttributeName")?)
                    .enabled(ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(true))
                    .build()
                    .map_err(|e| ProvisionError::aws(id, e))?,
            )
            .send()
            .await
            .map_err(|e| ProvisionError::aws(id, e))?;
    }
    record_table(id, &name, clients, done).await
}

async fn record_table(
    id: &str,
    name: &str,
    clients: &AwsClients,
    done: &mut Provisioned,
) -> Result<(), ProvisionError> {
    let described = clients
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| ProvisionError::aws(id, e))?;
    let arn = described
        .table()
        .and_then(|t| t.table_arn())
        .unwrap_or_default()
        .to_owned();
    done.created(id, name.to_owned(), arn);
    Ok(())
}
