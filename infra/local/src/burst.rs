//! A burst of orders against FoxReload's rate limit, through the local
//! stack: the scenario of issue 16, run by its test (smaller) and by the
//! benchmark (500 orders in 10 s). Clients place orders over `over`, each
//! with its own key, coming back after `Retry-After` when answered 503; the
//! simulator refuses what passes `limit` a second; several pollers take the
//! poll messages. What FoxReload saw, second by second, and what the orders
//! went through, are reported; an order bought twice, holding another's
//! order, or notified with codes other than FoxReload's is an error.

use crate::stack::{LocalStack, StackOptions};
use foxrelay_shared::domain::budget::{Adaptive, Priority};
use foxrelay_shared::store::{DynamoStore, LimiterReading, OrderReader, OrderRecord};
use foxreload_sim::{PRODUCT_FAST, RateLimit, SimConfig, Simulator};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// The burst and the stack it runs on.
#[derive(Clone, Debug)]
pub struct Burst {
    pub orders: usize,
    /// The orders are placed evenly over this long.
    pub over: Duration,
    /// FoxReload's limit, requests a second.
    pub limit: u32,
    /// `FOXRELOAD_MAX_RPS` (0: no budget).
    pub max_rps: u32,
    pub pollers: usize,
    /// How long the orders may take to be notified, from the first.
    pub deadline: Duration,
    /// The stack (its `foxreload` and `simulator` are the burst's own).
    pub stack: StackOptions,
}

/// What one burst saw.
#[derive(Clone, Debug, Default)]
pub struct BurstReport {
    /// Requests FoxReload saw per second (Unix time), its 429s, and its
    /// reads of one order.
    pub requests: BTreeMap<i64, u64>,
    pub limited: BTreeMap<i64, u64>,
    pub reads: BTreeMap<i64, u64>,
    /// When (Unix seconds, as received) creates were answered 503 `busy`:
    /// the stack's own budget.
    pub busy: Vec<f64>,
    /// Creates answered 503 for another reason than the budget, or 502
    /// (stopped at their timeout).
    pub unavailable: usize,
    /// Those answers' messages, each with how often it was given.
    pub unavailable_why: BTreeMap<String, usize>,
    /// From the first order placed to the last notified.
    pub drain: Duration,
    /// From each order's first POST to its event, sorted.
    pub lags: Vec<Duration>,
    /// The stack's limiter as read once a second (Unix second), and the
    /// budget it was run with (0: none).
    pub limiter: BTreeMap<i64, LimiterReading>,
    pub max_rps: u32,
}

impl BurstReport {
    /// The first second FoxReload answered a 429, if it did.
    pub fn first_429(&self) -> Option<i64> {
        self.limited.keys().next().copied()
    }

