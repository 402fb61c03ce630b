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

mod pricing;
mod report;

use pricing::*;
use report::report;

use crate::lab::{Lab, http_request, lambda_context};
use crate::rng::Rng;
use crate::schedule_lag;
use crate::table::{Section, fixed, ratio};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::http::Method;
use foxrelay_local::{EventSourceOptions, SqsEventSource, subscribe_queue};
use foxrelay_recorder::{CountingProxy, Tally};
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

    // The items as stored at the end (the proxy sizes them): what an
    // update was billed on.
    stack.resources.every_item(&stack.clients).await?;
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
    let mut said = Instant::now();
    while events.len() < ORDERS {
        if said.elapsed() >= Duration::from_secs(5) {
            crate::progress::step(format_args!("{} of {ORDERS} orders notified", events.len()));
            said = Instant::now();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use foxrelay_local::StackTemplate;
    use foxrelay_recorder::{ItemRead, ItemWrite};

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
