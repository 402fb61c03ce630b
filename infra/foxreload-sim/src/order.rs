//! Orders: what is stored, how the status follows from the clock, and how an
//! order is rendered as FoxReload JSON.

use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::catalog::{Behaviour, Product};
use crate::codes;
use crate::money;
use crate::{TimeFormat, Timing};

/// Codes delivered per unit by [`Behaviour::Many`].
pub const MANY_CODES_PER_UNIT: usize = 50;
/// How long activation data stays valid after payment.
const ACTIVATION_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// One stored order. Its status is never stored: it is derived from the
/// timestamps and the clock whenever the order is read.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub id: String,
    /// Creation sequence within the simulator: newest first means highest first.
    pub seq: u64,
    pub created_at: OffsetDateTime,
    /// `None` when the payment window is too large to represent: never expires.
    pub payment_expires_at: Option<OffsetDateTime>,
    pub paid_at: Option<OffsetDateTime>,
    pub total_cents: i64,
    pub is_mock: bool,
    pub items: Vec<Item>,
    /// Reads served so far, which drive the read faults of the first item's
    /// behaviour.
    pub reads: u64,
}

/// One line of an order.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub product: &'static Product,
    pub quantity: u64,
    pub note: Map<String, Value>,
    /// What completion reveals in `externalData`, drawn once at payment so
    /// every read shows the same codes.
    pub delivery: Vec<Value>,
}

/// The status of an order at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Active,
    /// Unpaid past `paymentExpiresAt`: `cancelled` / `payment_expiration`.
    Expired,
    Paid,
    Processing,
    /// The undocumented status of [`Behaviour::UnknownStatus`].
    OnHold,
    Completed,
    Failed,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Active => "active",
            Phase::Expired => "cancelled",
            Phase::Paid => "paid",
            Phase::Processing => "processing",
            Phase::OnHold => "on_hold",
            Phase::Completed => "completed",
            Phase::Failed => "failed",
        }
    }

    fn is_terminal(self) -> bool {
        matches!(self, Phase::Expired | Phase::Completed | Phase::Failed)
    }
}

/// `t + d`, or `None` when that is beyond what can be represented (a
/// duration meant as "never").
pub(crate) fn after(t: OffsetDateTime, d: Duration) -> Option<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
}

/// RFC 3339 in UTC with microseconds, as FoxReload writes timestamps.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .unwrap_or_else(|_| t.to_string())
}

/// A timestamp in the configured format.
pub(crate) fn timestamp_as(t: OffsetDateTime, format: TimeFormat) -> Value {
    let t = t.to_offset(time::UtcOffset::UTC);
    match format {
        TimeFormat::Rfc3339 => json!(timestamp(t)),
        TimeFormat::EpochMillis => json!((t.unix_timestamp_nanos() / 1_000_000) as i64),
        TimeFormat::SpaceSeparated => json!(
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap_or_else(|_| t.to_string())
        ),
        TimeFormat::Unreadable => json!("recently"),
    }
}

/// When an item of this behaviour is done, given when processing started;
/// `None` for never.
fn item_done_at(
    behaviour: Behaviour,
    processing_at: OffsetDateTime,
    timing: &Timing,
) -> Option<OffsetDateTime> {
    match behaviour {
        Behaviour::Never => None,
        Behaviour::Slow => after(processing_at, timing.slow_fulfilment),
        Behaviour::UnknownStatus => after(processing_at, timing.unknown_status_for),
        // Processing started `paid_to_processing` after payment.
        Behaviour::Timed(total) => after(
            processing_at,
            total.saturating_sub(timing.paid_to_processing),
        ),
        Behaviour::Fast
        | Behaviour::Fail
        | Behaviour::Partial
        | Behaviour::Activation
        | Behaviour::Many
        | Behaviour::StallCreate
        | Behaviour::ServerError
        | Behaviour::Throttle
        | Behaviour::Garbage
        | Behaviour::Poor
        | Behaviour::Player
        | Behaviour::Short => after(processing_at, timing.fast_fulfilment),
    }
}

