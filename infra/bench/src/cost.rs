//! The cost model: AWS requests per order, counted from a real run, priced
//! per 1,000 orders at published us-east-1 prices, beside the same flow on
//! Step Functions Standard.
//!
//! The run: a fresh stack in moto behind the counting proxy
//! ([`foxrelay_recorder`]), the
//! FoxReload simulator with every order finishing at the schedule section's
//! median completion time, and the three real handlers with the template's
//! settings (the default poll schedule, in real time): 100 orders placed as
//! API Gateway HTTP API events to create-order, poll-order fed by the local
//! SQS event source as Lambda's event source mapping feeds it, and two
//! scan-stalled runs (one with the orders pending, one idle). Requests are
//! counted per phase, so what is per order and what is per month stay apart.

use crate::lab::{Lab, http_request, lambda_context};
use crate::rng::Rng;
use crate::schedule_lag;
use crate::table::{Section, fixed, ratio};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::http::Method;
use foxrelay_local::{EventSourceOptions, SqsEventSource, StackTemplate, subscribe_queue};
use foxrelay_recorder::{CountingProxy, ItemRead, ItemWrite, Tally};
use foxrelay_shared::aws::AwsClients;
use foxrelay_shared::domain::schedule::Schedule;
use foxrelay_shared::settings::names;
use foxreload_sim::{PRODUCT_FAST, SimConfig, Simulator, Timing};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// Orders in the run.
const ORDERS: usize = 100;
/// A typical order: one product, two codes.
const QUANTITY: u32 = 2;
/// Requests to the orders API at once while placing.
const PLACING_CONCURRENCY: usize = 4;
/// Concurrent pollers of the event source: Lambda's mapping for a standard
/// queue starts with five.
const POLLERS: usize = 5;
/// How long SQS holds a receive open (Lambda's mapping long-polls 20 s).
const LONG_POLL: Duration = Duration::from_secs(20);
/// scan-stalled runs every 5 minutes: 8,640 runs in 30 days.
const SCANS_PER_MONTH: f64 = 8_640.0;
/// One poller's idle long polls in 30 days (one per 20 s).
const IDLE_RECEIVES_PER_POLLER_MONTH: f64 = 30.0 * 24.0 * 3_600.0 / 20.0;
/// The schedule section's seed, so the median matches its mix.
const MIX_SEED: u64 = 2026;
/// Longest the polling phase may take.
const POLLING_LIMIT: Duration = Duration::from_secs(300);

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

fn dollars(value: f64) -> String {
    format!("${value:.5}")
}

/// One row of the comparison: an amount per order on each flow.
struct Line {
    label: String,
    ours: f64,
    step_functions: f64,
    unit_price: f64,
    decimals: usize,
}

/// What the run measured.
struct Measured {
    create_walls: Vec<Duration>,
    /// `(messages, wall)` per poll-order invocation.
    poll_invocations: Vec<(usize, Duration)>,
    /// Container starts (one context per function).
    starts: Tally,
    /// Placing and polling: everything the orders caused.
    orders: Tally,
    /// Polling alone.
    polling: Tally,
    busy_scan: (Tally, Duration, u64),
    idle_scan: (Tally, Duration, u64),
    /// Item sizes as last stored.
    stored: HashMap<String, u64>,
    /// FoxReload order reads per order.
    polls: f64,
    events: BTreeMap<String, usize>,
}

