//! create-order under the stack's FoxReload budget, in process: the real
//! governor over the in-memory store and the scripted supplier, on a
//! paused clock.

use create_order::create::{CreateOptions, Creator};
use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::Principal;
use foxrelay_shared::domain::budget::Priority;
use foxrelay_shared::domain::idempotency::IdempotencyKey;
use foxrelay_shared::foxreload::Operation;
use foxrelay_shared::governor::{Governed, Governor, GovernorSettings};
use foxrelay_shared::store::{BudgetStore, OrderReader, OrderRecord, SlotAsk};
use foxrelay_shared::testing::seed::new_order;
use foxrelay_shared::testing::{
    MemoryPublisher, MemoryQueue, MemoryStore, ScriptedSupplier, TestClock,
};
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;
use tokio::time::Instant;

type Supplier = Governed<ScriptedSupplier<TestClock>, MemoryStore, TestClock>;
type GovernedCreator = Creator<MemoryStore, MemoryQueue, Supplier, TestClock, MemoryPublisher>;

fn creator(rps: f64) -> GovernedCreator {
    let clock = TestClock::starting_at(datetime!(2026-12-01 12:00 UTC));
    let store = MemoryStore::new();
    let governor = Governor::new(
        store.clone(),
        clock,
        GovernorSettings { max_rps: rps },
        None,
    );
    Creator {
        store,
        queue: MemoryQueue::new(),
        supplier: Governed {
            inner: ScriptedSupplier::new(clock),
            governor: Some(Arc::new(governor)),
        },
        clock,
        publisher: MemoryPublisher::new(),
        options: CreateOptions::default(),
        plans: Default::default(),
    }
}

