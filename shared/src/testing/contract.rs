//! The store contract: what every adapter of the store ports must do, as
//! cases generic over the store. [`store_contract!`](crate::store_contract)
//! turns them into tests; the same cases run against [`MemoryStore`]
//! (`shared`'s unit tests) and against DynamoDB on moto (the `tests`
//! crate), so the fast tier cannot drift from the real adapter.
//!
//! [`MemoryStore`]: super::MemoryStore

use super::seed::{intent, owner};
use crate::domain::OrderStatus;
use crate::domain::event::{CodeKind, DeliveredCodeRecord, ItemOutcome};
use crate::domain::reconcile::ClockOffset;
use crate::domain::supplier::SupplierStatus;
use crate::store::{
    AlertSlot, Begin, Claim, IdempotencyClaim, OrderRecord, OrderStore, Persisted, PollRecord,
    StoreError, StoredResponse, SupplierProblem, SupplierState, Terminal,
};
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

/// Every case's name, for [`store_contract!`](crate::store_contract).
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        $crate::store_contract!(@cases $make;
            an_intent_is_stored_once,
            a_held_key_is_taken_and_an_expired_one_is_free_again,
            a_key_is_taken_over_only_from_its_holder_after_the_lock_and_before_an_answer,
            only_the_holder_answers_or_frees_a_key,
            a_post_is_recorded_only_against_the_count_seen_on_an_unsettled_order,
            posts_known_only_grows,
            a_post_marked_refused_is_counted_once,
            a_supplier_order_is_claimed_by_one_of_our_orders_only,
            payment_is_recorded_only_on_a_claimed_open_order,
            a_create_ends_not_placed_or_reconciling_only_as_it_knows_its_order,
            the_first_poll_is_scheduled_only_forward,
            the_clock_keeps_the_tighter_measure_until_it_is_stale,
            unsettled_orders_are_the_unclaimed_creates_in_the_window,
            one_worker_holds_a_link_until_its_lease_runs_out,
            a_poll_moves_the_chain_only_under_the_claimed_link,
            an_end_is_stored_once_with_its_codes_in_order,
            a_cancelled_end_keeps_its_reason_and_its_codes,
            an_order_is_marked_notified_once_and_only_after_its_end,
            an_order_alert_is_claimed_once_per_interval_and_given_back_by_its_claimer,
            a_stack_alert_is_claimed_once_per_interval_and_given_back_by_its_claimer,
            pending_pages_go_oldest_first_and_resume_from_the_cursor,
            the_sweep_cursor_is_kept_and_cleared,
            an_unreadable_item_alert_is_claimed_once,
            a_dead_chain_is_revived_once_and_only_when_overdue_and_unleased,
            a_dead_create_is_handed_over_only_when_no_request_holds_its_key,
            instants_compared_in_conditions_come_back_in_milliseconds,
            an_order_keeps_its_poll_plan_and_its_clock,
            a_summary_counts_every_observation_and_forgets_old_epochs,
            concurrent_observations_are_all_counted,
            an_observation_of_hours_is_kept_whole_at_any_epoch,
            the_shared_budget_is_replaced_only_from_what_was_read,
            the_stacks_slots_are_taken_one_at_a_time_an_interval_apart,
            every_slot_granted_is_counted_once_and_the_count_never_restarts,
            many_asking_at_once_each_get_their_own_slot_or_are_told_it_was_a_race,
            busy_slots_are_counted_and_a_cut_is_stamped_with_their_count,
            a_cut_keeps_the_span_creates_had_booked_for_the_creates_it_voided
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::testing::contract::$case(&store).await;
            }
        )*
    };
}

/// The contract's clock: sub-millisecond digits on purpose, so adapters
/// that keep milliseconds show it.
pub const T0: OffsetDateTime = datetime!(2026-11-30 12:00:00.123_456_789 UTC);

fn at(seconds: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(seconds)
}

fn key_claim(key: &str, holder: &str, locked_until: OffsetDateTime) -> IdempotencyClaim {
    IdempotencyClaim {
        key: key.to_owned(),
        fingerprint: "fp".into(),
        holder: holder.to_owned(),
        locked_until,
        expires_at: T0 + time::Duration::hours(24),
    }
}

fn problem(kind: &str) -> SupplierProblem {
    SupplierProblem {
        kind: kind.to_owned(),
        status: None,
        code: None,
        detail: None,
    }
}

/// What a claim of a FoxReload order in `said` stores.
fn claim_of(said: &str) -> SupplierState {
    SupplierState::claimed(&SupplierStatus::parse(said))
}

/// What a payment FoxReload answered with `said` stores.
fn paid(said: &str) -> SupplierState {
    SupplierState::after_payment(&SupplierStatus::parse(said))
}

fn code(index: u32, text: &str) -> DeliveredCodeRecord {
    DeliveredCodeRecord {
        index,
        item_index: 0,
        product_id: "product_fast".into(),
        code: text.to_owned(),
        kind: CodeKind::Code,
    }
}

fn completed(codes: Vec<DeliveredCodeRecord>, when: OffsetDateTime) -> Terminal {
    Terminal {
        status: OrderStatus::Completed,
        supplier_status: Some("completed".into()),
        cancel_reason: None,
        items: vec![ItemOutcome {
            product_id: "product_fast".into(),
            quantity: Some(codes.len() as u32),
            delivered: codes.len() as u32,
            error: None,
            missing: 0,
        }],
        codes,
        at: when,
    }
}

async fn begun<S: OrderStore>(store: &S, id: &str, created: OffsetDateTime) -> OrderRecord {
    let order = intent(id, created);
    assert_eq!(store.begin(&order, None).await.unwrap(), Begin::Started);
    store.order(id).await.unwrap().expect("just begun")
}

/// An order placed and paid, its first poll link `1` due at `due`.
async fn placed<S: OrderStore>(store: &S, id: &str, due: OffsetDateTime) -> OrderRecord {
    begun(store, id, T0).await;
    let supplier = format!("sup-{id}");
    let claimed = store
        .claim_supplier_order(id, &supplier, &claim_of("active"), T0)
        .await
        .unwrap();
    assert_eq!(claimed, Claim::Claimed);
    store.schedule_poll(id, 1, due, T0).await.unwrap();
    store.order(id).await.unwrap().unwrap()
}

fn is_conflict(result: Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict { .. }))
}

pub async fn an_intent_is_stored_once<S: OrderStore>(store: &S) {
    let order = intent("o1", T0);
    assert_eq!(store.begin(&order, None).await.unwrap(), Begin::Started);
    let stored = store.order("o1").await.unwrap().expect("stored");
    assert_eq!(stored.status, OrderStatus::Creating);
    assert_eq!(stored.lines, order.lines);
    assert_eq!(stored.customer_reference.as_deref(), Some("ref-o1"));
    assert_eq!(stored.total_price.as_deref(), Some("10.00"));
    assert_eq!(stored.created_at, T0);
    assert_eq!(stored.principal, Some(owner()));
    assert_eq!(stored.idempotency_key.as_deref(), Some("key-o1"));
    assert_eq!(stored.posts_known, 0);
    assert!(stored.posts_recorded);
    assert_eq!(stored.poll_seq, 0);
    let again = store.begin(&order, None).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    assert!(store.order("nobody").await.unwrap().is_none());
    assert!(store.codes("nobody").await.unwrap().is_empty());
}

pub async fn a_held_key_is_taken_and_an_expired_one_is_free_again<S: OrderStore>(store: &S) {
    let claim = key_claim("k", "h1", at(30));
    let first = intent("k1", T0);
    assert_eq!(
        store.begin(&first, Some(&claim)).await.unwrap(),
        Begin::Started
    );
    let held = store.idempotency("k").await.unwrap().expect("held");
    assert_eq!(held.order_id, "k1");
    assert_eq!(held.holder, "h1");
    assert_eq!(held.fingerprint, "fp");
    assert!(held.response.is_none());
    // The second request's intent is not stored: the key answers.
    let second = intent("k2", at(1));
    match store.begin(&second, Some(&claim)).await.unwrap() {
        Begin::KeyTaken(record) => assert_eq!(record.order_id, "k1"),
        other => panic!("{other:?}"),
    }
    assert!(store.order("k2").await.unwrap().is_none());
    // Past its expiry the key is free again.
    let late = intent("k3", T0 + time::Duration::hours(25));
    assert_eq!(
        store.begin(&late, Some(&claim)).await.unwrap(),
        Begin::Started
    );
    assert_eq!(
        store.idempotency("k").await.unwrap().unwrap().order_id,
        "k3"
    );
}

