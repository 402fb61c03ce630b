//! Items to records and back. Each meaning has one representation:
//!
//! | attribute | stored as | why |
//! |---|---|---|
//! | `createdAt`, `updatedAt`, `claimedAt`, `receivedAt` | RFC 3339 text, UTC | read by people; `createdAt` sorts the pending index as text |
//! | `nextPollDueAt`, `leaseUntil`, `lockedUntil`, `lastPolledAt`, `lastSeenOpenAt`, `paidAt`, `terminalAt`, `notifiedAt`, `*AlertedAt`, `postedAt[]`, `sampledAt` | epoch milliseconds | compared in conditions, or subtracted |
//! | `pollPlan[]`, `planStep`, `pollSchedule` | whole seconds, an index, `learned` or `warm-up` | an order's planned poll times |
//! | `expiresAt` | epoch seconds | DynamoDB's TTL reads only seconds |
//! | `lastDelayMs`, `offsetMs`, `uncertaintyMs` | milliseconds | durations |
//!
//! A stored item that does not read as what it should be is
//! [`StoreError::Corrupt`], naming the item.

use super::Item;
use super::keys::PENDING;
use super::keys::order_key;
use crate::domain::event::{CodeKind, DeliveredCodeRecord};
use crate::domain::learning::{OrderPlan, Plan, PlanKind};
use crate::domain::reconcile::ClockOffset;
use crate::domain::{OrderLine, OrderStatus, Principal};
use crate::store::{IdempotencyRecord, OrderRecord, StoreError, StoredResponse, pending_sort_key};
use aws_sdk_dynamodb::types::AttributeValue;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(super) fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub(super) fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// RFC 3339 in UTC, so stored times sort as text.
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    crate::store::utc_text(at)
}

pub(super) fn millis(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000_000
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> AttributeValue {
    s(serde_json::to_string(value).expect("stored values are plain JSON"))
}

/// Reads attributes of a stored item, naming the item when one is wrong.
/// Reads attributes of a stored item, naming the item when one is wrong.
pub(super) struct Reader<'a> {
    item: &'a Item,
    key: String,
}

impl<'a> Reader<'a> {
    /// Reads `item`, naming it by its `attribute` (`pk` or `sk`) in errors.
    pub(super) fn named_by(item: &'a Item, attribute: &str) -> Self {
        Self {
            item,
            key: item
                .get(attribute)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
        }
    }

