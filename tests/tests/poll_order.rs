//! poll-order through moto and the simulator: orders placed by create-order
//! are polled to their end by the real handler, fed by an SQS event source as
//! Lambda's; the events reach a queue subscribed to the topic.

use aws_lambda_events::encodings::Body;
use create_order::create::CreateOptions;
use foxrelay_local::{EventSourceOptions, SqsEventSource};
use foxrelay_shared::domain::event::OrderEvent;
use foxrelay_shared::domain::schedule::Schedule;
use foxrelay_shared::events::{EventPublisher, OpsAlert, PublishError, SnsPublisher};
use foxrelay_shared::store::{DynamoStore, OrderRecord, OrderStore};
use foxrelay_tests::{Harness, drain_json, harness, http_event, subscribe_queue};
use foxreload_sim::{
    PRODUCT_5XX, PRODUCT_429, PRODUCT_ACTIVATION, PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_GARBAGE,
    PRODUCT_MANY, PRODUCT_PARTIAL, PRODUCT_POOR, PRODUCT_UNKNOWN_STATUS, SimConfig, Timing,
};
use poll_order::poll::{PollOptions, Poller};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Polls every second: the schedule's figures, shortened.
fn quick_schedule() -> Schedule {
    Schedule {
        fast_interval: Duration::from_secs(1),
        jitter: 0.0,
        ..Schedule::default()
    }
}

struct World {
    h: Harness,
    create: create_order::Handler,
    store: DynamoStore,
    events: String,
    alerts: String,
}

async fn world(timing: Timing) -> World {
    let h = harness(
        SimConfig {
            timing,
            ..SimConfig::default()
        },
        Duration::from_secs(2),
    )
    .await;
    let create = create_order::Handler::with_options(
        h.context.clone(),
        CreateOptions {
            first_poll_delay: Duration::from_secs(1),
            ..CreateOptions::default()
        },
    );
    let store = DynamoStore::new(
        h.stack.clients.dynamodb.clone(),
        h.stack.resources.table_name(),
    );
    let events = subscribe_queue(
        &h.stack,
        h.stack.resources.order_events_topic_arn(),
        "events",
    )
    .await;
    let alerts =
        subscribe_queue(&h.stack, h.stack.resources.ops_alerts_topic_arn(), "alerts").await;
    World {
        h,
        create,
        store,
        events,
        alerts,
    }
}

fn quick_timing() -> Timing {
    Timing {
        paid_to_processing: Duration::from_millis(100),
        fast_fulfilment: Duration::from_millis(500),
        payment_window: Duration::from_secs(3),
        unknown_status_for: Duration::from_millis(1_500),
        ..Timing::default()
    }
}

fn poll_options() -> PollOptions {
    PollOptions {
        schedule: quick_schedule(),
        ..PollOptions::default()
    }
}

impl World {
    fn source(&self, copies: usize, shuffle: bool) -> SqsEventSource {
        SqsEventSource::new(
            self.h.stack.clients.sqs.clone(),
            self.h.stack.resources.poll_queue_url(),
            self.h.stack.resources.arns["PollQueue"].clone(),
            EventSourceOptions {
                wait: Duration::from_secs(1),
                visibility: Some(Duration::from_secs(1)),
                copies,
                shuffle,
                ..EventSourceOptions::default()
            },
        )
    }

    fn poller<P: EventPublisher>(
        &self,
        publisher: P,
    ) -> Poller<
        DynamoStore,
        foxrelay_shared::queue::SqsPollQueue,
        foxrelay_shared::foxreload::FoxReloadClient,
        P,
        foxrelay_shared::clock::SystemClock,
    > {
        Poller {
            store: self.store.clone(),
            queue: foxrelay_shared::queue::SqsPollQueue::new(
                self.h.stack.clients.sqs.clone(),
                self.h.stack.resources.poll_queue_url(),
            ),
            supplier: self.h.context.foxreload.clone(),
            publisher,
            clock: foxrelay_shared::clock::SystemClock,
            options: poll_options(),
        }
    }

    fn sns(&self) -> SnsPublisher {
        SnsPublisher::new(
            self.h.stack.clients.sns.clone(),
            self.h.stack.resources.order_events_topic_arn(),
            self.h.stack.resources.ops_alerts_topic_arn(),
        )
    }

