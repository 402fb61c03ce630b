//! The fast tier of scan-stalled: what the sweep repairs and alerts, in
//! process, over the in-memory adapters on a paused clock. The same
//! behaviours run against moto in the `tests` crate.

use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::event::{CodeKind, DeliveredCodeRecord};
use foxrelay_shared::domain::{OrderStatus, PollKind};
use foxrelay_shared::store::{
    IdempotencyClaim, IdempotencyStore, OrderReader, OrderRecord, PlacementStore, PollChain,
    Terminal,
};
use foxrelay_shared::testing::seed::{self, Seeded};
use foxrelay_shared::testing::{
    MemoryPublisher, MemoryQueue, MemoryStore, ScriptedSupplier, TestClock,
};
use scan_stalled::sweep::{SweepOptions, Sweeper};
use std::time::Duration;
use time::macros::datetime;

type TestSweeper = Sweeper<MemoryStore, MemoryQueue, MemoryPublisher, TestClock>;

/// The sweep, and the FoxReload its orders were placed at.
fn sweeper() -> (TestSweeper, ScriptedSupplier<TestClock>) {
    let clock = TestClock::starting_at(datetime!(2026-11-30 12:00 UTC));
    let sweeper = Sweeper {
        store: MemoryStore::new(),
        queue: MemoryQueue::new(),
        publisher: MemoryPublisher::new(),
        clock,
        options: SweepOptions::default(),
    };
    (sweeper, ScriptedSupplier::new(clock))
}

/// Order `id`, placed and paid now; its first poll message (due in 5 s) is
/// lost, as a crashed worker would lose it.
async fn placed_and_lost(
    s: &TestSweeper,
    supplier: &ScriptedSupplier<TestClock>,
    id: &str,
) -> OrderRecord {
    let seeded = seed::place(
        &s.store,
        supplier,
        &s.queue,
        &s.clock,
        id,
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(seeded, Seeded::Placed(_)), "{seeded:?}");
    s.queue.take();
    seeded.order().clone()
}

async fn stored(s: &TestSweeper, id: &str) -> OrderRecord {
    s.store.order(id).await.unwrap().expect("stored")
}