    pub(super) fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            key: self.key.clone(),
            reason: reason.into(),
        }
    }

    pub(super) fn opt_s(&self, name: &str) -> Option<&str> {
        self.item
            .get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    pub(super) fn s(&self, name: &str) -> Result<&str, StoreError> {
        self.opt_s(name)
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    pub(super) fn opt_n(&self, name: &str) -> Result<Option<i128>, StoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .map(Some)
                .ok_or_else(|| self.corrupt(format!("{name} is not a number"))),
        }
    }

    pub(super) fn time(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        OffsetDateTime::parse(self.s(name)?, &Rfc3339)
            .map_err(|e| self.corrupt(format!("{name}: {e}")))
    }

    pub(super) fn millis(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.opt_n(name)?
            .map(|ms| {
                OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
                    .map_err(|e| self.corrupt(format!("{name}: {e}")))
            })
            .transpose()
    }

    /// A list of whole seconds, strictly increasing (a poll plan).
    pub(super) fn seconds_list(&self, name: &str) -> Result<Option<Vec<u32>>, StoreError> {
        let Some(value) = self.item.get(name) else {
            return Ok(None);
        };
        let list = value
            .as_l()
            .map_err(|_| self.corrupt(format!("{name} is not a list")))?;
        let seconds = list
            .iter()
            .map(|v| v.as_n().ok().and_then(|n| n.parse::<u32>().ok()))
            .collect::<Option<Vec<u32>>>()
            .filter(|s| !s.is_empty() && s.windows(2).all(|w| w[0] < w[1]))
            .ok_or_else(|| self.corrupt(format!("{name} is not increasing whole seconds")))?;
        Ok(Some(seconds))
    }

    /// A list of instants in epoch milliseconds.
    pub(super) fn millis_list(
        &self,
        name: &str,
    ) -> Result<Option<Vec<OffsetDateTime>>, StoreError> {
        let Some(value) = self.item.get(name) else {
            return Ok(None);
        };
        let list = value
            .as_l()
            .map_err(|_| self.corrupt(format!("{name} is not a list")))?;
        list.iter()
            .map(|v| {
                v.as_n()
                    .ok()
                    .and_then(|n| n.parse::<i128>().ok())
                    .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
                    .ok_or_else(|| self.corrupt(format!("{name} holds a non-time")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_s(name)
            .map(|text| {
                serde_json::from_str(text).map_err(|e| self.corrupt(format!("{name}: {e}")))
            })
            .transpose()
    }
}

pub(super) fn order_from_item(item: &Item) -> Result<OrderRecord, StoreError> {
    let r = Reader::named_by(item, "pk");
    let status_text = r.s("status")?;
    let status = OrderStatus::parse(status_text)
        .ok_or_else(|| r.corrupt(format!("unknown status {status_text}")))?;
    let created_at = r.time("createdAt")?;
    Ok(OrderRecord {
        order_id: r.s("orderId")?.to_owned(),
        status,
        lines: r
            .json::<Vec<OrderLine>>("lines")?
            .ok_or_else(|| r.corrupt("lines is missing"))?,
        customer_reference: r.opt_s("customerReference").map(str::to_owned),
        total_price: r.opt_s("totalPrice").map(str::to_owned),
        created_at,
        updated_at: r.time("updatedAt")?,
        supplier_order_id: r.opt_s("supplierOrderId").map(str::to_owned),
        supplier_status: r.opt_s("supplierStatus").map(str::to_owned),
        payment_error: r.json("paymentError")?,
        last_error: r.json("lastError")?,
        cancel_reason: r.opt_s("cancelReason").map(str::to_owned),
        poll_seq: r.opt_n("pollSeq")?.unwrap_or(0) as u64,
        next_poll_due_at: r.millis("nextPollDueAt")?,
        idempotency_key: r.opt_s("idempotencyKey").map(str::to_owned),
        principal: r.opt_s("principal").map(Principal::from_stored),
        claimed_seq: r.opt_n("claimedSeq")?.unwrap_or(0) as u64,
        lease_until: r.millis("leaseUntil")?,
        poll_count: r.opt_n("pollCount")?.unwrap_or(0) as u64,
        last_delay: r
            .opt_n("lastDelayMs")?
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        last_polled_at: r.millis("lastPolledAt")?,
        consecutive_errors: r.opt_n("consecutiveErrors")?.unwrap_or(0) as u32,
        needs_attention: r.opt_s("needsAttention").map(str::to_owned),
        posted_at: r
            .millis_list("postedAt")?
            .unwrap_or_else(|| vec![created_at]),
        posts_recorded: item.contains_key("postedAt"),
        posts_known: match r.opt_n("postsKnown")? {
            Some(known) => usize::try_from(known).unwrap_or(0),
            None => item
                .get("postedAt")
                .and_then(|v| v.as_l().ok())
                .map_or(1, Vec::len),
        },
        posts_refused: match item.get("postsRefused") {
            Some(AttributeValue::Ns(indexes)) => {
                let mut refused: Vec<usize> =
                    indexes.iter().filter_map(|i| i.parse().ok()).collect();
                refused.sort_unstable();
                refused
            }
            _ => Vec::new(),
        },
        handed_over: matches!(item.get("handedOver"), Some(AttributeValue::Bool(true))),
        items: r.json("itemOutcomes")?.unwrap_or_default(),
        code_count: r.opt_n("codeCount")?.unwrap_or(0) as u32,
        terminal_at: r.millis("terminalAt")?,
        notified_at: r.millis("notifiedAt")?,
        stall_alerted_at: r.millis("stallAlertedAt")?,
        revivals: r.opt_n("revivals")?.unwrap_or(0) as u32,
        revived_at_polls: r.opt_n("revivedAtPolls")?.map(|n| n.max(0) as u64),
        // A plan this version cannot read (a kind added by a later one, a
        // damaged list) never makes the order unreadable: it is polled on
        // the default schedule instead.
        poll_plan: match (r.seconds_list("pollPlan"), r.opt_s("pollSchedule")) {
            (Ok(Some(polls)), Some(kind)) if PlanKind::parse(kind).is_some() => Some(OrderPlan {
                kind: PlanKind::parse(kind).expect("parsed just above"),
                plan: Plan { polls },
            }),
            (Ok(None), _) => None,
            _ => {
                tracing::warn!(key = %r.key, "poll plan unreadable; the default schedule applies");
                None
            }
        },
        plan_step: r
            .opt_n("planStep")
            .ok()
            .flatten()
            .and_then(|n| u32::try_from(n).ok()),
        paid_at: r.millis("paidAt")?,
        last_seen_open_at: r.millis("lastSeenOpenAt")?,
    })
}

/// A new order's item, as `begin` puts it: the fields an intent has (every
/// later change is a conditional update of its own).
pub(super) fn intent_to_item(order: &OrderRecord) -> Item {
    let mut item = order_key(&order.order_id);
    let created = rfc3339(order.created_at);
    item.insert("orderId".into(), s(&order.order_id));
    item.insert("status".into(), s(order.status.as_str()));
    item.insert("lines".into(), json(&order.lines));
    item.insert("createdAt".into(), s(&created));
    item.insert("updatedAt".into(), s(rfc3339(order.updated_at)));
    item.insert("pollSeq".into(), n(order.poll_seq));
    item.insert("postsKnown".into(), n(order.posts_known));
    item.insert(
        "postedAt".into(),
        AttributeValue::L(order.posted_at.iter().map(|at| n(millis(*at))).collect()),
    );
    if !order.status.is_terminal() {
        item.insert("pendingPk".into(), s(PENDING));
        item.insert("pendingSk".into(), s(pending_sort_key(order)));
    }
    let optional = [
        ("customerReference", order.customer_reference.clone()),
        ("totalPrice", order.total_price.clone()),
        ("supplierOrderId", order.supplier_order_id.clone()),
        ("supplierStatus", order.supplier_status.clone()),
        ("cancelReason", order.cancel_reason.clone()),
        ("idempotencyKey", order.idempotency_key.clone()),
        (
            "principal",
            order.principal.as_ref().map(|p| p.as_str().to_owned()),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.into(), s(value));
        }
    }
    if let Some(problem) = &order.payment_error {
        item.insert("paymentError".into(), json(problem));
    }
    if let Some(problem) = &order.last_error {
        item.insert("lastError".into(), json(problem));
    }
    if let Some(due) = order.next_poll_due_at {
        item.insert("nextPollDueAt".into(), n(millis(due)));
    }
    if let Some(planned) = &order.poll_plan {
        item.insert(
            "pollPlan".into(),
            AttributeValue::L(planned.plan.polls.iter().map(|t| n(*t)).collect()),
        );
        item.insert("pollSchedule".into(), s(planned.kind.as_str()));
    }
    if let Some(step) = order.plan_step {
        item.insert("planStep".into(), n(step));
    }
    item
}

pub(super) fn idempotency_from_item(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let r = Reader::named_by(item, "pk");
    let response = match r.opt_n("responseStatus")? {
        Some(status) => Some(StoredResponse {
            status: u16::try_from(status).map_err(|_| r.corrupt("responseStatus out of range"))?,
            body: r.s("responseBody")?.to_owned(),
        }),
        None => None,
    };
    let expires = r.opt_n("expiresAt")?.unwrap_or(0);
    Ok(IdempotencyRecord {
        key: r.s("idempotencyKey")?.to_owned(),
        fingerprint: r.s("fingerprint")?.to_owned(),
        order_id: r.s("orderId")?.to_owned(),
        holder: r.s("holder")?.to_owned(),
        locked_until: r
            .millis("lockedUntil")?
            .ok_or_else(|| r.corrupt("lockedUntil is missing"))?,
        expires_at: OffsetDateTime::from_unix_timestamp(expires as i64)
            .map_err(|e| r.corrupt(format!("expiresAt: {e}")))?,
        response,
    })
}

pub(super) fn code_kind(kind: CodeKind) -> &'static str {
    match kind {
        CodeKind::Code => "code",
        CodeKind::Data => "data",
    }
}

/// A code item: the code (empty when sealed) and its sealed form, if it
/// is sealed (codes stored before sealing are text).
pub(super) fn code_from_item(
    item: &Item,
) -> Result<(DeliveredCodeRecord, Option<Vec<u8>>), StoreError> {
    let r = Reader::named_by(item, "sk");
    let number = |name: &str| -> Result<u32, StoreError> {
        r.opt_n(name)?
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| r.corrupt(format!("{name} is missing")))
    };
    let (code, sealed) = match item.get("codeSealed") {
        Some(AttributeValue::B(sealed)) => (String::new(), Some(sealed.as_ref().to_vec())),
        Some(_) => return Err(r.corrupt("codeSealed is not binary")),
        None => (r.s("code")?.to_owned(), None),
    };
    let code = DeliveredCodeRecord {
        index: number("codeIndex")?,
        item_index: number("itemIndex")?,
        product_id: r.s("productId")?.to_owned(),
        code,
        kind: match r.s("kind")? {
            "code" => CodeKind::Code,
            "data" => CodeKind::Data,
            other => return Err(r.corrupt(format!("unknown code kind {other}"))),
        },
    };
    Ok((code, sealed))
}

