//! What the store keeps and answers: orders, idempotency records, and the
//! outcomes of its conditional writes. Plain data: no adapter in sight.

use crate::domain::event::{CodeKind, DeliveredCodeRecord, ItemOutcome};
use crate::domain::{OrderLine, OrderStatus, Principal};
use crate::foxreload::{SupplierError, SupplierStatus};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// One of our orders as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    pub order_id: String,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub customer_reference: Option<String>,
    pub total_price: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub supplier_order_id: Option<String>,
    /// FoxReload's status as it said it (kept even when unknown to us).
    pub supplier_status: Option<String>,
    pub payment_error: Option<SupplierProblem>,
    pub last_error: Option<SupplierProblem>,
    pub cancel_reason: Option<String>,
    /// The sequence number of the newest poll message sent.
    pub poll_seq: u64,
    pub next_poll_due_at: Option<OffsetDateTime>,
    /// The idempotency key's store name: `{principal scope}#{key}` (the
    /// bare key on orders placed before keys were scoped by caller).
    pub idempotency_key: Option<String>,
    /// Who placed it; only they may read it. `None` on orders placed before
    /// callers were recorded.
    pub principal: Option<Principal>,
    /// The poll message number being worked on, and until when.
    pub claimed_seq: u64,
    pub lease_until: Option<OffsetDateTime>,
    /// Polls made, the nominal delay before the next, and the last poll.
    pub poll_count: u64,
    pub last_delay: Option<Duration>,
    pub last_polled_at: Option<OffsetDateTime>,
    /// Failed polls in a row.
    pub consecutive_errors: u32,
    /// Why operations should look at the order, when they should.
    pub needs_attention: Option<String>,
    /// When each POST of this order was sent (our clock), the first with
    /// the intent: the windows reconciliation matches FoxReload's orders in.
    pub posted_at: Vec<OffsetDateTime>,
    /// False for an order placed by an earlier version, which did not
    /// record its POSTs' times: it is never bought again automatically.
    pub posts_recorded: bool,
    /// How many of its POSTs (from the first) had their outcome learned by
    /// the invocation that sent them. One recorded but not known, long
    /// after it could have been answered, may never have been sent: its
    /// invocation died in between. (All, on orders from before this was
    /// kept.)
    pub posts_known: usize,
    /// The POSTs (by index into `posted_at`) FoxReload answered `429`:
    /// refused before it did anything, sure to have made no order. They do
    /// not count against the POSTs an order may have in all.
    pub posts_refused: Vec<usize>,
    /// Handed to reconciliation by the sweep after its create-order
    /// invocation died: its client never had an answer, so reconciliation
    /// settles it but never buys it again.
    pub handed_over: bool,
    /// Set when the order ended.
    pub items: Vec<ItemOutcome>,
    pub code_count: u32,
    pub terminal_at: Option<OffsetDateTime>,
    /// Set when its event was published.
    pub notified_at: Option<OffsetDateTime>,
    /// When operations were last alerted that the order is stalled.
    pub stall_alerted_at: Option<OffsetDateTime>,
    /// Revivals of its chain in a row without a poll made in between, and
    /// the poll count at the last one.
    pub revivals: u32,
    pub revived_at_polls: Option<u64>,
    /// The poll times the order follows, in seconds from the start of its
    /// clock (payment, or placement until paid), and whether they were
    /// learned or are a warm-up's; `None`: the default schedule.
    pub poll_plan: Option<crate::domain::learning::OrderPlan>,
    /// The planned poll the live link is for (past the plan: the last
    /// one made; `None` before any, or without a plan).
    pub plan_step: Option<u32>,
    /// When FoxReload confirmed our payment.
    pub paid_at: Option<OffsetDateTime>,
    /// The last poll that read the order open at FoxReload.
    pub last_seen_open_at: Option<OffsetDateTime>,
}