pub async fn run(lab: &Lab) -> Result<Section, String> {
    let deployed = Deployed::load()?;
    let times = schedule_lag::completion_times(schedule_lag::ORDERS, &mut Rng::new(MIX_SEED));
    let typical = median(&times);
    let mix_gets = schedule_lag::measure(&Schedule::default(), &times).gets_per_order;
    let m = measure(lab, &deployed, typical).await?;
    Ok(report(&deployed, &m, typical, mix_gets))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

async fn measure(lab: &Lab, deployed: &Deployed, typical: f64) -> Result<Measured, String> {
    let processing = Duration::from_millis(200);
    let sim = Simulator::start(SimConfig {
        timing: Timing {
            paid_to_processing: processing,
            fast_fulfilment: Duration::from_secs_f64(typical).saturating_sub(processing),
            ..Timing::default()
        },
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("the FoxReload simulator did not start: {e}"))?;
    let proxy = CountingProxy::start(&lab.moto.endpoint_url()).await?;
    // Set-up nobody pays per order goes straight to moto; the stack is
    // provisioned through the proxy, which learns the table's keys from it.
    let direct = lab.clients().await;
    let stack = lab.stack(lab.clients_at(proxy.url()).await).await?;
    let secret_arn = direct
        .secrets
        .create_secret()
        .name(format!("{}-foxreload-api-key", stack.prefix))
        .secret_string(sim.api_key())
        .send()
        .await
        .map_err(|e| format!("cannot store the API key secret: {e}"))?
        .arn()
        .unwrap_or_default()
        .to_owned();
    let subscriber = subscribe_queue(
        &direct,
        &[stack.resources.order_events_topic_arn()],
        &format!("{}-subscriber", stack.prefix),
    )
    .await
    .map_err(|e| e.to_string())?;
    let _provisioning = proxy.take();

    // One container per function, each reading the key from Secrets
    // Manager as in Lambda.
    let settings = stack.settings(
        &sim.base_url(),
        sim.api_key(),
        &[(names::FOXRELOAD_API_KEY_SECRET_ARN, &secret_arn)],
    )?;
    let create = Arc::new(create_order::Handler::new(
        stack.context(settings.clone()).await?,
    ));
    let poll = Arc::new(poll_order::Handler::new(
        stack.context(settings.clone()).await?,
    ));
    let scan = scan_stalled::Handler::new(stack.context(settings).await?);
    let starts = proxy.take();

    let create_walls = place_orders(&create, deployed.create_order.timeout).await?;
    let placing = proxy.take();
    let busy = sweep(&scan, deployed.scan_stalled.timeout).await?;
    let busy_scan = (proxy.take(), busy.0, busy.1);

    let source = SqsEventSource::new(
        stack.clients.sqs.clone(),
        stack.resources.poll_queue_url(),
        stack
            .resources
            .arns
            .get("PollQueue")
            .cloned()
            .unwrap_or_default(),
        EventSourceOptions {
            batch_size: deployed.batch_size,
            wait: LONG_POLL,
            function_timeout: deployed.poll_order.timeout,
            ..EventSourceOptions::default()
        },
    );
    let (poll_invocations, events) =
        poll_until_notified(&poll, &source, &direct, &subscriber).await?;
    let polling = proxy.take();
    let mut orders = placing;
    orders.merge(polling.clone());
    let idle = sweep(&scan, deployed.scan_stalled.timeout).await?;
    let idle_scan = (proxy.take(), idle.0, idle.1);

    // The items as stored at the end: what an update was billed on.
    let mut start_key = None;
    loop {
        let page = stack
            .clients
            .dynamodb
            .scan()
            .table_name(stack.resources.table_name())
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| format!("cannot read the table back: {e}"))?;
        start_key = page.last_evaluated_key;
        if start_key.is_none() {
            break;
        }
    }
    let mut stored = orders.sizes.clone();
    stored.extend(proxy.take().sizes);

    let counters = sim.counters();
    let polls = counters.gets_by_order.values().sum::<u64>() as f64 / ORDERS as f64;
    sim.shutdown().await;
    Ok(Measured {
        create_walls,
        poll_invocations,
        starts,
        orders,
        polling,
        busy_scan,
        idle_scan,
        stored,
        polls,
        events,
    })
}

/// `POST /orders` as API Gateway's HTTP API hands it to create-order.
fn order_request(n: usize, timeout: Duration) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let body = json!({
        "items": [{"productId": PRODUCT_FAST, "quantity": QUANTITY}],
        "customerReference": format!("cost-{n}"),
    });
    let key = format!("cost-{n}");
    let request = http_request(Method::POST, "/orders", Some(&body), Some(&key));
    LambdaEvent::new(request, lambda_context(timeout))
}

