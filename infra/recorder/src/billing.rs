//! What AWS bills for the requests seen: requests by service and
//! operation, SQS and SNS requests per started 64 KB of payload, and every
//! DynamoDB item read or written with its size, index writes included (the
//! model learns each table's key and index keys from its `CreateTable`
//! request and follows which items are in each index).

use crate::iam::{iam_actions, item_keys};
use crate::request::{Call, classify, form_pairs};
use crate::update_expression::update_targets;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// SQS and SNS bill one request per started 64 KB of payload.
pub const PAYLOAD_CHUNK: u64 = 64 * 1024;

/// One DynamoDB item read (or, for `Query` and `Scan`, one response: their
/// capacity is rounded on the total size read, not per item).
#[derive(Clone, Debug, PartialEq)]
pub struct ItemRead {
    pub bytes: u64,
    pub consistent: bool,
    pub transactional: bool,
}

/// One DynamoDB item written (or condition-checked in a transaction).
#[derive(Clone, Debug, PartialEq)]
pub struct ItemWrite {
    /// The item's key (table and key attributes), to size it afterwards.
    pub key: Option<String>,
    /// The item's size when the request carries the whole item (a Put).
    pub bytes: Option<u64>,
    pub transactional: bool,
    /// Writes to global secondary indexes this write caused (0 when it
    /// failed its condition).
    pub index_writes: u32,
}

/// What was recorded since the last [`CountingProxy::take`].
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub requests: BTreeMap<Call, u64>,
    /// SQS and SNS requests as billed (64 KB chunks).
    pub billed: BTreeMap<Call, u64>,
    /// Messages SQS handed out.
    pub messages_received: u64,
    pub reads: Vec<ItemRead>,
    pub writes: Vec<ItemWrite>,
    /// Size of every item seen whole (in a Put, or returned by a read), by
    /// key: the last one seen.
    pub sizes: HashMap<String, u64>,
    /// DynamoDB operations whose capacity is not modelled, by name (none in
    /// foxrelay's flow).
    pub unmodelled: BTreeMap<String, u64>,
    /// The IAM actions the requests needed, each with the resource it named
    /// (a table, `table/index/NAME`, a queue URL, a topic ARN, a secret id).
    pub actions: BTreeSet<(String, String)>,
    /// The IAM action of every DynamoDB item request (each item of a
    /// transaction too), with the partition key it named: what an IAM
    /// `dynamodb:LeadingKeys` condition is checked against.
    pub item_keys: BTreeSet<(String, String)>,
}

impl Tally {
    pub fn requests(&self, service: &str, operation: &str) -> u64 {
        self.requests
            .get(&Call::new(service, operation))
            .copied()
            .unwrap_or(0)
    }

    pub fn billed(&self, service: &str, operation: &str) -> u64 {
        self.billed
            .get(&Call::new(service, operation))
            .copied()
            .unwrap_or(0)
    }

    pub fn merge(&mut self, other: Tally) {
        for (call, n) in other.requests {
            *self.requests.entry(call).or_default() += n;
        }
        for (call, n) in other.billed {
            *self.billed.entry(call).or_default() += n;
        }
        self.messages_received += other.messages_received;
        self.reads.extend(other.reads);
        self.writes.extend(other.writes);
        self.sizes.extend(other.sizes);
        for (name, n) in other.unmodelled {
            *self.unmodelled.entry(name).or_default() += n;
        }
        self.actions.extend(other.actions);
        self.item_keys.extend(other.item_keys);
    }
}

/// A table's key attributes and its global secondary indexes' keys.
#[derive(Clone, Debug, Default)]
struct TableKeys {
    key: Vec<String>,
    indexes: Vec<Vec<String>>,
}

#[derive(Default)]
pub(crate) struct Recorder {
    tally: Tally,
    tables: HashMap<String, TableKeys>,
    /// Per item key, whether the item is in each of its table's indexes.
    in_index: HashMap<String, Vec<bool>>,
}

