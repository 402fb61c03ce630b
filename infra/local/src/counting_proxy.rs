//! A counting reverse proxy between the AWS SDK and moto: the benchmark's
//! cost section counts what AWS would bill through it, and the IAM test
//! records which actions each function's code calls, on what.
//!
//! The SDK's endpoint is the proxy; every request goes on to moto unchanged
//! and its answer comes back unchanged. On the way the proxy records what
//! AWS would bill for it:
//!
//! - the request, by service and operation: JSON-protocol services name the
//!   operation in `X-Amz-Target` (`DynamoDB_20120810.PutItem`,
//!   `AmazonSQS.SendMessage`, `secretsmanager.GetSecretValue`), query-protocol
//!   SNS in the form body (`Action=Publish`); the service comes from the
//!   SigV4 credential scope. A `ReceiveMessage` that returned nothing is
//!   recorded as `ReceiveMessage (empty)`;
//! - for SQS and SNS, the billed requests: one per started 64 KB of payload;
//! - for DynamoDB, every item read or written, with its size when the
//!   request or the response shows it (a Put's item, a Get's or a Query's
//!   returned items), the item key when it does not (an Update is billed on
//!   the stored item, sized afterwards), and the writes to global secondary
//!   indexes: the proxy learns each table's key and index keys from its
//!   `CreateTable` request and follows which items are in each index;
//! - the IAM action each request needs and the resource it names
//!   ([`iam_actions`]): a transaction needs the action of each item in it.
//!
//! It can also inject faults moto never produces: a share of DynamoDB
//! transactions (or the next few) cancelled with `TransactionConflict`, as
//! DynamoDB answers when two transactions touch one item at once
//! ([`CountingProxy::cancel_transactions`]). A cancelled transaction is not
//! forwarded: nothing of it is written.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinHandle;

/// SQS and SNS bill one request per started 64 KB of payload.
pub const PAYLOAD_CHUNK: u64 = 64 * 1024;

/// A request's service (as in the SigV4 scope) and operation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    pub service: String,
    pub operation: String,
}

impl Call {
    pub fn new(service: &str, operation: &str) -> Self {
        Self {
            service: service.to_owned(),
            operation: operation.to_owned(),
        }
    }
}

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

/// The proxy, serving on a loopback port until dropped.
pub struct CountingProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    recorder: Mutex<Recorder>,
    faults: Mutex<Faults>,
}

/// Which transactions to cancel with `TransactionConflict`.
#[derive(Default)]
struct Faults {
    /// The next this many, whatever the share.
    next: u32,
    /// Then this share of the rest, in thousandths.
    permille: u32,
    /// Transactions cancelled so far.
    cancelled: u64,
    /// A counter driving the share (deterministic, evenly spread).
    seen: u64,
}

impl Faults {
    fn cancel_this_one(&mut self) -> bool {
        self.seen += 1;
        let cancel = if self.next > 0 {
            self.next -= 1;
            true
        } else {
            // Evenly spread: the n-th transaction is cancelled when the
            // running share crosses a whole one.
            self.permille > 0
                && (self.seen * u64::from(self.permille)) / 1000
                    != ((self.seen - 1) * u64::from(self.permille)) / 1000
        };
        self.cancelled += u64::from(cancel);
        cancel
    }
}

impl CountingProxy {
    /// Serves on a free loopback port, forwarding to `upstream` (moto's
    /// endpoint URL).
    pub async fn start(upstream: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("the proxy's HTTP client: {e}"))?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            recorder: Mutex::new(Recorder::default()),
            faults: Mutex::new(Faults::default()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("the proxy cannot listen: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = axum::Router::new()
            .fallback(forward)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the counting proxy stopped: {error}");
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// The endpoint URL to give the SDK.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What was recorded since the last call; starts a new tally. What the
    /// proxy learned (table keys, index membership) is kept.
    pub fn take(&self) -> Tally {
        let mut recorder = self
            .shared
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut recorder.tally)
    }
}

impl CountingProxy {
    /// Cancels the next `next` DynamoDB transactions, then `permille`
    /// thousandths of the rest, with `TransactionConflict` on their first
    /// action (`None` on the others), as DynamoDB does when another
    /// transaction holds one of the items.
    pub fn cancel_transactions(&self, next: u32, permille: u32) {
        let mut faults = self
            .shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        faults.next = next;
        faults.permille = permille.min(1000);
    }

