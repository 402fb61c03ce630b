//! Issue 16's proof through the local runner: a burst of 500 orders placed
//! in 10 s against a simulator limited to 20 requests a second, with poll
//! messages taken by four concurrent pollers (each its own poll-order
//! "container"), once with the stack's FoxReload budget (50/s, above the
//! limit: it must find the limit) and once without. Reported side by side:
//! FoxReload's busiest second, its 429s, time to drain and the orders'
//! notification lag.

use foxrelay_local::LocalStack;
use foxrelay_shared::store::{DynamoStore, OrderReader, OrderRecord};
use foxrelay_tests::{local_stack_options, simulator_codes, unique_prefix};
use foxreload_sim::{PRODUCT_FAST, RateLimit, SimConfig, Simulator};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

const ORDERS: usize = 500;
const LIMIT: u32 = 20;

/// What one run saw.
struct Run {
    /// Requests FoxReload saw per second (Unix time), and its 429s.
    requests: BTreeMap<i64, u64>,
    limited: BTreeMap<i64, u64>,
    reads: BTreeMap<i64, u64>,
    /// When (Unix seconds, as received) creates were answered 503 because
    /// of the stack's own budget.
    busy: Vec<f64>,
    /// Creates answered 503 because FoxReload refused or failed.
    unavailable: usize,
    drain: Duration,
    /// From each order's first POST to its event, sorted.
    lags: Vec<Duration>,
}

impl Run {
    fn first_429(&self) -> Option<i64> {
        self.limited.keys().next().copied()
    }

