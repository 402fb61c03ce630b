//! The order store on DynamoDB: one table, every write conditional.
//!
//! Items (`pk`, `sk`):
//! - `ORDER#{orderId}`, `ORDER`: the order. Non-terminal orders also carry
//!   `pendingPk = "PENDING"` and `pendingSk = "{createdAt}#{orderId}"`, which
//!   puts them in the sparse `pending-orders` index.
//! - `SUPPLIER#{supplierOrderId}`, `CLAIM`: which of our orders holds a
//!   FoxReload order; created only if absent, so a supplier order is held by
//!   exactly one of ours.
//! - `CODES#{orderId}`, `CODE#{position:06}`: one delivered code each
//!   (orders that ended before this layout keep theirs under
//!   `ORDER#{orderId}`, and are still read from there). Only poll-order
//!   writes under `CODES#`: create-order's role is denied it. The code is
//!   sealed (`codeSealed`, binary: see [`crate::sealing`]) when the store
//!   has a sealer, as every deployed function's has; codes stored before
//!   that (`code`, text) are still read.
//! - `IDEMPOTENCY#{scope}#{key}`, `IDEMPOTENCY`: a caller's idempotency key
//!   (`scope`: 32 hex digits naming the caller; keys stored before callers
//!   were told apart have none), with `expiresAt` (epoch seconds) as the
//!   table's TTL attribute.
//! - `CLOCK#foxreload`, `OFFSET`: FoxReload's measured clock offset.
//! - `ALERT#{name}`, `ALERT`: when an alert about the whole stack (not one
//!   order) was last sent, so concurrent functions send it once.
//! - `SWEEP#scan-stalled`, `CURSOR`: where the sweep resumes.
//! - `LEARN#{productId}`, `SUMMARY`: how long the product's orders take to
//!   end, as learned polling keeps it (`learning`).
//! - `WEBHOOK#{eventId}`, `DELIVERED#{endpointId}`: the event reached the
//!   endpoint (with `expiresAt`); `WEBHOOK#{endpointId}`, `BREAKER`: the
//!   endpoint's circuit breaker (`webhooks`). Only deliver-webhook writes
//!   under `WEBHOOK#`.
//!
//! | module | holds |
//! |---|---|
//! | `keys` | each item's keys, the sweep cursor |
//! | `codec` | items to records and back, one time format per meaning |
//! | `conditions` | the status conditions writes share |
//! | `errors`, `transaction` | sorting SDK failures; transactions and their retries |
//! | `idempotency`, `placement`, `chain`, `alerts`, `sweep`, `learning`, `webhooks` | one port each (`learning`: two) |
//! | `reseal` | sealing codes an earlier version stored in clear (maintenance) |

mod alerts;
mod budget;
mod chain;
mod codec;
mod conditions;
mod errors;
mod idempotency;
mod keys;
mod learning;
mod placement;
mod reseal;
mod sweep;
mod transaction;
mod webhooks;

pub use budget::LimiterReading;
pub use keys::PENDING_INDEX;
pub use reseal::{ResealCursor, ResealPage};

use crate::domain::event::DeliveredCodeRecord;
use crate::sealing::{Place, SealError, Sealer};
use crate::store::{OrderReader, OrderRecord, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use codec::{code_from_item, code_kind, order_from_item, s};
use errors::sdk_error;
use keys::{code_sk, codes_pk, order_key};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The DynamoDB adapter of every store port ([`crate::store::OrderStore`]).
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Seals codes before they are written and opens them when read;
    /// `None`: codes are written as text, and sealed ones cannot be read
    /// (scan-stalled, which never reads a code).
    sealer: Option<Arc<Sealer>>,
    /// With a sealer: whether codes found in clear (stored before sealing)
    /// are read. Off, one is refused as unreadable: nobody with write
    /// access to the table can slip a code in beside the sealed ones.
    read_clear: bool,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            sealer: None,
            read_clear: false,
        }
    }

    /// Whether codes stored in clear are read beside sealed ones
    /// (`READ_CODES_IN_CLEAR`, while `foxrelay-local reseal` seals them).
    pub fn reading_codes_in_clear(mut self, read: bool) -> Self {
        self.read_clear = read;
        self
    }

    /// The store sealing the codes it writes and opening those it reads.
    pub fn with_sealer(mut self, sealer: Arc<Sealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// The code's sealed form, or `None` without a sealer (it is stored as
    /// text).
    pub(super) async fn seal_code(
        &self,
        order_id: &str,
        code: &DeliveredCodeRecord,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(sealer) = &self.sealer else {
            return Ok(None);
        };
        let place = place(order_id, code);
        sealer
            .seal(&place, &code.code)
            .await
            .map(Some)
            .map_err(|e| seal_error("seal a code", order_id, code.index, e))
    }

    async fn open_code(
        &self,
        order_id: &str,
        code: &DeliveredCodeRecord,
        sealed: &[u8],
    ) -> Result<String, StoreError> {
        let Some(sealer) = &self.sealer else {
            return Err(StoreError::Refused {
                operation: "read codes",
                source: "the codes are sealed, and this function holds no key to open them".into(),
            });
        };
        sealer
            .open(&place(order_id, code), sealed)
            .await
            .map_err(|e| seal_error("open a code", order_id, code.index, e))
    }
}

