//! Alert claims: the time an alert was last sent, set conditionally so that
//! concurrent workers send it once, given back when it could not be sent.

use super::codec::{millis, n};
use super::errors::conditional;
use super::keys::{alert_attribute, order_key, stack_alert_key};
use super::{DynamoStore, Item};
use crate::store::{AlertSlot, OrderAlerts, StackAlerts, StoreError};
use time::OffsetDateTime;

/// Where the time an alert was last sent is kept: an order's slot, or a
/// stack alert's item (created on first use).
pub(super) struct AlertMark {
    operation: &'static str,
    key: Item,
    attribute: &'static str,
    existing_only: bool,
}

impl DynamoStore {
    /// Sets `mark`'s time to `now` unless it is at or after `realert_before`:
    /// true when this caller may send the alert.
    pub(super) async fn claim_mark(
        &self,
        mark: AlertMark,
        realert_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let free = "(attribute_not_exists(#mark) OR #mark < :before)";
        let condition = if mark.existing_only {
            format!("attribute_exists(pk) AND {free}")
        } else {
            free.to_owned()
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(mark.key))
            .update_expression("SET #mark = :now")
            .condition_expression(condition)
            .expression_attribute_names("#mark", mark.attribute)
            .expression_attribute_values(":now", n(millis(now)))
            .expression_attribute_values(":before", n(millis(realert_before)))
            .send()
            .await;
        conditional(mark.operation, result)
    }

    /// Removes `mark` if it is still the one set at `claimed_at` (another
    /// worker that alerted meanwhile keeps its own).
    pub(super) async fn release_mark(
        &self,
        mark: AlertMark,
        claimed_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(mark.key))
            .update_expression("REMOVE #mark")
            .condition_expression("#mark = :claimed")
            .expression_attribute_names("#mark", mark.attribute)
            .expression_attribute_values(":claimed", n(millis(claimed_at)))
            .send()
            .await;
        conditional(mark.operation, result).map(drop)
    }
}

impl OrderAlerts for DynamoStore {
    async fn claim_alert(
        &self,
        order_id: &str,
        slot: AlertSlot,
        realert_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mark = AlertMark {
            operation: "claim an alert",
            key: order_key(order_id),
            attribute: alert_attribute(slot),
            existing_only: true,
        };
        self.claim_mark(mark, realert_before, now).await
    }

    async fn release_alert(
        &self,
        order_id: &str,
        slot: AlertSlot,
        claimed_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mark = AlertMark {
            operation: "release an alert",
            key: order_key(order_id),
            attribute: alert_attribute(slot),
            existing_only: true,
        };
        self.release_mark(mark, claimed_at).await
    }
}

impl StackAlerts for DynamoStore {
    async fn claim_stack_alert(
        &self,
        name: &str,
        realert_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mark = AlertMark {
            operation: "claim a stack alert",
            key: stack_alert_key(name),
            attribute: "alertedAt",
            existing_only: false,
        };
        self.claim_mark(mark, realert_before, now).await
    }

    async fn release_stack_alert(
        &self,
        name: &str,
        claimed_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mark = AlertMark {
            operation: "release a stack alert",
            key: stack_alert_key(name),
            attribute: "alertedAt",
            existing_only: false,
        };
        self.release_mark(mark, claimed_at).await
    }
}