fn alice() -> Principal {
    Principal::iam("arn:aws:iam::111111111111:user/alice").unwrap()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Other containers' creates take the next `seconds` of slots at `rps`.
async fn booked(c: &GovernedCreator, rps: f64, seconds: u32) {
    let now = (c.clock.now() - time::OffsetDateTime::UNIX_EPOCH)
        .try_into()
        .unwrap();
    for _ in 0..(rps as u32 * seconds) {
        let ask = SlotAsk {
            now,
            interval: Duration::from_secs_f64(1.0 / rps),
            ahead: Duration::from_secs(3_600),
            hint: None,
            run_hint: None,
            create: true,
        };
        c.store.take_slot(&ask).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_create_waits_for_its_slot_then_its_post_leaves_at_the_time_recorded() {
    let c = creator(2.0);
    booked(&c, 2.0, 3).await;
    let start = Instant::now();
    let answer = c
        .create(new_order("a"), None, alice(), deadline())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    // Its slot came 3 s on; the POST recorded then, and sent then.
    assert!(Instant::now() - start >= Duration::from_secs(3));
    let order = c.store.order(&answer.order_id).await.unwrap().unwrap();
    assert_eq!(order.posted_at.len(), 1, "one POST recorded");
    assert_eq!(order.posts_known, 1);
    let sent = c.supplier.inner.bought()[0].created_at.clone().unwrap();
    let recorded = order.posted_at[0];
    assert!(
        (sent.parsed.unwrap() - recorded).abs() < time::Duration::milliseconds(800),
        "{sent:?} {recorded}"
    );
    assert_eq!(c.supplier.inner.calls(Operation::CreateOrder), 1);
    assert_eq!(Priority::Create.ahead(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn a_create_with_no_slot_within_reach_is_a_503_busy_that_stores_and_buys_nothing() {
    let c = creator(2.0);
    booked(&c, 2.0, 20).await;
    let refused = refused(&c, "a", "k1", deadline()).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.code, "busy", "{}", refused.body());
    assert_tells_when_to_come_back(&refused);
    assert!(c.store.orders().is_empty(), "nothing stored");
    assert!(c.supplier.inner.bought().is_empty(), "nothing bought");
    assert_eq!(c.supplier.inner.calls(Operation::CreateOrder), 0);
    // The budget never names a create's failure as FoxReload's.
    assert!(!refused.is_supplier_failure());
    assert!(c.store.budget().await.unwrap().is_none(), "no cut");
}

/// A 503 that says when to come back.
fn assert_tells_when_to_come_back(refused: &create_order::error::ApiError) {
    assert!(
        refused
            .headers
            .iter()
            .any(|(name, _)| *name == "retry-after"),
        "{:?}",
        refused.headers
    );
}

/// A creator at `rps` whose budget store took a second to answer the one
/// create it made (with time to spare): its containers remember the round
/// trip.
async fn after_a_slow_round_trip(rps: f64) -> GovernedCreator {
    let c = creator(rps);
    c.store.slow("take_slot", Duration::from_secs(1));
    let first = c
        .create(new_order("a"), None, alice(), deadline())
        .await
        .unwrap();
    assert_eq!(first.status, 202);
    c
}

/// Half a second more than a FoxReload call's time: less than the round
/// trip [`after_a_slow_round_trip`] remembers.
fn short_deadline() -> Instant {
    Instant::now() + CreateOptions::default().reconcile.call_budget + Duration::from_millis(500)
}

/// A second and a half more than a FoxReload call's time: what a create
/// has left when the work before took the rest.
fn late_deadline() -> Instant {
    Instant::now() + CreateOptions::default().reconcile.call_budget + Duration::from_millis(1_500)
}

/// `c`'s create of order `name` with key `key`, due by `deadline`, refused.
async fn refused(
    c: &GovernedCreator,
    name: &str,
    key: &str,
    deadline: Instant,
) -> create_order::error::ApiError {
    c.create(
        new_order(name),
        Some(IdempotencyKey::parse(key).unwrap()),
        alice(),
        deadline,
    )
    .await
    .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn a_create_with_less_time_left_than_the_budgets_store_takes_is_not_sent_and_not_called_busy()
{
    let c = after_a_slow_round_trip(10.0).await;
    // Too little time left to ask the store for a slot, though the budget
    // is not spent (FoxReload was sent one request).
    let refused = refused(&c, "b", "k2", short_deadline()).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.code, "unavailable", "{}", refused.body());
    assert!(!refused.is_budget_spent(), "not counted as throttled");
    assert!(!refused.is_supplier_failure());
    assert_tells_when_to_come_back(&refused);
    assert_eq!(c.store.orders().len(), 1, "nothing stored for it");
    assert_eq!(c.supplier.inner.calls(Operation::CreateOrder), 1);
    // With a fast store, the same time left is enough.
    let fast = creator(10.0)
        .create(new_order("b"), None, alice(), short_deadline())
        .await
        .unwrap();
    assert_eq!(fast.status, 202);
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_deadline_comes_before_a_slot_a_create_is_given_is_not_called_busy() {
    // Others booked the next 3 s: a create with the time one is given
    // waits for its slot and is bought.
    let c = creator(2.0);
    booked(&c, 2.0, 3).await;
    let waited = c
        .create(new_order("a"), None, alice(), deadline())
        .await
        .unwrap();
    assert_eq!(waited.status, 202);
    // One whose work before left it a second and a half (a slow store)
    // cannot wait the 3 s: not sent in time, which the budget did not
    // cause (FoxReload's limit is not in play), so not `busy`.
    let c = creator(2.0);
    booked(&c, 2.0, 3).await;
    let late_answer = refused(&c, "b", "k1", late_deadline()).await;
    assert_eq!(late_answer.status, 503);
    assert_eq!(late_answer.code, "unavailable", "{}", late_answer.body());
    assert!(!late_answer.is_budget_spent(), "not counted as throttled");
    assert_tells_when_to_come_back(&late_answer);
    assert!(c.store.orders().is_empty(), "nothing stored");
    assert_eq!(c.supplier.inner.calls(Operation::CreateOrder), 0);
    // Booked past a create's reach (15 s), the same request is `busy`.
    let c = creator(2.0);
    booked(&c, 2.0, 20).await;
    let busy = refused(&c, "c", "k2", late_deadline()).await;
    assert_eq!(busy.code, "busy", "{}", busy.body());
    assert!(busy.is_budget_spent());
}

#[tokio::test(start_paused = true)]
async fn a_create_that_cannot_have_a_slot_before_its_deadline_is_busy_even_when_the_store_is_slow()
{
    let c = after_a_slow_round_trip(2.0).await;
    // Others booked the next 20 s (the store quick again, its slow round
    // trip remembered), as this container learns when its next create
    // finds no slot within 15 s.
    c.store.slow("take_slot", Duration::ZERO);
    booked(&c, 2.0, 20).await;
    let busy = refused(&c, "b", "k2", deadline()).await;
    assert_eq!(busy.code, "busy", "{}", busy.body());
    // The next has less time left than the round trip: even a fast store
    // would find it no slot in time. The budget held it.
    let refused = refused(&c, "c", "k3", short_deadline()).await;
    assert_eq!(refused.code, "busy", "{}", refused.body());
    assert!(refused.is_budget_spent());
}

/// One order bought at 10/s, its slot 1 s on (other containers took the
/// ones before), with the store's `method` taking `by`: the creator, and
/// the order as stored.
async fn bought_with_slow(method: &'static str, by: Duration) -> (GovernedCreator, OrderRecord) {
    let c = creator(10.0);
    booked(&c, 10.0, 1).await;
    c.store.slow(method, by);
    let answer = c
        .create(new_order("a"), None, alice(), deadline())
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    let order = c.store.order(&answer.order_id).await.unwrap().unwrap();
    (c, order)
}

/// Another container cuts the budget at `at` (from the test's start), to
/// 5/s, cooling down until `cool_until`.
fn cut_later(
    c: &GovernedCreator,
    at: Duration,
    cool_until: Duration,
) -> tokio::task::JoinHandle<()> {
    use foxrelay_shared::domain::budget::Shared;
    let store = c.store.clone();
    let start: Duration = (c.clock.now() - time::OffsetDateTime::UNIX_EPOCH)
        .try_into()
        .unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(at).await;
        let cut = Shared {
            base: 5.0,
            cool_until: start + cool_until,
            cut_at: start + at,
            busy_at_cut: 0,
        };
        assert!(store.swap_budget(None, &cut).await.unwrap());
    })
}

#[tokio::test(start_paused = true)]
async fn a_create_records_its_slot_while_waiting_for_it_so_a_slow_store_does_not_delay_its_post() {
    // Its slot comes 1 s on; its intent is recorded slowly meanwhile.
    let (c, order) = bought_with_slow("begin", Duration::from_millis(300)).await;
    // The intent recorded the slot's time as the POST's, and the POST
    // left then: not a store write later.
    assert_eq!(order.created_at, datetime!(2026-12-01 12:00 UTC));
    assert_eq!(order.posted_at, vec![datetime!(2026-12-01 12:00:01 UTC)]);
    let sent = c.supplier.inner.bought()[0].created_at.clone().unwrap();
    assert_eq!(sent.parsed.unwrap(), datetime!(2026-12-01 12:00:01 UTC));
    assert_eq!(c.supplier.inner.calls(Operation::CreateOrder), 1);
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_slot_a_cut_voids_before_it_comes_is_sent_in_a_new_slot_once() {
    let mut c = creator(10.0);
    // The voided attempt is given back: one attempt is enough.
    c.options.max_create_attempts = 1;
    booked(&c, 10.0, 1).await;
    // Another container cuts the budget while the create waits for its
    // slot (1 s on): the slot is void; the create takes a new one, from
    // the end of the cool-down, and records it.
    let cutter = cut_later(&c, Duration::from_millis(500), Duration::from_millis(1_600));
    let answer = c
        .create(new_order("a"), None, alice(), deadline())
        .await
        .unwrap();
    cutter.await.unwrap();
    assert_eq!(answer.status, 202);
    assert_eq!(c.supplier.inner.calls(Operation::CreateOrder), 1);
    assert_eq!(c.supplier.inner.bought().len(), 1);
    let order = c.store.order(&answer.order_id).await.unwrap().unwrap();
    assert_eq!(
        order.posted_at,
        vec![
            datetime!(2026-12-01 12:00:01 UTC),
            datetime!(2026-12-01 12:00:01.6 UTC)
        ],
        "the voided slot's, never sent; the new one's"
    );
    let sent = c.supplier.inner.bought()[0].created_at.clone().unwrap();
    assert_eq!(sent.parsed.unwrap(), datetime!(2026-12-01 12:00:01.6 UTC));
}

#[tokio::test(start_paused = true)]
async fn a_slow_read_of_the_budget_never_makes_a_post_leave_past_the_time_recorded_for_it() {
    // Its slot comes 1 s on; every read of the shared budget takes 0.5 s.
    let (c, order) = bought_with_slow("budget", Duration::from_millis(500)).await;
    let recorded = *order.posted_at.last().unwrap();
    let sent = c.supplier.inner.bought()[0].created_at.clone().unwrap();
    let sent = sent.parsed.unwrap();
    assert!(sent >= recorded, "{sent} before {recorded}");
    assert!(
        sent - recorded < time::Duration::milliseconds(800),
        "{sent} long after {recorded}"
    );
}
