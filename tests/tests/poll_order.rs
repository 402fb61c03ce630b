//! poll-order through moto and the simulator: orders placed by create-order
//! are polled to their end by the real handler, fed by an SQS event source as
//! Lambda's; the events reach a queue subscribed to the topic.

use aws_lambda_events::encodings::Body;
use create_order::create::CreateOptions;
use foxrelay_shared::domain::event::OrderEvent;
use foxrelay_shared::domain::schedule::Schedule;
use foxrelay_shared::events::{EventPublisher, OpsAlert, PublishError, SnsPublisher};
use foxrelay_shared::store::OrderReader;
use foxrelay_tests::world::{World, codes_of, quick_timing, world};
use foxrelay_tests::{call, drain_json, http_event, metric_totals};
use foxreload_sim::{
    PRODUCT_5XX, PRODUCT_429, PRODUCT_ACTIVATION, PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_GARBAGE,
    PRODUCT_MANY, PRODUCT_PARTIAL, PRODUCT_POOR, PRODUCT_UNKNOWN_STATUS, Timing,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test]
async fn with_event_codes_omitted_the_event_carries_their_count_and_the_api_shows_them() {
    let w = world(quick_timing()).await;
    let poller = poll_order::poll::Poller {
        options: poll_order::poll::PollOptions {
            event_codes: foxrelay_shared::settings::EventCodes::Omitted,
            ..foxrelay_tests::world::poll_options()
        },
        ..w.poller(w.sns())
    };
    let handler = poll_order::Handler::from_poller(poller, w.metrics.clone());
    let id = w.place(PRODUCT_FAST, 2).await;
    let events = w
        .run_until_notified(&handler, &w.source(1, false), std::slice::from_ref(&id))
        .await;
    let event = &events[&id][0];
    assert!(!event.codes_included);
    assert!(event.codes.is_empty());
    assert_eq!(event.code_count, 2);
    // What the subscriber reads the codes with.
    let read = call(
        &w.create,
        http_event("GET", &format!("/orders/{id}"), &[], None),
    )
    .await;
    assert_eq!(read.status_code, 200);
    let shown = foxrelay_tests::body_of(&read)["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(shown, w.delivered_by_simulator(&id).await);
}

#[tokio::test]
async fn orders_end_with_exactly_the_delivered_codes_stored_then_published() {
    let w = world(quick_timing()).await;
    let handler = w.poll_handler(w.sns());
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
    let read = call(
        &w.create,
        http_event("GET", &format!("/orders/{}", ids[PRODUCT_FAST]), &[], None),
    )
    .await;
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

    let alerts: Vec<OpsAlert> = drain_json(&w.h.stack.clients, &w.alerts)
        .await
        .into_iter()
        .map(|a| serde_json::from_value(a).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0].kind.as_str(), alerts[0].order_id.as_str()),
        ("failed", ids[PRODUCT_FAIL].as_str())
    );

    // The metrics count what the simulator and the events saw.
    let totals = metric_totals(&w.metrics.lines());
    let gets: u64 = w.h.sim.counters().gets_by_order.values().sum();
    assert_eq!(totals["Polls"], gets, "{totals:?}");
    assert_eq!(totals["OrdersCompleted"], 4, "{totals:?}");
    assert_eq!(totals["OrdersFailed"], 2, "{totals:?}");
    assert_eq!(totals["SupplierErrors"], 0, "{totals:?}");
    // Every order notified has its time to notify; every read its latency.
    assert_eq!(totals["TimeToNotify"], 6, "{totals:?}");
    assert_eq!(totals["SupplierLatency/get_order"], gets, "{totals:?}");
    assert_eq!(totals["ShortDeliveries"], 0, "{totals:?}");
}

#[tokio::test]
async fn faulty_reads_and_odd_statuses_are_retried_on_the_schedule() {
    let w = world(quick_timing()).await;
    let handler = w.poll_handler(w.sns());
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

    // Every failed read is counted once, under its kind.
    let totals = metric_totals(&w.metrics.lines());
    let gets = w.h.sim.counters().gets_by_order;
    for (id, kind) in ids
        .iter()
        .zip(["unavailable", "rate_limited", "invalid_response"])
    {
        let supplier = w.order(id).await.supplier_order_id.unwrap();
        let failed_reads = gets[&supplier] - 1;
        assert!(failed_reads > 0);
        assert_eq!(
            totals[&format!("SupplierErrors/{kind}")],
            failed_reads,
            "{totals:?}"
        );
    }
    assert_eq!(totals["Polls"], gets.values().sum::<u64>(), "{totals:?}");
    assert_eq!(totals["OrdersCompleted"], 4, "{totals:?}");
    assert_eq!(totals["OrdersFailed"], 0, "{totals:?}");
}