/// What an item of this behaviour delivers on completion, drawn at payment.
pub(crate) fn draw_delivery(
    behaviour: Behaviour,
    quantity: u64,
    paid_at: OffsetDateTime,
) -> Vec<Value> {
    let quantity = usize::try_from(quantity).unwrap_or(0);
    let codes = |n: usize| (0..n).map(|_| json!({ "code": codes::code() })).collect();
    match behaviour {
        Behaviour::Fail | Behaviour::Never => Vec::new(),
        Behaviour::Partial | Behaviour::Short => codes(quantity.saturating_sub(1)),
        Behaviour::Many => codes(quantity * MANY_CODES_PER_UNIT),
        Behaviour::Activation => {
            let expires_at = after(paid_at, ACTIVATION_VALIDITY).unwrap_or(paid_at);
            (0..quantity)
                .map(|_| {
                    let (pin, serial) = codes::activation();
                    json!({
                        "pin": pin,
                        "serial": serial,
                        "activationUrl": format!("https://activate.foxreload.example/esim/{serial}"),
                        "expiresAt": timestamp(expires_at),
                    })
                })
                .collect()
        }
        Behaviour::Fast
        | Behaviour::Slow
        | Behaviour::StallCreate
        | Behaviour::ServerError
        | Behaviour::Throttle
        | Behaviour::Garbage
        | Behaviour::UnknownStatus
        | Behaviour::Poor
        | Behaviour::Player
        | Behaviour::Timed(_) => codes(quantity),
    }
}

impl Order {
    /// The behaviour that decides the order-level faults: its first item's.
    pub(crate) fn fault_behaviour(&self) -> Option<Behaviour> {
        self.items.first().map(|item| item.product.behaviour)
    }

    /// The status at `now`.
    ///
    /// Unpaid: `active` until `paymentExpiresAt`, then cancelled. Paid:
    /// `paid` for `paid_to_processing`, then `processing` (or `on_hold` while
    /// an unknown-status item waits) until every item is done; then `failed`
    /// when every item failed, else `completed` (failed items of a mixed
    /// order carry their error, like a partial delivery).
    pub(crate) fn phase(&self, now: OffsetDateTime, timing: &Timing) -> Phase {
        let Some(paid_at) = self.paid_at else {
            return match self.payment_expires_at {
                Some(expires_at) if now >= expires_at => Phase::Expired,
                _ => Phase::Active,
            };
        };
        let Some(processing_at) = after(paid_at, timing.paid_to_processing) else {
            return Phase::Paid;
        };
        if now < processing_at {
            return Phase::Paid;
        }
        let mut all_done = true;
        let mut on_hold = false;
        for item in &self.items {
            let behaviour = item.product.behaviour;
            let done = item_done_at(behaviour, processing_at, timing).is_some_and(|at| now >= at);
            if !done {
                all_done = false;
                on_hold |= behaviour == Behaviour::UnknownStatus;
            }
        }
        if !all_done {
            return if on_hold {
                Phase::OnHold
            } else {
                Phase::Processing
            };
        }
        if self
            .items
            .iter()
            .all(|item| item.product.behaviour == Behaviour::Fail)
        {
            Phase::Failed
        } else {
            Phase::Completed
        }
    }

    /// The order as `GET /api/orders/{id}` shows it at `now`.
    pub(crate) fn render(&self, now: OffsetDateTime, timing: &Timing, format: TimeFormat) -> Value {
        let phase = self.phase(now, timing);
        let items: Vec<Value> = self
            .items
            .iter()
            .map(|item| render_item(item, phase))
            .collect();
        let mut order = Map::new();
        order.insert("id".into(), json!(self.id));
        order.insert("status".into(), json!(phase.as_str()));
        order.insert("createdAt".into(), timestamp_as(self.created_at, format));
        order.insert(
            "paymentExpiresAt".into(),
            self.payment_expires_at
                .map_or(Value::Null, |t| timestamp_as(t, format)),
        );
        if let Some(paid_at) = self.paid_at {
            order.insert("paidAt".into(), timestamp_as(paid_at, format));
        }
        order.insert(
            "cancelReason".into(),
            if phase == Phase::Expired {
                json!("payment_expiration")
            } else {
                Value::Null
            },
        );
        order.insert(
            "totalPrice".into(),
            json!(money::format_cents(self.total_cents)),
        );
        order.insert("currency".into(), json!("usd"));
        order.insert("isMock".into(), json!(self.is_mock));
        order.insert("items".into(), Value::Array(items));
        // Not part of what we rely on: there so the client proves it ignores
        // fields it does not know.
        order.insert("customer".into(), json!({ "type": "api" }));
        Value::Object(order)
    }
}