    async fn place(&self, product: &str, quantity: u32) -> String {
        let body = json!({"items": [{"productId": product, "quantity": quantity}], "customerReference": format!("ref-{product}")});
        let response = self
            .create
            .handle(http_event(
                "POST",
                "/orders",
                &[("content-type", "application/json")],
                Some(&body.to_string()),
            ))
            .await
            .unwrap();
        assert_eq!(response.status_code, 202, "{:?}", response.body);
        let Some(Body::Text(text)) = &response.body else {
            panic!("no body");
        };
        serde_json::from_str::<Value>(text).unwrap()["orderId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn order(&self, id: &str) -> OrderRecord {
        self.store.order(id).await.unwrap().expect("order stored")
    }

    /// Runs the event source into `handler` until every order in `ids` is
    /// notified, checking on each event's arrival that its codes were stored
    /// before it; returns the events by order id.
    async fn run_until_notified<S, Q, F, P, C>(
        &self,
        handler: &poll_order::Handler<S, Q, F, P, C>,
        source: &SqsEventSource,
        ids: &[String],
    ) -> BTreeMap<String, Vec<OrderEvent>>
    where
        S: OrderStore + 'static,
        Q: foxrelay_shared::queue::PollQueue + 'static,
        F: foxrelay_shared::foxreload::Supplier + 'static,
        P: EventPublisher + 'static,
        C: foxrelay_shared::clock::Clock + 'static,
    {
        let mut events: BTreeMap<String, Vec<OrderEvent>> = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            source
                .run_once(|event| async { handler.handle(event).await.unwrap() })
                .await
                .unwrap();
            for raw in drain_json(&self.h.stack, &self.events).await {
                let event: OrderEvent = serde_json::from_value(raw).unwrap();
                let stored = self.store.codes(&event.order_id).await.unwrap();
                assert_eq!(stored, event.codes, "codes stored before the event arrived");
                events
                    .entry(event.order_id.clone())
                    .or_default()
                    .push(event);
            }
            let mut done = true;
            for id in ids {
                done &= self.order(id).await.notified_at.is_some() && events.contains_key(id);
            }
            if done {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "orders not finished in time"
            );
        }
    }