/// FoxReload's measured clock offset.
pub(super) fn clock_offset_from_item(item: &Item) -> Result<ClockOffset, StoreError> {
    let r = Reader::named_by(item, "pk");
    let offset = r
        .opt_n("offsetMs")?
        .ok_or_else(|| r.corrupt("offsetMs is missing"))?;
    let uncertainty = r
        .opt_n("uncertaintyMs")?
        .ok_or_else(|| r.corrupt("uncertaintyMs is missing"))?;
    let sampled_at = r
        .millis("sampledAt")?
        .ok_or_else(|| r.corrupt("sampledAt is missing"))?;
    Ok(ClockOffset {
        offset: time::Duration::milliseconds(offset as i64),
        uncertainty: Duration::from_millis(uncertainty.max(0) as u64),
        sampled_at,
    })
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::domain::learning::{OrderPlan, Plan, PlanKind};

    fn planned_item() -> Item {
        let mut order = crate::testing::seed::intent("o", OffsetDateTime::UNIX_EPOCH);
        order.poll_plan = Some(OrderPlan {
            kind: PlanKind::Learned,
            plan: Plan { polls: vec![3, 10] },
        });
        order.plan_step = Some(0);
        intent_to_item(&order)
    }

    #[test]
    fn a_plan_this_version_cannot_read_leaves_the_order_readable_on_the_schedule() {
        let item = planned_item();
        assert_eq!(
            order_from_item(&item)
                .unwrap()
                .poll_plan
                .unwrap()
                .plan
                .polls,
            vec![3, 10]
        );
        for (name, value) in [
            ("pollSchedule", s("a-kind-from-a-later-version")),
            ("pollPlan", AttributeValue::L(vec![n(10), n(3)])),
            ("pollPlan", s("not a list")),
        ] {
            let mut odd = item.clone();
            odd.insert(name.into(), value);
            let order = order_from_item(&odd).expect("still an order");
            assert_eq!(order.poll_plan, None, "{name}");
        }
        let mut no_kind = item.clone();
        no_kind.remove("pollSchedule");
        assert_eq!(order_from_item(&no_kind).unwrap().poll_plan, None);
    }
}