impl Recorder {
    /// What was recorded since the last take; a new tally starts (what
    /// was learned of tables and indexes is kept).
    pub(crate) fn take(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    pub(crate) fn record(&mut self, headers: &HeaderMap, body: &[u8], status: u16, answer: &[u8]) {
        let mut call = classify(headers, body);
        self.tally.actions.extend(iam_actions(&call, body));
        self.tally.item_keys.extend(item_keys(&call, body));
        let ok = (200..300).contains(&status);
        match call.service.as_str() {
            "sqs" => {
                let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let response: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
                let payload = match call.operation.as_str() {
                    "SendMessage" => sqs_message_bytes(&request),
                    "SendMessageBatch" => request["Entries"]
                        .as_array()
                        .map_or(0, |e| e.iter().map(sqs_message_bytes).sum()),
                    "ReceiveMessage" => {
                        let got = response["Messages"].as_array().map_or(0, Vec::len) as u64;
                        self.tally.messages_received += got;
                        if got == 0 {
                            call.operation = "ReceiveMessage (empty)".to_owned();
                        }
                        answer.len() as u64
                    }
                    _ => 0,
                };
                *self.tally.billed.entry(call.clone()).or_default() += chunks(payload);
            }
            "sns" => {
                let form = form_pairs(body);
                let payload = if call.operation.starts_with("Publish") {
                    sns_payload_bytes(&form)
                } else {
                    0
                };
                *self.tally.billed.entry(call.clone()).or_default() += chunks(payload);
            }
            "dynamodb" => {
                let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let response: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
                self.dynamodb(&call.operation, &request, &response, ok);
            }
            _ => {}
        }
        *self.tally.requests.entry(call).or_default() += 1;
    }

    fn dynamodb(&mut self, operation: &str, request: &Value, response: &Value, ok: bool) {
        // A failed condition (alone or in a transaction) is still billed;
        // other errors (validation, throttling) are not.
        let error = response["__type"].as_str().unwrap_or_default();
        let billed_failure = error.ends_with("ConditionalCheckFailedException")
            || error.ends_with("TransactionCanceledException");
        if !ok && !billed_failure {
            return;
        }
        match operation {
            "CreateTable" => self.learn_table(request),
            "GetItem" => {
                let table = request["TableName"].as_str().unwrap_or_default();
                let bytes = response["Item"]
                    .as_object()
                    .map_or(0, |item| self.seen(table, item));
                self.tally.reads.push(ItemRead {
                    bytes,
                    consistent: request["ConsistentRead"].as_bool().unwrap_or(false),
                    transactional: false,
                });
            }
            "Query" | "Scan" => {
                let table = request["TableName"].as_str().unwrap_or_default();
                let items = response["Items"].as_array().cloned().unwrap_or_default();
                let returned: u64 = items
                    .iter()
                    .filter_map(Value::as_object)
                    .map(|item| self.seen(table, item))
                    .sum();
                // Capacity is spent on the items read before any filter:
                // the returned ones, scaled up to the scanned count.
                let count = response["Count"].as_u64().unwrap_or(items.len() as u64);
                let scanned = response["ScannedCount"].as_u64().unwrap_or(count);
                let bytes = match (count, scanned) {
                    (_, 0) => 0,
                    (0, s) => s * 1024,
                    (c, s) => returned * s / c,
                };
                let on_index = request["IndexName"].as_str().is_some();
                self.tally.reads.push(ItemRead {
                    bytes,
                    consistent: !on_index && request["ConsistentRead"].as_bool().unwrap_or(false),
                    transactional: false,
                });
            }
            "TransactGetItems" => {
                for got in response["Responses"].as_array().into_iter().flatten() {
                    let bytes = got["Item"].as_object().map_or(0, |item| {
                        item.iter()
                            .map(|(n, v)| n.len() as u64 + value_bytes(v))
                            .sum()
                    });
                    self.tally.reads.push(ItemRead {
                        bytes,
                        consistent: true,
                        transactional: true,
                    });
                }
            }
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let write = self.write(operation, request, ok, false);
                self.tally.writes.push(write);
            }
            "TransactWriteItems" => {
                for action in request["TransactItems"].as_array().into_iter().flatten() {
                    let Some((kind, inner)) = action.as_object().and_then(|a| a.iter().next())
                    else {
                        continue;
                    };
                    let operation = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        _ => "ConditionCheck",
                    };
                    let write = self.write(operation, inner, ok, true);
                    self.tally.writes.push(write);
                }
            }
            "DescribeTable" | "UpdateTimeToLive" | "DescribeTimeToLive" | "ListTables"
            | "DeleteTable" => {}
            other => *self.tally.unmodelled.entry(other.to_owned()).or_default() += 1,
        }
    }

    fn learn_table(&mut self, request: &Value) {
        let names = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
                .collect()
        };
        let Some(table) = request["TableName"].as_str() else {
            return;
        };
        let keys = TableKeys {
            key: names(&request["KeySchema"]),
            indexes: request["GlobalSecondaryIndexes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|index| names(&index["KeySchema"]))
                .collect(),
        };
        self.tables.insert(table.to_owned(), keys);
    }

    /// Records a whole item's size under its key; returns the size.
    fn seen(&mut self, table: &str, item: &Map<String, Value>) -> u64 {
        let bytes = item_bytes(item);
        if let Some(keys) = self.tables.get(table)
            && let Some(key) = item_key(table, item, &keys.key)
        {
            self.tally.sizes.insert(key, bytes);
        }
        bytes
    }

    /// One write (`operation` as in a single-item request; `ConditionCheck`
    /// in a transaction), following the item's index membership.
    fn write(
        &mut self,
        operation: &str,
        request: &Value,
        ok: bool,
        transactional: bool,
    ) -> ItemWrite {
        let table = request["TableName"].as_str().unwrap_or_default().to_owned();
        let keys = self.tables.get(&table).cloned().unwrap_or_default();
        let empty = Map::new();
        let (key, bytes, after): (Option<String>, Option<u64>, Option<Vec<bool>>) = match operation
        {
            "PutItem" => {
                let item = request["Item"].as_object().unwrap_or(&empty);
                let after = keys
                    .indexes
                    .iter()
                    .map(|index| index.iter().all(|a| item.contains_key(a)))
                    .collect();
                let key = item_key(&table, item, &keys.key);
                let bytes = item_bytes(item);
                if ok && let Some(key) = &key {
                    self.tally.sizes.insert(key.clone(), bytes);
                }
                (key, Some(bytes), Some(after))
            }
            _ => {
                let key_map = request["Key"].as_object().unwrap_or(&empty);
                let names: Vec<String> = key_map.keys().cloned().collect();
                let key = item_key(&table, key_map, &names);
                let before = key
                    .as_ref()
                    .and_then(|k| self.in_index.get(k).cloned())
                    .unwrap_or_else(|| vec![false; keys.indexes.len()]);
                let after = match operation {
                    "UpdateItem" => {
                        let (set, removed) = update_targets(
                            request["UpdateExpression"].as_str().unwrap_or_default(),
                            request["ExpressionAttributeNames"].as_object(),
                        );
                        Some(
                            keys.indexes
                                .iter()
                                .zip(&before)
                                .map(|(index, was)| {
                                    (*was || index.iter().any(|a| set.contains(a)))
                                        && !index.iter().any(|a| removed.contains(a))
                                })
                                .collect(),
                        )
                    }
                    "DeleteItem" => Some(vec![false; keys.indexes.len()]),
                    _ => None,
                };
                (key, None, after)
            }
        };
        let mut index_writes = 0;
        if ok && let (Some(key), Some(after)) = (&key, after) {
            let before = self
                .in_index
                .get(key)
                .cloned()
                .unwrap_or_else(|| vec![false; after.len()]);
            index_writes = before
                .iter()
                .zip(&after)
                .filter(|(was, is)| **was || **is)
                .count() as u32;
            self.in_index.insert(key.clone(), after);
        }
        ItemWrite {
            key,
            bytes,
            transactional,
            index_writes,
        }
    }
}

