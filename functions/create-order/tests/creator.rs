//! The fast tier of create-order: placing an order, keys, refusals and
//! reconciliation within the request, in process, over the in-memory
//! adapters on a paused clock. The same behaviours run through the HTTP
//! handler against moto and the simulator in the `tests` crate.

use create_order::create::{Answer, CreateOptions, Creator};
use create_order::error::ApiError;
use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::idempotency::{IdempotencyKey, fingerprint};
use foxrelay_shared::domain::{NewOrder, OrderStatus, PollKind, Principal};
use foxrelay_shared::foxreload::{Operation, SupplierError, Uncertainty};
use foxrelay_shared::store::{IdempotencyClaim, IdempotencyStore, OrderReader, OrderRecord};
use foxrelay_shared::testing::seed::new_order;
use foxrelay_shared::testing::{
    CreateStep, MemoryPublisher, MemoryQueue, MemoryStore, ScriptedSupplier, TestClock, refusal,
};
use serde_json::Value;
use std::time::Duration;
use time::macros::datetime;
use tokio::time::Instant;

type TestCreator =
    Creator<MemoryStore, MemoryQueue, ScriptedSupplier<TestClock>, TestClock, MemoryPublisher>;

fn creator() -> TestCreator {
    let clock = TestClock::starting_at(datetime!(2026-11-30 12:00 UTC));
    Creator {
        store: MemoryStore::new(),
        queue: MemoryQueue::new(),
        supplier: ScriptedSupplier::new(clock),
        clock,
        publisher: MemoryPublisher::new(),
        options: CreateOptions::default(),
        plans: Default::default(),
    }
}

fn alice() -> Principal {
    Principal::iam("arn:aws:iam::111111111111:user/alice").unwrap()
}

fn bob() -> Principal {
    Principal::iam("arn:aws:iam::222222222222:user/bob").unwrap()
}

fn key(text: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse(text).unwrap())
}

/// Create-order's deadline: its 30 s Lambda timeout.
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

async fn create(
    c: &TestCreator,
    order: NewOrder,
    key: Option<IdempotencyKey>,
    who: Principal,
) -> Result<Answer, ApiError> {
    c.create(order, key, who, deadline()).await
}

fn body(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap()
}

/// Order `id` placed now by another invocation of alice's, which holds
/// `key` for the usual 60 s: what a retry with that key finds.
async fn held(c: &TestCreator, id: &str, order: &NewOrder, key: &IdempotencyKey) -> OrderRecord {
    let now = c.clock.now();
    let scoped = key.scoped(&alice());
    let intent = OrderRecord::intent(id.into(), order, Some(scoped.clone()), alice(), now);
    let claim = IdempotencyClaim {
        key: scoped,
        fingerprint: fingerprint(order),
        holder: format!("invocation-{id}"),
        locked_until: now + Duration::from_secs(60),
        expires_at: now + Duration::from_secs(86_400),
    };
    c.store.begin(&intent, Some(&claim)).await.unwrap();
    intent
}

async fn stored(c: &TestCreator, id: &str) -> OrderRecord {
    c.store.order(id).await.unwrap().expect("stored")
}