    /// Transactions cancelled so far.
    pub fn cancelled_transactions(&self) -> u64 {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cancelled
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if is_transaction(&headers)
        && shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cancel_this_one()
    {
        return transaction_conflict(&body);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.upstream))
        .body(body.clone());
    for (name, value) in &headers {
        if !is_hop_by_hop(name) {
            request = request.header(name, value);
        }
    }
    let (status, answer_headers, answer) = match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let answer_headers = answer.headers().clone();
            match answer.bytes().await {
                Ok(bytes) => (status, answer_headers, bytes),
                Err(error) => return bad_gateway(&error),
            }
        }
        Err(error) => return bad_gateway(&error),
    };
    shared
        .recorder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(&headers, &body, status.as_u16(), &answer);
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = status;
    for (name, value) in &answer_headers {
        if !is_hop_by_hop(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn is_transaction(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target == "DynamoDB_20120810.TransactWriteItems")
}

/// DynamoDB's answer to a transaction cancelled because another one holds
/// an item: `TransactionConflict` on the first action, `None` on the rest.
fn transaction_conflict(body: &[u8]) -> Response {
    let actions = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1)
        .max(1);
    let reasons: Vec<Value> = (0..actions)
        .map(|i| {
            if i == 0 {
                serde_json::json!({"Code": "TransactionConflict",
                    "Message": "Transaction is ongoing for the item"})
            } else {
                serde_json::json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = reasons
        .iter()
        .map(|r| r["Code"].as_str().unwrap_or("None"))
        .collect();
    let answer = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    let mut response = Response::new(Body::from(answer.to_string()));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response.headers_mut().insert(
        "x-amzn-errortype",
        axum::http::HeaderValue::from_static("TransactionCanceledException"),
    );
    response
}

fn bad_gateway(error: &reqwest::Error) -> Response {
    let mut response = Response::new(Body::from(format!("counting proxy: {error}")));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// Headers that belong to one connection, and the length the body sets.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::CONTENT_LENGTH
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::PROXY_AUTHORIZATION
        || name == header::EXPECT
        || name.as_str() == "keep-alive"
}

/// The service and operation of an AWS request.
pub fn classify(headers: &HeaderMap, body: &[u8]) -> Call {
    let scope = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(scope_service);
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok())
        && let Some((prefix, operation)) = target.split_once('.')
    {
        let service = scope.unwrap_or_else(|| match prefix {
            p if p.starts_with("DynamoDB") => "dynamodb".to_owned(),
            "AmazonSQS" => "sqs".to_owned(),
            p => p.to_ascii_lowercase(),
        });
        return Call::new(&service, operation);
    }
    let form = form_pairs(body);
    match form.iter().find(|(name, _)| name == "Action") {
        Some((_, action)) => Call::new(scope.as_deref().unwrap_or("unknown"), action),
        None => Call::new(scope.as_deref().unwrap_or("unknown"), "(unclassified)"),
    }
}

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
/// single-item call, or every item of a transaction or batch.
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
        _ => Vec::new(),
    }
}

/// The service of a SigV4 `Authorization` header's credential scope
/// (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`).
fn scope_service(authorization: &str) -> Option<String> {
    let credential = authorization.split("Credential=").nth(1)?;
    let credential = credential.split([',', ' ']).next()?;
    credential.split('/').nth(3).map(str::to_owned)
}

/// The pairs of an `application/x-www-form-urlencoded` body, decoded.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A table's key attributes and its global secondary indexes' keys.
#[derive(Clone, Debug, Default)]
struct TableKeys {
    key: Vec<String>,
    indexes: Vec<Vec<String>>,
}

#[derive(Default)]
struct Recorder {
    tally: Tally,
    tables: HashMap<String, TableKeys>,
    /// Per item key, whether the item is in each of its table's indexes.
    in_index: HashMap<String, Vec<bool>>,
}

impl Recorder {
    fn record(&mut self, headers: &HeaderMap, body: &[u8], status: u16, answer: &[u8]) {
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
fn sns_payload_bytes(form: &[(String, String)]) -> u64 {
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
    use axum::http::HeaderValue;
    use serde_json::json;

    fn signed(service: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential=testing/20261128/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
            ))
            .unwrap(),
        );
        headers
    }

    #[test]
    fn json_protocol_requests_are_named_by_their_target_header() {
        let mut headers = signed("dynamodb");
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.PutItem"),
        );
        assert_eq!(classify(&headers, b"{}"), Call::new("dynamodb", "PutItem"));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSQS.SendMessage"),
        );
        assert_eq!(classify(&headers, b"{}"), Call::new("sqs", "SendMessage"));
    }

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
    fn query_protocol_sns_is_named_by_the_action_in_its_form_body() {
        let body = b"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At&Message=%7B%22a%22%3A+1%7D";
        assert_eq!(classify(&signed("sns"), body), Call::new("sns", "Publish"));
        let form = form_pairs(body);
        assert!(form.contains(&("Message".to_owned(), "{\"a\": 1}".to_owned())));
        assert_eq!(sns_payload_bytes(&form), 8);
    }

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