    /// The busiest second after the first 429 (all seconds if none).
    fn busiest_after_first_429(&self) -> u64 {
        let from = self.first_429().map_or(i64::MIN, |s| s + 1);
        self.requests
            .range(from..)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    fn lag(&self, share: f64) -> Duration {
        let i = ((self.lags.len() as f64 * share).ceil() as usize).clamp(1, self.lags.len());
        self.lags[i - 1]
    }

    fn report(&self, name: &str) -> String {
        format!(
            "{name}: busiest second after the first 429 {} requests, {} 429s, {} creates \
             answered 503 busy, {} answered 503 for FoxReload, drained in {:.0} s, lag p50 {:.1} s \
             p95 {:.1} s max {:.1} s",
            self.busiest_after_first_429(),
            self.limited.values().sum::<u64>(),
            self.busy.len(),
            self.unavailable,
            self.drain.as_secs_f64(),
            self.lag(0.5).as_secs_f64(),
            self.lag(0.95).as_secs_f64(),
            self.lag(1.0).as_secs_f64(),
        )
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One order, as a client places it: the same key until it is accepted,
/// coming back when told. Its id, when it first tried, and the 503s it got
/// (`busy`: the stack's budget; else FoxReload). The id, when it first
/// tried (the customer's clock starts there), and its 503s.
async fn place(
    http: reqwest::Client,
    api: String,
    key: String,
) -> (String, OffsetDateTime, Vec<(bool, f64)>) {
    let first = Instant::now();
    let first_at = OffsetDateTime::now_utc();
    let mut refusals = Vec::new();
    loop {
        let response = http
            .post(&api)
            .header("idempotency-key", &key)
            .json(&json!({"items": [{"productId": PRODUCT_FAST, "quantity": 1}]}))
            .send()
            .await
            .unwrap();
        let at = unix_now();
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let (status, answer) = foxrelay_tests::http_answer("POST", response).await;
        match status {
            202 => {
                return (
                    answer["orderId"].as_str().unwrap().to_owned(),
                    first_at,
                    refusals,
                );
            }
            503 => {
                refusals.push((answer["error"]["code"] == "busy", at));
                let wait = Duration::from_secs(wait.expect("a 503 says when to retry"));
                tokio::time::sleep(wait).await;
            }
            other => panic!("{other} {answer}"),
        }
        assert!(
            first.elapsed() < Duration::from_secs(400),
            "{key} never accepted"
        );
    }
}

/// Waits until every order is notified; the orders as stored.
async fn notified(stack: &LocalStack, ids: &[String]) -> BTreeMap<String, OrderRecord> {
    let store = DynamoStore::new(stack.clients.dynamodb.clone(), stack.resources.table_name());
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = BTreeMap::new();
    loop {
        for id in ids {
            if done.contains_key(id) {
                continue;
            }
            let order = store.order(id).await.unwrap().expect("stored");
            if order.notified_at.is_some() {
                done.insert(id.clone(), order);
            }
        }
        if done.len() == ids.len() {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders notified",
            done.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn burst(max_rps: &str) -> Run {
    let sim = Simulator::start(SimConfig {
        rate_limit: RateLimit {
            per_second: Some(LIMIT),
            ..RateLimit::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut options = local_stack_options(
        &unique_prefix(),
        &sim,
        &[("FOXRELOAD_MAX_RPS", max_rps)],
        1,
        Duration::from_secs(3600),
    );
    options.pollers = 4;
    let stack = LocalStack::start(options).await.unwrap();
    let http = reqwest::Client::new();
    let api = format!("http://{}/orders", stack.api_addr);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..ORDERS {
        // 50 a second for 10 s.
        tokio::time::sleep_until((start + Duration::from_millis(20 * n as u64)).into()).await;
        let key = format!("burst-{max_rps}-{n}");
        tasks.push(tokio::spawn(place(http.clone(), api.clone(), key)));
    }
    let mut placed = Vec::new();
    for task in tasks {
        placed.push(task.await.unwrap());
    }
    let ids: Vec<String> = placed.iter().map(|(id, _, _)| id.clone()).collect();
    let orders = notified(&stack, &ids).await;
    let drain = start.elapsed();
    // Every order notified with its own codes, as FoxReload delivered them.
    let store = DynamoStore::new(stack.clients.dynamodb.clone(), stack.resources.table_name());
    let mut held = std::collections::BTreeSet::new();
    for order in orders.values() {
        let supplier = order.supplier_order_id.clone().expect("bought");
        assert!(held.insert(supplier.clone()), "{supplier} held twice");
        let codes: Vec<String> = store
            .codes(&order.order_id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.code)
            .collect();
        assert!(!codes.is_empty(), "{} has no code", order.order_id);
        assert_eq!(codes, simulator_codes(&sim, &supplier));
    }
    let counters = sim.counters();
    assert_eq!(counters.orders_created as usize, ORDERS, "bought once each");
    let mut lags: Vec<Duration> = placed
        .iter()
        .map(|(id, first, _)| {
            (orders[id].notified_at.unwrap() - *first)
                .try_into()
                .unwrap_or_default()
        })
        .collect();
    lags.sort();
    let refusals: Vec<(bool, f64)> = placed.iter().flat_map(|(_, _, r)| r.clone()).collect();
    stack.stop().await;
    Run {
        requests: counters.requests_by_second,
        limited: counters.rate_limited_by_second,
        reads: counters.reads_by_second,
        busy: refusals
            .iter()
            .filter(|(busy, _)| *busy)
            .map(|(_, at)| *at)
            .collect(),
        unavailable: refusals.iter().filter(|(busy, _)| !*busy).count(),
        drain,
        lags,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_foxreloads_limit_is_sent_within_it_and_every_order_is_notified() {
    let governed = burst("50").await;
    let ungoverned = burst("0").await;
    eprintln!("{}", governed.report("governed (FOXRELOAD_MAX_RPS=50)"));
    eprintln!("{}", ungoverned.report("ungoverned (FOXRELOAD_MAX_RPS=0)"));
    // After the first 429, FoxReload never sees more than 22 in a second.
    assert!(
        governed.busiest_after_first_429() <= 22,
        "{:?}",
        governed.requests
    );
    // A create refused for the budget means every slot of the next 8 s was
    // taken (creates book that far ahead, reads at most 1 s): no read was
    // sent in those seconds.
    for at in &governed.busy {
        let second = at.floor() as i64;
        for later in second + 2..=second + 6 {
            assert_eq!(
                governed.reads.get(&later).copied().unwrap_or(0),
                0,
                "reads sent at {later} while a create was refused at {at}: {:?}",
                governed.reads
            );
        }
    }
    assert!(ungoverned.busy.is_empty(), "no budget, no busy answer");
}