    /// FoxReload's busiest second after the first 429 (of all, if none).
    pub fn busiest_after_first_429(&self) -> u64 {
        let from = self.first_429().map_or(i64::MIN, |s| s + 1);
        self.requests
            .range(from..)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    pub fn refusals(&self) -> u64 {
        self.limited.values().sum()
    }

    /// The lag below which `share` of the orders were notified.
    pub fn lag(&self, share: f64) -> Duration {
        if self.lags.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.lags.len() as f64 * share).ceil() as usize).clamp(1, self.lags.len());
        self.lags[i - 1]
    }

    /// What FoxReload saw second by second, from its first request:
    /// `requests/429s` each, a space apart.
    pub fn timeline(&self) -> String {
        let Some((&first, _)) = self.requests.first_key_value() else {
            return String::new();
        };
        let last = self.requests.keys().next_back().copied().unwrap_or(first);
        (first..=last)
            .map(|second| {
                let count = |of: &BTreeMap<i64, u64>| of.get(&second).copied().unwrap_or(0);
                format!("{}/{}", count(&self.requests), count(&self.limited))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The stack's budget second by second, as read once a second:
    /// `rate:granted/busy` each (the budget then, in requests a second; the
    /// slots granted and the busy ones since the reading before), a space
    /// apart; `-` in a cool-down.
    pub fn budget_timeline(&self) -> String {
        if self.max_rps == 0 {
            return "none".to_owned();
        }
        let mut adaptive = Adaptive::new(f64::from(self.max_rps), Duration::ZERO);
        let mut last: Option<&LimiterReading> = None;
        let mut out = Vec::new();
        for (second, reading) in &self.limiter {
            let (granted, busy) = last.map_or((0, 0), |last| {
                (
                    reading.granted.saturating_sub(last.granted),
                    reading.busy.saturating_sub(last.busy),
                )
            });
            if let Some(budget) = reading.budget {
                adaptive.state = budget;
            }
            let now = Duration::from_secs(u64::try_from(*second).unwrap_or_default());
            let rate = adaptive.rate(now, reading.busy);
            out.push(if rate > 0.0 {
                format!("{rate:.1}:{granted}/{busy}")
            } else {
                format!("-:{granted}/{busy}")
            });
            last = Some(reading);
        }
        out.join(" ")
    }

    /// Seconds in which FoxReload was sent a read of an order while, at
    /// most 14 s before, a create had been refused for the budget: none,
    /// when creates come first (a create is refused only when every slot
    /// of the next 15 s is taken, and a read books at most 1 s ahead; the
    /// second of the refusal and the next are left out, for the slots
    /// granted before it).
    pub fn reads_while_creates_refused(&self) -> Vec<i64> {
        let mut seconds = BTreeSet::new();
        let reach = Priority::Create.ahead().as_secs() as i64;
        for at in &self.busy {
            let second = at.floor() as i64;
            for later in second + 2..second + reach {
                if self.reads.get(&later).copied().unwrap_or(0) > 0 {
                    seconds.insert(later);
                }
            }
        }
        seconds.into_iter().collect()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A create answered 503.
#[derive(Clone, Debug)]
struct Refusal {
    /// For the stack's own budget.
    busy: bool,
    /// When (Unix seconds).
    at: f64,
    message: String,
}

/// One order as a client places it: the same key until it is accepted,
/// coming back when told. Its id, when it first tried (the customer's clock
/// starts there), and its 503s (`true`: the stack's budget), each with
/// its message.
async fn place(
    http: reqwest::Client,
    api: String,
    key: String,
    give_up: Instant,
) -> Result<(String, OffsetDateTime, Vec<Refusal>), String> {
    let first = OffsetDateTime::now_utc();
    let mut refusals = Vec::new();
    // What it was told last, and how often it was told to wait on its key.
    let mut last;
    let mut in_progress = 0usize;
    loop {
        let response = http
            .post(&api)
            .header("idempotency-key", &key)
            .json(&json!({"items": [{"productId": PRODUCT_FAST, "quantity": 1}]}))
            .send()
            .await
            .map_err(|e| format!("POST /orders: {e}"))?;
        let at = unix_now();
        let status = response.status().as_u16();
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        last = format!("{status} {answer}");
        match status {
            202 => {
                let id = answer["orderId"].as_str().ok_or("202 without an orderId")?;
                return Ok((id.to_owned(), first, refusals));
            }
            // The same key still being worked on (an earlier attempt the
            // gateway gave up on): come back when told, as a client would.
            409 if answer["error"]["code"] == "request_in_progress" => {
                in_progress += 1;
                let wait = wait.ok_or_else(|| format!("a 409 without Retry-After: {answer}"))?;
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            503 => {
                refusals.push(Refusal {
                    busy: answer["error"]["code"] == "busy",
                    at,
                    message: answer["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
                let wait = wait.ok_or_else(|| format!("a 503 without Retry-After: {answer}"))?;
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            // The function crashed or ran past its timeout (API
            // Gateway's own answer): tried again with the same key, as a
            // client would.
            502 => {
                refusals.push(Refusal {
                    busy: false,
                    at,
                    message: format!("502 from the gateway: {answer}"),
                });
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return Err(format!("POST /orders answered {other}: {answer}")),
        }
        if Instant::now() > give_up {
            return Err(format!(
                "{key} was never accepted: answered 503 or 502 {} times (busy {}), 409 \
                 request_in_progress {in_progress} times, last {last}",
                refusals.len(),
                refusals.iter().filter(|r| r.busy).count()
            ));
        }
    }
}

/// Waits until every order's event is on `events` (a queue subscribed to
/// the order-events topic: what a subscriber sees, read without loading the
/// store), then reads each order once; the orders as stored. On time out,
/// the orders not notified are told by status, chain and last error.
async fn notified(
    stack: &LocalStack,
    store: &DynamoStore,
    events: &str,
    ids: &[String],
    give_up: Instant,
) -> Result<BTreeMap<String, OrderRecord>, String> {
    let sqs = &stack.clients.sqs;
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    while seen.len() < wanted.len() && Instant::now() <= give_up {
        let got = sqs
            .receive_message()
            .queue_url(events)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| format!("receive order events: {e}"))?;
        for message in got.messages() {
            let event: serde_json::Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
            if let Some(id) = event["orderId"].as_str().filter(|id| wanted.contains(id)) {
                seen.insert(id.to_owned());
            }
            sqs.delete_message()
                .queue_url(events)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("delete an order event: {e}"))?;
        }
    }
    let mut done = BTreeMap::new();
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    for id in ids {
        let order = store
            .order(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("order {id} not stored"))?;
        if order.notified_at.is_some() {
            done.insert(id.clone(), order);
        } else {
            let why = order
                .last_error
                .map(|e| format!("{}: {}", e.kind, e.detail.unwrap_or_default()))
                .unwrap_or_default();
            let key = format!(
                "{} after {} polls, next link {}, {why}",
                order.status, order.poll_count, order.poll_seq
            );
            *open.entry(key).or_default() += 1;
        }
    }
    if open.is_empty() {
        return Ok(done);
    }
    Err(format!(
        "{} of {} orders notified in time; the others: {open:?}",
        done.len(),
        ids.len()
    ))
}

/// Reads the limiter once a second until `stop`, each reading by the Unix
/// second it was made in.
async fn sample_limiter(
    store: DynamoStore,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> BTreeMap<i64, LimiterReading> {
    let mut readings = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return readings,
        }
        match store.limiter().await {
            Ok(reading) => {
                readings.insert(unix_now().floor() as i64, reading);
            }
            Err(error) => tracing::warn!(%error, "the limiter could not be read"),
        }
    }
}

/// Runs the burst.
pub async fn run(burst: Burst) -> Result<BurstReport, String> {
    let sim = Simulator::start(SimConfig {
        rate_limit: RateLimit {
            per_second: Some(burst.limit),
            ..RateLimit::default()
        },
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("the simulator did not start: {e}"))?;
    let mut options = burst.stack.clone();
    options.foxreload = Some((sim.base_url(), sim.api_key().to_owned()));
    options.pollers = burst.pollers;
    options
        .overrides
        .insert("FOXRELOAD_MAX_RPS".into(), burst.max_rps.to_string());
    let stack = LocalStack::start(options).await?;
    let events = crate::subscribe_queue(
        &stack.clients,
        &[stack.resources.order_events_topic_arn()],
        &format!("{}-burst-events", burst.stack.prefix),
    )
    .await
    .map_err(|e| e.to_string())?;
    let store = stack.resources.store(&stack.clients);
    let (stop_sampling, sampling) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_limiter(store.clone(), sampling));
    let http = reqwest::Client::new();
    let api = format!("http://{}/orders", stack.api_addr);
    let start = Instant::now();
    let give_up = start + burst.deadline;
    let gap = burst.over / u32::try_from(burst.orders.max(1)).unwrap_or(u32::MAX);
    let mut tasks = Vec::new();
    for n in 0..burst.orders {
        tokio::time::sleep_until((start + gap * n as u32).into()).await;
        let key = format!("burst-{}-{n}", burst.stack.prefix);
        tasks.push(tokio::spawn(place(http.clone(), api.clone(), key, give_up)));
    }
    let mut placed = Vec::new();
    for task in tasks {
        placed.push(task.await.map_err(|e| e.to_string())??);
    }
    let ids: Vec<String> = placed.iter().map(|(id, _, _)| id.clone()).collect();
    let notified = notified(&stack, &store, &events, &ids, give_up).await;
    let drain = start.elapsed();
    let _ = stop_sampling.send(true);
    let limiter = sampler.await.unwrap_or_default();
    let orders = match notified {
        Ok(orders) => orders,
        Err(error) => {
            let counters = sim.counters();
            let seen = BurstReport {
                requests: counters.requests_by_second,
                limited: counters.rate_limited_by_second,
                limiter,
                max_rps: burst.max_rps,
                ..BurstReport::default()
            };
            return Err(format!(
                "{error}; FoxReload saw (requests/429s a second) {}; the budget \
                 (rate:granted/busy a second) {}",
                seen.timeline(),
                seen.budget_timeline()
            ));
        }
    };
    // Every order notified with its own codes, as FoxReload delivered them.
    let mut held = BTreeSet::new();
    for order in orders.values() {
        let supplier = order.supplier_order_id.clone().ok_or_else(|| {
            // What the order went through, and what its client was told.
            let told: Vec<String> = placed
                .iter()
                .filter(|(id, _, _)| *id == order.order_id)
                .flat_map(|(_, _, refusals)| refusals.iter().map(|r| r.message.clone()))
                .collect();
            format!(
                "{} notified {} without a FoxReload order (last error {:?}; handed over: {}; \
                 {} POSTs recorded, {} known, refused {:?}; its client was told before its \
                 202: {told:?})",
                order.order_id,
                order.status,
                order.last_error,
                order.handed_over,
                order.posted_at.len(),
                order.posts_known,
                order.posts_refused,
            )
        })?;
        if !held.insert(supplier.clone()) {
            return Err(format!("FoxReload order {supplier} held twice"));
        }
        let codes: Vec<String> = store
            .codes(&order.order_id)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|c| c.code)
            .collect();
        if codes.is_empty() || Some(&codes) != sim.codes(&supplier).as_ref() {
            return Err(format!(
                "{} notified with codes other than FoxReload's",
                order.order_id
            ));
        }
    }
    let counters = sim.counters();
    if counters.orders_created as usize != burst.orders {
        return Err(format!(
            "{} orders bought for {} placed",
            counters.orders_created, burst.orders
        ));
    }
    let mut lags: Vec<Duration> = placed
        .iter()
        .map(|(id, first, _)| {
            orders[id].notified_at.map_or(Duration::ZERO, |at| {
                (at - *first).try_into().unwrap_or_default()
            })
        })
        .collect();
    lags.sort();
    let refusals: Vec<Refusal> = placed.iter().flat_map(|(_, _, r)| r.clone()).collect();
    let mut unavailable_why = BTreeMap::new();
    for refusal in refusals.iter().filter(|r| !r.busy) {
        *unavailable_why.entry(refusal.message.clone()).or_default() += 1;
    }
    stack.stop().await;
    sim.shutdown().await;
    Ok(BurstReport {
        requests: counters.requests_by_second,
        limited: counters.rate_limited_by_second,
        reads: counters.reads_by_second,
        busy: refusals.iter().filter(|r| r.busy).map(|r| r.at).collect(),
        unavailable: refusals.iter().filter(|r| !r.busy).count(),
        unavailable_why,
        drain,
        lags,
        limiter,
        max_rps: burst.max_rps,
    })
}
