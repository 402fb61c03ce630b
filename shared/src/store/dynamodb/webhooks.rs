//! deliver-webhook's items: which endpoint has an event (so a redelivered
//! event is not sent again where it landed), and each endpoint's breaker.

use super::DynamoStore;
use super::codec::{Reader, millis, n};
use super::errors::{conditional, sdk_error};
use super::keys::{breaker_key, delivered_key};
use crate::domain::webhook::Breaker;
use crate::store::{StoreError, WebhookStore};
use aws_sdk_dynamodb::types::ReturnValue;
use time::OffsetDateTime;

/// How long a delivery is remembered: past the longest retry schedule
/// (a day between tries, twenty tries) and the dead-letter queue's 14
/// days, so a redriven dead letter does not go again where it landed.
const DELIVERED_KEPT_SECS: i64 = 40 * 86_400;

impl WebhookStore for DynamoStore {
    async fn delivered(&self, event_id: &str, endpoint: &str) -> Result<bool, StoreError> {
        let item = self
            .get(delivered_key(event_id, endpoint), "read a webhook delivery")
            .await?;
        Ok(item.is_some())
    }

    async fn mark_delivered(
        &self,
        event_id: &str,
        endpoint: &str,
        status: u16,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(delivered_key(event_id, endpoint)))
            .item("deliveredAt", n(millis(now)))
            .item("status", n(status))
            .item("expiresAt", n(now.unix_timestamp() + DELIVERED_KEPT_SECS))
            .send()
            .await
            .map_err(|e| sdk_error("mark a webhook delivered", e))?;
        Ok(())
    }

    async fn breaker(&self, endpoint: &str) -> Result<Breaker, StoreError> {
        let Some(item) = self
            .get(breaker_key(endpoint), "read a webhook endpoint's breaker")
            .await?
        else {
            return Ok(Breaker::default());
        };
        let r = Reader::named_by(&item, "pk");
        let failures = r.opt_n("failures")?.unwrap_or(0);
        let open_until_ms = r.opt_n("openUntil")?.unwrap_or(0);
        let cool_off_ms = r.opt_n("coolOff")?.unwrap_or(0);
        Ok(Breaker {
            failures: u32::try_from(failures).map_err(|_| r.corrupt("failures is out of range"))?,
            open_until_ms: i64::try_from(open_until_ms)
                .map_err(|_| r.corrupt("openUntil is out of range"))?,
            cool_off_ms: i64::try_from(cool_off_ms)
                .map_err(|_| r.corrupt("coolOff is out of range"))?,
        })
    }

    async fn record_failure(&self, endpoint: &str, now_ms: i64) -> Result<u32, StoreError> {
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(breaker_key(endpoint)))
            .update_expression("ADD failures :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| sdk_error("count a webhook endpoint's failure", e))?;
        let item = counted.attributes.unwrap_or_default();
        let failures = Reader::named_by(&item, "failures")
            .opt_n("failures")?
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(u32::MAX);
        if Breaker::opens_at(failures) {
            // Opened once, by whichever failure gets there first, and only
            // while it is closed: failures of requests under way when it
            // opened lengthen nothing, and a success that closed it since
            // (failures back to 0) keeps it closed.
            let opened = Breaker::opened(failures, now_ms);
            let written = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(breaker_key(endpoint)))
                .update_expression("SET openUntil = :until, coolOff = :cool")
                .condition_expression(
                    "(attribute_not_exists(openUntil) OR openUntil = :zero) AND failures >= :open_after",
                )
                .expression_attribute_values(":until", n(opened.open_until_ms))
                .expression_attribute_values(":cool", n(opened.cool_off_ms))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":open_after", n(Breaker::OPEN_AFTER))
                .send()
                .await;
            conditional("open a webhook endpoint's breaker", written)?;
        }
        Ok(failures)
    }

    async fn record_failed_probe(
        &self,
        endpoint: &str,
        claimed_until_ms: i64,
        next: &Breaker,
    ) -> Result<(), StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(breaker_key(endpoint)))
            .update_expression("SET openUntil = :until, coolOff = :cool ADD failures :one")
            .condition_expression("openUntil = :claimed")
            .expression_attribute_values(":until", n(next.open_until_ms))
            .expression_attribute_values(":cool", n(next.cool_off_ms))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":claimed", n(claimed_until_ms))
            .send()
            .await;
        // Refused: a success closed it meanwhile, or the claim had lapsed
        // and another probe holds it; either way this one says nothing new.
        conditional("reopen a webhook endpoint's breaker", written)?;
        Ok(())
    }

    async fn claim_probe(
        &self,
        endpoint: &str,
        seen_open_until_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        // A breaker whose opening was never written (that write failed)
        // reads as 0, and is claimed as well.
        // Still open as it was seen: a success that closed it meanwhile
        // (failures back to 0) is not claimed.
        let condition = if seen_open_until_ms == 0 {
            "(attribute_not_exists(openUntil) OR openUntil = :seen) AND failures >= :open_after"
        } else {
            "openUntil = :seen AND failures >= :open_after"
        };
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(breaker_key(endpoint)))
            .update_expression("SET openUntil = :until")
            .condition_expression(condition)
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":seen", n(seen_open_until_ms))
            .expression_attribute_values(":open_after", n(Breaker::OPEN_AFTER))
            .send()
            .await;
        conditional("claim a webhook endpoint's probe", claimed)
    }

    async fn close_breaker(&self, endpoint: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(breaker_key(endpoint)))
            .update_expression("SET failures = :zero, openUntil = :zero, coolOff = :zero")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(|e| sdk_error("close a webhook endpoint's breaker", e))?;
        Ok(())
    }
}
