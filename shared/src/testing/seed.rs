//! Orders put in place for a test as create-order leaves them, through the
//! real placement code (record the POST, send it, claim, pay), so a test of
//! poll-order or of the sweep starts from a state the system really
//! reaches.

use crate::clock::Clock;
use crate::domain::{NewOrder, OrderLine, PollKind, PollMessage, Principal};
use crate::foxreload::Supplier;
use crate::placement::{Posted, ReconcileOptions, pay};
use crate::queue::PollQueue;
use crate::store::{IdempotencyStore, OrderRecord, PlacementStore, SupplierProblem};
use std::time::Duration;
use time::OffsetDateTime;

/// The caller every seeded order is placed by.
pub fn owner() -> Principal {
    Principal::from_stored("arn:aws:iam::000000000000:role/contract")
}

/// The order every seeded order asks for: two units of `product_fast`.
pub fn new_order(id: &str) -> NewOrder {
    NewOrder {
        lines: vec![OrderLine {
            product_id: "product_fast".into(),
            quantity: 2,
            note: None,
        }],
        customer_reference: Some(format!("ref-{id}")),
        total_price: Some("10.00".into()),
    }
}

/// A new order's intent, created at `created`, with the key `key-{id}`.
pub fn intent(id: &str, created: OffsetDateTime) -> OrderRecord {
    OrderRecord::intent(
        id.to_owned(),
        &new_order(id),
        Some(format!("key-{id}")),
        owner(),
        created,
    )
}

/// How seeding went.
#[derive(Debug)]
pub enum Seeded {
    /// Bought, claimed, paid: its first poll message is queued.
    Placed(OrderRecord),
    /// The create's outcome is unknown: left `reconciling`, its reconcile
    /// message queued.
    Reconciling(OrderRecord),
}

impl Seeded {
    pub fn order(&self) -> &OrderRecord {
        match self {
            Self::Placed(order) | Self::Reconciling(order) => order,
        }
    }
}

/// Places order `id` now, as create-order does: its intent, one POST (as
/// the supplier is scripted to answer it), then payment and a first poll
/// message after `first_poll`, or, when the outcome is unknown,
/// `reconciling` with a reconcile message. Panics on anything else: the
/// seed is the test's premise.
pub async fn place<S, F, Q, C>(
    store: &S,
    supplier: &F,
    queue: &Q,
    clock: &C,
    id: &str,
    first_poll: Duration,
) -> Seeded
where
    S: IdempotencyStore + PlacementStore,
    F: Supplier,
    Q: PollQueue,
    C: Clock,
{
    place_intent(
        store,
        supplier,
        queue,
        clock,
        intent(id, clock.now()),
        first_poll,
    )
    .await
}

/// [`place`] for an intent the test prepared (a poll plan on it, say).
pub async fn place_intent<S, F, Q, C>(
    store: &S,
    supplier: &F,
    queue: &Q,
    clock: &C,
    order: OrderRecord,
    first_poll: Duration,
) -> Seeded
where
    S: IdempotencyStore + PlacementStore,
    F: Supplier,
    Q: PollQueue,
    C: Clock,
{
    let now = order.created_at;
    let id = order.order_id.as_str();
    store.begin(&order, None).await.expect("intent stored");
    let request = order.supplier_request(false);
    let mut posts = 1;
    let posted = ReconcileOptions::default()
        .post(store, supplier, clock, id, &request, &mut posts, Some(now))
        .await
        .expect("POST recorded");
    let kind = match posted {
        Posted::Claimed(created) => {
            pay(store, supplier, clock, id, &created).await;
            PollKind::Poll
        }
        Posted::Failed(error) if error.class() == crate::foxreload::ErrorClass::Ambiguous => {
            store
                .mark_reconciling(id, posts, &SupplierProblem::from(&error), clock.now())
                .await
                .expect("left reconciling");
            PollKind::Reconcile
        }
        other => panic!("seeding {id}: the POST ended {other:?}"),
    };
    store
        .schedule_poll(id, 1, now + first_poll, clock.now())
        .await
        .expect("first poll scheduled");
    queue
        .send(
            &PollMessage {
                order_id: id.to_owned(),
                seq: 1,
                kind,
            },
            first_poll,
        )
        .await
        .expect("first poll sent");
    let stored = store
        .order(id)
        .await
        .expect("order read")
        .expect("order stored");
    match kind {
        PollKind::Poll => Seeded::Placed(stored),
        PollKind::Reconcile => Seeded::Reconciling(stored),
    }
}