pub async fn a_key_is_taken_over_only_from_its_holder_after_the_lock_and_before_an_answer<
    S: OrderStore,
>(
    store: &S,
) {
    let order = intent("t1", T0);
    store
        .begin(&order, Some(&key_claim("t", "h1", at(30))))
        .await
        .unwrap();
    let held = store.idempotency("t").await.unwrap().unwrap();
    // Lock still running.
    assert!(!store.take_over(&held, "h2", at(60), at(10)).await.unwrap());
    // Lock ran out: one taker wins, a second with the stale view loses.
    assert!(store.take_over(&held, "h2", at(90), at(31)).await.unwrap());
    assert!(!store.take_over(&held, "h3", at(90), at(31)).await.unwrap());
    let now_held = store.idempotency("t").await.unwrap().unwrap();
    assert_eq!(now_held.holder, "h2");
    assert_eq!(now_held.locked_until, crate::testing::millis(at(90)));
    // Answered: no takeover even after the lock.
    let answer = StoredResponse {
        status: 202,
        body: "{}".into(),
    };
    store.finish("t", "h2", &answer).await.unwrap();
    assert!(
        !store
            .take_over(&now_held, "h4", at(200), at(100))
            .await
            .unwrap()
    );
}

pub async fn only_the_holder_answers_or_frees_a_key<S: OrderStore>(store: &S) {
    let answer = StoredResponse {
        status: 202,
        body: "{\"orderId\":\"f1\"}".into(),
    };
    store
        .begin(&intent("f1", T0), Some(&key_claim("f", "h1", at(30))))
        .await
        .unwrap();
    assert!(is_conflict(store.finish("f", "h2", &answer).await));
    // Freeing by another is a no-op.
    store.release("f", "h2").await.unwrap();
    assert!(store.idempotency("f").await.unwrap().is_some());
    store.finish("f", "h1", &answer).await.unwrap();
    assert!(is_conflict(store.finish("f", "h1", &answer).await));
    assert_eq!(
        store.idempotency("f").await.unwrap().unwrap().response,
        Some(answer.clone())
    );
    // An answered key is never freed.
    store.release("f", "h1").await.unwrap();
    assert!(store.idempotency("f").await.unwrap().is_some());
    // An unanswered one is, by its holder.
    store
        .begin(&intent("g1", T0), Some(&key_claim("g", "h1", at(30))))
        .await
        .unwrap();
    store.release("g", "h1").await.unwrap();
    assert!(store.idempotency("g").await.unwrap().is_none());
    assert!(is_conflict(store.finish("missing", "h1", &answer).await));
}

pub async fn a_post_is_recorded_only_against_the_count_seen_on_an_unsettled_order<S: OrderStore>(
    store: &S,
) {
    begun(store, "p1", T0).await;
    assert!(!store.record_post("p1", 0, at(5)).await.unwrap());
    assert!(store.record_post("p1", 1, at(5)).await.unwrap());
    // Another worker's view is stale now.
    assert!(!store.record_post("p1", 1, at(6)).await.unwrap());
    let order = store.order("p1").await.unwrap().unwrap();
    assert_eq!(
        order.posted_at,
        vec![crate::testing::millis(T0), crate::testing::millis(at(5))]
    );
    assert_eq!(order.updated_at, at(5));
    // Reconciling still takes POSTs; a claimed order does not.
    store
        .mark_reconciling("p1", 2, &problem("timeout"), at(7))
        .await
        .unwrap();
    assert!(store.record_post("p1", 2, at(8)).await.unwrap());
    store
        .claim_supplier_order("p1", "sup-p1", &claim_of("active"), at(9))
        .await
        .unwrap();
    assert!(!store.record_post("p1", 3, at(10)).await.unwrap());
    assert!(!store.record_post("missing", 0, at(10)).await.unwrap());
}

pub async fn posts_known_only_grows<S: OrderStore>(store: &S) {
    begun(store, "n1", T0).await;
    store.mark_posts_known("n1", 2).await.unwrap();
    store.mark_posts_known("n1", 1).await.unwrap();
    assert_eq!(store.order("n1").await.unwrap().unwrap().posts_known, 2);
    store.mark_posts_known("missing", 1).await.unwrap();
    assert!(store.order("missing").await.unwrap().is_none());
}

pub async fn a_post_marked_refused_is_counted_once<S: OrderStore>(store: &S) {
    begun(store, "r1", T0).await;
    assert!(store.record_post("r1", 1, at(1)).await.unwrap());
    assert!(store.record_post("r1", 2, at(2)).await.unwrap());
    assert_eq!(
        store
            .order("r1")
            .await
            .unwrap()
            .unwrap()
            .posts_that_may_have_bought(),
        3
    );
    store.mark_post_refused("r1", 2).await.unwrap();
    store.mark_post_refused("r1", 0).await.unwrap();
    store.mark_post_refused("r1", 2).await.unwrap();
    let order = store.order("r1").await.unwrap().unwrap();
    assert_eq!(order.posts_refused, vec![0, 2]);
    assert_eq!(order.posts_that_may_have_bought(), 1);
    store.mark_post_refused("missing", 0).await.unwrap();
    assert!(store.order("missing").await.unwrap().is_none());
}

pub async fn a_supplier_order_is_claimed_by_one_of_our_orders_only<S: OrderStore>(store: &S) {
    begun(store, "c1", T0).await;
    begun(store, "c2", T0).await;
    store
        .mark_reconciling("c1", 1, &problem("timeout"), at(1))
        .await
        .unwrap();
    assert!(!store.is_claimed("sup-x").await.unwrap());
    let claimed = store
        .claim_supplier_order("c1", "sup-x", &claim_of("paid"), at(2))
        .await
        .unwrap();
    assert_eq!(claimed, Claim::Claimed);
    assert!(store.is_claimed("sup-x").await.unwrap());
    let order = store.order("c1").await.unwrap().unwrap();
    assert_eq!(order.supplier_order_id.as_deref(), Some("sup-x"));
    assert_eq!(order.supplier_status.as_deref(), Some("paid"));
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.last_error, None, "a claim clears the last error");
    assert_eq!(order.updated_at, at(2));
    // Another of ours cannot hold it; ours cannot hold a second one.
    assert_eq!(
        store
            .claim_supplier_order("c2", "sup-x", &claim_of("paid"), at(3))
            .await
            .unwrap(),
        Claim::TakenByAnother
    );
    assert_eq!(
        store
            .claim_supplier_order("c1", "sup-y", &claim_of("paid"), at(3))
            .await
            .unwrap(),
        Claim::OrderMoved
    );
    assert!(!store.is_claimed("sup-y").await.unwrap());
    assert_eq!(
        store.order("c2").await.unwrap().unwrap().supplier_order_id,
        None
    );
    // A status we do not know is kept as said, and polled on as
    // `processing`; a claimed order never stays `creating`.
    assert_eq!(
        store
            .claim_supplier_order("c2", "sup-z", &claim_of("on_hold"), at(4))
            .await
            .unwrap(),
        Claim::Claimed
    );
    let c2 = store.order("c2").await.unwrap().unwrap();
    assert_eq!(c2.status, OrderStatus::Processing);
    assert_eq!(c2.supplier_status.as_deref(), Some("on_hold"));
}

pub async fn payment_is_recorded_only_on_a_claimed_open_order<S: OrderStore>(store: &S) {
    begun(store, "y1", T0).await;
    let paid_now = paid("paid");
    assert!(is_conflict(
        store
            .record_payment("y1", Some(&paid_now), None, at(1))
            .await
    ));
    store
        .claim_supplier_order("y1", "sup-y1", &claim_of("active"), at(1))
        .await
        .unwrap();
    store
        .record_payment("y1", Some(&paid_now), None, at(2))
        .await
        .unwrap();
    let order = store.order("y1").await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.supplier_status.as_deref(), Some("paid"));
    let refused = problem("rejected");
    let ended = paid("completed");
    store
        .record_payment("y1", Some(&ended), Some(&refused), at(3))
        .await
        .unwrap();
    let order = store.order("y1").await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Paid, "an end is not a payment's");
    assert_eq!(order.supplier_status.as_deref(), Some("completed"));
    assert_eq!(order.payment_error, Some(refused));
    assert_eq!(order.updated_at, at(3));
    store
        .persist_terminal(&order, &completed(vec![code(0, "A")], at(4)))
        .await
        .unwrap();
    assert!(is_conflict(
        store
            .record_payment("y1", Some(&paid_now), None, at(5))
            .await
    ));
}