impl OrderRecord {
    /// POSTs of this order that may have bought something: all but those
    /// FoxReload refused with a `429`.
    pub fn posts_that_may_have_bought(&self) -> usize {
        self.posted_at
            .len()
            .saturating_sub(self.posts_refused.len())
    }

    /// When the POSTs that may have bought were sent: the windows an order
    /// of this one can be in (a POST refused with a `429` made nothing).
    pub fn posts_that_may_have_bought_at(&self) -> Vec<OffsetDateTime> {
        self.posted_at
            .iter()
            .enumerate()
            .filter(|(i, _)| self.posts_refused.binary_search(i).is_err())
            .map(|(_, at)| *at)
            .collect()
    }

    /// When its last POST was sent, unless FoxReload refused it with a
    /// `429`: the only POST whose order this one can still own (a POST is
    /// made again only after the earlier ones were found to have made
    /// nothing).
    pub fn last_post_that_may_have_bought(&self) -> Option<OffsetDateTime> {
        let (index, at) = self
            .posted_at
            .iter()
            .enumerate()
            .max_by_key(|(_, at)| **at)?;
        self.posts_refused
            .binary_search(&index)
            .is_err()
            .then_some(*at)
    }

    /// The request FoxReload receives for this order, on every POST of it.
    pub fn supplier_request(&self, is_mock: bool) -> crate::foxreload::CreateOrderRequest {
        crate::domain::NewOrder {
            lines: self.lines.clone(),
            customer_reference: None,
            total_price: self.total_price.clone(),
        }
        .supplier_request(is_mock)
    }

    /// A new order in `creating`, as recorded before FoxReload is called.
    pub fn intent(
        order_id: String,
        order: &crate::domain::NewOrder,
        idempotency_key: Option<String>,
        principal: Principal,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            order_id,
            status: OrderStatus::Creating,
            lines: order.lines.clone(),
            customer_reference: order.customer_reference.clone(),
            total_price: order.total_price.clone(),
            created_at: now,
            updated_at: now,
            supplier_order_id: None,
            supplier_status: None,
            payment_error: None,
            last_error: None,
            cancel_reason: None,
            poll_seq: 0,
            next_poll_due_at: None,
            idempotency_key,
            principal: Some(principal),
            claimed_seq: 0,
            lease_until: None,
            poll_count: 0,
            last_delay: None,
            last_polled_at: None,
            consecutive_errors: 0,
            needs_attention: None,
            posted_at: vec![now],
            posts_recorded: true,
            posts_known: 0,
            posts_refused: Vec::new(),
            handed_over: false,
            items: Vec::new(),
            code_count: 0,
            terminal_at: None,
            notified_at: None,
            stall_alerted_at: None,
            revivals: 0,
            revived_at_polls: None,
            poll_plan: None,
            plan_step: None,
            paid_at: None,
            last_seen_open_at: None,
        }
    }

    /// When the order's poll clock started: payment, or placement while
    /// we have not paid.
    pub fn clock_start(&self) -> OffsetDateTime {
        self.paid_at.unwrap_or(self.created_at)
    }
}

/// What FoxReload said when it refused or failed, kept on the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupplierProblem {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<&SupplierError> for SupplierProblem {
    fn from(error: &SupplierError) -> Self {
        Self {
            kind: error.kind().to_owned(),
            status: error.status(),
            code: error.supplier_code().map(str::to_owned),
            detail: error.supplier_detail().map(str::to_owned),
        }
    }
}

/// FoxReload's status for an order as it said it (kept even when unknown
/// to us), and ours to store from it. Made only by [`Self::claimed`] and
/// [`Self::after_payment`], so a claim or a payment can never store an end
/// (an end comes only with its codes) nor leave a claimed order `creating`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupplierState {
    said: String,
    status: Option<OrderStatus>,
}

impl SupplierState {
    /// A FoxReload order just claimed: ours from its status, but never an
    /// end (an order ends only with its codes stored, by the poll that
    /// reads them).
    pub fn claimed(status: &SupplierStatus) -> Self {
        Self {
            said: status.as_str().to_owned(),
            status: Some(OrderStatus::open_from_supplier(status)),
        }
    }