async fn advance(seconds: u64) {
    tokio::time::advance(Duration::from_secs(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_chain_is_revived_once_past_the_grace() {
    let (s, fx) = sweeper();
    placed_and_lost(&s, &fx, "d1").await;
    // Due in 5 s; not overdue until the grace has passed too.
    advance(60).await;
    assert_eq!(s.run().await.unwrap().chains_revived, 0);
    advance(120).await;
    let report = s.run().await.unwrap();
    assert_eq!(report.chains_revived, 1);
    assert!(report.complete);
    let sent = s.queue.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.seq, 2);
    assert_eq!(sent[0].message.kind, PollKind::Poll);
    assert_eq!(sent[0].delay, Duration::ZERO);
    assert_eq!(stored(&s, "d1").await.poll_seq, 2);
    // Revived: due now, not overdue again at once.
    assert_eq!(s.run().await.unwrap().chains_revived, 0);
    assert!(s.queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_order_still_being_paid_is_not_revived_before_the_grace() {
    let (s, _) = sweeper();
    // Claimed, no first poll recorded yet: create-order is paying it.
    let now = s.clock.now();
    s.store.begin(&seed::intent("d2", now), None).await.unwrap();
    s.store
        .claim_supplier_order(
            "d2",
            "fx-paying",
            &foxrelay_shared::store::SupplierState::claimed(
                &foxrelay_shared::foxreload::SupplierStatus::Active,
            ),
            now,
        )
        .await
        .unwrap();
    advance(60).await;
    assert_eq!(s.run().await.unwrap().chains_revived, 0);
    // Left like that past the grace (create-order died): revived.
    advance(120).await;
    assert_eq!(s.run().await.unwrap().chains_revived, 1);
}

#[tokio::test(start_paused = true)]
async fn a_create_left_creating_is_handed_to_reconciliation_never_bought() {
    let (s, _) = sweeper();
    let order = seed::intent("c1", s.clock.now());
    let claim = IdempotencyClaim {
        key: order.idempotency_key.clone().unwrap(),
        fingerprint: "fp".into(),
        holder: "dead-invocation".into(),
        locked_until: s.clock.now() + Duration::from_secs(60),
        expires_at: s.clock.now() + Duration::from_secs(86_400),
    };
    s.store.begin(&order, Some(&claim)).await.unwrap();
    advance(60).await;
    assert_eq!(s.run().await.unwrap().creates_handed_over, 0);
    advance(61).await;
    let report = s.run().await.unwrap();
    assert_eq!(report.creates_handed_over, 1);
    let handed = stored(&s, "c1").await;
    assert_eq!(handed.status, OrderStatus::Reconciling);
    assert!(handed.handed_over);
    let sent = s.queue.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.kind, PollKind::Reconcile);
    assert_eq!(sent[0].message.seq, handed.poll_seq);
    // Once only.
    assert_eq!(s.run().await.unwrap().creates_handed_over, 0);
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_key_a_retry_holds_is_left_to_that_retry() {
    let (s, _) = sweeper();
    let order = seed::intent("c2", s.clock.now());
    let key = order.idempotency_key.clone().unwrap();
    let lock = |from: time::OffsetDateTime| from + Duration::from_secs(60);
    let claim = IdempotencyClaim {
        key: key.clone(),
        fingerprint: "fp".into(),
        holder: "first".into(),
        locked_until: lock(s.clock.now()),
        expires_at: s.clock.now() + Duration::from_secs(86_400),
    };
    s.store.begin(&order, Some(&claim)).await.unwrap();
    // The client retries at 110 s and takes the key over.
    advance(110).await;
    let held = s.store.idempotency(&key).await.unwrap().unwrap();
    let now = s.clock.now();
    assert!(
        s.store
            .take_over(&held, "retry", lock(now), now)
            .await
            .unwrap()
    );
    advance(15).await;
    assert_eq!(s.run().await.unwrap().creates_handed_over, 0);
    assert_eq!(stored(&s, "c2").await.status, OrderStatus::Creating);
    assert!(s.queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_end_whose_publish_failed_is_handed_to_poll_order_past_the_grace_never_published_here() {
    let (s, fx) = sweeper();
    let order = placed_and_lost(&s, &fx, "e1").await;
    let codes: Vec<DeliveredCodeRecord> = (0..2)
        .map(|index| DeliveredCodeRecord {
            index,
            item_index: 0,
            product_id: "product_fast".into(),
            code: format!("CODE-{index}"),
            kind: CodeKind::Code,
        })
        .collect();
    let terminal = Terminal {
        status: OrderStatus::Completed,
        supplier_status: Some("completed".into()),
        cancel_reason: None,
        items: Vec::new(),
        codes,
        at: s.clock.now(),
    };
    s.store.persist_terminal(&order, &terminal).await.unwrap();
    let seq = stored(&s, "e1").await.poll_seq;
    // Within the grace poll-order may still be publishing it.
    advance(30).await;
    assert_eq!(s.run().await.unwrap().events_republished, 0);
    assert!(s.queue.is_empty());
    advance(31).await;
    s.queue.fail(1);
    let failed = s.run().await.unwrap();
    assert_eq!(failed.errors, 1);
    assert_eq!(failed.events_republished, 0);
    let report = s.run().await.unwrap();
    assert_eq!(report.events_republished, 1);
    let sent = s.queue.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].message.order_id.as_str(),
            sent[0].message.seq,
            sent[0].message.kind,
            sent[0].delay
        ),
        ("e1", seq, PollKind::Poll, Duration::ZERO)
    );
    // scan-stalled builds no event (it may not open a code) and leaves the
    // notified mark to poll-order, which publishes.
    assert!(s.publisher.events().is_empty());
    assert_eq!(stored(&s, "e1").await.notified_at, None);
    assert!(s.store.is_pending("e1"));
    // Still un-notified at the next run: handed over again.
    assert_eq!(s.run().await.unwrap().events_republished, 1);
    s.queue.take();

    // Still not notified past the stall threshold: poll-order cannot
    // publish it. Alerted, and handed over once per re-alert interval, not
    // every run.
    advance(600).await;
    let stuck = s.run().await.unwrap();
    assert_eq!((stuck.events_republished, stuck.stuck_alerted), (1, 1));
    assert_eq!(s.publisher.alert_kinds(), ["not_notified"]);
    for _ in 0..11 {
        advance(300).await;
        assert_eq!(s.run().await.unwrap().events_republished, 0);
    }
    // The re-alert interval (an hour) past the first alert.
    advance(301).await;
    assert_eq!(s.run().await.unwrap().events_republished, 1);
    assert_eq!(s.publisher.alert_kinds(), ["not_notified", "not_notified"]);
    assert_eq!(s.queue.take().len(), 2);
}

/// Its chain lives: the next poll is recorded, due in 30 s.
async fn keep_alive(s: &TestSweeper, seq: u64) {
    let now = s.clock.now();
    s.store
        .schedule_poll("s1", seq, now + Duration::from_secs(30), now)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stalled_order_is_alerted_once_per_interval() {
    let (s, fx) = sweeper();
    let order = placed_and_lost(&s, &fx, "s1").await;
    let mut seq = order.poll_seq;
    for _ in 0..11 {
        advance(60).await;
        seq += 1;
        keep_alive(&s, seq).await;
        s.run().await.unwrap();
    }
    assert_eq!(s.publisher.alert_kinds(), ["stalled"]);
    for _ in 0..60 {
        advance(60).await;
        seq += 1;
        keep_alive(&s, seq).await;
        s.run().await.unwrap();
    }
    assert_eq!(s.publisher.alert_kinds(), ["stalled", "stalled"]);
    assert!(s.queue.is_empty(), "a live chain is never revived");
}

#[tokio::test(start_paused = true)]
async fn a_chain_revived_without_progress_is_alerted_and_slowed_not_looped() {
    let (s, fx) = sweeper();
    placed_and_lost(&s, &fx, "k1").await;
    let mut delays = Vec::new();
    for _ in 0..5 {
        advance(200).await;
        s.run().await.unwrap();
        // The revived message fails every time: no poll is ever made.
        delays.extend(s.queue.take().into_iter().map(|sent| sent.delay));
        advance(1_000).await;
    }
    assert_eq!(delays.len(), 5, "{delays:?}");
    assert!(delays[..3].iter().all(|d| d.is_zero()), "{delays:?}");
    assert!(
        delays[3..].iter().all(|d| *d == Duration::from_secs(900)),
        "{delays:?}"
    );
    let stuck = s
        .publisher
        .alert_kinds()
        .into_iter()
        .filter(|k| k == "chain_stuck")
        .count();
    assert_eq!(stuck, 1);
}

#[tokio::test(start_paused = true)]
async fn a_bounded_sweep_resumes_where_the_last_one_stopped() {
    let (mut s, fx) = sweeper();
    s.options.page_size = 2;
    s.options.max_items = 2;
    for i in 0..5 {
        placed_and_lost(&s, &fx, &format!("b{i}")).await;
        advance(1).await;
    }
    advance(300).await;
    let first = s.run().await.unwrap();
    assert_eq!(first.index_items_read, 2);
    assert!(!first.complete);
    let second = s.run().await.unwrap();
    assert_eq!(second.index_items_read, 2);
    let third = s.run().await.unwrap();
    assert!(third.complete);
    let revived: u64 = [first, second, third]
        .iter()
        .map(|r| r.chains_revived)
        .sum();
    assert_eq!(revived, 5, "every order swept once across the runs");
    let mut ids: Vec<String> = s
        .queue
        .take()
        .into_iter()
        .map(|sent| sent.message.order_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["b0", "b1", "b2", "b3", "b4"]);
}