pub async fn a_create_ends_not_placed_or_reconciling_only_as_it_knows_its_order<S: OrderStore>(
    store: &S,
) {
    begun(store, "m1", T0).await;
    begun(store, "m2", T0).await;
    begun(store, "m3", T0).await;
    // The intent recorded one POST.
    store
        .mark_reconciling("m1", 1, &problem("timeout"), at(1))
        .await
        .unwrap();
    let m1 = store.order("m1").await.unwrap().unwrap();
    assert_eq!(m1.status, OrderStatus::Reconciling);
    assert_eq!(m1.last_error, Some(problem("timeout")));
    store
        .mark_not_placed("m2", 1, &problem("refused"), at(2))
        .await
        .unwrap();
    let m2 = store.order("m2").await.unwrap().unwrap();
    assert_eq!(m2.status, OrderStatus::NotPlaced);
    assert_eq!(m2.last_error, Some(problem("refused")));
    let pending = store.pending(100, None).await.unwrap();
    let mut ids: Vec<&str> = pending.orders.iter().map(|o| o.order_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["m1", "m3"], "not placed leaves the pending index");
    // Settled already, by this create or another: no longer its to settle.
    for id in ["m1", "m2"] {
        assert!(is_conflict(
            store.mark_not_placed(id, 1, &problem("x"), at(3)).await
        ));
        assert!(is_conflict(
            store.mark_reconciling(id, 1, &problem("x"), at(3)).await
        ));
    }
    // Another request recorded a POST since: the create's count is stale.
    assert!(store.record_post("m3", 1, at(3)).await.unwrap());
    assert!(is_conflict(
        store.mark_not_placed("m3", 1, &problem("x"), at(4)).await
    ));
    assert!(is_conflict(
        store.mark_reconciling("m3", 1, &problem("x"), at(4)).await
    ));
    assert_eq!(
        store.order("m3").await.unwrap().unwrap().status,
        OrderStatus::Creating
    );
    store
        .mark_not_placed("m3", 2, &problem("refused"), at(4))
        .await
        .unwrap();
    assert!(is_conflict(
        store
            .mark_not_placed("missing", 0, &problem("x"), at(3))
            .await
    ));
}

pub async fn the_first_poll_is_scheduled_only_forward<S: OrderStore>(store: &S) {
    begun(store, "s1", T0).await;
    store.schedule_poll("s1", 1, at(10), at(1)).await.unwrap();
    let order = store.order("s1").await.unwrap().unwrap();
    assert_eq!(order.poll_seq, 1);
    assert_eq!(order.next_poll_due_at, Some(crate::testing::millis(at(10))));
    assert!(is_conflict(
        store.schedule_poll("s1", 1, at(20), at(2)).await
    ));
    assert!(is_conflict(
        store.schedule_poll("missing", 1, at(20), at(2)).await
    ));
    store.schedule_poll("s1", 3, at(30), at(3)).await.unwrap();
    assert_eq!(store.order("s1").await.unwrap().unwrap().poll_seq, 3);
}

pub async fn the_clock_keeps_the_tighter_measure_until_it_is_stale<S: OrderStore>(store: &S) {
    assert_eq!(store.clock_offset().await.unwrap(), None);
    let measure = |offset_ms: i64, uncertainty_ms: u64, sampled: OffsetDateTime| ClockOffset {
        offset: time::Duration::milliseconds(offset_ms),
        uncertainty: Duration::from_millis(uncertainty_ms),
        sampled_at: sampled,
    };
    let stale_after = Duration::from_secs(3600);
    let first = measure(-250, 40, T0);
    store.save_clock_offset(&first, stale_after).await.unwrap();
    let kept = store.clock_offset().await.unwrap().unwrap();
    assert_eq!(kept.offset, first.offset);
    assert_eq!(kept.uncertainty, first.uncertainty);
    assert_eq!(kept.sampled_at, crate::testing::millis(T0));
    // Looser and fresh: ignored. Tighter: kept.
    store
        .save_clock_offset(&measure(900, 200, at(60)), stale_after)
        .await
        .unwrap();
    assert_eq!(
        store.clock_offset().await.unwrap().unwrap().offset,
        first.offset
    );
    store
        .save_clock_offset(&measure(-240, 20, at(120)), stale_after)
        .await
        .unwrap();
    assert_eq!(
        store.clock_offset().await.unwrap().unwrap().uncertainty,
        Duration::from_millis(20)
    );
    // Looser but the kept one is stale: replaced.
    store
        .save_clock_offset(&measure(500, 300, at(7200)), stale_after)
        .await
        .unwrap();
    let last = store.clock_offset().await.unwrap().unwrap();
    assert_eq!(last.offset, time::Duration::milliseconds(500));
    assert_eq!(last.uncertainty, Duration::from_millis(300));
}

pub async fn unsettled_orders_are_the_unclaimed_creates_in_the_window<S: OrderStore>(store: &S) {
    begun(store, "u-early", at(-100)).await;
    begun(store, "u-creating", at(0)).await;
    begun(store, "u-reconciling", at(5)).await;
    store
        .mark_reconciling("u-reconciling", 1, &problem("timeout"), at(6))
        .await
        .unwrap();
    begun(store, "u-claimed", at(6)).await;
    store
        .claim_supplier_order("u-claimed", "sup-u", &claim_of("active"), at(7))
        .await
        .unwrap();
    begun(store, "u-refused", at(7)).await;
    store
        .mark_not_placed("u-refused", 1, &problem("refused"), at(8))
        .await
        .unwrap();
    begun(store, "u-late", at(100)).await;
    let found = store.unsettled_between(at(-10), at(10)).await.unwrap();
    let mut ids: Vec<&str> = found.iter().map(|o| o.order_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["u-creating", "u-reconciling"]);
    // The window's ends are inclusive.
    let edge = store.unsettled_between(at(0), at(0)).await.unwrap();
    let ids: Vec<&str> = edge.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, ["u-creating"]);
}

pub async fn one_worker_holds_a_link_until_its_lease_runs_out<S: OrderStore>(store: &S) {
    placed(store, "l1", at(10)).await;
    // Not the live link.
    assert!(!store.claim_link("l1", 2, at(40), at(10)).await.unwrap());
    assert!(store.claim_link("l1", 1, at(40), at(10)).await.unwrap());
    // A duplicate while the lease runs.
    assert!(!store.claim_link("l1", 1, at(40), at(20)).await.unwrap());
    // The lease ran out: the link can be taken again.
    assert!(store.claim_link("l1", 1, at(80), at(41)).await.unwrap());
    let order = store.order("l1").await.unwrap().unwrap();
    assert_eq!(order.claimed_seq, 1);
    assert_eq!(order.lease_until, Some(crate::testing::millis(at(80))));
    assert!(
        !store
            .claim_link("missing", 1, at(40), at(10))
            .await
            .unwrap()
    );
}

pub async fn a_poll_moves_the_chain_only_under_the_claimed_link<S: OrderStore>(store: &S) {
    placed(store, "r1", at(10)).await;
    let poll = PollRecord {
        status: Some(OrderStatus::Processing),
        supplier_status: Some("processing".into()),
        error: Some(problem("timeout")),
        consecutive_errors: 1,
        needs_attention: Some("slow".into()),
        next_seq: 2,
        next_due: at(30),
        nominal_delay: Duration::from_millis(15_500),
        plan_step: None,
        polled: true,
        now: at(12),
    };
    // Not claimed yet.
    assert!(is_conflict(store.record_poll("r1", 1, &poll).await));
    store.claim_link("r1", 1, at(40), at(11)).await.unwrap();
    store.record_poll("r1", 1, &poll).await.unwrap();
    let order = store.order("r1").await.unwrap().unwrap();
    assert_eq!(order.poll_seq, 2);
    assert_eq!(order.status, OrderStatus::Processing);
    assert_eq!(order.supplier_status.as_deref(), Some("processing"));
    assert_eq!(order.poll_count, 1);
    assert_eq!(order.last_error, Some(problem("timeout")));
    assert_eq!(order.needs_attention.as_deref(), Some("slow"));
    assert_eq!(order.consecutive_errors, 1);
    assert_eq!(order.next_poll_due_at, Some(crate::testing::millis(at(30))));
    assert_eq!(order.last_delay, Some(Duration::from_millis(15_500)));
    assert_eq!(order.last_polled_at, Some(crate::testing::millis(at(12))));
    assert_eq!(order.updated_at, at(12));
    // The link moved on: a replay of link 1 changes nothing.
    assert!(is_conflict(store.record_poll("r1", 1, &poll).await));
    // A clean poll clears the error and the attention, keeps the status.
    store.claim_link("r1", 2, at(60), at(31)).await.unwrap();
    let clean = PollRecord {
        status: None,
        supplier_status: None,
        error: None,
        consecutive_errors: 0,
        needs_attention: None,
        next_seq: 3,
        next_due: at(50),
        now: at(32),
        ..poll
    };
    store.record_poll("r1", 2, &clean).await.unwrap();
    let order = store.order("r1").await.unwrap().unwrap();
    assert_eq!(order.poll_count, 2);
    assert_eq!(order.status, OrderStatus::Processing);
    assert_eq!(order.last_error, None);
    assert_eq!(order.needs_attention, None);
    // A link the budget held back: the chain moves on, no poll counted.
    store.claim_link("r1", 3, at(80), at(51)).await.unwrap();
    let held_back = PollRecord {
        next_seq: 4,
        next_due: at(53),
        polled: false,
        now: at(52),
        ..clean
    };
    store.record_poll("r1", 3, &held_back).await.unwrap();
    let order = store.order("r1").await.unwrap().unwrap();
    assert_eq!(order.poll_seq, 4);
    assert_eq!(order.poll_count, 2);
    assert_eq!(order.last_polled_at, Some(crate::testing::millis(at(32))));
    assert_eq!(order.next_poll_due_at, Some(crate::testing::millis(at(53))));
}

