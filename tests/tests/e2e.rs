//! End to end, through the local runner's HTTP API: the whole stack (the
//! three real handlers wired as AWS wires them) against moto and the
//! simulator, with every poll message delivered twice, shortened schedule
//! settings instead of sleeps.

use foxrelay_local::{LocalStack, StackOptions};
use foxrelay_shared::domain::event::OrderEvent;
use foxrelay_shared::store::OrderReader;
use foxrelay_tests::{
    drain_json, local_stack_options, moto, simulator_codes, subscribe_both, subscribe_queue,
    unique_prefix,
};
use foxreload_sim::{
    PRODUCT_5XX, PRODUCT_429, PRODUCT_ACTIVATION, PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_MANY,
    PRODUCT_NEVER, PRODUCT_PARTIAL, PRODUCT_STALL_CREATE, SimConfig, Simulator, Timing,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STALL_AFTER: u64 = 10;
const REALERT: u64 = 8;

async fn simulator() -> Simulator {
    Simulator::start(SimConfig {
        timing: Timing {
            paid_to_processing: Duration::from_millis(100),
            fast_fulfilment: Duration::from_millis(800),
            create_stall: Duration::from_secs(3),
            ..Timing::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn options(prefix: &str, sim: &Simulator, copies: usize) -> StackOptions {
    let overrides = [
        ("POLL_FAST_INTERVAL_SECS", "1"),
        ("POLL_JITTER_PERCENT", "10"),
        ("STALL_AFTER_SECS", "10"),
        ("STALL_REALERT_SECS", "8"),
        ("FOXRELOAD_REQUEST_TIMEOUT_MS", "1000"),
        ("FOXRELOAD_CONNECT_TIMEOUT_MS", "500"),
    ];
    local_stack_options(prefix, sim, &overrides, copies, Duration::from_secs(2))
}

/// A stored attribute as text, whatever its type, nested ones included.
fn stored_text(value: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) | A::N(s) => s.clone(),
        A::B(b) => String::from_utf8_lossy(b.as_ref()).into_owned(),
        A::Ss(list) | A::Ns(list) => list.join(" "),
        A::Bs(list) => list
            .iter()
            .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        A::L(list) => list.iter().map(stored_text).collect::<Vec<_>>().join(" "),
        A::M(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", stored_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}

/// Places orders over HTTP, eight at a time; returns our order ids by
/// product.
async fn place_all(stack: &LocalStack, products: &[&'static str]) -> Vec<(String, &'static str)> {
    let http = reqwest::Client::new();
    let api = format!("http://{}/orders", stack.api_addr);
    let gate = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for (n, product) in products.iter().copied().enumerate() {
        let (http, api, gate) = (http.clone(), api.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let order = json!({"items": [{"productId": product, "quantity": 2}],
                               "customerReference": format!("e2e-{n}")});
            let (status, answer, _) =
                foxrelay_tests::place_order(&http, &api, &format!("e2e-{n}"), &order).await;
            assert_eq!(status, 202, "{product}: {answer}");
            (answer["orderId"].as_str().unwrap().to_owned(), product)
        }));
    }
    let mut placed = Vec::new();
    for task in tasks {
        placed.push(task.await.unwrap());
    }
    placed
}

/// Reads events until every order in `ids` has one, checking on receipt
/// that the order's codes were already stored.
async fn collect_events(
    stack: &LocalStack,
    queue: &str,
    ids: &BTreeSet<String>,
    within: Duration,
) -> BTreeMap<String, Vec<OrderEvent>> {
    let store = stack.resources.store(&stack.clients);
    let mut events: BTreeMap<String, Vec<OrderEvent>> = BTreeMap::new();
    let deadline = Instant::now() + within;
    while !ids.iter().all(|id| events.contains_key(id)) {
        if Instant::now() >= deadline {
            // Each order without an event as it stands, to tell why.
            let mut open = Vec::new();
            for id in ids.iter().filter(|id| !events.contains_key(*id)) {
                open.push(format!("{:?}", store.order(id).await));
            }
            panic!("{} orders without an event: {open:#?}", open.len());
        }
        for raw in drain_json(&stack.clients, queue).await {
            let event = foxrelay_tests::order_event(raw);
            let stored = store.codes(&event.order_id).await.unwrap();
            assert_eq!(stored, event.codes, "codes stored before the event arrived");
            events
                .entry(event.order_id.clone())
                .or_default()
                .push(event);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_orders_end_with_exactly_their_codes_and_nothing_bought_twice() {
    let sim = simulator().await;
    let stack = LocalStack::start(options(&unique_prefix(), &sim, 2))
        .await
        .unwrap();
    let prefix = unique_prefix();
    let (events_queue, alerts_queue) =
        subscribe_both(&stack.clients, &stack.resources, &prefix).await;

    let mix: [(&'static str, usize); 8] = [
        (PRODUCT_FAST, 100),
        (PRODUCT_ACTIVATION, 20),
        (PRODUCT_PARTIAL, 20),
        (PRODUCT_MANY, 5),
        (PRODUCT_FAIL, 10),
        (PRODUCT_5XX, 15),
        (PRODUCT_429, 15),
        (PRODUCT_STALL_CREATE, 15),
    ];
    let mut products: Vec<&'static str> = mix
        .iter()
        .flat_map(|(product, count)| std::iter::repeat_n(*product, *count))
        .collect();
    products.push(PRODUCT_NEVER);
    let started = Instant::now();
    let placed = place_all(&stack, &products).await;
    let never = placed
        .iter()
        .find(|(_, product)| *product == PRODUCT_NEVER)
        .map(|(id, _)| id.clone())
        .unwrap();
    let ids: BTreeSet<String> = placed
        .iter()
        .filter(|(id, _)| *id != never)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(ids.len(), 200);

    let events = collect_events(&stack, &events_queue, &ids, Duration::from_secs(600)).await;
    let store = stack.resources.store(&stack.clients);
    let mut supplier_orders = BTreeSet::new();
    for id in &ids {
        let order = store.order(id).await.unwrap().unwrap();
        let supplier = order.supplier_order_id.clone().expect("claimed");
        assert!(
            supplier_orders.insert(supplier.clone()),
            "a supplier order held twice"
        );
        let copies = &events[id];
        assert!(copies.iter().all(|e| e.event_id == copies[0].event_id));
        let codes: Vec<String> = copies[0].codes.iter().map(|c| c.code.clone()).collect();
        assert_eq!(codes, simulator_codes(&sim, &supplier), "order {id}");
        assert!(order.notified_at.is_some());
    }
    let counters = sim.counters();
    assert_eq!(
        counters.orders_created, 201,
        "zero duplicate supplier orders"
    );

    // Whoever reads the table sees no code: every attribute of every item
    // searched for every delivered code.
    let delivered: BTreeSet<String> = events
        .values()
        .flat_map(|copies| copies[0].codes.iter().map(|c| c.code.clone()))
        .collect();
    assert!(delivered.len() >= 200, "{} codes", delivered.len());
    let items = stack.resources.every_item(&stack.clients).await.unwrap();
    for item in &items {
        for (name, value) in item {
            let seen = stored_text(value);
            if let Some(code) = delivered.iter().find(|code| seen.contains(code.as_str())) {
                panic!("{name} of {:?} holds code {code}", item.get("pk"));
            }
        }
    }
    // GET /orders/{orderId} opens them: the event's codes, in order.
    let http = reqwest::Client::new();
    for id in ids.iter().take(40) {
        let response = http
            .get(format!("http://{}/orders/{id}", stack.api_addr))
            .send()
            .await
            .unwrap();
        let (status, answer) = foxrelay_tests::http_answer("GET", response).await;
        assert_eq!(status, 200, "{answer}");
        let read: Vec<&str> = answer["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        let published: Vec<&str> = events[id][0]
            .codes
            .iter()
            .map(|c| c.code.as_str())
            .collect();
        assert_eq!(read, published, "order {id}");
    }

    // The never-finishing order: one stall alert per alert interval.
    let mut alerts: Vec<time::OffsetDateTime> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerts.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the stalled order was alerted {} times",
            alerts.len()
        );
        for alert in drain_json(&stack.clients, &alerts_queue).await {
            if alert["orderId"] == never.as_str() && alert["kind"] == "stalled" {
                let at = alert["alertedAt"].as_str().unwrap();
                alerts.push(
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .unwrap(),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed().as_secs();
    let most = 1 + elapsed.saturating_sub(STALL_AFTER) / REALERT + 1;
    assert!(
        (alerts.len() as u64) <= most,
        "{} alerts in {elapsed} s",
        alerts.len()
    );
    let gap = alerts[1] - alerts[0];
    assert!(
        gap >= Duration::from_secs(REALERT - 3),
        "alerts {gap:?} apart"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_runner_mid_run_and_starting_it_again_loses_nothing() {
    let sim = simulator().await;
    let prefix = unique_prefix();
    let first = LocalStack::start(options(&prefix, &sim, 1)).await.unwrap();
    let events_queue = subscribe_queue(
        &first.clients,
        first.resources.order_events_topic_arn(),
        &format!("{prefix}-events"),
    )
    .await;
    let products = vec![PRODUCT_FAST; 20]
        .into_iter()
        .chain(vec![PRODUCT_MANY; 5])
        .chain(vec![PRODUCT_STALL_CREATE; 5])
        .collect::<Vec<_>>();
    let placed = place_all(&first, &products).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    first.stop().await;

    let second = LocalStack::start(options(&prefix, &sim, 1)).await.unwrap();
    let ids: BTreeSet<String> = placed.into_iter().map(|(id, _)| id).collect();
    let events = collect_events(&second, &events_queue, &ids, Duration::from_secs(300)).await;
    let store = second.resources.store(&second.clients);
    for id in &ids {
        let order = store.order(id).await.unwrap().unwrap();
        let supplier = order.supplier_order_id.unwrap();
        let codes: Vec<String> = events[id][0].codes.iter().map(|c| c.code.clone()).collect();
        assert_eq!(codes, simulator_codes(&sim, &supplier));
    }
    assert_eq!(sim.counters().orders_created, 30);
    second.stop().await;
}

/// Places `products[n]` under key `chaos-{n}` against whatever API address
/// `api` holds now, retrying through crashes (502, refused connections)
/// and in-progress answers (409) until it is answered 202.
async fn place_through_crashes(
    api: Arc<std::sync::RwLock<String>>,
    products: Vec<&'static str>,
) -> Vec<(String, &'static str)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for (n, product) in products.into_iter().enumerate() {
        let (http, api, gate) = (http.clone(), api.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let body = json!({"items": [{"productId": product, "quantity": 2}],
                              "customerReference": format!("chaos-{n}")});
            let deadline = Instant::now() + Duration::from_secs(240);
            loop {
                assert!(Instant::now() < deadline, "order {n} never answered");
                let url = format!("{}/orders", api.read().unwrap());
                let sent = http
                    .post(&url)
                    .header("idempotency-key", format!("chaos-{n}"))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(response) = sent {
                    // Crashes included, every answer is one the API documents.
                    let (status, answer) = foxrelay_tests::http_answer("POST", response).await;
                    if status == 202 {
                        return (answer["orderId"].as_str().unwrap().to_owned(), product);
                    }
                    assert!(
                        matches!(status, 409 | 502 | 503),
                        "order {n}: {status} {answer}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }));
    }
    let mut placed = Vec::new();
    for task in tasks {
        placed.push(task.await.unwrap());
    }
    placed
}

/// Issue 11's chaos run: 200 orders, a third of them creates whose answer
/// is lost; look-alike orders of other buyers placed before, during and
/// after; 30 newer orders so no single list page reaches ours; 5 % of
/// DynamoDB transactions cancelled by conflicts; the runner killed and
/// restarted three times. No supplier order is bought twice, none of
/// another buyer's is claimed, and every order is either notified with
/// exactly its own codes or waits, alerted, as undecided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_buys_nothing_twice_claims_nothing_foreign_and_loses_no_code() {
    let sim = Simulator::start(SimConfig {
        timing: Timing {
            paid_to_processing: Duration::from_millis(100),
            fast_fulfilment: Duration::from_millis(800),
            create_stall: Duration::from_secs(3),
            ..Timing::default()
        },
        list_page_cap: 10,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let proxy = foxrelay_recorder::CountingProxy::start(&moto().endpoint_url())
        .await
        .unwrap();
    proxy.cancel_transactions(0, 50);
    let prefix = unique_prefix();
    let mut opts = options(&prefix, &sim, 1);
    opts.aws_endpoint = Some(proxy.url().to_owned());
    let first = LocalStack::start(opts.clone()).await.unwrap();
    let watch_prefix = unique_prefix();
    let (events_queue, alerts_queue) =
        subscribe_both(&first.clients, &first.resources, &watch_prefix).await;
    let clients = first.clients.clone();
    let store = first.resources.store(&clients);
    let api = Arc::new(std::sync::RwLock::new(format!("http://{}", first.api_addr)));

    let look_alike = |offset_ms: i64| {
        sim.place_foreign(
            &json!({"items": [{"itemId": PRODUCT_STALL_CREATE, "quantity": 2}],
                                  "offsetMs": offset_ms}),
        )
        .unwrap();
    };
    for i in 0..5 {
        look_alike(-90_000 + i * 5_000);
    }
    // Fast ones first: their answers measure FoxReload's clock.
    let mut products: Vec<&'static str> = vec![PRODUCT_FAST; 10];
    for n in 0..190 {
        products.push(match n % 3 {
            0 => PRODUCT_STALL_CREATE,
            1 if n % 7 == 1 => PRODUCT_MANY,
            1 => PRODUCT_ACTIVATION,
            _ => PRODUCT_FAST,
        });
    }
    let stalled = products
        .iter()
        .filter(|p| **p == PRODUCT_STALL_CREATE)
        .count();
    assert!(stalled >= 60, "{stalled}");
    let placing = tokio::spawn(place_through_crashes(api.clone(), products));

    // While ours are in flight: look-alikes, and 30 newer orders of others.
    let mut stack = first;
    for round in 0..3u64 {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(300 + 170 * round)).await;
            sim.place_foreign(&json!({"items": [{"itemId": PRODUCT_FAST, "quantity": 1}]}))
                .unwrap();
        }
        look_alike(0);
        // Crash, and come back.
        stack.kill().await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        stack = LocalStack::start(opts.clone()).await.unwrap();
        *api.write().unwrap() = format!("http://{}", stack.api_addr);
    }
    let placed = placing.await.unwrap();
    for i in 0..5 {
        look_alike(i * 1_000);
    }
    let ids: BTreeSet<String> = placed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 200);

    // Until every order is notified, or waits as undecided and was alerted.
    let mut events: BTreeMap<String, Vec<OrderEvent>> = BTreeMap::new();
    let mut ambiguous_alerts: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(480);
    let undecided = loop {
        for raw in drain_json(&clients, &events_queue).await {
            let event = foxrelay_tests::order_event(raw);
            events
                .entry(event.order_id.clone())
                .or_default()
                .push(event);
        }
        for alert in drain_json(&clients, &alerts_queue).await {
            if matches!(
                alert["kind"].as_str(),
                Some("reconcile_ambiguous" | "stuck_reconciling")
            ) {
                ambiguous_alerts.insert(alert["orderId"].as_str().unwrap().to_owned());
            }
        }
        let mut undecided = BTreeSet::new();
        let mut open: BTreeMap<String, usize> = BTreeMap::new();
        for id in ids.iter().filter(|id| !events.contains_key(*id)) {
            let order = store.order(id).await.unwrap().unwrap();
            // Undecided: no FoxReload order held, reconciling, and alerted.
            let waits = order.status == foxrelay_shared::domain::OrderStatus::Reconciling
                && order.supplier_order_id.is_none();
            if waits && ambiguous_alerts.contains(id) {
                undecided.insert(id.clone());
            } else {
                let why = order.last_error.as_ref().map_or(String::new(), |e| {
                    format!("{} {}", e.kind, e.detail.as_deref().unwrap_or_default())
                });
                *open.entry(format!("{} {why}", order.status)).or_default() += 1;
            }
        }
        if open.is_empty() {
            break undecided;
        }
        assert!(
            Instant::now() < deadline,
            "orders neither notified nor undecided: {open:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    let counters = sim.counters();
    let foreign: BTreeSet<&String> = counters.foreign_orders.iter().collect();
    let mut claimed = BTreeSet::new();
    for id in &ids {
        let order = store.order(id).await.unwrap().unwrap();
        let Some(supplier) = order.supplier_order_id.clone() else {
            assert!(
                undecided.contains(id),
                "{id} holds nothing and is not undecided"
            );
            continue;
        };
        assert!(
            !foreign.contains(&supplier),
            "{id} claimed another buyer's order {supplier}: POSTs recorded at {:?} (our clock), \
             status {}, handed over {}, last error {:?}; foreign orders {:?}",
            order.posted_at,
            order.status,
            order.handed_over,
            order.last_error,
            counters.foreign_orders
        );
        assert!(
            claimed.insert(supplier.clone()),
            "a supplier order held twice"
        );
        if let Some(copies) = events.get(id) {
            assert!(copies.iter().all(|e| e.event_id == copies[0].event_id));
            let codes: Vec<String> = copies[0].codes.iter().map(|c| c.code.clone()).collect();
            assert_eq!(codes, simulator_codes(&sim, &supplier), "order {id}");
            let stored: Vec<String> = store
                .codes(id)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.code)
                .collect();
            assert_eq!(stored, codes, "order {id}: codes stored as published");
        }
    }
    // Every order FoxReload made for us is held by one of ours, but for at
    // most one per undecided order: nothing was bought twice.
    let ours_at_foxreload = counters.orders_created as usize;
    assert!(ours_at_foxreload <= ids.len(), "{ours_at_foxreload} bought");
    assert!(
        ours_at_foxreload - claimed.len() <= undecided.len(),
        "{ours_at_foxreload} bought, {} held, {} undecided",
        claimed.len(),
        undecided.len()
    );
    assert!(proxy.cancelled_transactions() > 0);
    assert!(
        undecided.len() <= stalled / 2,
        "{} of {stalled} lost answers left undecided",
        undecided.len()
    );
    eprintln!(
        "chaos: {} notified, {} undecided, {} transactions cancelled, {} list calls",
        events.len(),
        undecided.len(),
        proxy.cancelled_transactions(),
        counters.list_calls
    );
    stack.stop().await;
}