fn chunks(payload: u64) -> u64 {
    payload.div_ceil(PAYLOAD_CHUNK).max(1)
}

/// An SQS message's billed size: its body and its attributes.
fn sqs_message_bytes(message: &Value) -> u64 {
    let body = message["MessageBody"].as_str().map_or(0, str::len) as u64;
    let attributes: u64 = message["MessageAttributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            name.len() as u64
                + value["DataType"].as_str().map_or(0, str::len) as u64
                + value["StringValue"].as_str().map_or(0, str::len) as u64
        })
        .sum();
    body + attributes
}

/// An SNS publish's billed size: message, subject and attributes.
pub(crate) fn sns_payload_bytes(form: &[(String, String)]) -> u64 {
    form.iter()
        .filter(|(name, _)| {
            name == "Message"
                || name == "Subject"
                || name.ends_with(".Message")
                || name.ends_with(".Name")
                || name.ends_with(".StringValue")
        })
        .map(|(_, value)| value.len() as u64)
        .sum()
}

/// `table|name=value|…` over `names` (sorted), if the item has them all.
fn item_key(table: &str, item: &Map<String, Value>, names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    let mut key = table.to_owned();
    for name in names {
        key.push('|');
        key.push_str(name);
        key.push('=');
        key.push_str(&item.get(name)?.to_string());
    }
    Some(key)
}