pub async fn an_end_is_stored_once_with_its_codes_in_order<S: OrderStore>(store: &S) {
    let order = placed(store, "e1", at(10)).await;
    let codes: Vec<DeliveredCodeRecord> = (0..3).map(|i| code(i, &format!("C{i}"))).collect();
    let end = completed(codes.clone(), at(20));
    let ended = store.persist_terminal(&order, &end).await.unwrap();
    assert_eq!(ended.persisted, Persisted::Committed { unlisted: 0 });
    let stored = store.order("e1").await.unwrap().unwrap();
    assert_eq!(ended.order, stored, "the order as stored comes back");
    assert_eq!(stored.status, OrderStatus::Completed);
    assert_eq!(stored.code_count, 3);
    assert_eq!(stored.items, end.items);
    assert_eq!(stored.terminal_at, Some(crate::testing::millis(at(20))));
    assert_eq!(stored.supplier_status.as_deref(), Some("completed"));
    assert_eq!(store.codes("e1").await.unwrap(), codes);
    // Ended: a second end writes nothing, not even other codes.
    let other = completed(vec![code(0, "Z")], at(30));
    let again = store.persist_terminal(&order, &other).await.unwrap();
    assert_eq!(again.persisted, Persisted::AlreadyTerminal);
    assert_eq!(again.order, stored, "the first end is the one kept");
    assert_eq!(store.codes("e1").await.unwrap(), codes);
    // Still pending until notified.
    let pending = store.pending(100, None).await.unwrap();
    assert!(pending.orders.iter().any(|o| o.order_id == "e1"));
    let missing = intent("e-missing", T0);
    let refused = store.persist_terminal(&missing, &end).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    assert!(store.order("e-missing").await.unwrap().is_none());
    assert!(store.codes("e-missing").await.unwrap().is_empty());
}

pub async fn a_cancelled_end_keeps_its_reason_and_its_codes<S: OrderStore>(store: &S) {
    // Cancelled by FoxReload with some codes already delivered, and no
    // status of its own kept.
    let order = placed(store, "e2", at(10)).await;
    let end = Terminal {
        status: OrderStatus::Cancelled,
        supplier_status: None,
        cancel_reason: Some("out of stock".into()),
        ..completed(vec![code(0, "A"), code(1, "B")], at(20))
    };
    store.persist_terminal(&order, &end).await.unwrap();
    let stored = store.order("e2").await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Cancelled);
    assert_eq!(stored.cancel_reason.as_deref(), Some("out of stock"));
    assert_eq!(stored.supplier_status, None);
    let codes = store.codes("e2").await.unwrap();
    assert_eq!(
        codes.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert_eq!(codes.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1]);
}

pub async fn an_order_is_marked_notified_once_and_only_after_its_end<S: OrderStore>(store: &S) {
    let order = placed(store, "nt1", at(10)).await;
    store.mark_notified("nt1", at(11)).await.unwrap();
    assert_eq!(store.order("nt1").await.unwrap().unwrap().notified_at, None);
    store
        .persist_terminal(&order, &completed(vec![code(0, "A")], at(20)))
        .await
        .unwrap();
    store.mark_notified("nt1", at(21)).await.unwrap();
    store.mark_notified("nt1", at(99)).await.unwrap();
    let stored = store.order("nt1").await.unwrap().unwrap();
    assert_eq!(stored.notified_at, Some(crate::testing::millis(at(21))));
    let pending = store.pending(100, None).await.unwrap();
    assert!(
        pending.orders.iter().all(|o| o.order_id != "nt1"),
        "a notified order leaves the pending index"
    );
    store.mark_notified("missing", at(21)).await.unwrap();
    assert!(store.order("missing").await.unwrap().is_none());
}

pub async fn an_order_alert_is_claimed_once_per_interval_and_given_back_by_its_claimer<
    S: OrderStore,
>(
    store: &S,
) {
    begun(store, "a1", T0).await;
    for slot in [
        AlertSlot::Stall,
        AlertSlot::Reconcile,
        AlertSlot::LongRunning,
        AlertSlot::ChainStuck,
    ] {
        assert!(store.claim_alert("a1", slot, at(0), at(10)).await.unwrap());
        // Within the interval: not again.
        assert!(!store.claim_alert("a1", slot, at(5), at(11)).await.unwrap());
        // Given back by someone else's claim time: kept.
        store.release_alert("a1", slot, at(11)).await.unwrap();
        assert!(!store.claim_alert("a1", slot, at(5), at(12)).await.unwrap());
        // Given back by the claimer: free again.
        store.release_alert("a1", slot, at(10)).await.unwrap();
        assert!(store.claim_alert("a1", slot, at(5), at(13)).await.unwrap());
        // Past the interval: again.
        assert!(store.claim_alert("a1", slot, at(14), at(20)).await.unwrap());
    }
    assert_eq!(
        store.order("a1").await.unwrap().unwrap().stall_alerted_at,
        Some(crate::testing::millis(at(20)))
    );
    assert!(
        !store
            .claim_alert("missing", AlertSlot::Stall, at(0), at(10))
            .await
            .unwrap()
    );
}

pub async fn a_stack_alert_is_claimed_once_per_interval_and_given_back_by_its_claimer<
    S: OrderStore,
>(
    store: &S,
) {
    assert!(store.claim_stack_alert("key", at(0), at(10)).await.unwrap());
    assert!(!store.claim_stack_alert("key", at(5), at(11)).await.unwrap());
    assert!(
        store
            .claim_stack_alert("other", at(5), at(11))
            .await
            .unwrap()
    );
    store.release_stack_alert("key", at(11)).await.unwrap();
    assert!(!store.claim_stack_alert("key", at(5), at(12)).await.unwrap());
    store.release_stack_alert("key", at(10)).await.unwrap();
    assert!(store.claim_stack_alert("key", at(5), at(13)).await.unwrap());
    assert!(
        store
            .claim_stack_alert("key", at(14), at(20))
            .await
            .unwrap()
    );
}

pub async fn pending_pages_go_oldest_first_and_resume_from_the_cursor<S: OrderStore>(store: &S) {
    for (id, created) in [("q3", 3), ("q1", 1), ("q5", 5), ("q2", 2), ("q4", 4)] {
        begun(store, id, at(created)).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.pending(2, cursor.as_deref()).await.unwrap();
        assert!(page.orders.len() <= 2);
        assert!(page.unreadable.is_empty());
        assert_eq!(page.items_read, page.orders.len() as u64);
        seen.extend(page.orders.iter().map(|o| o.order_id.clone()));
        pages += 1;
        assert!(pages <= 4, "the pages never end");
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["q1", "q2", "q3", "q4", "q5"]);
}

pub async fn the_sweep_cursor_is_kept_and_cleared<S: OrderStore>(store: &S) {
    assert_eq!(store.sweep_cursor().await.unwrap(), None);
    begun(store, "w1", at(1)).await;
    begun(store, "w2", at(2)).await;
    let page = store.pending(1, None).await.unwrap();
    let cursor = page.next.expect("a second order follows");
    store.save_sweep_cursor(Some(&cursor), at(3)).await.unwrap();
    let kept = store.sweep_cursor().await.unwrap().expect("kept");
    let resumed = store.pending(1, Some(&kept)).await.unwrap();
    assert_eq!(resumed.orders[0].order_id, "w2");
    store.save_sweep_cursor(None, at(4)).await.unwrap();
    assert_eq!(store.sweep_cursor().await.unwrap(), None);
}