    /// What the simulator delivered for our order, by the documented rule.
    async fn delivered_by_simulator(&self, id: &str) -> Vec<String> {
        let order = self.order(id).await;
        let sim_order = self
            .h
            .sim
            .order(order.supplier_order_id.as_deref().unwrap())
            .unwrap();
        sim_order["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|item| item["externalData"].as_array().cloned().unwrap_or_default())
            .map(|entry| match entry.get("code").and_then(Value::as_str) {
                Some(code) if !code.is_empty() => code.to_owned(),
                _ => entry.to_string(),
            })
            .collect()
    }
}

fn codes_of(event: &OrderEvent) -> Vec<String> {
    event.codes.iter().map(|c| c.code.clone()).collect()
}

#[tokio::test]
async fn orders_end_with_exactly_the_delivered_codes_stored_then_published() {
    let w = world(quick_timing()).await;
    let handler = poll_order::Handler::from_poller(w.poller(w.sns()));
    let mut ids = BTreeMap::new();
    for product in [
        PRODUCT_FAST,
        PRODUCT_ACTIVATION,
        PRODUCT_PARTIAL,
        PRODUCT_MANY,
        PRODUCT_FAIL,
        PRODUCT_POOR,
    ] {
        ids.insert(product, w.place(product, 2).await);
    }
    let all: Vec<String> = ids.values().cloned().collect();
    let events = w
        .run_until_notified(&handler, &w.source(1, false), &all)
        .await;
    for id in &all {
        assert_eq!(events[id].len(), 1, "one event per order");
    }

    let fast = &events[&ids[PRODUCT_FAST]][0];
    assert_eq!(
        (fast.kind.as_str(), fast.status.as_str()),
        ("order.completed", "completed")
    );
    assert_eq!(
        codes_of(fast),
        w.delivered_by_simulator(&ids[PRODUCT_FAST]).await
    );
    assert_eq!(fast.codes.len(), 2);
    assert_eq!(fast.customer_reference.as_deref(), Some("ref-product_fast"));
    let read = w
        .create
        .handle(http_event(
            "GET",
            &format!("/orders/{}", ids[PRODUCT_FAST]),
            &[],
            None,
        ))
        .await
        .unwrap();
    let Some(Body::Text(text)) = &read.body else {
        panic!("no body")
    };
    let shown: Value = serde_json::from_str(text).unwrap();
    assert_eq!(shown["status"], "completed");
    assert_eq!(
        shown["codes"],
        serde_json::to_value(&fast.codes).unwrap(),
        "GET shows the codes"
    );

    let activation = &events[&ids[PRODUCT_ACTIVATION]][0];
    assert_eq!(
        codes_of(activation),
        w.delivered_by_simulator(&ids[PRODUCT_ACTIVATION]).await
    );
    assert!(
        activation.codes.iter().all(|c| {
            let entry: Value = serde_json::from_str(&c.code).unwrap();
            entry.get("pin").is_some()
        }),
        "activation data kept whole"
    );

    let partial = &events[&ids[PRODUCT_PARTIAL]][0];
    assert_eq!(partial.status, "completed");
    assert_eq!(partial.codes.len(), 1);
    assert!(
        partial.items[0]
            .error
            .as_deref()
            .unwrap()
            .contains("not delivered")
    );

    let many = &events[&ids[PRODUCT_MANY]][0];
    assert_eq!(
        codes_of(many),
        w.delivered_by_simulator(&ids[PRODUCT_MANY]).await
    );
    assert_eq!(many.codes.len(), 2 * foxreload_sim::MANY_CODES_PER_UNIT);

    let failed = &events[&ids[PRODUCT_FAIL]][0];
    assert_eq!(failed.kind, "order.failed");
    assert!(failed.codes.is_empty() && failed.items[0].error.is_some());

    let cancelled = &events[&ids[PRODUCT_POOR]][0];
    assert_eq!(cancelled.kind, "order.cancelled");
    assert_eq!(
        cancelled.cancel_reason.as_deref(),
        Some("payment_expiration")
    );

    let alerts: Vec<OpsAlert> = drain_json(&w.h.stack, &w.alerts)
        .await
        .into_iter()
        .map(|a| serde_json::from_value(a).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0].kind.as_str(), alerts[0].order_id.as_str()),
        ("failed", ids[PRODUCT_FAIL].as_str())
    );
}

#[tokio::test]
async fn faulty_reads_and_odd_statuses_are_retried_on_the_schedule() {
    let w = world(quick_timing()).await;
    let handler = poll_order::Handler::from_poller(w.poller(w.sns()));
    let ids = vec![
        w.place(PRODUCT_5XX, 1).await,
        w.place(PRODUCT_429, 1).await,
        w.place(PRODUCT_GARBAGE, 1).await,
        w.place(PRODUCT_UNKNOWN_STATUS, 1).await,
    ];
    let events = w
        .run_until_notified(&handler, &w.source(1, false), &ids)
        .await;
    for id in &ids {
        assert_eq!(events[id][0].status, "completed", "{id}");
        assert_eq!(codes_of(&events[id][0]), w.delivered_by_simulator(id).await);
    }
    // Two throttled polls, each followed by a wait of at least Retry-After
    // (2 s) although the schedule said 1 s.
    let throttled = w.order(&ids[1]).await;
    assert_eq!(throttled.poll_count, 2);
    assert_eq!(throttled.last_error.as_ref().unwrap().kind, "rate_limited");
    let waited = throttled.next_poll_due_at.unwrap() - throttled.last_polled_at.unwrap();
    assert!(waited >= time::Duration::seconds(2), "{waited}");
    // The 5xx (3) and garbage (2) reads were counted on the way.
    assert_eq!(w.order(&ids[0]).await.poll_count, 3);
    assert_eq!(w.order(&ids[2]).await.poll_count, 2);
}

