//! The sweep's store: pages of the pending index, its cursor, and the
//! repairs it makes (a dead chain revived, a dead create handed over).

use super::DynamoStore;
use super::codec::{json, millis, n, order_from_item, rfc3339, s};
use super::conditions::{TERMINAL_VALUES, ended};
use super::errors::{conditional, sdk_error};
use super::keys::{
    PENDING, PENDING_INDEX, cursor_to_key, idempotency_key, key, key_to_cursor, order_key,
    sweep_key,
};
use super::transaction::Tx;
use crate::domain::OrderStatus;
use crate::store::{OrderRecord, PendingPage, StoreError, SupplierProblem, SweepStore};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use time::OffsetDateTime;

impl SweepStore for DynamoStore {
    async fn pending(&self, limit: u32, start: Option<&str>) -> Result<PendingPage, StoreError> {
        let start_key = start.map(cursor_to_key).transpose()?;
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("pendingPk = :pending")
            .expression_attribute_values(":pending", s(PENDING))
            .limit(limit.max(1) as i32)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| sdk_error("read pending orders", e))?;
        let mut orders = Vec::new();
        let mut unreadable = Vec::new();
        for item in page.items() {
            match order_from_item(item) {
                Ok(order) => orders.push(order),
                Err(error) => {
                    let pk = item
                        .get("pk")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    unreadable.push((pk, error.to_string()));
                }
            }
        }
        Ok(PendingPage {
            items_read: page.count().max(0) as u64,
            orders,
            unreadable,
            next: page.last_evaluated_key().map(key_to_cursor),
        })
    }

    async fn sweep_cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(sweep_key(), "read sweep cursor")
            .await?
            .and_then(|item| item.get("cursor").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn save_sweep_cursor(
        &self,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(sweep_key()))
            .expression_attribute_values(":now", s(rfc3339(now)));
        request = match cursor {
            Some(cursor) => request
                .update_expression("SET #cursor = :cursor, updatedAt = :now")
                .expression_attribute_values(":cursor", s(cursor)),
            None => request.update_expression("SET updatedAt = :now REMOVE #cursor"),
        };
        request
            .expression_attribute_names("#cursor", "cursor")
            .send()
            .await
            .map(drop)
            .map_err(|e| sdk_error("save sweep cursor", e))
    }

    async fn claim_unreadable_alert(
        &self,
        pk: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), "ORDER")))
            .update_expression("SET unreadableAlertedAt = :now")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(unreadableAlertedAt)",
            )
            .expression_attribute_values(":now", n(millis(now)))
            .send()
            .await;
        conditional("claim an unreadable-item alert", result)
    }

    async fn revive_chain(
        &self,
        order: &OrderRecord,
        overdue_before: OffsetDateTime,
        now: OffsetDateTime,
        streak: u32,
        due: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if order.next_poll_due_at.is_none() && order.updated_at >= overdue_before {
            // Still being placed (create-order may be paying it).
            return Ok(false);
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(&order.order_id)))
            .update_expression(
                "SET pollSeq = :next, nextPollDueAt = :due, updatedAt = :nowText, \
                 revivals = :streak, revivedAtPolls = :polls",
            )
            .condition_expression(concat!(
                "attribute_exists(pk) AND (attribute_not_exists(pollSeq) OR pollSeq = :seen) \
                 AND ((attribute_not_exists(nextPollDueAt) AND updatedAt = :updated) \
                      OR nextPollDueAt < :overdue) \
                 AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now) \
                 AND NOT #status = :creating AND NOT ",
                ended!()
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":next", n(order.poll_seq + 1))
            .expression_attribute_values(":seen", n(order.poll_seq))
            .expression_attribute_values(":updated", s(rfc3339(order.updated_at)))
            .expression_attribute_values(":overdue", n(millis(overdue_before)))
            .expression_attribute_values(":now", n(millis(now)))
            .expression_attribute_values(":nowText", s(rfc3339(now)))
            .expression_attribute_values(":due", n(millis(due)))
            .expression_attribute_values(":streak", n(streak))
            .expression_attribute_values(":polls", n(order.poll_count))
            // An order still `creating` has no chain: its create may be in
            // flight; the sweep hands it over to reconciliation instead.
            .expression_attribute_values(":creating", s(OrderStatus::Creating.as_str()));
        for (name, status) in TERMINAL_VALUES {
            request = request.expression_attribute_values(name, s(status.as_str()));
        }
        conditional("revive polling chain", request.send().await)
    }

    async fn hand_over_create(
        &self,
        order: &OrderRecord,
        seq: u64,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(&order.order_id)))
            .update_expression(
                "SET #status = :rc, lastError = :err, pollSeq = :seq, nextPollDueAt = :due, \
                 updatedAt = :now, handedOver = :yes",
            )
            .condition_expression(
                "attribute_exists(pk) AND #status = :creating AND attribute_not_exists(supplierOrderId) \
                 AND (attribute_not_exists(pollSeq) OR pollSeq < :seq)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":rc", s(OrderStatus::Reconciling.as_str()))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":creating", s(OrderStatus::Creating.as_str()))
            .expression_attribute_values(":err", json(problem))
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":due", n(millis(now)))
            .expression_attribute_values(":now", s(rfc3339(now)));
        let mut actions = Vec::new();
        if let Some(key_text) = &order.idempotency_key {
            // A client's retry that took the key over is settling the order
            // itself: hands off while anyone holds it.
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(idempotency_key(key_text)))
                .condition_expression(
                    "attribute_not_exists(pk) OR lockedUntil < :now OR attribute_exists(responseStatus) \
                     OR orderId <> :order",
                )
                .expression_attribute_values(":now", n(millis(now)))
                .expression_attribute_values(":order", s(&order.order_id))
                .build()
                .expect("table, key and condition are set");
            actions.push(TransactWriteItem::builder().condition_check(check).build());
        }
        actions.push(
            TransactWriteItem::builder()
                .update(update.build().expect("table, key and expression are set"))
                .build(),
        );
        Ok(matches!(
            self.transact("hand over a create", actions).await?,
            Tx::Committed
        ))
    }
}
