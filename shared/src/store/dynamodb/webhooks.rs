//! deliver-webhook's items: which endpoint has an event (so a redelivered
//! event is not sent again where it landed), and each endpoint's breaker.

use super::DynamoStore;
use super::codec::{Reader, millis, n};
use super::errors::sdk_error;
use super::keys::{breaker_key, delivered_key};
use crate::domain::webhook::Breaker;
use crate::store::{StoreError, WebhookStore};
use time::OffsetDateTime;

/// How long a delivery is remembered: past the longest retry schedule
/// (a day between tries, twenty tries) and the queue's retention.
const DELIVERED_KEPT_SECS: i64 = 30 * 86_400;

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
        Ok(Breaker {
            failures: u32::try_from(failures).map_err(|_| r.corrupt("failures is out of range"))?,
            open_until_ms: i64::try_from(open_until_ms)
                .map_err(|_| r.corrupt("openUntil is out of range"))?,
        })
    }

    async fn save_breaker(&self, endpoint: &str, breaker: &Breaker) -> Result<(), StoreError> {
        // The breaker only spares a failing endpoint requests: two
        // deliveries racing to save it cannot lose or repeat a delivery,
        // so the last write wins.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(breaker_key(endpoint)))
            .item("failures", n(breaker.failures))
            .item("openUntil", n(breaker.open_until_ms))
            .send()
            .await
            .map_err(|e| sdk_error("save a webhook endpoint's breaker", e))?;
        Ok(())
    }
}