#[tokio::test]
async fn duplicate_deliveries_never_fork_a_chain() {
    for (copies, shuffle) in [(2, false), (3, true)] {
        let w = world(quick_timing()).await;
        let handler = poll_order::Handler::from_poller(w.poller(w.sns()));
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(w.place(PRODUCT_FAST, 1).await);
        }
        ids.push(w.place(PRODUCT_UNKNOWN_STATUS, 1).await);
        let events = w
            .run_until_notified(&handler, &w.source(copies, shuffle), &ids)
            .await;
        let gets = w.h.sim.counters().gets_by_order;
        for id in &ids {
            assert_eq!(events[id].len(), 1, "published once");
            let order = w.order(id).await;
            let supplier = order.supplier_order_id.as_deref().unwrap();
            // Each link that proceeded read once; the terminal read is the
            // last. Dropped duplicates read nothing.
            assert_eq!(gets[supplier], order.poll_count + 1, "copies {copies}");
        }
        // Late copies of every message are still dropped quietly.
        let late = w.source(copies, shuffle);
        let report = late
            .run_once(|event| async { handler.handle(event).await.unwrap() })
            .await
            .unwrap();
        assert_eq!(report.failed, 0);
        assert!(drain_json(&w.h.stack, &w.events).await.is_empty());
    }
}

/// Fails the first order-event publish, then publishes for real.
struct FailsFirstPublish {
    inner: SnsPublisher,
    attempts: Arc<AtomicUsize>,
}

impl EventPublisher for FailsFirstPublish {
    async fn publish_order_event(&self, event: &OrderEvent) -> Result<(), PublishError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(PublishError {
                what: "injected".into(),
                source: "injected failure after the commit".into(),
            });
        }
        self.inner.publish_order_event(event).await
    }

    async fn publish_alert(&self, alert: &OpsAlert) -> Result<(), PublishError> {
        self.inner.publish_alert(alert).await
    }
}

#[tokio::test]
async fn a_failure_between_commit_and_publish_is_repaired_by_redelivery_with_the_same_event() {
    let w = world(quick_timing()).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let handler = poll_order::Handler::from_poller(w.poller(FailsFirstPublish {
        inner: w.sns(),
        attempts: attempts.clone(),
    }));
    let id = w.place(PRODUCT_MANY, 1).await;
    let source = w.source(1, false);
    // Run until the order is stored as completed but not yet notified.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while w.order(&id).await.terminal_at.is_none() {
        source
            .run_once(|event| async { handler.handle(event).await.unwrap() })
            .await
            .unwrap();
        assert!(tokio::time::Instant::now() < deadline);
    }
    let committed = w.order(&id).await;
    assert!(committed.notified_at.is_none(), "the publish failed");
    let codes_before = w.store.codes(&id).await.unwrap();
    assert!(drain_json(&w.h.stack, &w.events).await.is_empty());

    let events = w
        .run_until_notified(&handler, &source, std::slice::from_ref(&id))
        .await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let event = &events[&id][0];
    assert_eq!(events[&id].len(), 1);
    assert_eq!(
        event.event_id,
        foxrelay_shared::domain::event::event_id(&id, committed.status)
    );
    assert_eq!(
        w.store.codes(&id).await.unwrap(),
        codes_before,
        "no code lost or rewritten"
    );
    assert_eq!(codes_of(event), w.delivered_by_simulator(&id).await);
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letter_queue_and_the_batch_goes_on() {
    let w = world(quick_timing()).await;
    let handler = poll_order::Handler::from_poller(w.poller(w.sns()));
    let mut ids = Vec::new();
    for _ in 0..9 {
        ids.push(w.place(PRODUCT_FAST, 1).await);
    }
    w.h.stack
        .clients
        .sqs
        .send_message()
        .queue_url(w.h.stack.resources.poll_queue_url())
        .message_body("this is not a poll message")
        .delay_seconds(1)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let source = w.source(1, false);
    let first = source
        .run_once(|event| async { handler.handle(event).await.unwrap() })
        .await
        .unwrap();
    assert_eq!(first.received, 10, "the nine and the poison in one batch");
    assert_eq!(first.failed, 1, "only the poison failed");

    w.run_until_notified(&handler, &source, &ids).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        source
            .run_once(|event| async { handler.handle(event).await.unwrap() })
            .await
            .unwrap();
        let dead = drain_json_text(&w, w.h.stack.resources.dead_letter_queue_url()).await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(tokio::time::Instant::now() < deadline, "never redriven");
    };
    assert_eq!(dead, vec!["this is not a poll message".to_owned()]);
}