    /// FoxReload's status after paying: ours follows unless it is an end
    /// (poll-order's to store, with the codes).
    pub fn after_payment(status: &SupplierStatus) -> Self {
        let ours = OrderStatus::from_supplier(status);
        Self {
            said: status.as_str().to_owned(),
            status: (!ours.is_terminal()).then_some(ours),
        }
    }

    /// FoxReload's status, as it said it.
    pub fn said(&self) -> &str {
        &self.said
    }

    /// Ours to store; `None` leaves ours as it is.
    pub fn status(&self) -> Option<OrderStatus> {
        self.status
    }
}

/// An idempotency record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub fingerprint: String,
    pub order_id: String,
    /// Who is working on it; a takeover changes it.
    pub holder: String,
    /// Until when the holder's claim stands while in progress.
    pub locked_until: OffsetDateTime,
    /// When the key is forgotten (TTL; also checked on read).
    pub expires_at: OffsetDateTime,
    /// The answer, once there is one.
    pub response: Option<StoredResponse>,
}

/// An HTTP answer kept for replays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// A claim on a new idempotency key.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    pub key: String,
    pub fingerprint: String,
    pub holder: String,
    pub locked_until: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// How [`IdempotencyStore::begin`](super::IdempotencyStore::begin) went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// The intent (and the key, if any) are stored.
    Started,
    /// The key is held by an earlier request.
    KeyTaken(IdempotencyRecord),
}

/// How [`PlacementStore::claim_supplier_order`](super::PlacementStore::claim_supplier_order) went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The supplier order is ours now.
    Claimed,
    /// Another of our orders holds that supplier order.
    TakenByAnother,
    /// Our order already holds a supplier order or has moved on.
    OrderMoved,
}

/// What one poll found, and the next link of the chain.
#[derive(Clone, Debug)]
pub struct PollRecord {
    /// Our status from FoxReload's, when it answered.
    pub status: Option<OrderStatus>,
    pub supplier_status: Option<String>,
    /// Why the poll failed, when it did.
    pub error: Option<SupplierProblem>,
    pub consecutive_errors: u32,
    pub needs_attention: Option<String>,
    pub next_seq: u64,
    pub next_due: OffsetDateTime,
    pub nominal_delay: Duration,
    /// The planned poll the next link is for (`None`: no plan, or past it).
    pub plan_step: Option<u32>,
    /// Whether FoxReload was asked at all: a link whose call the stack's
    /// budget held back moves the chain on without counting a poll.
    pub polled: bool,
    pub now: OffsetDateTime,
}

/// An order's end, as stored.
#[derive(Clone, Debug)]
pub struct Terminal {
    pub status: OrderStatus,
    pub supplier_status: Option<String>,
    pub cancel_reason: Option<String>,
    pub items: Vec<ItemOutcome>,
    pub codes: Vec<DeliveredCodeRecord>,
    pub at: OffsetDateTime,
}

/// How [`PollChain::persist_terminal`](super::PollChain::persist_terminal) went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persisted {
    /// Stored; `unlisted` codes stored by an earlier attempt are no longer
    /// among those FoxReload lists (kept: a stored code is never dropped,
    /// and operations are alerted).
    Committed { unlisted: u32 },
    /// The order had already ended: nothing was written.
    AlreadyTerminal,
}

/// How [`PollChain::persist_terminal`](super::PollChain::persist_terminal)
/// went, and the order as stored after it: its end, whoever stored it.
#[derive(Clone, Debug)]
pub struct Ended {
    pub persisted: Persisted,
    pub order: OrderRecord,
}

