//! The polling chain: one live link at a time, and the order's end stored
//! with its codes (codes first, the status commits), notified once.

use super::DynamoStore;
use super::codec::{code_kind, json, millis, n, rfc3339, s};
use super::conditions::{STILL_OPEN, TERMINAL_VALUES, ended};
use super::errors::{conditional, expected};
use super::keys::{code_sk, codes_pk, key, order_key};
use super::transaction::Tx;
use crate::store::{
    Ended, NotifyMarks, OrderReader, OrderRecord, Persisted, PollChain, PollRecord, StoreError,
    Terminal, missing_codes,
};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use time::OffsetDateTime;

/// Codes written per transaction beside the order's commit or its check
/// (DynamoDB takes 100 actions at most).
pub(super) const MAX_CODES_PER_COMMIT: usize = 99;

impl DynamoStore {
    /// Stores the codes, then the status: see [`PollChain::persist_terminal`].
    async fn store_terminal(
        &self,
        order: &OrderRecord,
        terminal: &Terminal,
    ) -> Result<Persisted, StoreError> {
        // An earlier attempt may have stored some codes before it was cut
        // short: those are kept, and only the rest is written. FoxReload's
        // list is compared as a multiset, since a re-read may give the same
        // codes in another order (items included).
        let stored = self.codes(&order.order_id).await?;
        let (missing, unlisted) = missing_codes(&stored, &terminal.codes);
        let received = rfc3339(terminal.at);
        let mut sealed = Vec::with_capacity(missing.len());
        for code in &missing {
            sealed.push(self.seal_code(&order.order_id, code).await?);
        }
        let mut puts: Vec<TransactWriteItem> = missing
            .iter()
            .zip(sealed)
            .map(|(code, sealed)| {
                let mut item = key(codes_pk(&order.order_id), &code_sk(code.index));
                item.insert("orderId".into(), s(&order.order_id));
                item.insert("codeIndex".into(), n(code.index));
                item.insert("itemIndex".into(), n(code.item_index));
                item.insert("productId".into(), s(&code.product_id));
                match sealed {
                    Some(sealed) => item.insert(
                        "codeSealed".into(),
                        AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(sealed)),
                    ),
                    None => item.insert("code".into(), s(&code.code)),
                };
                item.insert("kind".into(), s(code_kind(code.kind)));
                item.insert("receivedAt".into(), s(&received));
                if let Some(reference) = &order.customer_reference {
                    item.insert("customerReference".into(), s(reference));
                }
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    // Another writer took this position: start again from
                    // what is stored.
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .expect("table, item and condition are set");
                TransactWriteItem::builder().put(put).build()
            })
            .collect();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(&order.order_id)))
            .update_expression(
                "SET #status = :status, itemOutcomes = :items, codeCount = :count, \
                 terminalAt = :at, updatedAt = :atText, supplierStatus = :sst, cancelReason = :cancel",
            )
            .condition_expression(STILL_OPEN)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(terminal.status.as_str()))
            .expression_attribute_values(":items", json(&terminal.items))
            .expression_attribute_values(":count", n(stored.len() + missing.len()))
            .expression_attribute_values(":at", n(millis(terminal.at)))
            .expression_attribute_values(":atText", s(&received))
            .expression_attribute_values(
                ":sst",
                terminal
                    .supplier_status
                    .as_ref()
                    .map_or(AttributeValue::Null(true), s),
            )
            .expression_attribute_values(
                ":cancel",
                terminal
                    .cancel_reason
                    .as_ref()
                    .map_or(AttributeValue::Null(true), s),
            );
        for (name, status) in TERMINAL_VALUES {
            update = update.expression_attribute_values(name, s(status.as_str()));
        }
        let commit = TransactWriteItem::builder()
            .update(update.build().expect("table, key and expression are set"))
            .build();
        // DynamoDB takes at most 100 actions per transaction: the codes go
        // first in chunks, each with a check that the order has not ended
        // (no code is ever added to an ended order); the last transaction
        // carries the status, which commits the order's end.
        let tail = if puts.is_empty() {
            0
        } else {
            (puts.len() - 1) % MAX_CODES_PER_COMMIT + 1
        };
        let last = puts.split_off(puts.len() - tail);
        for chunk in puts.chunks(MAX_CODES_PER_COMMIT) {
            let mut actions = vec![self.still_open_check(&order.order_id)];
            actions.extend_from_slice(chunk);
            match self.transact("persist codes", actions).await? {
                Tx::Committed => {}
                Tx::Refused(flags) if flags[0] => return Ok(Persisted::AlreadyTerminal),
                Tx::Refused(_) => {
                    return Err(StoreError::Conflict {
                        operation: "persist codes",
                        order_id: order.order_id.clone(),
                    });
                }
            }
        }
        let mut actions = last;
        actions.push(commit);
        let count = actions.len();
        match self.transact("persist terminal status", actions).await? {
            Tx::Committed => Ok(Persisted::Committed { unlisted }),
            Tx::Refused(flags) if flags[count - 1] => Ok(Persisted::AlreadyTerminal),
            Tx::Refused(_) => Err(StoreError::Conflict {
                operation: "persist codes",
                order_id: order.order_id.clone(),
            }),
        }
    }

    /// A transaction action that checks the order has not ended.
    pub(super) fn still_open_check(&self, order_id: &str) -> TransactWriteItem {
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .condition_expression(STILL_OPEN)
            .expression_attribute_names("#status", "status");
        for (name, status) in TERMINAL_VALUES {
            check = check.expression_attribute_values(name, s(status.as_str()));
        }
        TransactWriteItem::builder()
            .condition_check(check.build().expect("table, key and condition are set"))
            .build()
    }
}