pub async fn an_unreadable_item_alert_is_claimed_once<S: OrderStore>(store: &S) {
    begun(store, "x1", T0).await;
    assert!(
        store
            .claim_unreadable_alert("ORDER#x1", at(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_unreadable_alert("ORDER#x1", at(2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_unreadable_alert("ORDER#missing", at(2))
            .await
            .unwrap()
    );
}

pub async fn a_dead_chain_is_revived_once_and_only_when_overdue_and_unleased<S: OrderStore>(
    store: &S,
) {
    let order = placed(store, "v1", at(10)).await;
    // Not overdue yet.
    assert!(
        !store
            .revive_chain(&order, at(5), at(20), 1, at(20))
            .await
            .unwrap()
    );
    // Leased by a worker.
    store.claim_link("v1", 1, at(100), at(15)).await.unwrap();
    let leased = store.order("v1").await.unwrap().unwrap();
    assert!(
        !store
            .revive_chain(&leased, at(60), at(61), 1, at(61))
            .await
            .unwrap()
    );
    // Overdue and the lease ran out: revived once.
    assert!(
        store
            .revive_chain(&leased, at(150), at(150), 1, at(151))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revive_chain(&leased, at(150), at(150), 1, at(151))
            .await
            .unwrap(),
        "a stale view revives nothing"
    );
    let revived = store.order("v1").await.unwrap().unwrap();
    assert_eq!(revived.poll_seq, 2);
    assert_eq!(
        revived.next_poll_due_at,
        Some(crate::testing::millis(at(151)))
    );
    assert_eq!(revived.revivals, 1);
    assert_eq!(revived.revived_at_polls, Some(0));
    assert_eq!(revived.updated_at, at(150));
    // An order still creating has no chain; an ended one needs none.
    let creating = begun(store, "v2", T0).await;
    assert!(
        !store
            .revive_chain(&creating, at(600), at(600), 1, at(600))
            .await
            .unwrap()
    );
    let ended = placed(store, "v3", at(10)).await;
    store
        .persist_terminal(&ended, &completed(vec![code(0, "A")], at(11)))
        .await
        .unwrap();
    let ended = store.order("v3").await.unwrap().unwrap();
    assert!(
        !store
            .revive_chain(&ended, at(600), at(600), 1, at(600))
            .await
            .unwrap()
    );
}

pub async fn a_dead_create_is_handed_over_only_when_no_request_holds_its_key<S: OrderStore>(
    store: &S,
) {
    let held = intent("h1", T0);
    let key = held.idempotency_key.clone().unwrap();
    store
        .begin(&held, Some(&key_claim(&key, "worker", at(30))))
        .await
        .unwrap();
    // The key's holder may still be settling it.
    assert!(
        !store
            .hand_over_create(&held, 1, &problem("died"), at(20))
            .await
            .unwrap()
    );
    assert!(
        store
            .hand_over_create(&held, 1, &problem("died"), at(31))
            .await
            .unwrap()
    );
    let order = store.order("h1").await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Reconciling);
    assert!(order.handed_over);
    assert_eq!(order.poll_seq, 1);
    assert_eq!(order.next_poll_due_at, Some(crate::testing::millis(at(31))));
    assert_eq!(order.last_error, Some(problem("died")));
    // Once only.
    assert!(
        !store
            .hand_over_create(&held, 2, &problem("died"), at(40))
            .await
            .unwrap()
    );
    // No key stored: nothing to wait for. A claimed order is not handed.
    let unkeyed = begun(store, "h2", T0).await;
    let mut claimed = unkeyed.clone();
    claimed.order_id = "h3".into();
    begun(store, "h3", T0).await;
    store
        .claim_supplier_order("h3", "sup-h3", &claim_of("active"), at(1))
        .await
        .unwrap();
    assert!(
        store
            .hand_over_create(&unkeyed, 1, &problem("died"), at(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .hand_over_create(&claimed, 1, &problem("died"), at(5))
            .await
            .unwrap()
    );
}

pub async fn instants_compared_in_conditions_come_back_in_milliseconds<S: OrderStore>(store: &S) {
    let order = begun(store, "i1", T0).await;
    // Times people read keep their full precision.
    assert_eq!(order.created_at, T0);
    assert_eq!(order.updated_at, T0);
    assert_eq!(order.posted_at, vec![crate::testing::millis(T0)]);
    assert_ne!(crate::testing::millis(T0), T0);
    // A lease that ends within the same millisecond as `now` has not run
    // out: conditions compare milliseconds.
    store.schedule_poll("i1", 1, T0, T0).await.unwrap();
    store
        .claim_supplier_order("i1", "sup-i1", &claim_of("active"), T0)
        .await
        .unwrap();
    let lease = T0 + time::Duration::microseconds(10);
    assert!(store.claim_link("i1", 1, lease, T0).await.unwrap());
    let same_ms = T0 + time::Duration::microseconds(500);
    assert!(!store.claim_link("i1", 1, at(40), same_ms).await.unwrap());
    let next_ms = T0 + time::Duration::milliseconds(1);
    assert!(store.claim_link("i1", 1, at(40), next_ms).await.unwrap());
}

pub async fn an_order_keeps_its_poll_plan_and_its_clock<S: OrderStore>(store: &S) {
    let mut order = intent("p1", T0);
    let plan = crate::domain::learning::OrderPlan {
        kind: crate::domain::learning::PlanKind::WarmUp,
        plan: crate::domain::learning::Plan {
            polls: vec![3, 10, 40],
        },
    };
    order.poll_plan = Some(plan.clone());
    order.plan_step = Some(0);
    store.begin(&order, None).await.unwrap();
    let stored = store.order("p1").await.unwrap().unwrap();
    assert_eq!(stored.poll_plan, Some(plan.clone()));
    assert_eq!(stored.plan_step, Some(0));
    assert_eq!(stored.paid_at, None);
    assert_eq!(stored.clock_start(), T0);
    store
        .claim_supplier_order("p1", "sup-p1", &claim_of("active"), at(1))
        .await
        .unwrap();
    // Paid: the clock starts, once.
    store
        .record_payment("p1", Some(&paid("paid")), None, at(2))
        .await
        .unwrap();
    store
        .record_payment("p1", Some(&paid("processing")), None, at(3))
        .await
        .unwrap();
    let stored = store.order("p1").await.unwrap().unwrap();
    assert_eq!(stored.paid_at, Some(crate::testing::millis(at(2))));
    assert_eq!(stored.clock_start(), crate::testing::millis(at(2)));
    // A refused payment starts nothing.
    begun(store, "p2", T0).await;
    store
        .claim_supplier_order("p2", "sup-p2", &claim_of("active"), at(1))
        .await
        .unwrap();
    store
        .record_payment("p2", None, Some(&problem("rejected")), at(2))
        .await
        .unwrap();
    assert_eq!(store.order("p2").await.unwrap().unwrap().paid_at, None);
    // A poll that read the order open is when it was last seen open; the
    // plan's step moves with the chain, and goes when past the plan.
    store.schedule_poll("p1", 1, at(5), at(3)).await.unwrap();
    store.claim_link("p1", 1, at(60), at(5)).await.unwrap();
    let read = PollRecord {
        status: Some(OrderStatus::Processing),
        supplier_status: Some("processing".into()),
        error: None,
        consecutive_errors: 0,
        needs_attention: None,
        next_seq: 2,
        next_due: at(12),
        nominal_delay: Duration::from_secs(7),
        plan_step: Some(1),
        polled: true,
        now: at(5),
    };
    store.record_poll("p1", 1, &read).await.unwrap();
    let stored = store.order("p1").await.unwrap().unwrap();
    assert_eq!(stored.plan_step, Some(1));
    assert_eq!(
        stored.last_seen_open_at,
        Some(crate::testing::millis(at(5)))
    );
    store.claim_link("p1", 2, at(60), at(12)).await.unwrap();
    let failed = PollRecord {
        status: None,
        supplier_status: None,
        error: Some(problem("timeout")),
        consecutive_errors: 1,
        next_seq: 3,
        plan_step: None,
        now: at(12),
        ..read
    };
    store.record_poll("p1", 2, &failed).await.unwrap();
    let stored = store.order("p1").await.unwrap().unwrap();
    assert_eq!(stored.plan_step, None);
    assert_eq!(
        stored.last_seen_open_at,
        Some(crate::testing::millis(at(5))),
        "a failed poll saw nothing"
    );
    assert_eq!(stored.poll_plan, Some(plan));
}

fn ended_between(after: f64, by: f64) -> crate::domain::learning::Observation {
    crate::domain::learning::Observation {
        after: Duration::from_secs_f64(after),
        by: Duration::from_secs_f64(by),
    }
}

fn close(a: &crate::domain::learning::Summary, b: &crate::domain::learning::Summary) -> bool {
    a.observations == b.observations
        && a.epochs.keys().eq(b.epochs.keys())
        && a.epochs.iter().all(|(epoch, bins)| {
            bins.iter()
                .zip(&b.epochs[epoch])
                .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(1.0))
        })
}

pub async fn a_summary_counts_every_observation_and_forgets_old_epochs<S: OrderStore>(store: &S) {
    use crate::domain::learning::Summary;
    use crate::domain::learning::summary::Decay;
    let decay = Decay {
        half_life: 2.0,
        epoch: 3,
        kept: 2,
    };
    assert_eq!(
        store.summary("product_x").await.unwrap(),
        Summary::default()
    );
    // What the store keeps is what the summary's own arithmetic keeps.
    let mut expected = Summary::default();
    for i in 0..10u32 {
        let observation = ended_between(f64::from(i), f64::from(i) + 30.0);
        let stored = store.summary("product_x").await.unwrap();
        assert!(close(&stored, &expected), "{stored:?} {expected:?}");
        let contribution = decay.learn(&observation, &stored);
        store
            .add_observation("product_x", &contribution)
            .await
            .unwrap();
        expected.add(&contribution);
    }
    let stored = store.summary("product_x").await.unwrap();
    assert!(close(&stored, &expected));
    assert_eq!(stored.observations, 10);
    // Observations 9 (epoch 3) forgot epoch 1: only 2 and 3 are left.
    assert_eq!(
        stored.epochs.keys().copied().collect::<Vec<_>>(),
        vec![2, 3]
    );
    // Another product's summary is its own.
    assert_eq!(
        store.summary("product_y").await.unwrap(),
        Summary::default()
    );
}

pub async fn concurrent_observations_are_all_counted<S: OrderStore>(store: &S) {
    use crate::domain::learning::summary::Decay;
    let decay = Decay::default();
    let stored = store.summary("product_c").await.unwrap();
    // Eight writers that all read the same summary: none loses another's.
    let contributions: Vec<_> = (0..8)
        .map(|i| decay.learn(&ended_between(2.0, 3.0 + f64::from(i)), &stored))
        .collect();
    let add = |i: usize| store.add_observation("product_c", &contributions[i]);
    let done = tokio::join!(
        add(0),
        add(1),
        add(2),
        add(3),
        add(4),
        add(5),
        add(6),
        add(7)
    );
    for result in [
        done.0, done.1, done.2, done.3, done.4, done.5, done.6, done.7,
    ] {
        result.unwrap();
    }
    let stored = store.summary("product_c").await.unwrap();
    assert_eq!(stored.observations, 8);
    let mass: f64 = stored.epochs.values().flatten().sum();
    assert!((mass - 8.0).abs() < 1e-6, "{mass}");
}

pub async fn an_observation_of_hours_is_kept_whole_at_any_epoch<S: OrderStore>(store: &S) {
    use crate::domain::learning::Summary;
    use crate::domain::learning::summary::{Decay, MOST_BINS};
    // Nothing known, an order first seen ended 11 days in, at an epoch
    // with a ten-digit number: as many bins as one observation may add,
    // with the longest names, in one write.
    let decay = Decay::default();
    let index = 8 * 1_000_000_000 + 7;
    let contribution = decay.contribution(
        &ended_between(0.0, 1_000_000.0),
        index,
        None,
        &Summary::default(),
    );
    assert!(contribution.bins.len() <= MOST_BINS);
    assert!(contribution.bins.len() > MOST_BINS - 10);
    store
        .add_observation("product_w", &contribution)
        .await
        .unwrap();
    let stored = store.summary("product_w").await.unwrap();
    assert_eq!(stored.observations, 1);
    let held = &stored.epochs[&1_000_000_000];
    let mass: f64 = held.iter().sum();
    let weight: f64 = contribution.bins.iter().map(|(_, w)| w).sum();
    assert!((mass - weight).abs() < 1e-9, "{mass} {weight}");
}

pub async fn the_shared_budget_is_replaced_only_from_what_was_read<S: OrderStore>(store: &S) {
    use crate::domain::budget::Shared;
    assert_eq!(store.budget().await.unwrap(), None);
    let first = Shared {
        base: 40.0 / 3.0,
        cool_until: Duration::from_millis(1_764_000_000_123),
        cut_at: Duration::from_millis(1_764_000_000_023),
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(None, &first).await.unwrap());
    // A second writer that also read nothing loses.
    let other = Shared {
        base: 10.0,
        ..first
    };
    assert!(!store.swap_budget(None, &other).await.unwrap());
    assert_eq!(store.budget().await.unwrap(), Some(first));
    // From what was read (a rate that is no round number): replaced; from
    // a read gone stale: refused.
    let cut = Shared {
        base: first.base / 2.0,
        cool_until: first.cool_until + Duration::from_secs(1),
        cut_at: first.cool_until,
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(Some(&first), &cut).await.unwrap());
    assert!(!store.swap_budget(Some(&first), &other).await.unwrap());
    assert_eq!(store.budget().await.unwrap(), Some(cut));
    // Four containers cutting at once from the same read: one cut lands.
    let next: Vec<Shared> = (1..=4u64)
        .map(|i| Shared {
            base: cut.base / 2.0,
            cool_until: cut.cool_until + Duration::from_millis(i),
            cut_at: cut.cool_until,
            busy_at_cut: 0,
        })
        .collect();
    let done = tokio::join!(
        store.swap_budget(Some(&cut), &next[0]),
        store.swap_budget(Some(&cut), &next[1]),
        store.swap_budget(Some(&cut), &next[2]),
        store.swap_budget(Some(&cut), &next[3]),
    );
    let won = [done.0, done.1, done.2, done.3]
        .into_iter()
        .filter(|swapped| *swapped.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    assert!(next.contains(&store.budget().await.unwrap().unwrap()));
}

pub async fn the_stacks_slots_are_taken_one_at_a_time_an_interval_apart<S: OrderStore>(store: &S) {
    use crate::domain::budget::{Shared, Slot, SlotFrom};
    use crate::store::SlotAsk;
    let now = Duration::from_millis(1_764_000_000_000) + Duration::from_micros(123);
    let gap = Duration::from_millis(50);
    let ask = |now: Duration, ahead: Duration, hint: Option<Duration>| SlotAsk {
        now,
        interval: gap,
        ahead,
        hint,
        run_hint: None,
        create: false,
    };
    let reach = Duration::from_millis(500);
    // Idle: now.
    let first = store.take_slot(&ask(now, reach, None)).await.unwrap();
    assert_eq!(
        first.slot,
        Slot::Go {
            at: now,
            next: now + gap,
            from: SlotFrom::Now
        }
    );
    assert_eq!(first.due, Some(now + gap));
    assert_eq!(first.budget, None);
    // Busy: the next one, whatever the asker guessed.
    for (i, hint) in [(1, None), (2, Some(now + gap))] {
        let taken = store.take_slot(&ask(now, reach, hint)).await.unwrap();
        assert!(
            matches!(taken.slot, Slot::Go { at, from: SlotFrom::Due, .. } if at == now + gap * i),
            "{taken:?}"
        );
    }
    // Eight asking at once, each given its own slot, an interval apart.
    let far = Duration::from_secs(5);
    let (blind, guessed) = (ask(now, far, None), ask(now, far, Some(now)));
    let taken = tokio::join!(
        store.take_slot(&blind),
        store.take_slot(&blind),
        store.take_slot(&guessed),
        store.take_slot(&guessed),
        store.take_slot(&blind),
        store.take_slot(&guessed),
        store.take_slot(&blind),
        store.take_slot(&guessed),
    );
    let mut slots: Vec<Duration> = [
        taken.0, taken.1, taken.2, taken.3, taken.4, taken.5, taken.6, taken.7,
    ]
    .into_iter()
    .map(|t| match t.unwrap().slot {
        Slot::Go { at, .. } => at,
        wait => panic!("{wait:?}"),
    })
    .collect();
    slots.sort();
    let expected: Vec<Duration> = (3..11u32).map(|i| now + gap * i).collect();
    assert_eq!(slots, expected);
    // Out of reach: how long until one is, and nothing taken.
    let refused = store.take_slot(&ask(now, reach, None)).await.unwrap();
    assert_eq!(refused.slot, Slot::Wait(gap * 11 - reach));
    assert_eq!(refused.due, Some(now + gap * 11));
    // A cut's cool-down: no slot before its end, the limiter kept.
    let cool = Shared {
        base: 10.0,
        cool_until: Duration::from_millis(1_764_000_010_000),
        cut_at: Duration::from_millis(1_764_000_009_500),
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(None, &cool).await.unwrap());
    let later = Duration::from_millis(1_764_000_009_000);
    let waiting = store.take_slot(&ask(later, reach, None)).await.unwrap();
    assert_eq!(waiting.slot, Slot::Wait(Duration::from_millis(500)));
    // (Stamped with the busy slots granted so far.)
    let cool = Shared {
        busy_at_cut: waiting.busy,
        ..cool
    };
    assert_eq!(waiting.budget, Some(cool));
    let booked = store
        .take_slot(&ask(later, Duration::from_secs(2), None))
        .await
        .unwrap();
    assert!(
        matches!(booked.slot, Slot::Go { at, next, .. }
            if at == cool.cool_until && next == cool.cool_until + gap),
        "{booked:?}"
    );
    let next = store
        .take_slot(&ask(later, Duration::from_secs(2), None))
        .await
        .unwrap();
    assert!(
        matches!(next.slot, Slot::Go { at, .. } if at == cool.cool_until + gap),
        "{next:?}"
    );
    // Slots booked far ahead, then a cut: the limiter starts again at the
    // end of the new cool-down (the old slots are void).
    for _ in 0..20 {
        store
            .take_slot(&ask(later, Duration::from_secs(10), None))
            .await
            .unwrap();
    }
    let recut = Shared {
        base: 5.0,
        cool_until: Duration::from_millis(1_764_000_010_500),
        cut_at: Duration::from_millis(1_764_000_010_000),
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(Some(&cool), &recut).await.unwrap());
    let after = store
        .take_slot(&ask(later, Duration::from_secs(2), None))
        .await
        .unwrap();
    assert!(
        matches!(after.slot, Slot::Go { at, .. } if at == recut.cool_until),
        "{after:?}"
    );
    // A cool-down made longer without a cut leaves the limiter where it is.
    let longer = Shared {
        cool_until: Duration::from_millis(1_764_000_010_600),
        ..recut
    };
    assert!(store.swap_budget(Some(&recut), &longer).await.unwrap());
    let kept = store
        .take_slot(&ask(later, Duration::from_secs(2), None))
        .await
        .unwrap();
    assert!(
        matches!(kept.slot, Slot::Go { at, .. } if at == longer.cool_until),
        "{kept:?}"
    );
}

/// `asks` taken all at once (a store's answers in the order asked).
fn take_at_once<'a, S: OrderStore>(
    store: &'a S,
    asks: &'a [crate::store::SlotAsk],
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<crate::store::Taken>> + 'a>> {
    Box::pin(async move {
        match asks {
            [] => Vec::new(),
            [one] => vec![store.take_slot(one).await.unwrap()],
            _ => {
                let (left, right) = asks.split_at(asks.len() / 2);
                let (mut left, right) =
                    tokio::join!(take_at_once(store, left), take_at_once(store, right));
                left.extend(right);
                left
            }
        }
    })
}

pub async fn many_asking_at_once_each_get_their_own_slot_or_are_told_it_was_a_race<
    S: OrderStore,
>(
    store: &S,
) {
    use crate::domain::budget::Slot;
    use crate::store::SlotAsk;
    let now = Duration::from_millis(1_764_000_000_000);
    let gap = Duration::from_millis(10);
    let ask = |now: Duration, create: bool| SlotAsk {
        now,
        interval: gap,
        ahead: Duration::from_secs(3600),
        hint: None,
        run_hint: None,
        create,
    };
    // Sixteen at once on an idle limiter: half from the same instant, half
    // from instants closer together than an interval; creates and reads.
    let asks: Vec<SlotAsk> = (0..16u32)
        .map(|i| {
            let from = if i % 2 == 0 {
                now
            } else {
                now + Duration::from_millis(3) * i
            };
            ask(from, i % 4 < 2)
        })
        .collect();
    let taken = take_at_once(store, &asks).await;
    let mut slots = Vec::new();
    let mut serials = Vec::new();
    for taken in &taken {
        match taken.slot {
            Slot::Go { at, .. } => {
                slots.push(at);
                serials.push(taken.serial.expect("a granted slot is counted"));
            }
            // Out of reach is not possible here: only a lost race.
            Slot::Wait(_) => assert!(taken.contended, "{taken:?}"),
        }
    }
    assert!(!slots.is_empty(), "{taken:?}");
    slots.sort();
    serials.sort();
    // No slot given twice, none closer than an interval to the next.
    for pair in slots.windows(2) {
        assert!(pair[1] >= pair[0] + gap, "{slots:?}");
    }
    // Every grant counted once: one to how many were granted.
    assert_eq!(serials, (1..=slots.len() as u64).collect::<Vec<_>>());
    // And none taken unsaid: the next is the interval after the last.
    let next = store.take_slot(&ask(now, true)).await.unwrap();
    let last = *slots.last().unwrap();
    assert!(
        matches!(next.slot, Slot::Go { at, .. } if at == last + gap),
        "{next:?} after {slots:?}"
    );
    assert_eq!(next.serial, Some(slots.len() as u64 + 1), "{next:?}");
}

pub async fn every_slot_granted_is_counted_once_and_the_count_never_restarts<S: OrderStore>(
    store: &S,
) {
    use crate::domain::budget::Shared;
    use crate::store::SlotAsk;
    let now = Duration::from_millis(1_764_000_000_000);
    let ask = |ahead: Duration| SlotAsk {
        now,
        interval: Duration::from_millis(50),
        ahead,
        hint: None,
        run_hint: None,
        create: false,
    };
    let far = ask(Duration::from_secs(5));
    // Six asking at once: serials one to six, one each.
    let taken = tokio::join!(
        store.take_slot(&far),
        store.take_slot(&far),
        store.take_slot(&far),
        store.take_slot(&far),
        store.take_slot(&far),
        store.take_slot(&far),
    );
    let mut serials: Vec<Option<u64>> = [taken.0, taken.1, taken.2, taken.3, taken.4, taken.5]
        .into_iter()
        .map(|t| t.unwrap().serial)
        .collect();
    serials.sort();
    assert_eq!(serials, (1..=6).map(Some).collect::<Vec<_>>());
    // A slot out of reach is not granted, so not counted.
    let refused = store.take_slot(&ask(Duration::ZERO)).await.unwrap();
    assert_eq!(refused.serial, None, "{refused:?}");
    // A cut moves the limiter, not the count.
    let cut = Shared {
        base: 10.0,
        cool_until: now + Duration::from_secs(1),
        cut_at: now,
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(None, &cut).await.unwrap());
    let after = store.take_slot(&far).await.unwrap();
    assert_eq!(after.serial, Some(7), "{after:?}");
}

pub async fn busy_slots_are_counted_and_a_cut_is_stamped_with_their_count<S: OrderStore>(
    store: &S,
) {
    use crate::domain::budget::{Shared, Slot, SlotFrom};
    use crate::store::{SlotAsk, Taken};
    let t0 = Duration::from_millis(1_764_000_000_000);
    let gap = Duration::from_millis(100);
    let ask = |now: Duration, last: Option<&Taken>| SlotAsk {
        now,
        interval: gap,
        ahead: Duration::from_secs(5),
        hint: last.and_then(|t| t.due),
        run_hint: last.and_then(|t| t.run_from),
        create: false,
    };
    let at = |taken: &Taken| match taken.slot {
        Slot::Go { at, .. } => at,
        wait => panic!("{wait:?}"),
    };
    // The limiter idle: a slot now, which begins a run (and the stack's
    // sending); not busy.
    let first = store.take_slot(&ask(t0, None)).await.unwrap();
    assert!(matches!(
        first.slot,
        Slot::Go {
            from: SlotFrom::Now,
            ..
        }
    ));
    assert_eq!((first.busy, first.run_from), (0, Some(t0)));
    assert_eq!(first.sending_from, Some(t0));
    // Booked on without a break: the slots two seconds or more into the
    // run are busy (2.0 s to 2.4 s), the first ones are not. Asked as the
    // last answer said, or without a hint (each guess checked by the
    // store).
    let mut last = first;
    for i in 1..=24u32 {
        let hint = if i % 3 == 0 { None } else { Some(&last) };
        // Creates and reads alike.
        let taken = store
            .take_slot(&SlotAsk {
                create: i % 2 == 0,
                ..ask(t0, hint)
            })
            .await
            .unwrap();
        assert_eq!(at(&taken), t0 + gap * i);
        assert_eq!(taken.busy, u64::from(i.saturating_sub(19)), "slot {i}");
        assert_eq!(taken.run_from, Some(t0));
        assert_eq!(taken.sending_from, Some(t0));
        last = taken;
    }
    // Out of reach: nothing counted, the count told.
    let refused = store
        .take_slot(&SlotAsk {
            ahead: Duration::ZERO,
            ..ask(t0, Some(&last))
        })
        .await
        .unwrap();
    assert!(matches!(refused.slot, Slot::Wait(_)), "{refused:?}");
    assert_eq!(refused.busy, 5);
    // Idle half a second: a new run, not busy, but the stack has not
    // stopped sending.
    let three = t0 + Duration::from_secs(3);
    let resumed = store.take_slot(&ask(three, Some(&last))).await.unwrap();
    assert_eq!(at(&resumed), three);
    assert_eq!((resumed.busy, resumed.run_from), (5, Some(three)));
    assert_eq!(resumed.sending_from, Some(t0));
    // A cut is stamped with the store's count, not the writer's guess, and
    // begins a run at the end of its cool-down (and, the cool-down a
    // quiet second long, the stack's sending).
    let cut = Shared {
        base: 5.0,
        cool_until: t0 + Duration::from_secs(5),
        cut_at: t0 + Duration::from_secs(4),
        busy_at_cut: 99,
    };
    assert!(store.swap_budget(None, &cut).await.unwrap());
    let stored = store.budget().await.unwrap().unwrap();
    assert_eq!(stored.busy_at_cut, 5, "{stored:?}");
    let after = store
        .take_slot(&ask(t0 + Duration::from_millis(4_500), Some(&resumed)))
        .await
        .unwrap();
    assert_eq!(at(&after), cut.cool_until);
    assert_eq!((after.busy, after.run_from), (5, Some(cut.cool_until)));
    assert_eq!(after.sending_from, Some(cut.cool_until));
    // A cool-down made longer without a cut keeps the stamp.
    let longer = Shared {
        cool_until: cut.cool_until + Duration::from_secs(1),
        busy_at_cut: 7,
        ..stored
    };
    assert!(store.swap_budget(Some(&stored), &longer).await.unwrap());
    assert_eq!(store.budget().await.unwrap().unwrap().busy_at_cut, 5);
    // Long after, a bunch of calls at once: a new run (and the stack sends
    // again after a quiet spell), none of them busy.
    let later = t0 + Duration::from_secs(60);
    let blind = ask(later, None);
    let bunch = tokio::join!(
        store.take_slot(&blind),
        store.take_slot(&blind),
        store.take_slot(&blind),
        store.take_slot(&blind),
        store.take_slot(&blind),
    );
    for taken in [bunch.0, bunch.1, bunch.2, bunch.3, bunch.4] {
        let taken = taken.unwrap();
        assert!(at(&taken) >= later, "{taken:?}");
        assert_eq!(taken.run_from, Some(later));
        assert_eq!(taken.busy, 5);
        // The one given to the idle limiter knows the stack sends again
        // (the others may be told a moment later: it is one more write).
        if matches!(
            taken.slot,
            Slot::Go {
                from: SlotFrom::Now,
                ..
            }
        ) {
            assert_eq!(taken.sending_from, Some(later));
        }
    }
    let next = store.take_slot(&ask(later, None)).await.unwrap();
    assert_eq!(next.sending_from, Some(later));
}

pub async fn a_cut_keeps_the_span_creates_had_booked_for_the_creates_it_voided<S: OrderStore>(
    store: &S,
) {
    use crate::domain::budget::{Shared, Slot};
    use crate::store::SlotAsk;
    let t0 = Duration::from_millis(1_764_000_000_000) + Duration::from_micros(123);
    let ms = Duration::from_millis;
    let gap = ms(100);
    let ask = |now: Duration, ahead: Duration, hint: Option<Duration>, create: bool| SlotAsk {
        now,
        interval: gap,
        ahead,
        hint,
        run_hint: None,
        create,
    };
    let at = |taken: &crate::store::Taken| match taken.slot {
        Slot::Go { at, .. } => at,
        wait => panic!("{wait:?}"),
    };
    // Creates book the next second (to t0 + 1 s); a read books the slot
    // after them.
    for i in 0..10u32 {
        let taken = store
            .take_slot(&ask(t0, ms(8_000), None, true))
            .await
            .unwrap();
        assert_eq!(at(&taken), t0 + gap * i);
        assert_eq!(taken.creates_until, None, "no cut, no span");
    }
    let read = store
        .take_slot(&ask(t0, ms(8_000), None, false))
        .await
        .unwrap();
    assert_eq!(at(&read), t0 + ms(1_000));
    // A 429: cut at t0 + 200 ms, cooling down 500 ms. The creates' slots
    // (to t0 + 1 s) move on by the cool-down: the span is theirs to
    // t0 + 1.5 s.
    let cut = Shared {
        base: 10.0,
        cool_until: Duration::from_millis(1_764_000_000_700),
        cut_at: Duration::from_millis(1_764_000_000_200),
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(None, &cut).await.unwrap());
    let until = t0 + ms(1_500);
    // A read, guessing where the limiter restarted or not, waits for the
    // span's end: nothing taken.
    let asked = t0 + ms(300);
    for hint in [None, Some(cut.cool_until)] {
        let held = store
            .take_slot(&ask(asked, ms(1_000), hint, false))
            .await
            .unwrap();
        assert_eq!(held.slot, Slot::Wait(until - asked - ms(1_000)), "{held:?}");
        assert_eq!(held.creates_until, Some(until));
        assert_eq!(held.serial, None);
    }
    // Idle past the restart, asking now: held too.
    let idle = t0 + ms(800);
    let held = store
        .take_slot(&ask(idle, ms(500), None, false))
        .await
        .unwrap();
    assert_eq!(held.slot, Slot::Wait(until - idle - ms(500)), "{held:?}");
    // The creates take the span, one after the other.
    for i in 0..7u32 {
        let taken = store
            .take_slot(&ask(idle, ms(8_000), None, true))
            .await
            .unwrap();
        assert_eq!(at(&taken), idle + gap * i, "create {i}");
        assert_eq!(taken.creates_until, Some(until));
    }
    // Filled: the next slot, at the span's end, is a read's.
    let read = store
        .take_slot(&ask(idle, ms(1_000), None, false))
        .await
        .unwrap();
    assert_eq!(at(&read), until);
    // A cut with no create booked since the last: the span it keeps ends
    // before its own cool-down does, and holds no read back.
    let quiet = t0 + ms(5_000);
    let recut = Shared {
        base: 5.0,
        cool_until: quiet + ms(500),
        cut_at: quiet,
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(Some(&cut), &recut).await.unwrap());
    let read = store
        .take_slot(&ask(quiet, ms(1_000), None, false))
        .await
        .unwrap();
    assert_eq!(at(&read), quiet + ms(500));
    // Creates book 0.4 s from t0 + 10 s; a cut a fraction of a millisecond
    // into a millisecond, cooling down 1 s (as kept: whole milliseconds)
    // keeps the span to t0 + 10.4 s + 1 s.
    let busy = t0 + ms(10_000);
    for _ in 0..4 {
        store
            .take_slot(&ask(busy, ms(8_000), None, true))
            .await
            .unwrap();
    }
    let sharp = Shared {
        base: 5.0,
        cool_until: Duration::from_millis(1_764_000_011_000) + Duration::from_micros(100),
        cut_at: Duration::from_millis(1_764_000_010_000) + Duration::from_micros(900),
        busy_at_cut: 0,
    };
    assert!(store.swap_budget(Some(&recut), &sharp).await.unwrap());
    let until = busy + ms(400) + ms(1_000);
    let held = store
        .take_slot(&ask(busy, ms(1_000), None, false))
        .await
        .unwrap();
    assert_eq!(held.creates_until, Some(until), "{held:?}");
    // More 429s make the cool-down 2 s longer (no cut): the span moves on
    // with it, and a read at the new end of the cool-down is held.
    let stored = held.budget.unwrap();
    let longer = Shared {
        cool_until: Duration::from_millis(1_764_000_013_000),
        ..stored
    };
    assert!(store.swap_budget(Some(&stored), &longer).await.unwrap());
    let until = until + ms(2_000);
    let late = Duration::from_millis(1_764_000_012_900);
    let held = store
        .take_slot(&ask(late, ms(200), None, false))
        .await
        .unwrap();
    assert_eq!(held.creates_until, Some(until), "{held:?}");
    assert_eq!(held.slot, Slot::Wait(until - late - ms(200)), "{held:?}");
    // A create takes the end of the cool-down.
    let create = store
        .take_slot(&ask(late, ms(8_000), None, true))
        .await
        .unwrap();
    assert_eq!(at(&create), longer.cool_until);
}