/// A DynamoDB item's size as DynamoDB counts it: each attribute's name and
/// value (see [`value_bytes`]).
pub fn item_bytes(item: &Map<String, Value>) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_bytes(value))
        .sum()
}

/// An attribute value's size in DynamoDB's JSON form: strings and binaries
/// by their bytes, numbers about one byte per two significant digits plus
/// one, booleans and nulls one byte, lists and maps 3 bytes plus one per
/// element plus their elements (and a map's names).
pub fn value_bytes(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let text = |v: &Value| v.as_str().map_or(0, str::len) as u64;
    let each = |v: &Value, f: &dyn Fn(&Value) -> u64| -> u64 {
        v.as_array().into_iter().flatten().map(f).sum()
    };
    match kind.as_str() {
        "S" => text(inner),
        "N" => number_bytes(inner.as_str().unwrap_or("0")),
        "B" => binary_bytes(inner.as_str().unwrap_or_default()),
        "BOOL" | "NULL" => 1,
        "SS" => each(inner, &text),
        "NS" => each(inner, &|v| number_bytes(v.as_str().unwrap_or("0"))),
        "BS" => each(inner, &|v| binary_bytes(v.as_str().unwrap_or_default())),
        "L" => 3 + each(inner, &|v| value_bytes(v) + 1),
        "M" => {
            3 + inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, v)| name.len() as u64 + value_bytes(v) + 1)
                .sum::<u64>()
        }
        _ => 0,
    }
}

fn number_bytes(number: &str) -> u64 {
    let mantissa = number.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
    significant.max(1).div_ceil(2) + 1
}

fn binary_bytes(base64: &str) -> u64 {
    (base64.trim_end_matches('=').len() as u64) * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn item_sizes_count_names_and_values_as_dynamodb_does() {
        let item = json!({
            "pk": {"S": "ORDER#1"},          // 2 + 7
            "n": {"N": "12345"},             // 1 + 3 + 1
            "ok": {"BOOL": true},            // 2 + 1
            "m": {"M": {"a": {"S": "xy"}}},  // 1 + 3 + (1 + 2 + 1)
        });
        assert_eq!(item_bytes(item.as_object().unwrap()), 9 + 5 + 3 + 8);
    }

    #[test]
    fn an_item_leaving_a_sparse_index_costs_an_index_write_and_then_no_more() {
        let mut recorder = Recorder::default();
        recorder.learn_table(&json!({
            "TableName": "t",
            "KeySchema": [{"AttributeName": "pk"}, {"AttributeName": "sk"}],
            "GlobalSecondaryIndexes": [{"KeySchema": [{"AttributeName": "pendingPk"}, {"AttributeName": "pendingSk"}]}],
        }));
        let key = json!({"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"}});
        let put = json!({"TableName": "t", "Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"},
            "pendingPk": {"S": "PENDING"}, "pendingSk": {"S": "x"}}});
        let leave = json!({"TableName": "t", "Key": key, "UpdateExpression": "SET notifiedAt = :now REMOVE pendingPk, pendingSk"});
        let after = json!({"TableName": "t", "Key": key, "UpdateExpression": "SET a = :a"});
        let writes: Vec<u32> = [
            ("PutItem", put),
            ("UpdateItem", leave),
            ("UpdateItem", after),
        ]
        .iter()
        .map(|(op, request)| recorder.write(op, request, true, false).index_writes)
        .collect();
        assert_eq!(writes, vec![1, 1, 0]);
        // A write that failed its condition changes no index.
        let put_again = json!({"TableName": "t", "Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"},
            "pendingPk": {"S": "PENDING"}, "pendingSk": {"S": "x"}}});
        assert_eq!(
            recorder
                .write("PutItem", &put_again, false, false)
                .index_writes,
            0
        );
    }
}