#[tokio::test]
async fn duplicate_deliveries_never_fork_a_chain() {
    for (copies, shuffle) in [(2, false), (3, true)] {
        let w = world(quick_timing()).await;
        let handler = w.poll_handler(w.sns());
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
        assert!(drain_json(&w.h.stack.clients, &w.events).await.is_empty());
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
    let handler = w.poll_handler(FailsFirstPublish {
        inner: w.sns(),
        attempts: attempts.clone(),
    });
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
    assert!(drain_json(&w.h.stack.clients, &w.events).await.is_empty());

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
    let handler = w.poll_handler(w.sns());
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

fn past_the_horizon_in_4_s() -> Schedule {
    Schedule {
        fast_interval: Duration::from_secs(1),
        stall_after: Duration::from_secs(2),
        horizon: Duration::from_secs(4),
        slow_cap: Duration::from_secs(1),
        jitter: 0.0,
        ..Schedule::default()
    }
}

#[tokio::test]
async fn an_unpaid_order_past_the_horizon_is_abandoned_published_and_alerted() {
    // Payment refused (balance), and its payment window far away: never
    // paid, never ending.
    let w = world(Timing {
        payment_window: Duration::from_secs(600),
        ..quick_timing()
    })
    .await;
    let mut poller = w.poller(w.sns());
    poller.options.schedule = past_the_horizon_in_4_s();
    let handler = poll_order::Handler::from_poller(poller, w.metrics.clone());
    let id = w.place(foxreload_sim::PRODUCT_POOR, 1).await;
    let events = w
        .run_until_notified(&handler, &w.source(1, false), std::slice::from_ref(&id))
        .await;
    let event = &events[&id][0];
    assert_eq!(
        (event.kind.as_str(), event.status.as_str()),
        ("order.abandoned", "abandoned")
    );
    let alerts = drain_json(&w.h.stack.clients, &w.alerts).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["kind"], "abandoned");
    assert_eq!(alerts[0]["orderId"], id.as_str());
}

#[tokio::test]
async fn a_paid_order_past_the_horizon_is_polled_on_and_alerted_never_abandoned() {
    let w = world(quick_timing()).await;
    let mut poller = w.poller(w.sns());
    poller.options.schedule = past_the_horizon_in_4_s();
    let handler = poll_order::Handler::from_poller(poller, w.metrics.clone());
    let id = w.place(foxreload_sim::PRODUCT_NEVER, 1).await;
    let source = w.source(1, false);
    let started = std::time::Instant::now();
    let mut polls_past_horizon = 0;
    while started.elapsed() < Duration::from_secs(12) {
        source
            .run_once(|event| async { handler.handle(event).await.unwrap() })
            .await
            .unwrap();
        let order = w.order(&id).await;
        assert!(!order.status.is_terminal(), "{:?}", order.status);
        if started.elapsed() > Duration::from_secs(6) {
            polls_past_horizon = order.poll_count;
        }
    }
    assert!(polls_past_horizon >= 6, "{polls_past_horizon} polls");
    assert!(drain_json(&w.h.stack.clients, &w.events).await.is_empty());
    let alerts = drain_json(&w.h.stack.clients, &w.alerts).await;
    let long: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "long_running")
        .collect();
    assert_eq!(long.len(), 1, "once a day: {alerts:?}");
    assert_eq!(long[0]["orderId"], id.as_str());
    assert!(alerts.iter().all(|a| a["kind"] != "abandoned"));
}

