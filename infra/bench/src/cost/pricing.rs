//! What AWS charges: published prices, and the units a measured request,
//! item or invocation is billed in.

use foxrelay_local::StackTemplate;
use foxrelay_recorder::{ItemRead, ItemWrite, Tally};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Published us-east-1 prices (on-demand, after any free tier), as of
/// 2026-11, from each service's pricing page.
pub mod price {
    /// API Gateway HTTP API: $1.00 per million requests (first 300 million a
    /// month).
    pub const API_GATEWAY_HTTP_REQUEST: f64 = 1.00 / 1e6;
    /// Lambda: $0.20 per million requests.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda on arm64: $0.0000133334 per GB-second (first 7.5 billion GB-s
    /// a month).
    pub const LAMBDA_ARM64_GB_SECOND: f64 = 0.000_013_333_4;
    /// SQS standard queue: $0.40 per million requests (each 64 KB chunk of a
    /// payload is a request).
    pub const SQS_STANDARD_REQUEST: f64 = 0.40 / 1e6;
    /// DynamoDB on-demand: $0.625 per million write request units.
    pub const DYNAMODB_WRITE_REQUEST_UNIT: f64 = 0.625 / 1e6;
    /// DynamoDB on-demand: $0.125 per million read request units.
    pub const DYNAMODB_READ_REQUEST_UNIT: f64 = 0.125 / 1e6;
    /// SNS standard topic: $0.50 per million publishes (each 64 KB chunk is
    /// a publish). Delivery to SQS is free; to email $2.00 per 100,000.
    pub const SNS_STANDARD_PUBLISH: f64 = 0.50 / 1e6;
    /// Secrets Manager: $0.05 per 10,000 API calls.
    pub const SECRETS_MANAGER_CALL: f64 = 0.05 / 1e4;
    /// KMS: $0.03 per 10,000 requests (not counted: the services cache data
    /// keys).
    pub const KMS_REQUEST: f64 = 0.03 / 1e4;
    /// Step Functions Standard: $0.025 per 1,000 state transitions.
    pub const STEP_FUNCTIONS_TRANSITION: f64 = 0.025 / 1e3;
}

/// The functions as the template deploys them.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub memory_mb: u64,
    pub timeout: Duration,
}

/// The parts of `template.yaml` the cost model reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Deployed {
    pub create_order: Function,
    pub poll_order: Function,
    pub scan_stalled: Function,
    /// The poll queue event source's batch size.
    pub batch_size: i32,
}

impl Deployed {
    pub fn load() -> Result<Self, String> {
        let path = StackTemplate::repository_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let function = |id: &str| -> Result<Function, String> {
            let properties = doc
                .pointer(&format!("/Resources/{id}/Properties"))
                .ok_or_else(|| format!("template.yaml has no function {id}"))?;
            // A function's own figure, else the Globals', else Lambda's
            // default.
            let figure = |name: &str, default: u64| {
                properties
                    .get(name)
                    .or_else(|| doc.pointer(&format!("/Globals/Function/{name}")))
                    .and_then(Value::as_u64)
                    .unwrap_or(default)
            };
            Ok(Function {
                memory_mb: figure("MemorySize", 128),
                timeout: Duration::from_secs(figure("Timeout", 3)),
            })
        };
        let batch_size = doc
            .pointer("/Resources/PollOrderFunction/Properties/Events")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .find(|(_, event)| event["Type"] == "SQS")
            .and_then(|(_, event)| event.pointer("/Properties/BatchSize"))
            .and_then(Value::as_i64)
            .unwrap_or(10) as i32;
        Ok(Self {
            create_order: function("CreateOrderFunction")?,
            poll_order: function("PollOrderFunction")?,
            scan_stalled: function("ScanStalledFunction")?,
            batch_size,
        })
    }
}

/// Lambda's billed duration: rounded up to the millisecond.
pub fn billed_ms(wall: Duration) -> u64 {
    (wall.as_micros().div_ceil(1_000) as u64).max(1)
}

/// GB-seconds of invocations that took `walls`, at `memory_mb`.
pub fn gb_seconds(walls: &[Duration], memory_mb: u64) -> f64 {
    let ms: u64 = walls.iter().map(|w| billed_ms(*w)).sum();
    ms as f64 / 1_000.0 * memory_mb as f64 / 1_024.0
}

/// Read request units of one read: per 4 KB (at least one), half for an
/// eventually consistent read, double in a transaction.
pub fn read_units(read: &ItemRead) -> f64 {
    let blocks = read.bytes.div_ceil(4_096).max(1) as f64;
    if read.transactional {
        2.0 * blocks
    } else if read.consistent {
        blocks
    } else {
        blocks / 2.0
    }
}

/// Write request units of one write, `(table, indexes)`: per 1 KB of the
/// item (at least one), double in a transaction; each index write costs the
/// item's size again. An item the request does not carry whole is sized
/// from `stored` (the item as last seen), else taken as 1 KB.
pub fn write_units(write: &ItemWrite, stored: &HashMap<String, u64>) -> (f64, f64) {
    let bytes = write
        .bytes
        .or_else(|| write.key.as_ref().and_then(|k| stored.get(k).copied()))
        .unwrap_or(1_024);
    let blocks = bytes.div_ceil(1_024).max(1) as f64;
    let table = if write.transactional {
        2.0 * blocks
    } else {
        blocks
    };
    (table, f64::from(write.index_writes) * blocks)
}

/// State transitions of one order on the Step Functions flow: a Task
/// (create-order), per poll a Wait, a Task (poll-order) and a Choice, then a
/// Task (SNS publish) and the Succeed state.
pub fn step_functions_transitions(polls: f64) -> f64 {
    1.0 + 3.0 * polls + 2.0
}

/// `amount` per order at `unit_price`, in dollars per 1,000 orders.
pub fn per_thousand(amount: f64, unit_price: f64) -> f64 {
    amount * unit_price * 1_000.0
}

pub(super) const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];

pub(super) const READS: [&str; 5] = [
    "GetItem",
    "Query",
    "Scan",
    "TransactGetItems",
    "BatchGetItem",
];

/// DynamoDB of a tally: `(write requests, WRU, read requests, RRU)`.
pub(super) fn dynamodb(tally: &Tally, stored: &HashMap<String, u64>) -> (f64, f64, f64, f64) {
    let requests = |ops: &[&str]| -> f64 {
        ops.iter()
            .map(|op| tally.requests("dynamodb", op))
            .sum::<u64>() as f64
    };
    let wru: f64 = tally
        .writes
        .iter()
        .map(|w| {
            let (table, index) = write_units(w, stored);
            table + index
        })
        .sum();
    let rru: f64 = tally.reads.iter().map(read_units).sum();
    (requests(&WRITES), wru, requests(&READS), rru)
}
