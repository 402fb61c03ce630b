//! scan-stalled through moto: it reads only the pending-orders index, so a
//! table of 10,000 orders with 50 pending costs about 50 index items; it
//! alerts stalled and stuck orders once, revives an orphaned chain, and
//! hands a never-notified completion to poll-order, which publishes it
//! again with the same event id (scan-stalled holds no key to open a code).

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use foxrelay_shared::domain::OrderStatus;
use foxrelay_shared::domain::event::event_id;
use foxrelay_shared::store::{DynamoStore, OrderReader, PlacementStore};
use foxrelay_tests::{
    Harness, claimed_in, drain_json, harness, metric_totals, pending_order, subscribe_both,
    unnotified_completion,
};
use foxreload_sim::SimConfig;
use lambda_runtime::LambdaEvent;
use scan_stalled::sweep::SweepOptions;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

const TOTAL: usize = 10_000;
const PENDING: usize = 50;

fn minutes(m: i64) -> time::Duration {
    time::Duration::minutes(m)
}

/// 9,950 orders that ended long ago: outside the pending index.
async fn bulk_finished_orders(h: &Harness, count: usize) {
    let db = &h.stack.clients.dynamodb;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let requests: Vec<WriteRequest> = (0..count)
        .map(|i| {
            let item = HashMap::from([
                ("pk".to_owned(), s(&format!("ORDER#done-{i:05}"))),
                ("sk".to_owned(), s("ORDER")),
                ("orderId".to_owned(), s(&format!("done-{i:05}"))),
                ("status".to_owned(), s("completed")),
            ]);
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in requests.chunks(25) {
        db.batch_write_item()
            .request_items(h.stack.resources.table_name(), chunk.to_vec())
            .send()
            .await
            .unwrap();
    }
}

/// A stack, its store, and a queue subscribed to the ops-alerts topic.
async fn sweep_world() -> (Harness, DynamoStore, String) {
    let h = harness(SimConfig::default(), Duration::from_secs(2)).await;
    let store = h.stack.resources.store(&h.stack.clients);
    let (_, alerts) = subscribe_both(&h.stack.clients, &h.stack.resources, &h.stack.prefix).await;
    (h, store, alerts)
}

fn scheduled_event()
-> LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>> {
    foxrelay_local::lambda::event(Default::default(), Duration::from_secs(900))
}

#[tokio::test]
async fn one_sweep_reads_only_the_pending_orders_and_repairs_what_broke() {
    let h = harness(SimConfig::default(), Duration::from_secs(2)).await;
    // Codes sealed, as poll-order stores them.
    let store = h.context.store();
    let (events, alerts) =
        subscribe_both(&h.stack.clients, &h.stack.resources, &h.stack.prefix).await;
    let now = OffsetDateTime::now_utc();

    // 45 healthy pending orders: young, their next poll due later.
    for i in 0..45 {
        let id = format!("healthy-{i:02}");
        pending_order(&store, &id, now, "processing").await;
        store
            .schedule_poll(&id, 1, now + minutes(10), now)
            .await
            .unwrap();
    }
    // An orphaned chain: claimed, but its first poll was never recorded.
    pending_order(&store, "orphan", now - minutes(5), "processing").await;
    // A completion stored five minutes ago and never published.
    unnotified_completion(&store, "unnotified", now - minutes(6), "FOX-SWEEP-0001").await;
    // Two orders polling for twenty minutes: stalled.
    for id in ["stalled-1", "stalled-2"] {
        pending_order(&store, id, now - minutes(20), "processing").await;
        store
            .schedule_poll(id, 1, now + minutes(1), now)
            .await
            .unwrap();
    }
    // A create whose invocation died: no key, five minutes old.
    pending_order(&store, "stuck", now - minutes(5), "creating").await;

    bulk_finished_orders(&h, TOTAL - PENDING).await;

    let handler = scan_stalled::Handler::with_options(h.context.clone(), SweepOptions::default());
    let first = handler.handle(scheduled_event()).await.unwrap();
    assert_eq!(
        first.index_items_read, PENDING as u64,
        "only the pending index is read"
    );
    assert!(first.complete);
    assert_eq!(first.stalled_seen, 2);
    assert_eq!(first.stalled_alerted, 2);
    assert_eq!(first.stuck_alerted, 0);
    assert_eq!(first.creates_handed_over, 1);
    assert_eq!(first.chains_revived, 1);
    assert_eq!(first.events_republished, 1);
    assert_eq!(first.errors, 0);

    let mut revived = drain_json(&h.stack.clients, h.stack.resources.poll_queue_url()).await;
    revived.sort_by_key(|m| m["orderId"].as_str().unwrap().to_owned());
    let unnotified = store.order("unnotified").await.unwrap().unwrap();
    assert_eq!(
        revived,
        vec![
            serde_json::json!({"orderId": "orphan", "seq": 1, "kind": "poll"}),
            serde_json::json!({"orderId": "stuck", "seq": 1, "kind": "reconcile"}),
            serde_json::json!({"orderId": "unnotified", "seq": unnotified.poll_seq, "kind": "poll"}),
        ]
    );
    assert!(
        drain_json(&h.stack.clients, &events).await.is_empty(),
        "scan-stalled publishes no order event"
    );
    // poll-order, given the message, publishes the stored end.
    let poll = poll_order::Handler::new(h.context.clone());
    let mut message = aws_lambda_events::sqs::SqsMessage::default();
    message.message_id = Some("unnotified-1".into());
    message.body = Some(revived[2].to_string());
    let mut batch = aws_lambda_events::sqs::SqsEvent::default();
    batch.records = vec![message];
    let answer = poll
        .handle(foxrelay_local::lambda::event(
            batch,
            Duration::from_secs(60),
        ))
        .await
        .unwrap();
    assert!(answer.batch_item_failures.is_empty());
    let published = drain_json(&h.stack.clients, &events).await;
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0]["eventId"],
        event_id("unnotified", OrderStatus::Completed).as_str()
    );
    assert_eq!(published[0]["codes"][0]["code"], "FOX-SWEEP-0001");
    let mut alerted: Vec<(String, String)> = drain_json(&h.stack.clients, &alerts)
        .await
        .into_iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["orderId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    alerted.sort();
    assert_eq!(
        alerted,
        vec![
            ("stalled".to_owned(), "stalled-1".to_owned()),
            ("stalled".to_owned(), "stalled-2".to_owned()),
        ]
    );
    // Handed to poll-order's reconciliation, never bought blindly.
    let stuck = store.order("stuck").await.unwrap().unwrap();
    assert_eq!(stuck.status, OrderStatus::Reconciling);
    assert_eq!(stuck.poll_seq, 1);
    assert_eq!(h.sim.counters().orders_created, 0, "nothing bought");

    // The next run: the published order left the index; nothing is alerted
    // again within the re-alert interval; the revived chain is not overdue.
    let second = handler.handle(scheduled_event()).await.unwrap();
    assert_eq!(second.index_items_read, PENDING as u64 - 1);
    assert_eq!(
        (
            second.stalled_alerted,
            second.stuck_alerted,
            second.chains_revived,
            second.events_republished
        ),
        (0, 0, 0, 0)
    );
    assert!(drain_json(&h.stack.clients, &alerts).await.is_empty());
    assert_eq!(second.stalled_seen, 2, "still stalled, though not alerted");

    // Each run wrote its figures as one EMF line; the stalled-orders alarm
    // sees the two stalled orders on both runs.
    let lines = handler.metrics().lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let runs: Vec<_> = lines
        .iter()
        .map(|l| metric_totals(std::slice::from_ref(l)))
        .collect();
    let figures = |run: &std::collections::BTreeMap<String, u64>| {
        (
            run["StalledOrders"],
            run["RevivedChains"],
            run["RepublishedEvents"],
        )
    };
    assert_eq!(figures(&runs[0]), (2, 1, 1));
    assert_eq!(figures(&runs[1]), (2, 0, 0));
}

#[tokio::test]
async fn a_bounded_sweep_resumes_where_the_last_one_stopped() {
    let h = harness(SimConfig::default(), Duration::from_secs(2)).await;
    let store = h.stack.resources.store(&h.stack.clients);
    let now = OffsetDateTime::now_utc();
    for i in 0..25 {
        let id = format!("order-{i:02}");
        pending_order(&store, &id, now, "processing").await;
        store
            .schedule_poll(&id, 1, now + minutes(10), now)
            .await
            .unwrap();
    }
    let handler = scan_stalled::Handler::with_options(
        h.context.clone(),
        SweepOptions {
            page_size: 5,
            max_items: 10,
            ..SweepOptions::default()
        },
    );
    let mut reads = Vec::new();
    loop {
        let report = handler.handle(scheduled_event()).await.unwrap();
        reads.push(report.index_items_read);
        if report.complete {
            break;
        }
        assert!(reads.len() < 10, "{reads:?}");
    }
    assert_eq!(reads.iter().sum::<u64>(), 25, "{reads:?}");
    assert_eq!(reads[..2], [10, 10]);
    // A new sweep starts from the beginning again.
    let again = handler.handle(scheduled_event()).await.unwrap();
    assert_eq!(again.index_items_read, 10);
}

/// Finding 7 of issue 11: an index item that does not read as an order is
/// skipped, counted and alerted once; the sweep goes on past it to the end.
#[tokio::test]
async fn an_unreadable_pending_item_is_skipped_alerted_once_and_the_sweep_goes_on() {
    let (h, store, alerts) = sweep_world().await;
    let now = OffsetDateTime::now_utc();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    // First in the index: created earliest.
    h.stack
        .clients
        .dynamodb
        .put_item()
        .table_name(h.stack.resources.table_name())
        .set_item(Some(HashMap::from([
            ("pk".to_owned(), s("ORDER#garbled")),
            ("sk".to_owned(), s("ORDER")),
            ("status".to_owned(), s("shipped")),
            ("pendingPk".to_owned(), s("PENDING")),
            ("pendingSk".to_owned(), s("2000-01-01T00:00:00Z#garbled")),
        ])))
        .send()
        .await
        .unwrap();
    pending_order(&store, "stalled", now - minutes(20), "processing").await;
    store
        .schedule_poll("stalled", 1, now + minutes(1), now)
        .await
        .unwrap();
    let handler = scan_stalled::Handler::with_options(
        h.context.clone(),
        SweepOptions {
            page_size: 1,
            ..SweepOptions::default()
        },
    );
    let first = handler.handle(scheduled_event()).await.unwrap();
    assert!(first.complete, "{first:?}");
    assert_eq!(
        (first.unreadable, first.stalled_alerted, first.errors),
        (1, 1, 0)
    );
    let second = handler.handle(scheduled_event()).await.unwrap();
    assert_eq!(second.unreadable, 1, "still there, still skipped");
    let kinds: Vec<String> = drain_json(&h.stack.clients, &alerts)
        .await
        .into_iter()
        .map(|a| {
            format!(
                "{} {}",
                a["kind"].as_str().unwrap(),
                a["orderId"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "unreadable_item garbled")
            .count(),
        1,
        "{kinds:?}"
    );
}

/// Finding 10 of issue 11: an order whose next poll is not recorded yet
/// (create-order is paying it) is not revived until it has stood still for
/// the grace.
#[tokio::test]
async fn an_order_still_being_placed_is_not_revived_before_the_grace() {
    let h = harness(SimConfig::default(), Duration::from_secs(2)).await;
    let store = h.stack.resources.store(&h.stack.clients);
    let now = OffsetDateTime::now_utc();
    // Placed five minutes ago, claimed just now, no poll recorded yet.
    pending_order(&store, "paying", now - minutes(5), "creating").await;
    store
        .claim_supplier_order("paying", "sup-paying", &claimed_in("active"), now)
        .await
        .unwrap();
    let handler = scan_stalled::Handler::with_options(h.context.clone(), SweepOptions::default());
    let report = handler.handle(scheduled_event()).await.unwrap();
    assert_eq!(report.chains_revived, 0);
    assert!(
        drain_json(&h.stack.clients, h.stack.resources.poll_queue_url())
            .await
            .is_empty()
    );
}

/// Finding 8 of issue 11: a chain revived again and again with no poll in
/// between is alerted `chain_stuck` once and then revived only at the slow
/// pace.
#[tokio::test]
async fn a_chain_revived_without_progress_is_alerted_and_slowed_not_looped() {
    let (h, store, alerts) = sweep_world().await;
    let now = OffsetDateTime::now_utc();
    pending_order(&store, "poison", now - minutes(5), "processing").await;
    let handler = scan_stalled::Handler::with_options(
        h.context.clone(),
        SweepOptions {
            revive_grace: Duration::ZERO,
            stuck_revival_delay: Duration::from_secs(900),
            ..SweepOptions::default()
        },
    );
    let mut revived = Vec::new();
    for _ in 0..5 {
        // Each revived message fails (nothing polls in between).
        tokio::time::sleep(Duration::from_millis(20)).await;
        revived.push(
            handler
                .handle(scheduled_event())
                .await
                .unwrap()
                .chains_revived,
        );
    }
    assert_eq!(revived, vec![1, 1, 1, 1, 0], "the fifth finds it due later");
    let order = store.order("poison").await.unwrap().unwrap();
    assert_eq!(order.revivals, 4);
    let due = order.next_poll_due_at.unwrap();
    assert!(due > OffsetDateTime::now_utc() + minutes(14), "{due}");
    let stuck: Vec<_> = drain_json(&h.stack.clients, &alerts)
        .await
        .into_iter()
        .filter(|a| a["kind"] == "chain_stuck")
        .collect();
    assert_eq!(stuck.len(), 1, "{stuck:?}");
}
