//! The IAM action each request needs and the resource it names: a
//! transaction needs the action of each item in it, a query names its
//! index; and the partition keys of the items a request touches (for
//! `dynamodb:LeadingKeys`).

use crate::request::{Call, form_pairs};
use serde_json::Value;

/// The IAM actions a request needs, each with the resource it names: what a
/// role must grant for it. A DynamoDB transaction is authorised per item, by
/// that item's action (`Put` needs `dynamodb:PutItem`, a condition check
/// `dynamodb:ConditionCheckItem`); a query of an index names
/// `TABLE/index/NAME`.
pub fn iam_actions(call: &Call, body: &[u8]) -> Vec<(String, String)> {
    let action = |operation: &str| format!("{}:{operation}", call.service);
    match call.service.as_str() {
        "dynamodb" => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let table = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_owned();
            match call.operation.as_str() {
                "TransactWriteItems" | "TransactGetItems" => transaction_items(&request)
                    .map(|(operation, inner)| (action(&operation), table(inner)))
                    .collect(),
                "BatchWriteItem" | "BatchGetItem" => request["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, _)| (action(&call.operation), name.clone()))
                    .collect(),
                operation => {
                    let mut resource = table(&request);
                    if let Some(index) = request["IndexName"].as_str() {
                        resource = format!("{resource}/index/{index}");
                    }
                    vec![(action(operation), resource)]
                }
            }
        }
        "sqs" => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let queue = request["QueueUrl"].as_str().unwrap_or_default().to_owned();
            vec![(action(&call.operation), queue)]
        }
        "sns" => {
            let form = form_pairs(body);
            let topic = form
                .iter()
                .find(|(name, _)| name == "TopicArn")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            vec![(action(&call.operation), topic)]
        }
        // KMS names the key a request uses (an ARN, id or alias).
        "kms" => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let key = request["KeyId"].as_str().unwrap_or_default().to_owned();
            vec![(action(&call.operation), key)]
        }
        "secretsmanager" => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let secret = request["SecretId"].as_str().unwrap_or_default().to_owned();
            vec![(action(&call.operation), secret)]
        }
        _ => vec![(action(&call.operation), String::new())],
    }
}

/// A transaction's items: each one's IAM operation (`PutItem`,
/// `ConditionCheckItem`…) and its body.
fn transaction_items(request: &Value) -> impl Iterator<Item = (String, &Value)> {
    request["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let (kind, inner) = item.as_object()?.iter().next()?;
            let operation = match kind.as_str() {
                "ConditionCheck" => "ConditionCheckItem".to_owned(),
                other => format!("{other}Item"),
            };
            Some((operation, inner))
        })
}

/// Each DynamoDB item request's IAM action and partition key (`pk`): a
/// single-item call, every item of a transaction or batch, or a query of
/// the table (its key condition's `pk = :value`; IAM's
/// `dynamodb:LeadingKeys` is that value).
pub fn item_keys(call: &Call, body: &[u8]) -> Vec<(String, String)> {
    if call.service != "dynamodb" {
        return Vec::new();
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let pk = |inner: &Value| {
        let item = if inner["Item"].is_object() {
            &inner["Item"]
        } else {
            &inner["Key"]
        };
        item["pk"]["S"].as_str().map(str::to_owned)
    };
    let action = |operation: &str| format!("dynamodb:{operation}");
    match call.operation.as_str() {
        "TransactWriteItems" | "TransactGetItems" => transaction_items(&request)
            .filter_map(|(operation, inner)| Some((action(&operation), pk(inner)?)))
            .collect(),
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|entry| {
                let (kind, inner) = entry.as_object()?.iter().next()?;
                let operation = match kind.as_str() {
                    "PutRequest" => "PutItem",
                    _ => "DeleteItem",
                };
                Some((action(operation), pk(inner)?))
            })
            .collect(),
        operation @ ("GetItem" | "PutItem" | "UpdateItem" | "DeleteItem") => pk(&request)
            .map(|pk| (action(operation), pk))
            .into_iter()
            .collect(),
        "Query" if request["IndexName"].is_null() => queried_pk(&request)
            .map(|pk| (action("Query"), pk))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The partition key a table query names: the value bound to `pk` in its
/// key condition.
fn queried_pk(request: &Value) -> Option<String> {
    let condition = request["KeyConditionExpression"].as_str()?;
    let placeholder = condition
        .split(" AND ")
        .find_map(|part| part.trim().strip_prefix("pk = "))?
        .trim();
    request["ExpressionAttributeValues"][placeholder]["S"]
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_transaction_needs_the_action_of_each_item_and_a_query_names_its_index() {
        let call = Call::new("dynamodb", "TransactWriteItems");
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {}}},
            {"ConditionCheck": {"TableName": "t", "Key": {}}},
            {"Update": {"TableName": "u", "Key": {}}}
        ]});
        let actions = iam_actions(&call, body.to_string().as_bytes());
        assert_eq!(
            actions,
            vec![
                ("dynamodb:PutItem".to_owned(), "t".to_owned()),
                ("dynamodb:ConditionCheckItem".to_owned(), "t".to_owned()),
                ("dynamodb:UpdateItem".to_owned(), "u".to_owned()),
            ]
        );
        let query = json!({"TableName": "t", "IndexName": "pending-orders"});
        assert_eq!(
            iam_actions(
                &Call::new("dynamodb", "Query"),
                query.to_string().as_bytes()
            ),
            vec![(
                "dynamodb:Query".to_owned(),
                "t/index/pending-orders".to_owned()
            )]
        );
        let publish = b"Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3Ax&Message=m";
        assert_eq!(
            iam_actions(&Call::new("sns", "Publish"), publish),
            vec![(
                "sns:Publish".to_owned(),
                "arn:aws:sns:us-east-1:1:x".to_owned()
            )]
        );
    }

    #[test]
    fn a_table_query_names_the_partition_key_its_condition_binds() {
        let call = Call::new("dynamodb", "Query");
        let body = json!({
            "TableName": "t",
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :code)",
            "ExpressionAttributeValues": {":pk": {"S": "CODES#o-1"}, ":code": {"S": "CODE#"}}
        });
        assert_eq!(
            item_keys(&call, body.to_string().as_bytes()),
            vec![("dynamodb:Query".to_owned(), "CODES#o-1".to_owned())]
        );
        let on_index = json!({"TableName": "t", "IndexName": "pending-orders",
            "KeyConditionExpression": "pendingPk = :p",
            "ExpressionAttributeValues": {":p": {"S": "PENDING"}}});
        assert!(item_keys(&call, on_index.to_string().as_bytes()).is_empty());
    }
}