/// Places the orders, a few at a time; returns each invocation's wall time.
async fn place_orders(
    create: &Arc<create_order::Handler>,
    timeout: Duration,
) -> Result<Vec<Duration>, String> {
    let gate = Arc::new(tokio::sync::Semaphore::new(PLACING_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..ORDERS {
        let (create, gate) = (create.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let started = Instant::now();
            let answer = create
                .handle(order_request(n, timeout))
                .await
                .unwrap_or_default();
            let wall = started.elapsed();
            match answer.status_code {
                202 => Ok(wall),
                status => Err(format!("create-order answered {status}: {:?}", answer.body)),
            }
        });
    }
    let mut walls = Vec::with_capacity(ORDERS);
    while let Some(joined) = tasks.join_next().await {
        walls.push(joined.map_err(|e| e.to_string())??);
    }
    Ok(walls)
}

/// One scan-stalled run: its wall time and the index items it read.
async fn sweep(scan: &scan_stalled::Handler, timeout: Duration) -> Result<(Duration, u64), String> {
    let started = Instant::now();
    let report = scan
        .handle(LambdaEvent::new(
            Default::default(),
            lambda_context(timeout),
        ))
        .await
        .map_err(|e| format!("scan-stalled failed: {e}"))?;
    Ok((started.elapsed(), report.index_items_read))
}

type PollInvocations = Vec<(usize, Duration)>;

/// Runs the event source's pollers into poll-order until every order's
/// event reached the subscriber queue, then lets the batches in flight
/// finish. Returns each invocation's `(messages, wall)` and the events by
/// type.
async fn poll_until_notified(
    poll: &Arc<poll_order::Handler>,
    source: &SqsEventSource,
    direct: &AwsClients,
    subscriber: &str,
) -> Result<(PollInvocations, BTreeMap<String, usize>), String> {
    let done = Arc::new(AtomicBool::new(false));
    let invocations: Arc<Mutex<PollInvocations>> = Arc::default();
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..POLLERS {
        let (poll, source, done, invocations) = (
            poll.clone(),
            source.clone(),
            done.clone(),
            invocations.clone(),
        );
        pollers.spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let (poll, invocations) = (poll.clone(), invocations.clone());
                source
                    .run_once(|event: LambdaEvent<SqsEvent>| async move {
                        let messages = event.payload.records.len();
                        let started = Instant::now();
                        let answer = poll.handle(event).await.unwrap_or_default();
                        invocations
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((messages, started.elapsed()));
                        answer
                    })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    let mut events: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + POLLING_LIMIT;
    while events.len() < ORDERS {
        if Instant::now() > deadline {
            done.store(true, Ordering::Relaxed);
            return Err(format!(
                "only {} of {ORDERS} orders were notified within {POLLING_LIMIT:?}",
                events.len()
            ));
        }
        let got = direct
            .sqs
            .receive_message()
            .queue_url(subscriber)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| format!("cannot read the subscriber queue: {e}"))?;
        for message in got.messages() {
            let event: Value = serde_json::from_str(message.body().unwrap_or("null"))
                .map_err(|e| format!("an event is not JSON: {e}"))?;
            if let (Some(id), Some(kind)) = (event["orderId"].as_str(), event["type"].as_str()) {
                events.insert(id.to_owned(), kind.to_owned());
            }
            direct
                .sqs
                .delete_message()
                .queue_url(subscriber)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("cannot delete an event: {e}"))?;
        }
    }
    done.store(true, Ordering::Relaxed);
    while let Some(joined) = pollers.join_next().await {
        joined.map_err(|e| e.to_string())??;
    }
    let mut by_type = BTreeMap::new();
    for kind in events.into_values() {
        *by_type.entry(kind).or_default() += 1;
    }
    let invocations =
        std::mem::take(&mut *invocations.lock().unwrap_or_else(PoisonError::into_inner));
    Ok((invocations, by_type))
}

const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];
const READS: [&str; 5] = [
    "GetItem",
    "Query",
    "Scan",
    "TransactGetItems",
    "BatchGetItem",
];

