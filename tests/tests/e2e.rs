//! End to end, through the local runner's HTTP API: the whole stack (the
//! three real handlers wired as AWS wires them) against moto and the
//! simulator, with every poll message delivered twice, shortened schedule
//! settings instead of sleeps.

use foxrelay_local::{LocalStack, StackOptions, StackTemplate};
use foxrelay_shared::domain::event::OrderEvent;
use foxrelay_shared::store::{DynamoStore, OrderStore};
use foxrelay_tests::{
    drain_json, moto, simulator_codes, subscribe_both, subscribe_queue, unique_prefix,
};
use foxreload_sim::{
    PRODUCT_5XX, PRODUCT_429, PRODUCT_ACTIVATION, PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_MANY,
    PRODUCT_NEVER, PRODUCT_PARTIAL, PRODUCT_STALL_CREATE, SimConfig, Simulator, Timing,
};
use serde_json::{Value, json};
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
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    StackOptions {
        template: StackTemplate::repository_path(),
        aws_endpoint: Some(moto().endpoint_url()),
        foxreload: Some((sim.base_url(), sim.api_key().to_owned())),
        simulator: SimConfig::default(),
        prefix: prefix.to_owned(),
        api_addr: ([127, 0, 0, 1], 0).into(),
        overrides,
        scan_interval: Duration::from_secs(2),
        poll_copies: copies,
        poll_wait: Duration::from_secs(1),
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
            let response = http
                .post(&api)
                .header("idempotency-key", format!("e2e-{n}"))
                .json(&json!({"items": [{"productId": product, "quantity": 2}],
                              "customerReference": format!("e2e-{n}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202, "{product}");
            let answer: Value = response.json().await.unwrap();
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
    let store = DynamoStore::new(stack.clients.dynamodb.clone(), stack.resources.table_name());
    let mut events: BTreeMap<String, Vec<OrderEvent>> = BTreeMap::new();
    let deadline = Instant::now() + within;
    while !ids.iter().all(|id| events.contains_key(id)) {
        assert!(
            Instant::now() < deadline,
            "{} orders without an event",
            ids.iter().filter(|id| !events.contains_key(*id)).count()
        );
        for raw in drain_json(&stack.clients, queue).await {
            let event: OrderEvent = serde_json::from_value(raw).unwrap();
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
    let store = DynamoStore::new(stack.clients.dynamodb.clone(), stack.resources.table_name());
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
    let store = DynamoStore::new(
        second.clients.dynamodb.clone(),
        second.resources.table_name(),
    );
    for id in &ids {
        let order = store.order(id).await.unwrap().unwrap();
        let supplier = order.supplier_order_id.unwrap();
        let codes: Vec<String> = events[id][0].codes.iter().map(|c| c.code.clone()).collect();
        assert_eq!(codes, simulator_codes(&sim, &supplier));
    }
    assert_eq!(sim.counters().orders_created, 30);
    second.stop().await;
}