impl PollChain for DynamoStore {
    async fn claim_link(
        &self,
        order_id: &str,
        seq: u64,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression("SET claimedSeq = :seq, leaseUntil = :lease")
            .condition_expression(
                "pollSeq = :seq AND (attribute_not_exists(claimedSeq) OR claimedSeq < :seq \
                 OR (claimedSeq = :seq AND leaseUntil < :now))",
            )
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":lease", n(millis(lease_until)))
            .expression_attribute_values(":now", n(millis(now)))
            .send()
            .await;
        conditional("claim poll link", result)
    }

    async fn record_poll(
        &self,
        order_id: &str,
        seq: u64,
        poll: &PollRecord,
    ) -> Result<(), StoreError> {
        let mut sets = vec![
            "pollSeq = :next",
            "nextPollDueAt = :due",
            "lastDelayMs = :delay",
            "consecutiveErrors = :errors",
            "updatedAt = :nowText",
        ];
        let mut removes = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .condition_expression("claimedSeq = :seq AND pollSeq = :seq")
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":next", n(poll.next_seq))
            .expression_attribute_values(":due", n(millis(poll.next_due)))
            .expression_attribute_values(":delay", n(poll.nominal_delay.as_millis()))
            .expression_attribute_values(":errors", n(poll.consecutive_errors))
            .expression_attribute_values(":nowText", s(rfc3339(poll.now)));
        if poll.polled {
            sets.push("pollCount = if_not_exists(pollCount, :zero) + :one");
            sets.push("lastPolledAt = :now");
            request = request
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1));
        }
        // Bound only when used: DynamoDB refuses a value no expression
        // names (moto does not check).
        if poll.polled || poll.status.is_some() {
            request = request.expression_attribute_values(":now", n(millis(poll.now)));
        }
        if let Some(status) = poll.status {
            sets.push("#status = :status");
            request = request
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        if let Some(supplier_status) = &poll.supplier_status {
            sets.push("supplierStatus = :sst");
            request = request.expression_attribute_values(":sst", s(supplier_status));
        }
        if poll.status.is_some() {
            // FoxReload answered, with the order open.
            sets.push("lastSeenOpenAt = :now");
        }
        match poll.plan_step {
            Some(step) => {
                sets.push("planStep = :step");
                request = request.expression_attribute_values(":step", n(step));
            }
            None => removes.push("planStep"),
        }
        match &poll.error {
            Some(problem) => {
                sets.push("lastError = :err");
                request = request.expression_attribute_values(":err", json(problem));
            }
            None => removes.push("lastError"),
        }
        match &poll.needs_attention {
            Some(why) => {
                sets.push("needsAttention = :attention");
                request = request.expression_attribute_values(":attention", s(why));
            }
            None => removes.push("needsAttention"),
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        expected(
            "record poll",
            order_id,
            request.update_expression(expression).send().await,
        )
    }

    async fn persist_terminal(
        &self,
        order: &OrderRecord,
        terminal: &Terminal,
    ) -> Result<Ended, StoreError> {
        let persisted = self.store_terminal(order, terminal).await?;
        let stored = self
            .order(&order.order_id)
            .await?
            .ok_or_else(|| StoreError::Conflict {
                operation: "persist terminal status",
                order_id: order.order_id.clone(),
            })?;
        Ok(Ended {
            persisted,
            order: stored,
        })
    }
}

impl NotifyMarks for DynamoStore {
    async fn mark_notified(&self, order_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression("SET notifiedAt = :now REMOVE pendingPk, pendingSk")
            .condition_expression(concat!(ended!(), " AND attribute_not_exists(notifiedAt)"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(millis(now)));
        for (name, status) in TERMINAL_VALUES {
            request = request.expression_attribute_values(name, s(status.as_str()));
        }
        // Already marked by another copy: the same event went out.
        conditional("mark order notified", request.send().await).map(drop)
    }
}