/// Where a code belongs: the order it is read for (never the one its item
/// names), its position, item, product and kind.
fn place<'a>(order_id: &'a str, code: &'a DeliveredCodeRecord) -> Place<'a> {
    Place {
        order_id,
        index: code.index,
        item_index: code.item_index,
        product_id: &code.product_id,
        kind: code_kind(code.kind),
    }
}

fn seal_error(operation: &'static str, order_id: &str, index: u32, error: SealError) -> StoreError {
    match error {
        SealError::Unavailable { source, .. } => StoreError::Unavailable { operation, source },
        SealError::Refused { source, .. } => StoreError::Refused { operation, source },
        SealError::Broken(reason) => StoreError::Corrupt {
            key: format!("{}/{}", codes_pk(order_id), code_sk(index)),
            reason: reason.to_owned(),
        },
    }
}

impl DynamoStore {
    pub(super) async fn get(
        &self,
        key: Item,
        operation: &'static str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        Ok(out.item)
    }

    /// Every code item of `order_id` under partition `pk`, in position
    /// order, sealed ones opened.
    pub(super) async fn codes_under(
        &self,
        order_id: &str,
        pk: String,
    ) -> Result<Vec<DeliveredCodeRecord>, StoreError> {
        let mut codes = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :code)")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":code", s("CODE#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("read codes", e))?;
            for item in page.items() {
                let (mut code, sealed) = code_from_item(item)?;
                let corrupt = |reason: &str| StoreError::Corrupt {
                    key: format!("{pk}/{}", code_sk(code.index)),
                    reason: reason.to_owned(),
                };
                // Its position is its key's: a copy under another key
                // (which would list the code twice) is refused.
                if item.get("sk") != Some(&s(code_sk(code.index))) {
                    return Err(corrupt("a code item whose position is not its key's"));
                }
                match sealed {
                    Some(sealed) => code.code = self.open_code(order_id, &code, &sealed).await?,
                    None if self.sealer.is_some() && !self.read_clear => {
                        return Err(corrupt(
                            "a code in clear where codes are sealed: seal it with `foxrelay-local reseal`, or set READ_CODES_IN_CLEAR while you do",
                        ));
                    }
                    None => {}
                }
                codes.push(code);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(codes);
            }
        }
    }
}

impl OrderReader for DynamoStore {
    async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        self.get(order_key(order_id), "read order")
            .await?
            .as_ref()
            .map(order_from_item)
            .transpose()
    }

    async fn codes(&self, order_id: &str) -> Result<Vec<DeliveredCodeRecord>, StoreError> {
        let mut codes = self.codes_under(order_id, codes_pk(order_id)).await?;
        // Orders that ended before codes had their own partition keep them
        // beside the order; an order cut short across the upgrade may have
        // some in each place. Only a code stored twice alike is kept once:
        // two different codes at one position are both kept, never hidden.
        let legacy = self
            .codes_under(order_id, format!("ORDER#{order_id}"))
            .await?;
        if !legacy.is_empty() {
            codes.extend(legacy);
            codes.sort_by(|a, b| (a.index, &a.code).cmp(&(b.index, &b.code)));
            codes.dedup();
        }
        Ok(codes)
    }
}