async fn drain_json_text(w: &World, queue: &str) -> Vec<String> {
    let got =
        w.h.stack
            .clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
    got.messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_order_past_the_horizon_is_abandoned_published_and_alerted() {
    let w = world(quick_timing()).await;
    let mut poller = w.poller(w.sns());
    poller.options.schedule = Schedule {
        fast_interval: Duration::from_secs(1),
        stall_after: Duration::from_secs(2),
        horizon: Duration::from_secs(4),
        jitter: 0.0,
        ..Schedule::default()
    };
    let handler = poll_order::Handler::from_poller(poller);
    let id = w.place(foxreload_sim::PRODUCT_NEVER, 1).await;
    let events = w
        .run_until_notified(&handler, &w.source(1, false), std::slice::from_ref(&id))
        .await;
    let event = &events[&id][0];
    assert_eq!(
        (event.kind.as_str(), event.status.as_str()),
        ("order.abandoned", "abandoned")
    );
    let alerts = drain_json(&w.h.stack, &w.alerts).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["kind"], "abandoned");
    assert_eq!(alerts[0]["orderId"], id.as_str());
}

#[tokio::test]
async fn an_order_left_reconciling_is_settled_by_poll_order_without_buying_again() {
    let w = world(Timing {
        create_stall: Duration::from_secs(3),
        payment_window: Duration::from_secs(60),
        ..quick_timing()
    })
    .await;
    // create-order gives up within its budget and leaves the order reconciling.
    let mut event = http_event(
        "POST",
        "/orders",
        &[("content-type", "application/json")],
        Some(
            &json!({"items": [{"productId": foxreload_sim::PRODUCT_STALL_CREATE, "quantity": 1}]})
                .to_string(),
        ),
    );
    event.context.deadline = (std::time::SystemTime::now() + Duration::from_millis(4_500))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut options = CreateOptions {
        first_poll_delay: Duration::from_secs(1),
        ..CreateOptions::default()
    };
    options.reconcile.call_budget = Duration::from_millis(2_400);
    let create = create_order::Handler::with_options(w.h.context.clone(), options);
    let response = create.handle(event).await.unwrap();
    let Some(Body::Text(text)) = &response.body else {
        panic!("no body")
    };
    let answer: Value = serde_json::from_str(text).unwrap();
    assert_eq!(answer["status"], "reconciling", "{answer}");
    let id = answer["orderId"].as_str().unwrap().to_owned();

    let handler = poll_order::Handler::from_poller(w.poller(w.sns()));
    let events = w
        .run_until_notified(&handler, &w.source(1, false), std::slice::from_ref(&id))
        .await;
    assert_eq!(events[&id][0].status, "completed");
    assert_eq!(
        w.h.sim.counters().orders_created,
        1,
        "found, not bought again"
    );
    assert_eq!(
        codes_of(&events[&id][0]),
        w.delivered_by_simulator(&id).await
    );
}

/// Collects every log line of this test binary.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_delivered_code_appears_in_any_log_line() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,foxrelay_shared=trace,create_order=trace,poll_order=trace,foxreload_sim=trace",
        ))
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let w = world(quick_timing()).await;
    let handler = poll_order::Handler::from_poller(w.poller(w.sns()));
    let ids = vec![
        w.place(PRODUCT_FAST, 2).await,
        w.place(PRODUCT_ACTIVATION, 1).await,
        w.place(PRODUCT_PARTIAL, 2).await,
    ];
    let events = w
        .run_until_notified(&handler, &w.source(1, false), &ids)
        .await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() > 20, "logs were captured");
    assert!(text.contains("event published"));
    for event in events.values().flatten() {
        for code in &event.codes {
            let secret = if code.code.starts_with('{') {
                serde_json::from_str::<Value>(&code.code).unwrap()["pin"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } else {
                code.code.clone()
            };
            assert!(!text.contains(&secret), "a code reached the logs");
        }
    }
}
