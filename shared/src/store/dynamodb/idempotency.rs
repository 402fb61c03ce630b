//! Idempotency keys: claimed with the order's intent in one transaction,
//! held by one request at a time, answered once, freed only by their holder.

use super::DynamoStore;
use super::codec::{idempotency_from_item, intent_to_item, millis, n, s};
use super::errors::{conditional, expected};
use super::keys::idempotency_key;
use super::transaction::Tx;
use crate::store::{
    Begin, IdempotencyClaim, IdempotencyRecord, IdempotencyStore, OrderRecord, StoreError,
    StoredResponse,
};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use time::OffsetDateTime;

impl IdempotencyStore for DynamoStore {
    async fn begin(
        &self,
        order: &OrderRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Begin, StoreError> {
        let put_order = Put::builder()
            .table_name(&self.table)
            .set_item(Some(intent_to_item(order)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table, item and condition are set");
        let mut actions = vec![TransactWriteItem::builder().put(put_order).build()];
        if let Some(claim) = claim {
            let mut item = idempotency_key(&claim.key);
            item.insert("idempotencyKey".into(), s(&claim.key));
            item.insert("fingerprint".into(), s(&claim.fingerprint));
            item.insert("orderId".into(), s(&order.order_id));
            item.insert("holder".into(), s(&claim.holder));
            item.insert("lockedUntil".into(), n(millis(claim.locked_until)));
            item.insert("expiresAt".into(), n(claim.expires_at.unix_timestamp()));
            let put_key = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                // A key past its expiry is free again (TTL deletes lazily).
                .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
                .expression_attribute_values(":now", n(order.created_at.unix_timestamp()))
                .build()
                .expect("table, item and condition are set");
            actions.push(TransactWriteItem::builder().put(put_key).build());
        }
        match self.transact("begin order", actions).await? {
            Tx::Committed => Ok(Begin::Started),
            Tx::Refused(flags) => match claim {
                Some(claim) if flags.get(1) == Some(&true) => {
                    match self.idempotency(&claim.key).await? {
                        Some(record) => Ok(Begin::KeyTaken(record)),
                        // Gone (expired and deleted) in between: the caller
                        // sees a retryable conflict and the client retries.
                        None => Err(StoreError::Conflict {
                            operation: "begin order",
                            order_id: order.order_id.clone(),
                        }),
                    }
                }
                _ => Err(StoreError::Conflict {
                    operation: "begin order",
                    order_id: order.order_id.clone(),
                }),
            },
        }
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.get(idempotency_key(key), "read idempotency key")
            .await?
            .as_ref()
            .map(idempotency_from_item)
            .transpose()
    }

    async fn take_over(
        &self,
        record: &IdempotencyRecord,
        holder: &str,
        locked_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(idempotency_key(&record.key)))
            .update_expression("SET holder = :new, lockedUntil = :until")
            .condition_expression(
                "holder = :old AND lockedUntil < :now AND attribute_not_exists(responseStatus)",
            )
            .expression_attribute_values(":new", s(holder))
            .expression_attribute_values(":old", s(&record.holder))
            .expression_attribute_values(":until", n(millis(locked_until)))
            .expression_attribute_values(":now", n(millis(now)))
            .send()
            .await;
        conditional("take over idempotency key", result)
    }

    async fn finish(
        &self,
        key: &str,
        holder: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(idempotency_key(key)))
            .update_expression("SET responseStatus = :status, responseBody = :body")
            .condition_expression("holder = :holder AND attribute_not_exists(responseStatus)")
            .expression_attribute_values(":status", n(response.status))
            .expression_attribute_values(":body", s(&response.body))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        expected("finish idempotency key", key, result)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(idempotency_key(key)))
            .condition_expression("holder = :holder AND attribute_not_exists(responseStatus)")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        // Someone took it over: theirs to settle.
        conditional("release idempotency key", result).map(drop)
    }
}