#[tokio::test(start_paused = true)]
async fn an_order_is_stored_bought_once_paid_and_its_first_poll_waits_for_its_delay() {
    let c = creator();
    let answer = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    assert!(answer.new_order && !answer.replayed);
    let json = body(&answer);
    assert_eq!(json["status"], "paid");
    let bought = c.supplier.bought();
    assert_eq!(bought.len(), 1);
    assert_eq!(json["supplierOrderId"], bought[0].id.as_str());
    let order = stored(&c, &answer.order_id).await;
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.principal, Some(alice()));
    assert_eq!(order.posts_known, 1);
    let sent = c.queue.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.kind, PollKind::Poll);
    assert_eq!(sent[0].message.seq, 1);
    // A product never seen before: a warm-up plan, its probe first.
    let warm = order.poll_plan.clone().expect("a warm-up plan");
    assert_eq!(
        warm.kind,
        foxrelay_shared::domain::learning::PlanKind::WarmUp
    );
    assert!(sent[0].delay <= Duration::from_secs(u64::from(warm.plan.polls[0])));
    assert!(sent[0].delay >= Duration::from_secs(1));
    assert_eq!(order.poll_seq, 1);
    // FoxReload's clock was measured from the answer.
    use foxrelay_shared::store::PlacementStore;
    assert!(c.store.clock_offset().await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_replay_with_the_same_key_gives_the_same_answer_and_buys_once() {
    let c = creator();
    let first = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    let again = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert!(again.replayed && !again.new_order);
    assert_eq!(again.status, first.status);
    assert_eq!(again.body, first.body);
    assert_eq!(c.supplier.bought().len(), 1);
    assert_eq!(c.queue.take().len(), 1, "one chain");
}

#[tokio::test(start_paused = true)]
async fn the_same_key_from_another_caller_is_another_order() {
    let c = creator();
    let a = create(&c, new_order("a"), key("shared"), alice())
        .await
        .unwrap();
    let b = create(&c, new_order("a"), key("shared"), bob())
        .await
        .unwrap();
    assert!(!b.replayed);
    assert_ne!(a.order_id, b.order_id);
    assert_eq!(c.supplier.bought().len(), 2);
    assert_eq!(stored(&c, &b.order_id).await.principal, Some(bob()));
}

#[tokio::test(start_paused = true)]
async fn the_same_key_with_another_request_is_a_422_and_buys_nothing() {
    let c = creator();
    create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    let mut other = new_order("a");
    other.lines[0].quantity = 3;
    let refused = create(&c, other, key("k1"), alice()).await.unwrap_err();
    assert_eq!(refused.status, 422);
    assert_eq!(refused.code, "idempotency_key_reused");
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_same_key_while_the_first_request_is_in_flight_is_a_409_with_retry_after() {
    let c = creator();
    let order = new_order("a");
    let k = key("k1").unwrap();
    held(&c, "in-flight", &order, &k).await;
    tokio::time::advance(Duration::from_secs(20)).await;
    let busy = create(&c, order, Some(k), alice()).await.unwrap_err();
    assert_eq!(busy.status, 409);
    assert_eq!(busy.code, "request_in_progress");
    assert_eq!(busy.header_value("retry-after"), Some("40"));
    assert!(c.supplier.bought().is_empty());
    assert!(c.queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_key_taken_over_from_a_holder_that_bought_nothing_is_a_503_never_a_202_and_is_freed() {
    let c = creator();
    let order = new_order("a");
    let k = key("k1").unwrap();
    held(&c, "gave-up", &order, &k).await;
    // Its holder, slow, sent no POST and settled the order `not_placed`;
    // its lock ran out before it could free the key.
    let problem = foxrelay_shared::store::SupplierProblem {
        kind: "not_sent".into(),
        status: None,
        code: None,
        detail: Some("the store was too slow to record a POST before sending it".into()),
    };
    use foxrelay_shared::store::PlacementStore;
    c.store
        .mark_not_placed("gave-up", 1, &problem, c.clock.now())
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    // The client's retry takes the key over: nothing was bought, so it is
    // told to come back, not that its order was accepted.
    let retried = create(&c, order.clone(), Some(k.clone()), alice())
        .await
        .unwrap_err();
    assert_eq!(retried.status, 503);
    assert_eq!(retried.code, "unavailable", "{}", retried.body());
    assert!(c.supplier.bought().is_empty());
    // Coming back with the same key, it is placed anew and bought once.
    let placed = create(&c, order, Some(k), alice()).await.unwrap();
    assert_eq!(placed.status, 202);
    assert_ne!(placed.order_id, "gave-up");
    assert_eq!(c.supplier.bought().len(), 1);
    assert_eq!(stored(&c, "gave-up").await.status, OrderStatus::NotPlaced);
}

/// Order `id`, held by an invocation that died 61 s ago, handed by
/// scan-stalled to poll-order's reconciliation.
async fn handed_over(c: &TestCreator, id: &str, order: &NewOrder, key: &IdempotencyKey) {
    let intent = held(c, id, order, key).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    use foxrelay_shared::store::SweepStore;
    let problem = foxrelay_shared::placement::undecided("create-order stopped");
    assert!(
        c.store
            .hand_over_create(&intent, 1, &problem, c.clock.now())
            .await
            .unwrap()
    );
}

/// Ends handed-over order `id` as poll-order's settle does when
/// reconciliation finds it nowhere: `not_placed`.
async fn found_nowhere(c: &TestCreator, id: &str) {
    use foxrelay_shared::store::{PollChain, Terminal};
    let handed = stored(c, id).await;
    assert!(handed.handed_over);
    let terminal = Terminal {
        status: OrderStatus::NotPlaced,
        supplier_status: None,
        cancel_reason: None,
        items: Vec::new(),
        codes: Vec::new(),
        at: c.clock.now(),
    };
    c.store.persist_terminal(&handed, &terminal).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_finds_its_order_moved_by_a_request_still_placing_it_is_not_answered_202() {
    let c = creator();
    let order = new_order("a");
    let k = key("k1").unwrap();
    held(&c, "raced", &order, &k).await;
    // The first request's hold on the key runs out while it still works
    // (a store slower than its time); a retry takes the key over, finds
    // nothing bought, and records a POST just as the first request records
    // its own: the retry's is refused, the order having moved under it.
    tokio::time::advance(Duration::from_secs(61)).await;
    use foxrelay_shared::store::PlacementStore;
    c.store.slow("record_post", Duration::from_secs(1));
    let first = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.store.slow("record_post", Duration::ZERO);
        assert!(
            c.store
                .record_post("raced", 1, c.clock.now())
                .await
                .unwrap()
        );
    };
    let (retried, ()) = tokio::join!(create(&c, order.clone(), Some(k.clone()), alice()), first);
    // Still `creating` (the first request may yet buy nothing): never a
    // 202, and no answer kept for the key.
    let retried = retried.unwrap_err();
    assert_eq!(retried.status, 409, "{}", retried.body());
    assert_eq!(retried.code, "request_in_progress");
    assert!(c.supplier.bought().is_empty());
    let record = c
        .store
        .idempotency(&k.scoped(&alice()))
        .await
        .unwrap()
        .unwrap();
    assert!(record.response.is_none(), "no answer kept for the key");
    // The first request ends it bought nothing (its POST never left): the
    // next retry, once the hold runs out, is told so, and the key is
    // freed; the one after places the order anew.
    let problem = foxrelay_shared::placement::undecided("never sent");
    c.store
        .mark_not_placed("raced", 2, &problem, c.clock.now())
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    let refused = create(&c, order.clone(), Some(k.clone()), alice())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 503, "{}", refused.body());
    let placed = create(&c, order, Some(k), alice()).await.unwrap();
    assert_eq!(placed.status, 202);
    assert_ne!(placed.order_id, "raced");
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_order_another_settled_meanwhile_answers_from_the_order_not_a_store_error() {
    let c = creator();
    let order = new_order("a");
    let k = key("k1").unwrap();
    // FoxReload refuses the POST; as this request settles the order, a
    // retry that took its key over has settled it first.
    c.supplier.on_create(CreateStep::Refuse(refusal(
        Operation::CreateOrder,
        422,
        "product_unavailable",
    )));
    use foxrelay_shared::store::PlacementStore;
    c.store.slow("mark_not_placed", Duration::from_secs(1));
    let other = async {
        while c.supplier.calls(Operation::CreateOrder) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.store.slow("mark_not_placed", Duration::ZERO);
        let id = c.store.orders()[0].order_id.clone();
        let problem = foxrelay_shared::placement::undecided("settled by a retry");
        c.store
            .mark_not_placed(&id, 1, &problem, c.clock.now())
            .await
            .unwrap();
    };
    let (answer, ()) = tokio::join!(create(&c, order.clone(), Some(k.clone()), alice()), other);
    // Answered from the order as it stands (bought nothing: the key is
    // freed), not as a failure of the store.
    let answer = answer.unwrap_err();
    assert_eq!(answer.status, 503);
    assert!(
        answer.body().contains("nothing was bought"),
        "{}",
        answer.body()
    );
    assert!(
        c.store
            .idempotency(&k.scoped(&alice()))
            .await
            .unwrap()
            .is_none(),
        "the key is freed"
    );
    c.supplier.on_create(CreateStep::Answer);
    let placed = create(&c, order, Some(k), alice()).await.unwrap();
    assert_eq!(placed.status, 202);
}

#[tokio::test(start_paused = true)]
async fn a_create_handed_to_reconciliation_while_a_retry_takes_its_key_over_is_not_answered_202() {
    let c = creator();
    let order = new_order("a");
    let k = key("k1").unwrap();
    let intent = held(&c, "raced", &order, &k).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    // The retry finds the order still `creating`; scan-stalled hands it
    // over while the retry's takeover of the key is on its way.
    c.store.slow("take_over", Duration::from_secs(1));
    let hand_over = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        use foxrelay_shared::store::SweepStore;
        let problem = foxrelay_shared::placement::undecided("create-order stopped");
        assert!(
            c.store
                .hand_over_create(&intent, 1, &problem, c.clock.now())
                .await
                .unwrap()
        );
    };
    let (retried, ()) = tokio::join!(
        create(&c, order.clone(), Some(k.clone()), alice()),
        hand_over
    );
    let retried = retried.unwrap_err();
    assert_eq!(retried.status, 409, "{}", retried.body());
    assert_eq!(retried.code, "request_in_progress");
    assert!(c.supplier.bought().is_empty());
    let record = c
        .store
        .idempotency(&k.scoped(&alice()))
        .await
        .unwrap()
        .unwrap();
    assert!(record.response.is_none(), "no answer kept for the key");
    c.store.slow("take_over", Duration::ZERO);
    // Found nowhere: once the retry's hold on the key runs out, the next
    // retry is told nothing was bought, and the one after places it anew.
    found_nowhere(&c, "raced").await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let refused = create(&c, order.clone(), Some(k.clone()), alice())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 503);
    let placed = create(&c, order, Some(k), alice()).await.unwrap();
    assert_ne!(placed.order_id, "raced");
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_of_a_create_handed_to_reconciliation_waits_and_is_never_a_202_for_an_order_found_nowhere()
 {
    let c = creator();
    let order = new_order("a");
    let k = key("k1").unwrap();
    handed_over(&c, "handed", &order, &k).await;
    // poll-order is finding out whether FoxReload took it: the retry is
    // told to come back, the key left as it was.
    let waiting = create(&c, order.clone(), Some(k.clone()), alice())
        .await
        .unwrap_err();
    assert_eq!(waiting.status, 409, "{}", waiting.body());
    assert_eq!(waiting.code, "request_in_progress");
    assert_eq!(waiting.header_value("retry-after"), Some("5"));
    assert!(c.supplier.bought().is_empty());
    assert!(c.queue.is_empty());
    // Found nowhere: poll-order ends it `not_placed`.
    found_nowhere(&c, "handed").await;
    // The next retry is told nothing was bought, and the key is freed...
    let refused = create(&c, order.clone(), Some(k.clone()), alice())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 503);
    assert_eq!(refused.code, "unavailable");
    // ...so the one after places the order anew, bought once.
    let placed = create(&c, order, Some(k), alice()).await.unwrap();
    assert_eq!(placed.status, 202);
    assert_ne!(placed.order_id, "handed");
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_of_a_create_handed_to_reconciliation_is_a_202_once_its_order_is_found() {
    let c = creator();
    let order = new_order("a");
    let k = key("k1").unwrap();
    handed_over(&c, "handed", &order, &k).await;
    // Reconciliation finds the order its dead holder POSTed, and claims it.
    use foxrelay_shared::foxreload::Supplier;
    use foxrelay_shared::store::{PlacementStore, SupplierState};
    let made = c
        .supplier
        .create_order(&stored(&c, "handed").await.supplier_request(false))
        .await
        .unwrap();
    c.store
        .claim_supplier_order(
            "handed",
            &made.id,
            &SupplierState::claimed(&made.status),
            c.clock.now(),
        )
        .await
        .unwrap();
    let answer = create(&c, order.clone(), Some(k.clone()), alice())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    assert_eq!(answer.order_id, "handed");
    assert_eq!(body(&answer)["supplierOrderId"], made.id.as_str());
    // Kept for replays; nothing more bought.
    let again = create(&c, order, Some(k), alice()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dead_holders_key_is_taken_over_and_its_order_reconciled_not_bought_again() {
    let c = creator();
    // One answered create measures FoxReload's clock first.
    create(&c, new_order("m"), key("measure"), alice())
        .await
        .unwrap();
    c.queue.take();
    let order = new_order("a");
    let k = key("k1").unwrap();
    let intent = held(&c, "orphan", &order, &k).await;
    // Its POST reached FoxReload; then the invocation died.
    use foxrelay_shared::foxreload::Supplier;
    let made = c
        .supplier
        .create_order(&intent.supplier_request(false))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    let answer = create(&c, order, Some(k), alice()).await.unwrap();
    assert_eq!(answer.order_id, "orphan");
    assert!(!answer.new_order, "a takeover, not a new order");
    let json = body(&answer);
    assert_eq!(json["supplierOrderId"], made.id.as_str());
    assert_eq!(
        c.supplier.bought().len(),
        2,
        "the measuring order and this one"
    );
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_the_request_caused_is_a_422_stored_for_replay_and_buys_nothing() {
    let c = creator();
    c.supplier.on_create(CreateStep::Refuse(refusal(
        Operation::CreateOrder,
        400,
        "PRODUCT_NOT_FOUND",
    )));
    let refused = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 422);
    assert_eq!(refused.code, "supplier_refused");
    assert_eq!(refused.extra["supplierCode"], "PRODUCT_NOT_FOUND");
    let order_id = refused.extra["orderId"].as_str().unwrap().to_owned();
    assert_eq!(stored(&c, &order_id).await.status, OrderStatus::NotPlaced);
    let replay = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.status, 422);
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 1);
    assert!(c.supplier.bought().is_empty());
    assert!(c.queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_changed_price_is_a_409_with_the_current_price_as_plain_money() {
    let c = creator();
    c.supplier
        .on_create(CreateStep::Refuse(SupplierError::Rejected {
            op: Operation::CreateOrder,
            status: 400,
            code: Some("OFFER_PRICE_NOT_MATCHED".into()),
            detail: Some("price changed".into()),
            price: Some("12.5".into()),
        }));
    let refused = create(&c, new_order("a"), None, alice()).await.unwrap_err();
    assert_eq!(refused.status, 409);
    assert_eq!(refused.code, "price_changed");
    assert_eq!(refused.extra["currentPrice"], "12.50");
    assert!(c.supplier.bought().is_empty());
}

fn rate_limited() -> CreateStep {
    CreateStep::Refuse(SupplierError::RateLimited {
        op: Operation::CreateOrder,
        retry_after: Some(Duration::from_secs(3)),
    })
}

#[tokio::test(start_paused = true)]
async fn one_rate_limit_is_waited_out_within_the_request() {
    let c = creator();
    c.supplier.on_create(rate_limited());
    let started = c.clock.now();
    let answer = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    assert!(
        c.clock.now() - started >= Duration::from_secs(3),
        "Retry-After honoured"
    );
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 2);
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn foxreload_rate_limiting_every_attempt_is_a_503_with_retry_after_that_frees_the_key() {
    let c = creator();
    for _ in 0..c.options.max_create_attempts {
        c.supplier.on_create(rate_limited());
    }
    let busy = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap_err();
    assert_eq!(busy.status, 503);
    assert_eq!(busy.code, "supplier_unavailable");
    assert_eq!(busy.header_value("retry-after"), Some("3"));
    assert!(c.supplier.bought().is_empty());
    // The key is free: the retry places the order.
    let retry = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(retry.status, 202);
    assert!(!retry.replayed);
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn foxreload_refusing_our_key_is_a_502_alerted_once_per_interval() {
    let c = creator();
    for _ in 0..2 {
        c.supplier
            .on_create(CreateStep::Refuse(SupplierError::Unauthorized {
                op: Operation::CreateOrder,
                status: 401,
                code: None,
                detail: None,
            }));
    }
    let first = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap_err();
    assert_eq!(first.status, 502);
    assert_eq!(first.code, "supplier_configuration");
    let second = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap_err();
    assert_eq!(second.status, 502, "the key was freed: tried again");
    assert_eq!(c.publisher.alert_kinds(), ["foxreload_key_refused"]);
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 2);
    assert!(c.supplier.bought().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_is_settled_within_the_request_and_bought_once() {
    let c = creator();
    c.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    let answer = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    let bought = c.supplier.bought();
    assert_eq!(bought.len(), 1, "never bought again");
    assert_eq!(body(&answer)["supplierOrderId"], bought[0].id.as_str());
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 1);
    let sent = c.queue.take();
    assert_eq!(sent[0].message.kind, PollKind::Poll);
}

#[tokio::test(start_paused = true)]
async fn a_create_that_never_reached_foxreload_is_bought_once() {
    let c = creator();
    c.supplier
        .on_create(CreateStep::Unsent(Uncertainty::ConnectionLost));
    let answer = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    assert_eq!(c.supplier.bought().len(), 1);
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 2);
    assert_eq!(stored(&c, &answer.order_id).await.posted_at.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_store_too_slow_to_record_the_post_in_time_is_a_503_that_buys_nothing_and_frees_the_key()
{
    let c = creator();
    // Every write of a send time takes longer than the send slack.
    c.store.slow("begin", Duration::from_secs(1));
    c.store.slow("record_post", Duration::from_secs(1));
    let slow = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap_err();
    assert_eq!(slow.status, 503);
    assert_eq!(slow.code, "unavailable");
    assert_eq!(slow.header_value("retry-after"), Some("1"));
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 0, "nothing sent");
    let id = slow.extra["orderId"].as_str().unwrap().to_owned();
    let order = stored(&c, &id).await;
    assert_eq!(order.status, OrderStatus::NotPlaced);
    assert_eq!(order.last_error.unwrap().kind, "not_sent");
    assert!(c.queue.take().is_empty(), "nothing to poll or reconcile");
    // The store is quick again: the key is free and the retry buys once.
    c.store.slow("begin", Duration::ZERO);
    c.store.slow("record_post", Duration::ZERO);
    let retry = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(retry.status, 202);
    assert_ne!(retry.order_id, id);
    assert_eq!(c.supplier.bought().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_create_with_no_time_left_for_a_post_is_a_503_that_buys_nothing() {
    let c = creator();
    // Less left of the request than one FoxReload call may take.
    let late = Instant::now() + c.options.reconcile.call_budget / 2;
    let answer = c
        .create(new_order("a"), key("k1"), alice(), late)
        .await
        .unwrap_err();
    assert_eq!((answer.status, answer.code), (503, "unavailable"));
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 0);
    let order = stored(&c, answer.extra["orderId"].as_str().unwrap()).await;
    assert_eq!(order.status, OrderStatus::NotPlaced);
    assert!(c.queue.take().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_post_not_sent_after_an_ambiguous_one_leaves_the_order_reconciling_not_unplaced() {
    let c = creator();
    // The first POST times out (FoxReload made nothing, which the list
    // shows); the next one cannot be recorded in time.
    c.supplier
        .on_create(CreateStep::Unsent(Uncertainty::TimedOut));
    c.store.slow("record_post", Duration::from_secs(1));
    let answer = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    assert_eq!(body(&answer)["status"], "reconciling");
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 1);
    let order = stored(&c, &answer.order_id).await;
    assert_eq!(order.status, OrderStatus::Reconciling);
    assert_eq!(c.queue.take()[0].message.kind, PollKind::Reconcile);
}

#[tokio::test(start_paused = true)]
async fn a_look_alike_made_while_ours_was_in_flight_leaves_the_order_reconciling() {
    let c = creator();
    create(&c, new_order("m"), None, alice()).await.unwrap();
    c.queue.take();
    let order = new_order("a");
    let request = order.supplier_request(false);
    c.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    c.supplier.place_foreign(&request, c.clock.now());
    let answer = create(&c, order, key("k1"), alice()).await.unwrap();
    assert_eq!(answer.status, 202);
    let json = body(&answer);
    assert_eq!(json["status"], "reconciling", "{json}");
    assert!(json["supplierOrderId"].is_null());
    let sent = c.queue.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.kind, PollKind::Reconcile);
    assert_eq!(c.supplier.bought().len(), 2, "never bought again");
}

#[tokio::test(start_paused = true)]
async fn a_refused_payment_is_stored_and_the_order_is_still_polled() {
    let c = creator();
    c.supplier.fail(
        Operation::PayOrder,
        refusal(Operation::PayOrder, 400, "BALANCE_NOT_ENOUGH"),
    );
    let answer = create(&c, new_order("a"), None, alice()).await.unwrap();
    assert_eq!(answer.status, 202);
    let json = body(&answer);
    assert_eq!(json["status"], "active");
    assert_eq!(json["paymentError"]["code"], "BALANCE_NOT_ENOUGH");
    let order = stored(&c, &answer.order_id).await;
    assert_eq!(
        order.payment_error.unwrap().code.as_deref(),
        Some("BALANCE_NOT_ENOUGH")
    );
    assert_eq!(c.queue.take().len(), 1, "polled on, to publish its end");
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_store_is_a_503_and_buys_nothing() {
    let c = creator();
    c.store.fail("begin", 1);
    let refused = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 503);
    assert!(c.supplier.bought().is_empty());
    assert!(c.store.orders().is_empty());
    let retry = create(&c, new_order("a"), key("k1"), alice())
        .await
        .unwrap();
    assert_eq!(retry.status, 202);
}

/// An order for `product` with a `player_id` note, as a client sends it.
fn for_player(product: &str, player: Option<&str>) -> NewOrder {
    let mut order = new_order("p");
    order.lines[0].product_id = product.to_owned();
    order.lines[0].note =
        player.map(|p| serde_json::Map::from_iter([("player_id".to_owned(), Value::from(p))]));
    order
}

/// One answered create: FoxReload's clock is measured, as in production.
async fn measure_clock(c: &TestCreator) {
    create(c, new_order("m"), key("measure"), alice())
        .await
        .unwrap();
    c.queue.take();
}

#[tokio::test(start_paused = true)]
async fn our_order_behind_many_newer_ones_is_found_further_back() {
    let c = creator();
    c.supplier.list_page_cap(10);
    measure_clock(&c).await;
    let others = for_player("product_other", None).supplier_request(false);
    for i in 0..30 {
        let at = c.clock.now() + time::Duration::milliseconds(30_000 + i);
        c.supplier.place_foreign(&others, at);
    }
    c.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    let answer = create(&c, new_order("deep"), key("deep"), alice())
        .await
        .unwrap();
    let json = body(&answer);
    let bought = c.supplier.bought();
    assert_eq!(bought.len(), 2, "the measuring order and ours, once");
    assert_eq!(json["supplierOrderId"], bought[1].id.as_str(), "{json}");
    assert!(
        c.supplier.calls(Operation::ListOrders) >= 4,
        "read back {} pages",
        c.supplier.calls(Operation::ListOrders)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_creation_time_is_undecided_never_bought_again() {
    let c = creator();
    c.supplier.unreadable_times();
    c.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    let answer = create(&c, new_order("odd"), key("odd"), alice())
        .await
        .unwrap();
    let json = body(&answer);
    assert_eq!(json["status"], "reconciling", "{json}");
    assert_eq!(json["lastError"]["kind"], "reconcile_ambiguous", "{json}");
    assert_eq!(c.supplier.bought().len(), 1, "never bought again");
    assert_eq!(c.supplier.calls(Operation::CreateOrder), 1);
}

#[tokio::test(start_paused = true)]
async fn orders_for_different_players_each_get_their_own() {
    let c = creator();
    measure_clock(&c).await;
    let other_player = c.supplier.place_foreign(
        &for_player("product_fast", Some("C")).supplier_request(false),
        c.clock.now() - time::Duration::milliseconds(500),
    );
    c.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut))
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    let (a, b) = tokio::join!(
        create(&c, for_player("product_fast", Some("A")), key("a"), alice()),
        create(&c, for_player("product_fast", Some("B")), key("b"), alice()),
    );
    for (player, answer) in [("A", a.unwrap()), ("B", b.unwrap())] {
        let json = body(&answer);
        let ours = json["supplierOrderId"]
            .as_str()
            .unwrap_or_else(|| panic!("unclaimed: {json}"));
        assert_ne!(ours, other_player);
        let at_foxreload = c.supplier.order(ours).unwrap();
        let note = at_foxreload.items[0].note.clone().unwrap();
        assert_eq!(note["player_id"], player);
    }
    assert_eq!(c.supplier.bought().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_after_an_ambiguous_attempt_leaves_the_order_to_reconciliation() {
    let c = creator();
    c.supplier
        .on_create(CreateStep::Unsent(Uncertainty::ServerError(503)))
        .on_create(CreateStep::Refuse(refusal(
            Operation::CreateOrder,
            400,
            "VALIDATION_ERROR",
        )));
    let answer = create(&c, new_order("r"), key("r"), alice()).await.unwrap();
    let json = body(&answer);
    assert_eq!(json["status"], "reconciling", "{json}");
    assert!(c.supplier.bought().is_empty());
    let sent = c.queue.take();
    assert_eq!(sent[0].message.kind, PollKind::Reconcile);
}

#[tokio::test(start_paused = true)]
async fn a_foxreload_clock_ninety_seconds_ahead_is_measured_and_followed() {
    let c = creator();
    c.supplier.clock_offset(time::Duration::seconds(90));
    measure_clock(&c).await;
    let earlier = c.supplier.place_foreign(
        &new_order("x").supplier_request(false),
        c.clock.now() - time::Duration::seconds(60),
    );
    c.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    let answer = create(&c, new_order("ahead"), key("ahead"), alice())
        .await
        .unwrap();
    let json = body(&answer);
    let ours = json["supplierOrderId"].as_str().expect("claimed");
    assert_ne!(ours, earlier);
    assert_eq!(c.supplier.bought().len(), 2, "bought once");
    use foxrelay_shared::store::PlacementStore;
    let measure = c.store.clock_offset().await.unwrap().expect("measured");
    let off = measure.offset - time::Duration::seconds(90);
    assert!(off.abs() < time::Duration::seconds(2), "{measure:?}");
}

/// `n` orders of `product` that each ended between 1.9 s and 2.1 s after
/// payment, in its summary.
async fn learned(c: &TestCreator, product: &str, n: u32) {
    use foxrelay_shared::domain::learning::Observation;
    use foxrelay_shared::domain::learning::summary::Decay;
    use foxrelay_shared::store::{SummaryReader, SummaryStore};
    for _ in 0..n {
        let summary = c.store.summary(product).await.unwrap();
        let seen = Observation {
            after: Duration::from_secs_f64(1.9),
            by: Duration::from_secs_f64(2.1),
        };
        let contribution = Decay::default().learn(&seen, &summary);
        c.store
            .add_observation(product, &contribution)
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_product_with_enough_history_gets_its_learned_plan_and_its_first_time() {
    let c = creator();
    let order = new_order("learned");
    let product = order.lines[0].product_id.clone();
    // Too few observations: the default's times, with a probe inside its
    // first gap.
    learned(&c, &product, 19).await;
    let first = create(&c, order.clone(), key("k-thin"), alice())
        .await
        .unwrap();
    let warm = stored(&c, &first.order_id).await.poll_plan.unwrap();
    assert_eq!(
        warm.kind,
        foxrelay_shared::domain::learning::PlanKind::WarmUp
    );
    assert!((1..10).contains(&warm.plan.polls[0]), "{warm:?}");
    // The default's times, all the order's own shift (up to 2 s) earlier
    // (a probe at 9 s shifted onto the 10 s poll is made once).
    let twenty = warm.plan.polls.iter().find(|t| (18..=20).contains(*t));
    let shift = 20 - *twenty.expect("the 20 s poll, shifted");
    for planned in [10, 20, 30] {
        assert!(warm.plan.polls.contains(&(planned - shift)), "{warm:?}");
    }
    let first_delay = c.queue.take()[0].delay;
    assert_eq!(
        first_delay,
        Duration::from_secs(u64::from(warm.plan.polls[0]))
    );
    // Enough, once the cached answer ran out.
    learned(&c, &product, 1).await;
    tokio::time::advance(c.plans.keep_for).await;
    let second = create(&c, order, key("k-enough"), alice()).await.unwrap();
    let planned = stored(&c, &second.order_id).await;
    let planned_times = planned.poll_plan.expect("a learned plan");
    assert_eq!(
        planned_times.kind,
        foxrelay_shared::domain::learning::PlanKind::Learned
    );
    let plan = planned_times.plan.polls;
    assert!(plan[0] <= 3, "{plan:?}");
    assert_eq!(planned.plan_step, Some(0));
    let sent = c.queue.take();
    assert!(
        sent[0].delay <= Duration::from_secs(u64::from(plan[0])),
        "{sent:?} {plan:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_summary_that_cannot_be_read_leaves_the_order_on_the_schedule() {
    let c = creator();
    let order = new_order("unread");
    learned(&c, &order.lines[0].product_id.clone(), 30).await;
    c.store.fail("summary", 1);
    let answer = create(&c, order, key("k-unread"), alice()).await.unwrap();
    assert_eq!(answer.status, 202);
    assert_eq!(stored(&c, &answer.order_id).await.poll_plan, None);
    assert_eq!(c.queue.take()[0].delay, Duration::from_secs(5));
}

/// Order `id`, held by a create-order invocation whose POST was sent (its
/// outcome known) and made its FoxReload order, then died before claiming
/// it: the order it made.
async fn sent_then_died(c: &TestCreator, id: &str, order: &NewOrder) -> String {
    use foxrelay_shared::foxreload::Supplier;
    use foxrelay_shared::store::PlacementStore;
    let record = held(c, id, order, &key(id).unwrap()).await;
    let made = c
        .supplier
        .create_order(&record.supplier_request(false))
        .await
        .unwrap();
    c.store.mark_posts_known(id, 1).await.unwrap();
    made.id
}

/// Y sent its POST and died (its order made just before X's window); X
/// recorded its POST 3 s later and died before sending it; another buyer
/// made a look-alike in both windows 2 s after X, and another order 1 s
/// later; a minute has passed. X's key, Y's order and the look-alike.
async fn look_alike_beside_an_owner_explained(
    c: &TestCreator,
    order: &NewOrder,
) -> (IdempotencyKey, String, String) {
    measure_clock(c).await;
    let made_by_y = sent_then_died(c, "y", order).await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let kx = key("kx").unwrap();
    held(c, "x", order, &kx).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    let look_alike = c
        .supplier
        .place_foreign(&order.supplier_request(false), c.clock.now());
    tokio::time::advance(Duration::from_secs(1)).await;
    c.supplier.place_foreign(
        &for_player("product_other", None).supplier_request(false),
        c.clock.now(),
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    (kx, made_by_y, look_alike)
}

#[tokio::test(start_paused = true)]
async fn an_order_of_ours_whose_own_order_is_outside_the_window_does_not_vouch_for_a_look_alike() {
    use foxrelay_shared::store::PlacementStore;
    let c = creator();
    let order = new_order("a");
    let (kx, made_by_y, look_alike) = look_alike_beside_an_owner_explained(&c, &order).await;

    let answer = create(&c, order, Some(kx), alice()).await.unwrap();
    let json = body(&answer);
    assert_eq!(answer.order_id, "x");
    assert_eq!(json["status"], "reconciling", "{json}");
    assert!(json["supplierOrderId"].is_null(), "{json}");
    assert!(!c.store.is_claimed(&look_alike).await.unwrap());
    assert!(!c.store.is_claimed(&made_by_y).await.unwrap());
    assert_eq!(c.supplier.bought().len(), 2, "never bought again");
}

#[tokio::test(start_paused = true)]
async fn the_list_is_read_back_as_far_as_the_windows_of_every_order_of_ours_counted() {
    use foxrelay_shared::store::PlacementStore;
    let c = creator();
    c.supplier.list_page_cap(10);
    measure_clock(&c).await;
    let order = new_order("a");
    let request = order.supplier_request(false);
    // A chain of orders of ours 9 s apart, each of whose POSTs was sent
    // and made its order, which each died before claiming: each one's
    // order is in its own window and the next one's. (In X's terms:
    // V at X-35, W at X-26, Z at X-17, Y at X-8.)
    let start = c.clock.now();
    let mut made = Vec::new();
    for id in ["v", "w", "z", "y"] {
        if id != "v" {
            tokio::time::advance(Duration::from_secs(9)).await;
        }
        made.push(sent_then_died(&c, id, &order).await);
    }
    // Another buyer's look-alike at X-1, in Y's window and X's; X recorded
    // its POST and died before sending it.
    tokio::time::advance(Duration::from_secs(7)).await;
    let look_alike = c.supplier.place_foreign(&request, c.clock.now());
    tokio::time::advance(Duration::from_secs(1)).await;
    let kx = key("kx").unwrap();
    held(&c, "x", &order, &kx).await;
    // Other buyers' orders between V's order and X's look-back (X-32): a
    // read back only as far as X's own windows stops before V's order.
    let others = for_player("product_other", None).supplier_request(false);
    for i in 0..30 {
        c.supplier
            .place_foreign(&others, start + time::Duration::milliseconds(100 + i * 90));
    }
    tokio::time::advance(Duration::from_secs(61)).await;

    let answer = create(&c, order, Some(kx), alice()).await.unwrap();
    let json = body(&answer);
    assert_eq!(json["status"], "reconciling", "{json}");
    assert!(json["supplierOrderId"].is_null(), "{json}");
    assert!(!c.store.is_claimed(&look_alike).await.unwrap());
    for ours in &made {
        assert!(!c.store.is_claimed(ours).await.unwrap(), "{ours}");
    }
    assert_eq!(c.supplier.bought().len(), 5, "never bought again");
}

#[tokio::test(start_paused = true)]
async fn a_post_refused_with_a_429_owns_nothing_and_no_look_alike_in_its_window_is_claimed() {
    use foxrelay_shared::store::PlacementStore;
    let c = creator();
    measure_clock(&c).await;
    let order = new_order("a");
    // Y's POST was answered 429 (it made nothing); its invocation died
    // before settling the order.
    let ky = key("ky").unwrap();
    held(&c, "y", &order, &ky).await;
    c.store.mark_posts_known("y", 1).await.unwrap();
    c.store.mark_post_refused("y", 0).await.unwrap();
    // Another buyer's look-alike, in Y's window.
    tokio::time::advance(Duration::from_secs(2)).await;
    let look_alike = c
        .supplier
        .place_foreign(&order.supplier_request(false), c.clock.now());
    tokio::time::advance(Duration::from_secs(61)).await;
    // Y's client retries: what is in Y's window is not Y's; Y is bought.
    let answer = create(&c, order, Some(ky), alice()).await.unwrap();
    assert_eq!(answer.order_id, "y");
    assert!(!c.store.is_claimed(&look_alike).await.unwrap());
    let bought = c.supplier.bought();
    assert_eq!(bought.len(), 2, "the measure and Y's");
    assert_eq!(body(&answer)["supplierOrderId"], bought[1].id.as_str());
}

#[tokio::test(start_paused = true)]
async fn orders_of_ours_with_overlapping_windows_each_claim_their_own() {
    use foxrelay_shared::store::PlacementStore;
    let c = creator();
    measure_clock(&c).await;
    let order = new_order("a");
    // Y's POST made its order; its invocation died before claiming it.
    let made_by_y = sent_then_died(&c, "y", &order).await;
    // X's, 3 s later, timed out after making its order.
    tokio::time::advance(Duration::from_secs(3)).await;
    c.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    let answer = create(&c, order, key("kx"), alice()).await.unwrap();
    let json = body(&answer);
    let bought = c.supplier.bought();
    assert_eq!(bought.len(), 3, "the measure, Y's and X's, once each");
    assert_eq!(json["supplierOrderId"], bought[2].id.as_str(), "{json}");
    assert!(!c.store.is_claimed(&made_by_y).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn an_owner_claiming_its_own_order_while_counted_vouches_for_nothing() {
    use foxrelay_shared::store::PlacementStore;
    let c = creator();
    let order = new_order("a");
    let (kx, made_by_y, look_alike) = look_alike_beside_an_owner_explained(&c, &order).await;
    // Y's own claim lands after X counted Y, just before X looks at Y's
    // order.
    c.store.claim_on_look(&made_by_y, "y");

    let answer = create(&c, order, Some(kx), alice()).await.unwrap();
    let json = body(&answer);
    assert_eq!(json["status"], "reconciling", "{json}");
    assert!(!c.store.is_claimed(&look_alike).await.unwrap());
    assert_eq!(
        stored(&c, "y").await.supplier_order_id.as_deref(),
        Some(made_by_y.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn orders_of_ours_nearby_are_no_evidence_of_another_buyer() {
    use foxrelay_shared::foxreload::Supplier;
    use foxrelay_shared::store::PlacementStore;
    let c = creator();
    measure_clock(&c).await;
    let order = new_order("a");
    let made_by_y = sent_then_died(&c, "y", &order).await;
    // X's POST left and made its order, but its invocation died before
    // learning so: it may never have been sent, as far as X's record says.
    tokio::time::advance(Duration::from_secs(3)).await;
    let kx = key("kx").unwrap();
    let x = held(&c, "x", &order, &kx).await;
    let made_by_x = c
        .supplier
        .create_order(&x.supplier_request(false))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;

    let answer = create(&c, order, Some(kx), alice()).await.unwrap();
    let json = body(&answer);
    assert_eq!(json["supplierOrderId"], made_by_x.id.as_str(), "{json}");
    assert!(!c.store.is_claimed(&made_by_y).await.unwrap());
    assert_eq!(c.supplier.bought().len(), 3, "never bought again");
}