fn render_item(item: &Item, phase: Phase) -> Value {
    let behaviour = item.product.behaviour;
    let external_data = if phase == Phase::Completed {
        item.delivery.clone()
    } else {
        Vec::new()
    };
    let error = if phase.is_terminal() && phase != Phase::Expired {
        match behaviour {
            Behaviour::Fail => Some("supplier out of stock".to_owned()),
            Behaviour::Partial => Some(format!("1 of {} units not delivered", item.quantity)),
            _ => None,
        }
    } else {
        None
    };
    json!({
        "product": { "id": item.product.id, "name": item.product.name },
        "quantity": item.quantity,
        "price": money::cents_to_number(item.product.price_cents),
        "externalData": external_data,
        "error": error,
        "note": item.note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{self, PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_NEVER, PRODUCT_UNKNOWN_STATUS};

    fn timing() -> Timing {
        Timing {
            paid_to_processing: Duration::from_secs(1),
            fast_fulfilment: Duration::from_secs(10),
            slow_fulfilment: Duration::from_secs(100),
            payment_window: Duration::from_secs(60),
            create_stall: Duration::from_secs(1),
            unknown_status_for: Duration::from_secs(5),
        }
    }

    fn order(products: &[&str]) -> Order {
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Order {
            id: "o".into(),
            seq: 1,
            created_at: t0,
            payment_expires_at: after(t0, timing().payment_window),
            paid_at: None,
            total_cents: 0,
            is_mock: false,
            items: products
                .iter()
                .map(|id| Item {
                    product: catalog::product(id).unwrap(),
                    quantity: 1,
                    note: Map::new(),
                    delivery: Vec::new(),
                })
                .collect(),
            reads: 0,
        }
    }

    fn at(o: &Order, secs: u64) -> OffsetDateTime {
        o.created_at + Duration::from_secs(secs)
    }

    #[test]
    fn unpaid_order_is_active_until_the_window_closes_then_cancelled() {
        let o = order(&[PRODUCT_FAST]);
        assert_eq!(o.phase(at(&o, 59), &timing()), Phase::Active);
        assert_eq!(o.phase(at(&o, 60), &timing()), Phase::Expired);
    }

    #[test]
    fn paid_order_moves_paid_processing_completed_on_the_clock() {
        let mut o = order(&[PRODUCT_FAST]);
        o.paid_at = Some(at(&o, 2));
        assert_eq!(o.phase(at(&o, 2), &timing()), Phase::Paid);
        assert_eq!(o.phase(at(&o, 3), &timing()), Phase::Processing);
        assert_eq!(o.phase(at(&o, 12), &timing()), Phase::Processing);
        assert_eq!(o.phase(at(&o, 13), &timing()), Phase::Completed);
        // Paid orders never expire.
        assert_eq!(o.phase(at(&o, 1000), &timing()), Phase::Completed);
    }

    #[test]
    fn mixed_order_waits_for_its_slowest_item_and_fails_only_when_all_fail() {
        let mut o = order(&[PRODUCT_FAST, PRODUCT_NEVER]);
        o.paid_at = Some(o.created_at);
        assert_eq!(o.phase(at(&o, 10_000), &timing()), Phase::Processing);

        let mut o = order(&[PRODUCT_FAIL, PRODUCT_FAST]);
        o.paid_at = Some(o.created_at);
        assert_eq!(o.phase(at(&o, 11), &timing()), Phase::Completed);

        let mut o = order(&[PRODUCT_FAIL, PRODUCT_FAIL]);
        o.paid_at = Some(o.created_at);
        assert_eq!(o.phase(at(&o, 11), &timing()), Phase::Failed);
    }

    #[test]
    fn unknown_status_item_is_on_hold_then_completed() {
        let mut o = order(&[PRODUCT_UNKNOWN_STATUS]);
        o.paid_at = Some(o.created_at);
        assert_eq!(o.phase(at(&o, 1), &timing()), Phase::OnHold);
        assert_eq!(o.phase(at(&o, 5), &timing()), Phase::OnHold);
        assert_eq!(o.phase(at(&o, 6), &timing()), Phase::Completed);
    }

    #[test]
    fn a_duration_too_large_to_represent_means_never() {
        let mut timing = timing();
        timing.payment_window = Duration::MAX;
        let o = order(&[PRODUCT_FAST]);
        assert_eq!(after(o.created_at, Duration::MAX), None);
        let o = Order {
            payment_expires_at: after(o.created_at, timing.payment_window),
            ..o
        };
        assert_eq!(o.phase(at(&o, 1_000_000), &timing), Phase::Active);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let t = OffsetDateTime::UNIX_EPOCH
            + Duration::from_secs(1_500_000_000)
            + Duration::from_nanos(123_456_789);
        assert_eq!(timestamp(t), "2017-07-14T02:40:00.123456Z");
    }
}