/// DynamoDB of a tally: `(write requests, WRU, read requests, RRU)`.
fn dynamodb(tally: &Tally, stored: &HashMap<String, u64>) -> (f64, f64, f64, f64) {
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

/// Cost of one scan-stalled run, and what it did, for the fixed rows.
fn scan_run(
    deployed: &Deployed,
    run: &(Tally, Duration, u64),
    stored: &HashMap<String, u64>,
) -> (f64, String) {
    let (tally, wall, items) = run;
    let gb_s = gb_seconds(&[*wall], deployed.scan_stalled.memory_mb);
    let (_, wru, reads, rru) = dynamodb(tally, stored);
    let sqs = tally
        .billed
        .iter()
        .filter(|(c, _)| c.service == "sqs")
        .map(|(_, n)| n)
        .sum::<u64>() as f64;
    let sns = tally.billed("sns", "Publish") as f64;
    let dollars = price::LAMBDA_REQUEST
        + gb_s * price::LAMBDA_ARM64_GB_SECOND
        + wru * price::DYNAMODB_WRITE_REQUEST_UNIT
        + rru * price::DYNAMODB_READ_REQUEST_UNIT
        + sqs * price::SQS_STANDARD_REQUEST
        + sns * price::SNS_STANDARD_PUBLISH;
    let what = format!(
        "per run: 1 invocation, {} GB-s, {reads:.0} reads ({rru:.1} RRU, {items} index items), {wru:.1} WRU",
        fixed(gb_s, 4)
    );
    (dollars, what)
}

fn report(deployed: &Deployed, m: &Measured, typical: f64, mix_gets: f64) -> Section {
    let n = ORDERS as f64;
    let create_gb_s = gb_seconds(&m.create_walls, deployed.create_order.memory_mb) / n;
    let poll_walls: Vec<Duration> = m.poll_invocations.iter().map(|(_, w)| *w).collect();
    let invocations = m.poll_invocations.len() as f64;
    let messages: usize = m.poll_invocations.iter().map(|(k, _)| k).sum();
    let poll_gb_s = gb_seconds(&poll_walls, deployed.poll_order.memory_mb) / n;
    // Step Functions invokes poll-order once per poll, one order each; its
    // duration is taken as this run's mean invocation (a batch of
    // `messages / invocations` handled concurrently: an upper bound).
    let gb_s_per_poll_invocation = poll_gb_s * n / invocations.max(1.0);
    let (write_requests, wru, read_requests, rru) = dynamodb(&m.orders, &m.stored);
    let sqs = |op: &str| m.orders.billed("sqs", op) as f64 / n;
    let mut lines = vec![
        Line {
            label: "API Gateway HTTP API requests".into(),
            ours: m.create_walls.len() as f64 / n,
            step_functions: m.create_walls.len() as f64 / n,
            unit_price: price::API_GATEWAY_HTTP_REQUEST,
            decimals: 2,
        },
        Line {
            label: "Lambda create-order invocations".into(),
            ours: m.create_walls.len() as f64 / n,
            step_functions: m.create_walls.len() as f64 / n,
            unit_price: price::LAMBDA_REQUEST,
            decimals: 2,
        },
        Line {
            label: format!(
                "Lambda create-order GB-s ({} MB)",
                deployed.create_order.memory_mb
            ),
            ours: create_gb_s,
            step_functions: create_gb_s,
            unit_price: price::LAMBDA_ARM64_GB_SECOND,
            decimals: 4,
        },
        Line {
            label: "Lambda poll-order invocations".into(),
            ours: invocations / n,
            step_functions: m.polls,
            unit_price: price::LAMBDA_REQUEST,
            decimals: 2,
        },
        Line {
            label: format!(
                "Lambda poll-order GB-s ({} MB)",
                deployed.poll_order.memory_mb
            ),
            ours: poll_gb_s,
            step_functions: m.polls * gb_s_per_poll_invocation,
            unit_price: price::LAMBDA_ARM64_GB_SECOND,
            decimals: 4,
        },
    ];
    // SQS as billed (64 KB chunks), sends first; empty receives are per
    // queue, not per order (a fixed row).
    let mut sqs_ops: Vec<&str> = m
        .orders
        .billed
        .keys()
        .filter(|c| c.service == "sqs" && !c.operation.ends_with("(empty)"))
        .map(|c| c.operation.as_str())
        .collect();
    sqs_ops.sort_by_key(|op| (!op.starts_with("Send"), !op.starts_with("Receive"), *op));
    for op in sqs_ops {
        let label = match op {
            "ReceiveMessage" => "SQS ReceiveMessage requests (with messages)".to_owned(),
            op => format!("SQS {op} requests"),
        };
        lines.push(Line {
            label,
            ours: sqs(op),
            step_functions: 0.0,
            unit_price: price::SQS_STANDARD_REQUEST,
            decimals: 2,
        });
    }
    lines.extend([
        Line {
            label: format!(
                "DynamoDB write request units ({:.1} write requests)",
                write_requests / n
            ),
            ours: wru / n,
            step_functions: wru / n,
            unit_price: price::DYNAMODB_WRITE_REQUEST_UNIT,
            decimals: 2,
        },
        Line {
            label: format!(
                "DynamoDB read request units ({:.1} read requests)",
                read_requests / n
            ),
            ours: rru / n,
            step_functions: rru / n,
            unit_price: price::DYNAMODB_READ_REQUEST_UNIT,
            decimals: 2,
        },
        Line {
            label: "SNS publishes".into(),
            ours: m.orders.billed("sns", "Publish") as f64 / n,
            step_functions: m.orders.billed("sns", "Publish") as f64 / n,
            unit_price: price::SNS_STANDARD_PUBLISH,
            decimals: 2,
        },
        Line {
            label: "Step Functions Standard state transitions".into(),
            ours: 0.0,
            step_functions: step_functions_transitions(m.polls),
            unit_price: price::STEP_FUNCTIONS_TRANSITION,
            decimals: 2,
        },
    ]);

    let mut section = Section::new(
        "Cost per 1,000 orders",
        "",
        &[
            "AWS charge",
            "foxrelay per order",
            "foxrelay $ / 1,000 orders",
            "Step Functions per order",
            "Step Functions $ / 1,000 orders",
        ],
    );
    let (mut ours_total, mut sf_total) = (0.0, 0.0);
    for line in &lines {
        let ours = per_thousand(line.ours, line.unit_price);
        let sf = per_thousand(line.step_functions, line.unit_price);
        ours_total += ours;
        sf_total += sf;
        section.row(vec![
            line.label.clone(),
            fixed(line.ours, line.decimals),
            dollars(ours),
            fixed(line.step_functions, line.decimals),
            dollars(sf),
        ]);
    }
    section.row(vec![
        "Total per 1,000 orders".into(),
        String::new(),
        dollars(ours_total),
        String::new(),
        format!(
            "{} ({} foxrelay)",
            dollars(sf_total),
            ratio(sf_total, ours_total)
        ),
    ]);
    let (idle_dollars, idle_what) = scan_run(deployed, &m.idle_scan, &m.stored);
    let (busy_dollars, busy_what) = scan_run(deployed, &m.busy_scan, &m.stored);
    section.row(vec![
        "Fixed: scan-stalled, 8,640 runs / 30 days (idle)".into(),
        idle_what,
        format!("{} / month", dollars(idle_dollars * SCANS_PER_MONTH)),
        "not modelled".into(),
        "–".into(),
    ]);
    let idle_receive = IDLE_RECEIVES_PER_POLLER_MONTH * price::SQS_STANDARD_REQUEST;
    section.row(vec![
        "Fixed: idle long polls of the event source, per poller".into(),
        format!("{IDLE_RECEIVES_PER_POLLER_MONTH:.0} ReceiveMessage / month"),
        format!("{} / month", dollars(idle_receive)),
        "none (no queue)".into(),
        "–".into(),
    ]);

    // The note: how it was measured, and what is approximate.
    let per_op = |service: &str| -> String {
        m.orders
            .requests
            .iter()
            .filter(|(c, _)| c.service == service && !c.operation.ends_with("(empty)"))
            .map(|(c, k)| format!("{} {:.2}", c.operation, *k as f64 / n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mean_ms = |walls: &[Duration]| {
        walls.iter().map(|w| billed_ms(*w)).sum::<u64>() as f64 / walls.len().max(1) as f64
    };
    let extra_100ms = |invocations: f64, memory_mb: u64| {
        per_thousand(
            0.1 * invocations * memory_mb as f64 / 1_024.0,
            price::LAMBDA_ARM64_GB_SECOND,
        )
    };
    let ours_latency = extra_100ms(1.0, deployed.create_order.memory_mb)
        + extra_100ms(invocations / n, deployed.poll_order.memory_mb);
    let sf_latency = extra_100ms(1.0, deployed.create_order.memory_mb)
        + extra_100ms(m.polls, deployed.poll_order.memory_mb);
    // What one more poll costs, at most: the polling phase over its polls
    // (it includes the last poll's store and publish).
    let (_, polling_wru, _, polling_rru) = dynamodb(&m.polling, &m.stored);
    let polling_store = per_thousand(polling_wru / n, price::DYNAMODB_WRITE_REQUEST_UNIT)
        + per_thousand(polling_rru / n, price::DYNAMODB_READ_REQUEST_UNIT)
        + per_thousand(
            m.polling.billed("sns", "Publish") as f64 / n,
            price::SNS_STANDARD_PUBLISH,
        );
    let polls = m.polls.max(1.0);
    let phase = |flow: fn(&Line) -> f64| -> f64 {
        lines
            .iter()
            .filter(|l| l.label.starts_with("SQS") || l.label.starts_with("Lambda poll-order"))
            .map(|l| per_thousand(flow(l), l.unit_price))
            .sum::<f64>()
    };
    let ours_per_poll = (phase(|l| l.ours) + polling_store) / polls;
    let sf_per_poll = (phase(|l| l.step_functions) + polling_store) / polls
        + per_thousand(3.0, price::STEP_FUNCTIONS_TRANSITION);
    let events = m
        .events
        .iter()
        .map(|(kind, k)| format!("{k} {kind}"))
        .collect::<Vec<_>>()
        .join(", ");
    section.note = format!(
        "Counted from one run: {ORDERS} orders of `{PRODUCT_FAST}` ×{QUANTITY} ({events}) through the three real \
         handlers with the template's settings, the AWS SDK pointed at a proxy that forwards every request to moto \
         unchanged and counts it by service and operation, and the FoxReload simulator finishing each order {typical:.1} s \
         after it is placed (the median of the schedule section's mix), polled on the default schedule in real time: \
         {polls:.2} GETs per order. One `POST /orders` per order (an HTTP API event to create-order); poll-order fed by \
         {POLLERS} pollers of the local SQS event source (batches of up to {batch}, {long_poll} s long polls) as Lambda's \
         mapping feeds it, {fill:.1} messages per invocation here: at low traffic each poll is its own receive, invocation \
         and delete. Requests per order: DynamoDB {dynamo}; SQS {sqs_ops}; SNS {sns_ops}. The mix's mean is {mix_gets:.1} \
         GETs per order (a tail of slow orders); each further poll adds at most ${ours_poll:.4} per 1,000 orders here, \
         ${sf_poll:.4} on Step Functions.\n\n\
         Approximated: Lambda GB-s are the handlers' wall times in this process (create-order {create_ms:.0} ms, \
         poll-order {poll_ms:.0} ms per invocation on average, against local moto and the simulator), rounded up to 1 ms, \
         × the template's MemorySize; AWS's differ, and each 100 ms more per invocation adds ${ours_lat:.4} per 1,000 \
         orders here, ${sf_lat:.4} on Step Functions. DynamoDB capacity is computed, not reported: items sized by names \
         and values; 1 WRU per KB written (2 in a transaction, condition checks as writes, failed conditions billed), an \
         update sized on the item as stored last; each write to an item in the sparse pending-orders index (projection \
         ALL) one more write; reads 1 RRU per 4 KB strongly consistent, 0.5 on the index. The Step Functions flow is a \
         model, not a run: a Task for create-order, per poll a Wait, a Task for poll-order and a Choice, then an SNS \
         publish Task and Succeed (1 + 3 × polls + 2 transitions), one poll-order invocation per poll lasting this run's \
         mean invocation (an upper bound), the same DynamoDB and SNS requests, no SQS.\n\n\
         Not per order: scan-stalled (one run with the {ORDERS} orders pending: ${busy:.6}, {busy_what}); Secrets \
         Manager, one GetSecretValue per container start ({secrets} here, for 3 containers; ${secret_price} each); \
         Lambda's init, billed per cold start; the event source's empty receives ({empty} at the end of this run). Not \
         counted: KMS (${kms} per 10,000 requests; the services cache data keys), CloudWatch Logs, X-Ray traces \
         (Tracing: Active), email deliveries, free tiers. Prices: published us-east-1 on-demand, 2026-11, Lambda arm64.",
        polls = m.polls,
        batch = deployed.batch_size,
        long_poll = LONG_POLL.as_secs(),
        fill = messages as f64 / invocations.max(1.0),
        dynamo = per_op("dynamodb"),
        sqs_ops = per_op("sqs"),
        sns_ops = per_op("sns"),
        ours_poll = ours_per_poll,
        sf_poll = sf_per_poll,
        create_ms = mean_ms(&m.create_walls),
        poll_ms = mean_ms(&poll_walls),
        ours_lat = ours_latency,
        sf_lat = sf_latency,
        busy = busy_dollars,
        secrets = m.starts.requests("secretsmanager", "GetSecretValue"),
        secret_price = price::SECRETS_MANAGER_CALL,
        empty = m.orders.requests("sqs", "ReceiveMessage (empty)"),
        kms = fixed(price::KMS_REQUEST * 1e4, 2),
    );
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_come_out_per_thousand_orders() {
        // One HTTP API request per order: $1 per million is $0.001 per 1,000.
        assert!((per_thousand(1.0, price::API_GATEWAY_HTTP_REQUEST) - 0.001).abs() < 1e-12);
        // Three polls on Step Functions: 12 transitions, $0.30 per 1,000.
        assert_eq!(step_functions_transitions(3.0), 12.0);
        let sf = per_thousand(
            step_functions_transitions(3.0),
            price::STEP_FUNCTIONS_TRANSITION,
        );
        assert!((sf - 0.30).abs() < 1e-12, "{sf}");
    }

    #[test]
    fn lambda_bills_each_invocation_rounded_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::from_micros(1)), 1);
        assert_eq!(billed_ms(Duration::from_micros(12_001)), 13);
        // 1,000 invocations of 1.2 ms at 512 MB: 2 ms each, 1 GB-s in all.
        let walls = vec![Duration::from_micros(1_200); 1_000];
        assert!((gb_seconds(&walls, 512) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn capacity_units_round_up_per_item_and_double_in_transactions() {
        let stored = HashMap::from([("t|pk=1".to_owned(), 2_500)]);
        let update = ItemWrite {
            key: Some("t|pk=1".into()),
            bytes: None,
            transactional: true,
            index_writes: 1,
        };
        assert_eq!(write_units(&update, &stored), (6.0, 3.0));
        let put = ItemWrite {
            key: None,
            bytes: Some(10),
            transactional: false,
            index_writes: 0,
        };
        assert_eq!(write_units(&put, &stored), (1.0, 0.0));
        let read = |bytes, consistent| ItemRead {
            bytes,
            consistent,
            transactional: false,
        };
        assert_eq!(read_units(&read(0, false)), 0.5);
        assert_eq!(read_units(&read(4_097, true)), 2.0);
    }

    #[test]
    fn memory_comes_from_the_function_else_the_globals() {
        let deployed = Deployed::load().expect("the template parses");
        let raw = std::fs::read_to_string(StackTemplate::repository_path()).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&raw).unwrap();
        assert_eq!(
            Some(deployed.create_order.memory_mb),
            doc.pointer("/Resources/CreateOrderFunction/Properties/MemorySize")
                .and_then(Value::as_u64)
        );
        assert_eq!(
            Some(deployed.poll_order.memory_mb),
            doc.pointer("/Globals/Function/MemorySize")
                .and_then(Value::as_u64)
        );
    }
}