/// One page of the pending-orders index.
#[derive(Clone, Debug)]
pub struct PendingPage {
    pub orders: Vec<OrderRecord>,
    /// Items that do not read as orders (their keys and why): skipped, so
    /// one bad item never stops a sweep.
    pub unreadable: Vec<(String, String)>,
    /// Index items read for this page (what the query cost).
    pub items_read: u64,
    /// Where the next page starts; `None` at the end of the index.
    pub next: Option<String>,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, a 5xx, a timeout: try again.
    #[error("the order store is unavailable for {operation}: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A permission, validation or missing-table error: retrying will not
    /// help.
    #[error("the order store refused {operation}: {source}")]
    Refused {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored item that does not read as what it should be.
    #[error("stored item {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// A conditional write found the item not in the state expected.
    #[error("{operation} found order {order_id} in another state")]
    Conflict {
        operation: &'static str,
        order_id: String,
    },
}

/// Which alert an order's alert claim is for; each is re-sent on its own
/// interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertSlot {
    /// Not ended past the stall threshold (also stuck creating or
    /// reconciling).
    Stall,
    /// Reconciliation cannot tell which FoxReload order is ours.
    Reconcile,
    /// Paid, and still not ended past the polling horizon.
    LongRunning,
    /// Its polling chain keeps dying without progress.
    ChainStuck,
    /// Ended, and its event still not published long after.
    NotNotified,
}

/// The codes of `delivered` not yet in `stored`, compared as a multiset of
/// (product, code, kind), numbered after the stored ones; and how many
/// stored codes `delivered` no longer holds.
pub fn missing_codes(
    stored: &[DeliveredCodeRecord],
    delivered: &[DeliveredCodeRecord],
) -> (Vec<DeliveredCodeRecord>, u32) {
    let mut left: HashMap<(&str, &str, CodeKind), usize> = HashMap::new();
    for code in stored {
        *left
            .entry((code.product_id.as_str(), code.code.as_str(), code.kind))
            .or_default() += 1;
    }
    let mut next = stored.iter().map(|c| c.index + 1).max().unwrap_or(0);
    let mut missing = Vec::new();
    for code in delivered {
        let key = (code.product_id.as_str(), code.code.as_str(), code.kind);
        match left.get_mut(&key) {
            Some(count) if *count > 0 => *count -= 1,
            _ => {
                missing.push(DeliveredCodeRecord {
                    index: next,
                    ..code.clone()
                });
                next += 1;
            }
        }
    }
    let unlisted = left.values().sum::<usize>() as u32;
    (missing, unlisted)
}

/// An instant as RFC 3339 text in UTC: how the times people read are
/// stored, so that they sort as text.
pub fn utc_text(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

/// Where an order sorts in the pending index: oldest first, by its
/// creation time as text, then its id.
pub fn pending_sort_key(order: &OrderRecord) -> String {
    format!("{}#{}", utc_text(order.created_at), order.order_id)
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::OrderRecord;
    use crate::testing::seed::{new_order, owner};
    use time::macros::datetime;

    #[test]
    fn a_post_refused_with_a_429_is_no_window_and_a_last_one_refused_owns_nothing() {
        let t0 = datetime!(2026-12-02 12:00 UTC);
        let mut order = OrderRecord::intent("o".into(), &new_order("o"), None, owner(), t0);
        order.posted_at = (0..3).map(|s| t0 + time::Duration::seconds(s)).collect();
        assert_eq!(order.posts_that_may_have_bought(), 3);
        assert_eq!(
            order.last_post_that_may_have_bought(),
            Some(order.posted_at[2])
        );

        order.posts_refused = vec![0];
        assert_eq!(order.posts_that_may_have_bought(), 2);
        assert_eq!(order.posts_that_may_have_bought_at(), order.posted_at[1..]);
        assert_eq!(
            order.last_post_that_may_have_bought(),
            Some(order.posted_at[2])
        );

        order.posts_refused = vec![0, 2];
        assert_eq!(order.posts_that_may_have_bought_at(), [order.posted_at[1]]);
        assert_eq!(
            order.last_post_that_may_have_bought(),
            None,
            "its last POST made nothing, and the ones before were found to have made nothing"
        );
    }
}
