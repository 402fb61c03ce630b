//! Buying: each POST recorded before it is sent, a FoxReload order claimed
//! by exactly one of ours, payment, the first poll, and FoxReload's clock.

use super::DynamoStore;
use super::Item;
use super::codec::{clock_offset_from_item, json, millis, n, order_from_item, rfc3339, s};
use super::conditions::{STILL_CREATING, TERMINAL_VALUES, creating_values, ended};
use super::errors::{conditional, expected, held_or_landed, sdk_error};
use super::keys::{PENDING, PENDING_INDEX, claim_key, clock_key, order_key};
use super::transaction::Tx;
use crate::domain::OrderStatus;
use crate::domain::reconcile::ClockOffset;
use crate::store::{
    Claim, OrderRecord, PlacementStore, StoreError, SupplierProblem, SupplierState,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::time::Duration;
use time::OffsetDateTime;

/// The item's `status`, if it has one.
fn status_of(item: &Item) -> Option<&str> {
    item.get("status")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

impl DynamoStore {
    /// Moves a create's order to `status` with the problem that settled
    /// it, only as the create knows it: `creating`, with `posts` POSTs
    /// recorded. An end (`not_placed`) also leaves the pending index.
    async fn settle_create(
        &self,
        operation: &'static str,
        order_id: &str,
        posts: usize,
        status: OrderStatus,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut set = "SET #status = :to, lastError = :err, updatedAt = :now, settleToken = :token"
            .to_owned();
        if status.is_terminal() {
            set.push_str(" REMOVE pendingPk, pendingSk");
        }
        // (An order from before POSTs were recorded has no list, and no
        // request records one on it: its count is not checked. An intent
        // always records its first.)
        let counted = if posts == 0 {
            ""
        } else {
            " AND size(postedAt) = :posts"
        };
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression(set)
            .condition_expression(format!(
                "attribute_exists(pk) AND #status = :creating{counted}"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s(status.as_str()))
            .expression_attribute_values(":err", json(problem))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":creating", s(OrderStatus::Creating.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = if posts == 0 {
            request
        } else {
            request.expression_attribute_values(":posts", n(posts))
        };
        let result = request.send().await;
        let landed = |item: &Item| status_of(item) == Some(status.as_str());
        if held_or_landed(operation, result, "settleToken", &token, landed)? {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                operation,
                order_id: order_id.to_owned(),
            })
        }
    }
}

impl PlacementStore for DynamoStore {
    async fn record_post(
        &self,
        order_id: &str,
        seen: usize,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // This write's own mark: an attempt the SDK sends again after the
        // answer to one that landed was lost (a timeout) finds it, and its
        // refusal is no news that the order moved.
        let token = uuid::Uuid::new_v4().to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression(
                "SET postedAt = list_append(if_not_exists(postedAt, :none), :at), \
                 updatedAt = :now, postToken = :token",
            )
            .condition_expression(format!(
                "attribute_exists(pk) AND attribute_not_exists(supplierOrderId) AND {STILL_CREATING} \
                 AND size(postedAt) = :seen"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":at", AttributeValue::L(vec![n(millis(at))]))
            .expression_attribute_values(":now", s(rfc3339(at)))
            .expression_attribute_values(":seen", n(seen))
            .expression_attribute_values(":token", s(&token))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in creating_values() {
            request = request.expression_attribute_values(name, value);
        }
        // Recorded by an earlier attempt of this very write (its answer
        // lost), and nothing since: recorded, as it would have said.
        // Otherwise the order moved.
        let landed = |item: &Item| {
            item.get("postedAt")
                .and_then(|v| v.as_l().ok())
                .is_some_and(|posted| posted.len() == seen + 1)
                && !item.contains_key("supplierOrderId")
                && matches!(
                    status_of(item),
                    Some(status) if status == OrderStatus::Creating.as_str()
                        || status == OrderStatus::Reconciling.as_str()
                )
        };
        held_or_landed(
            "record a POST",
            request.send().await,
            "postToken",
            &token,
            landed,
        )
    }

    async fn mark_posts_known(&self, order_id: &str, known: usize) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression("SET postsKnown = :known")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(postsKnown) OR postsKnown < :known)",
            )
            .expression_attribute_values(":known", n(known))
            .send()
            .await;
        // Already as known, or more: nothing to add.
        conditional("mark POSTs known", result).map(drop)
    }

    async fn mark_post_refused(&self, order_id: &str, index: usize) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            // A set: the same POST marked twice is counted once.
            .update_expression("ADD postsRefused :index")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":index", AttributeValue::Ns(vec![index.to_string()]))
            .send()
            .await;
        conditional("mark a POST refused", result).map(drop)
    }

    async fn is_claimed(&self, supplier_order_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .get(claim_key(supplier_order_id), "read supplier claim")
            .await?
            .is_some())
    }

    async fn claim_supplier_order(
        &self,
        order_id: &str,
        supplier_order_id: &str,
        state: &SupplierState,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let mut claim = claim_key(supplier_order_id);
        claim.insert("orderId".into(), s(order_id));
        claim.insert("supplierOrderId".into(), s(supplier_order_id));
        claim.insert("claimedAt".into(), s(rfc3339(now)));
        let put_claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table, item and condition are set");
        let mut sets = vec![
            "supplierOrderId = :sid",
            "supplierStatus = :sst",
            "updatedAt = :now",
        ];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .condition_expression(format!(
                "attribute_exists(pk) AND attribute_not_exists(supplierOrderId) AND {STILL_CREATING}"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sid", s(supplier_order_id))
            .expression_attribute_values(":sst", s(state.said()))
            .expression_attribute_values(":now", s(rfc3339(now)));
        if let Some(status) = state.status() {
            sets.push("#status = :status");
            update = update.expression_attribute_values(":status", s(status.as_str()));
        }
        update = update.update_expression(format!("SET {} REMOVE lastError", sets.join(", ")));
        for (name, value) in creating_values() {
            update = update.expression_attribute_values(name, value);
        }
        let update = update.build().expect("table, key and expression are set");
        let actions = vec![
            TransactWriteItem::builder().put(put_claim).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        match self.transact("claim supplier order", actions).await? {
            Tx::Committed => Ok(Claim::Claimed),
            Tx::Refused(flags) if flags[0] => Ok(Claim::TakenByAnother),
            Tx::Refused(_) => Ok(Claim::OrderMoved),
        }
    }

    async fn record_payment(
        &self,
        order_id: &str,
        state: Option<&SupplierState>,
        refusal: Option<&SupplierProblem>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut sets = vec!["updatedAt = :now"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .condition_expression(concat!(
                "attribute_exists(supplierOrderId) AND NOT ",
                ended!()
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", s(rfc3339(now)));
        for (name, status) in TERMINAL_VALUES {
            request = request.expression_attribute_values(name, s(status.as_str()));
        }
        if let Some(state) = state {
            // Paid: the poll clock starts (once).
            sets.push("supplierStatus = :sst");
            sets.push("paidAt = if_not_exists(paidAt, :nowMs)");
            request = request
                .expression_attribute_values(":sst", s(state.said()))
                .expression_attribute_values(":nowMs", n(millis(now)));
            if let Some(status) = state.status() {
                sets.push("#status = :status");
                request = request.expression_attribute_values(":status", s(status.as_str()));
            }
        }
        if let Some(problem) = refusal {
            sets.push("paymentError = :perr");
            request = request.expression_attribute_values(":perr", json(problem));
        }
        let result = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await;
        expected("record payment", order_id, result)
    }

    async fn mark_not_placed(
        &self,
        order_id: &str,
        posts: usize,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.settle_create(
            "mark order not placed",
            order_id,
            posts,
            OrderStatus::NotPlaced,
            problem,
            now,
        )
        .await
    }

    async fn mark_reconciling(
        &self,
        order_id: &str,
        posts: usize,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.settle_create(
            "mark order reconciling",
            order_id,
            posts,
            OrderStatus::Reconciling,
            problem,
            now,
        )
        .await
    }

    async fn schedule_poll(
        &self,
        order_id: &str,
        seq: u64,
        due_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression("SET pollSeq = :seq, nextPollDueAt = :due, updatedAt = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(pollSeq) OR pollSeq < :seq)",
            )
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":due", n(millis(due_at)))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .send()
            .await;
        expected("schedule poll", order_id, result)
    }

    async fn clock_offset(&self) -> Result<Option<ClockOffset>, StoreError> {
        let Some(item) = self.get(clock_key(), "read FoxReload's clock").await? else {
            return Ok(None);
        };
        clock_offset_from_item(&item).map(Some)
    }

    async fn save_clock_offset(
        &self,
        measure: &ClockOffset,
        stale_after: Duration,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(clock_key()))
            .update_expression(
                "SET offsetMs = :offset, uncertaintyMs = :uncertainty, sampledAt = :at",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR uncertaintyMs >= :uncertainty OR sampledAt < :stale",
            )
            .expression_attribute_values(":offset", n(measure.offset.whole_milliseconds()))
            .expression_attribute_values(":uncertainty", n(measure.uncertainty.as_millis()))
            .expression_attribute_values(":at", n(millis(measure.sampled_at)))
            .expression_attribute_values(":stale", n(millis(measure.sampled_at - stale_after)))
            .send()
            .await;
        // A tighter, fresh measure is kept: nothing to do.
        conditional("save FoxReload's clock", result).map(drop)
    }

    async fn unsettled_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression(
                    "pendingPk = :pending AND pendingSk BETWEEN :from AND :to",
                )
                .filter_expression("#status IN (:creating, :reconciling)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":pending", s(PENDING))
                .expression_attribute_values(":from", s(rfc3339(from)))
                // `~` sorts after every character of an RFC 3339 time and an id.
                .expression_attribute_values(":to", s(format!("{}~", rfc3339(to))))
                .expression_attribute_values(":creating", s(OrderStatus::Creating.as_str()))
                .expression_attribute_values(":reconciling", s(OrderStatus::Reconciling.as_str()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("read unsettled orders", e))?;
            for item in page.items() {
                // An unreadable item cannot be an owner we count on.
                if let Ok(order) = order_from_item(item)
                    && order.supplier_order_id.is_none()
                {
                    found.push(order);
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}