#[tokio::test]
async fn an_order_left_reconciling_is_settled_by_poll_order_without_buying_again() {
    let w = world(Timing {
        create_stall: Duration::from_secs(3),
        payment_window: Duration::from_secs(60),
        ..quick_timing()
    })
    .await;
    // create-order gives up within its budget and leaves the order
    // reconciling: its POST times out (2 s) and the window's close (2.8 s
    // later) and one more call (2.4 s) do not fit in 6.5 s, while its first
    // POST does, even on a loaded machine.
    let mut event = http_event(
        "POST",
        "/orders",
        &[("content-type", "application/json")],
        Some(
            &json!({"items": [{"productId": foxreload_sim::PRODUCT_STALL_CREATE, "quantity": 1}]})
                .to_string(),
        ),
    );
    event.context.deadline = (std::time::SystemTime::now() + Duration::from_millis(6_500))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut options = CreateOptions {
        first_poll_delay: Duration::from_secs(1),
        ..CreateOptions::default()
    };
    options.reconcile.call_budget = Duration::from_millis(2_400);
    let create = create_order::Handler::with_options(w.h.context.clone(), options);
    let response = call(&create, event).await;
    let Some(Body::Text(text)) = &response.body else {
        panic!("no body")
    };
    let answer: Value = serde_json::from_str(text).unwrap();
    assert_eq!(answer["status"], "reconciling", "{answer}");
    let id = answer["orderId"].as_str().unwrap().to_owned();

    let handler = w.poll_handler(w.sns());
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

/// An order create-order placed at FoxReload and left unpaid (payment
/// off), as FoxReload holds it for a minute: our order id.
async fn placed_unpaid(w: &World) -> String {
    let unpaid = create_order::Handler::with_options(
        w.h.context.clone(),
        CreateOptions {
            auto_pay: false,
            first_poll_delay: Duration::from_secs(1),
            ..CreateOptions::default()
        },
    );
    let response = call(
        &unpaid,
        http_event(
            "POST",
            "/orders",
            &[("content-type", "application/json")],
            Some(&json!({"items": [{"productId": PRODUCT_FAST, "quantity": 1}]}).to_string()),
        ),
    )
    .await;
    let Some(Body::Text(text)) = &response.body else {
        panic!("no body")
    };
    let answer: Value = serde_json::from_str(text).unwrap();
    assert_eq!(answer["status"], "active");
    answer["orderId"].as_str().unwrap().to_owned()
}

/// A world whose FoxReload holds unpaid orders for a minute, and an order
/// create-order left unpaid there.
async fn unpaid_order() -> (World, String) {
    let w = world(Timing {
        payment_window: Duration::from_secs(60),
        ..quick_timing()
    })
    .await;
    let id = placed_unpaid(&w).await;
    (w, id)
}

/// Runs `handler` until order `id` is notified: completed, and paid once.
async fn paid_once_by<S, Q, F, P, C>(
    w: &World,
    handler: &poll_order::Handler<S, Q, F, P, C>,
    id: &str,
) where
    S: poll_order::poll::PollOrderStore + 'static,
    Q: foxrelay_shared::queue::PollQueue + 'static,
    F: foxrelay_shared::foxreload::Supplier + 'static,
    P: EventPublisher + 'static,
    C: foxrelay_shared::clock::Clock + 'static,
{
    let events = w
        .run_until_notified(handler, &w.source(2, true), &[id.to_owned()])
        .await;
    assert_eq!(events[id][0].status, "completed");
    let order = w.order(id).await;
    let supplier = order.supplier_order_id.unwrap();
    assert_eq!(w.h.sim.counters().pays_by_order[&supplier], 1, "paid once");
    assert!(order.paid_at.is_some());
}

#[tokio::test]
async fn an_order_left_unpaid_by_create_order_is_paid_by_poll_order_once() {
    let (w, id) = unpaid_order().await;
    paid_once_by(&w, &w.poll_handler(w.sns()), &id).await;
}

#[tokio::test]
async fn a_stalled_order_left_unpaid_is_paid_under_a_budget_cut_below_a_stalled_orders_reach() {
    let (w, id) = unpaid_order().await;
    // The stack's budget at 2 a second (500 ms apart, five times a stalled
    // order's reach), and every order stalled: each poll reads the order,
    // then pays it in the slot after its read's, or a later one.
    let mut context = w.h.context.clone();
    context.settings.foxreload.max_rps = Some(2);
    let mut poller = w.poller(w.sns());
    poller.supplier = context.governed_foxreload(&w.metrics);
    poller.options.schedule.stall_after = Duration::ZERO;
    let handler = poll_order::Handler::from_poller(poller, w.metrics.clone());
    paid_once_by(&w, &handler, &id).await;
}
