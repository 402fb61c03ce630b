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
//!   writes under `CODES#`: create-order's role is denied it.
//! - `IDEMPOTENCY#{scope}#{key}`, `IDEMPOTENCY`: a caller's idempotency key
//!   (`scope`: 32 hex digits naming the caller; keys stored before callers
//!   were told apart have none), with `expiresAt` (epoch seconds) as the
//!   table's TTL attribute.
//! - `CLOCK#foxreload`, `OFFSET`: FoxReload's measured clock offset.
//! - `ALERT#{name}`, `ALERT`: when an alert about the whole stack (not one
//!   order) was last sent, so concurrent functions send it once.
//! - `SWEEP#scan-stalled`, `CURSOR`: where the sweep resumes.

use super::{
    AlertSlot, Begin, Claim, IdempotencyClaim, IdempotencyRecord, OrderRecord, OrderStore,
    PendingPage, Persisted, PollRecord, StoreError, StoredResponse, SupplierProblem, Terminal,
};
use crate::domain::event::{CodeKind, DeliveredCodeRecord};
use crate::domain::reconcile::ClockOffset;
use crate::domain::{OrderLine, OrderStatus, Principal};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type Item = HashMap<String, AttributeValue>;

/// Name of the sparse index of non-terminal orders.
pub const PENDING_INDEX: &str = "pending-orders";
const PENDING: &str = "PENDING";

/// The DynamoDB adapter of [`OrderStore`].
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn order_key(order_id: &str) -> Item {
    key(format!("ORDER#{order_id}"), "ORDER")
}

fn claim_key(supplier_order_id: &str) -> Item {
    key(format!("SUPPLIER#{supplier_order_id}"), "CLAIM")
}

fn idempotency_key(key_text: &str) -> Item {
    key(format!("IDEMPOTENCY#{key_text}"), "IDEMPOTENCY")
}

/// Where the time an alert was last sent is kept: an order's slot, or a
/// stack alert's item (created on first use).
struct AlertMark {
    operation: &'static str,
    key: Item,
    attribute: &'static str,
    existing_only: bool,
}

fn stack_alert_key(name: &str) -> Item {
    key(format!("ALERT#{name}"), "ALERT")
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// RFC 3339 in UTC, so stored times sort as text.
fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

fn millis(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000_000
}

fn json<T: serde::Serialize>(value: &T) -> AttributeValue {
    s(serde_json::to_string(value).expect("stored values are plain JSON"))
}

/// Sorts an SDK failure: throttling, 5xx and transport trouble are
/// retryable; the rest is refused.
fn sdk_error<E>(operation: &'static str, error: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = passes(&error);
    let source = Box::new(error);
    if retryable {
        StoreError::Unavailable { operation, source }
    } else {
        StoreError::Refused { operation, source }
    }
}

/// Whether an SDK failure passes with time (throttling, 5xx, transport).
fn passes<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || matches!(
                    service.err().code(),
                    Some(
                        "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                            | "ThrottlingException"
                            | "InternalServerError"
                            | "TransactionConflictException"
                            | "TransactionInProgressException"
                    )
                )
        }
        _ => false,
    }
}

/// A conditional write's outcome: written, or refused by its condition;
/// any other failure is an error.
fn conditional<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(sdk_error(operation, e)),
    }
}

/// A conditional write that must have been written: a refusal means the
/// item is not in the state expected.
fn expected<T, E>(
    operation: &'static str,
    id: &str,
    result: Result<T, SdkError<E>>,
) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if conditional(operation, result)? {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            operation,
            order_id: id.to_owned(),
        })
    }
}

fn is_condition_failure<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    matches!(error, SdkError::ServiceError(s) if s.err().code() == Some("ConditionalCheckFailedException"))
}

/// What a failed transaction says about itself.
#[derive(Debug, PartialEq, Eq)]
enum Cancellation {
    /// Cancelled only because conditions failed: which actions, in order.
    Conditions(Vec<bool>),
    /// Cancelled for a reason that passes (`TransactionConflict`,
    /// `ThrottlingError`, `ProvisionedThroughputExceeded`, …): not an answer
    /// about the items, so the transaction is tried again.
    Passing,
    /// Not a cancellation.
    Other,
}

/// Sorts a failed transaction. Only `ConditionalCheckFailed` is a condition
/// failure; an action whose reason is `None` passed. Any other reason, even
/// beside a failed condition, makes the whole answer passing: a condition
/// reported together with a conflict is not trusted until a clean retry.
fn cancellation(error: &SdkError<TransactWriteItemsError>, actions: usize) -> Cancellation {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        return Cancellation::Other;
    };
    let mut flags = Vec::with_capacity(actions);
    for reason in cancelled.cancellation_reasons() {
        match reason.code() {
            Some("ConditionalCheckFailed") => flags.push(true),
            None | Some("None") | Some("") => flags.push(false),
            // A request DynamoDB will never take: no retry helps.
            Some("ValidationError") => return Cancellation::Other,
            Some(_) => return Cancellation::Passing,
        }
    }
    if flags.len() == actions && flags.contains(&true) {
        Cancellation::Conditions(flags)
    } else {
        Cancellation::Passing
    }
}

/// How a transaction ended, when it did not fail.
#[derive(Debug)]
enum Tx {
    Committed,
    /// Refused by its conditions: which actions failed theirs, in order.
    Refused(Vec<bool>),
}

/// Pauses before each new try of a transaction cancelled for a passing
/// reason (jittered by up to the same again).
const TX_BACKOFF_MS: [u64; 4] = [20, 80, 250, 600];

/// Reads attributes of a stored item, naming the item when one is wrong.
/// Reads attributes of a stored item, naming the item when one is wrong.
struct Reader<'a> {
    item: &'a Item,
    key: String,
}

impl Reader<'_> {
    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            key: self.key.clone(),
            reason: reason.into(),
        }
    }

    fn opt_s(&self, name: &str) -> Option<&str> {
        self.item
            .get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    fn s(&self, name: &str) -> Result<&str, StoreError> {
        self.opt_s(name)
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    fn opt_n(&self, name: &str) -> Result<Option<i128>, StoreError> {
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

    fn time(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        OffsetDateTime::parse(self.s(name)?, &Rfc3339)
            .map_err(|e| self.corrupt(format!("{name}: {e}")))
    }

    fn millis(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.opt_n(name)?
            .map(|ms| {
                OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
                    .map_err(|e| self.corrupt(format!("{name}: {e}")))
            })
            .transpose()
    }

    /// A list of instants in epoch milliseconds.
    fn millis_list(&self, name: &str) -> Result<Option<Vec<OffsetDateTime>>, StoreError> {
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

    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.opt_s(name)
            .map(|text| {
                serde_json::from_str(text).map_err(|e| self.corrupt(format!("{name}: {e}")))
            })
            .transpose()
    }
}

fn order_from_item(item: &Item) -> Result<OrderRecord, StoreError> {
    let r = Reader {
        item,
        key: item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
    };
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
        handed_over: matches!(item.get("handedOver"), Some(AttributeValue::Bool(true))),
        items: r.json("itemOutcomes")?.unwrap_or_default(),
        code_count: r.opt_n("codeCount")?.unwrap_or(0) as u32,
        terminal_at: r.millis("terminalAt")?,
        notified_at: r.millis("notifiedAt")?,
        stall_alerted_at: r.millis("stallAlertedAt")?,
        revivals: r.opt_n("revivals")?.unwrap_or(0) as u32,
        revived_at_polls: r.opt_n("revivedAtPolls")?.map(|n| n.max(0) as u64),
    })
}

fn order_to_item(order: &OrderRecord) -> Item {
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
        item.insert(
            "pendingSk".into(),
            s(format!("{created}#{}", order.order_id)),
        );
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
    item
}

fn idempotency_from_item(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let r = Reader {
        item,
        key: item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
    };
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

/// Codes written per transaction beside the order's commit or its check
/// (DynamoDB takes 100 actions at most).
const MAX_CODES_PER_COMMIT: usize = 99;

/// The order exists and has not ended.
const STILL_OPEN: &str = "attribute_exists(pk) AND NOT #status IN (:c, :x, :f, :a, :n)";

/// The codes of `delivered` not yet in `stored`, compared as a multiset of
/// (product, code, kind), numbered after the stored ones; and how many
/// stored codes `delivered` no longer holds.
fn missing_codes(
    stored: &[DeliveredCodeRecord],
    delivered: &[DeliveredCodeRecord],
) -> (Vec<DeliveredCodeRecord>, u32) {
    let mut left: HashMap<(&str, &str, &'static str), usize> = HashMap::new();
    for code in stored {
        *left
            .entry((
                code.product_id.as_str(),
                code.code.as_str(),
                code_kind(code.kind),
            ))
            .or_default() += 1;
    }
    let mut next = stored.iter().map(|c| c.index + 1).max().unwrap_or(0);
    let mut missing = Vec::new();
    for code in delivered {
        let key = (
            code.product_id.as_str(),
            code.code.as_str(),
            code_kind(code.kind),
        );
        match left.get_mut(&key) {
            Some(count) if *count > 0 => *count -= 1,
            _ => {
                missing.push(DeliveredCodeRecord {
                    index: next,
                    ..code.clone()
                });
                next += 1;
            }
        }
    }
    let unlisted = left.values().sum::<usize>() as u32;
    (missing, unlisted)
}

const TERMINAL_VALUES: [(&str, OrderStatus); 5] = [
    (":c", OrderStatus::Completed),
    (":x", OrderStatus::Cancelled),
    (":f", OrderStatus::Failed),
    (":a", OrderStatus::Abandoned),
    (":n", OrderStatus::NotPlaced),
];

fn clock_key() -> Item {
    key("CLOCK#foxreload".to_owned(), "OFFSET")
}

fn alert_attribute(slot: AlertSlot) -> &'static str {
    match slot {
        AlertSlot::Stall => "stallAlertedAt",
        AlertSlot::Reconcile => "reconcileAlertedAt",
        AlertSlot::LongRunning => "longRunningAlertedAt",
        AlertSlot::ChainStuck => "chainStuckAlertedAt",
    }
}

fn sweep_key() -> Item {
    key("SWEEP#scan-stalled".to_owned(), "CURSOR")
}

/// The index's LastEvaluatedKey as an opaque cursor (JSON of its strings).
fn key_to_cursor(key: &Item) -> String {
    let strings: std::collections::BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(name, value)| value.as_s().ok().map(|v| (name.as_str(), v.as_str())))
        .collect();
    serde_json::to_string(&strings).expect("strings are JSON")
}

fn cursor_to_key(cursor: &str) -> Result<Item, StoreError> {
    let strings: HashMap<String, String> =
        serde_json::from_str(cursor).map_err(|e| StoreError::Corrupt {
            key: "SWEEP#scan-stalled".into(),
            reason: format!("cursor: {e}"),
        })?;
    Ok(strings.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// The partition of an order's codes: apart from every item create-order
/// may write, so its role can be denied writing there (IAM's
/// `dynamodb:LeadingKeys`).
fn codes_pk(order_id: &str) -> String {
    format!("CODES#{order_id}")
}

/// Codes sort by their position: `CODE#000042`.
fn code_sk(index: u32) -> String {
    format!("CODE#{index:06}")
}

fn code_kind(kind: CodeKind) -> &'static str {
    match kind {
        CodeKind::Code => "code",
        CodeKind::Data => "data",
    }
}

fn code_from_item(item: &Item) -> Result<DeliveredCodeRecord, StoreError> {
    let r = Reader {
        item,
        key: item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
    };
    let number = |name: &str| -> Result<u32, StoreError> {
        r.opt_n(name)?
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| r.corrupt(format!("{name} is missing")))
    };
    Ok(DeliveredCodeRecord {
        index: number("codeIndex")?,
        item_index: number("itemIndex")?,
        product_id: r.s("productId")?.to_owned(),
        code: r.s("code")?.to_owned(),
        kind: match r.s("kind")? {
            "code" => CodeKind::Code,
            "data" => CodeKind::Data,
            other => return Err(r.corrupt(format!("unknown code kind {other}"))),
        },
    })
}

/// `status IN (creating, reconciling)`: the states a create may still change.
const STILL_CREATING: &str = "#status IN (:creating, :reconciling)";

fn creating_values() -> [(&'static str, AttributeValue); 2] {
    [
        (":creating", s(OrderStatus::Creating.as_str())),
        (":reconciling", s(OrderStatus::Reconciling.as_str())),
    ]
}

impl DynamoStore {
    /// Runs a transaction: committed, or refused by its conditions. A
    /// cancellation for a passing reason (a conflict with another
    /// transaction, throttling) is tried again with backoff and, when it
    /// persists, is a retryable error: never an answer about the items.
    async fn transact(
        &self,
        operation: &'static str,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Tx, StoreError> {
        let count = actions.len();
        let mut pauses = TX_BACKOFF_MS.iter();
        // One token for every try: a try whose answer was lost but which
        // committed is not applied again, and its retry answers success
        // rather than failing on its own writes.
        let token = uuid::Uuid::new_v4().to_string();
        loop {
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(&token)
                .send()
                .await
            {
                Ok(_) => return Ok(Tx::Committed),
                Err(error) => error,
            };
            let retry = match cancellation(&error, count) {
                Cancellation::Conditions(flags) => return Ok(Tx::Refused(flags)),
                Cancellation::Passing => true,
                Cancellation::Other => passes(&error),
            };
            match pauses.next() {
                Some(ms) if retry => {
                    let jitter = (uuid::Uuid::new_v4().as_u128() as u64) % (ms + 1);
                    tokio::time::sleep(Duration::from_millis(ms + jitter)).await;
                }
                _ if retry => {
                    return Err(StoreError::Unavailable {
                        operation,
                        source: Box::new(error),
                    });
                }
                _ => return Err(sdk_error(operation, error)),
            }
        }
    }

    async fn get(&self, key: Item, operation: &'static str) -> Result<Option<Item>, StoreError> {
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

    /// Every code item under partition `pk`, in position order.
    async fn codes_under(&self, pk: String) -> Result<Vec<DeliveredCodeRecord>, StoreError> {
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
                codes.push(code_from_item(item)?);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(codes);
            }
        }
    }

    /// Sets `mark`'s time to `now` unless it is at or after `realert_before`:
    /// true when this caller may send the alert.
    async fn claim_mark(
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
    async fn release_mark(
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

    /// A transaction action that checks the order has not ended.
    fn still_open_check(&self, order_id: &str) -> TransactWriteItem {
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

    /// Applies `set` (an update expression) to a still-creating order.
    async fn update_creating(
        &self,
        operation: &'static str,
        order_id: &str,
        set: &str,
        values: Vec<(&'static str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression(set)
            .condition_expression(format!("attribute_exists(pk) AND {STILL_CREATING}"))
            .expression_attribute_names("#status", "status");
        for (name, value) in values.into_iter().chain(creating_values()) {
            request = request.expression_attribute_values(name, value);
        }
        expected(operation, order_id, request.send().await)
    }
}

impl OrderStore for DynamoStore {
    async fn begin(
        &self,
        order: &OrderRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Begin, StoreError> {
        let put_order = Put::builder()
            .table_name(&self.table)
            .set_item(Some(order_to_item(order)))
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

    async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        self.get(order_key(order_id), "read order")
            .await?
            .as_ref()
            .map(order_from_item)
            .transpose()
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
        supplier_status: &str,
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
        let status = OrderStatus::open_from_supplier(&crate::foxreload::SupplierStatus::parse(
            supplier_status,
        ));
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression(
                "SET supplierOrderId = :sid, supplierStatus = :sst, #status = :status, updatedAt = :now REMOVE lastError",
            )
            .condition_expression(format!(
                "attribute_exists(pk) AND attribute_not_exists(supplierOrderId) AND {STILL_CREATING}"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sid", s(supplier_order_id))
            .expression_attribute_values(":sst", s(supplier_status))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", s(rfc3339(now)));
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
        supplier_status: Option<&str>,
        refusal: Option<&SupplierProblem>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut sets = vec!["updatedAt = :now"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .condition_expression(
                "attribute_exists(supplierOrderId) AND NOT #status IN (:c, :x, :f, :a, :n)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":c", s(OrderStatus::Completed.as_str()))
            .expression_attribute_values(":x", s(OrderStatus::Cancelled.as_str()))
            .expression_attribute_values(":f", s(OrderStatus::Failed.as_str()))
            .expression_attribute_values(":a", s(OrderStatus::Abandoned.as_str()))
            .expression_attribute_values(":n", s(OrderStatus::NotPlaced.as_str()));
        if let Some(status) = supplier_status {
            let ours = OrderStatus::from_supplier(&crate::foxreload::SupplierStatus::parse(status));
            sets.push("supplierStatus = :sst");
            request = request.expression_attribute_values(":sst", s(status));
            if !ours.is_terminal() {
                // Terminal statuses are poll-order's to record, with the codes.
                sets.push("#status = :status");
                request = request.expression_attribute_values(":status", s(ours.as_str()));
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
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.update_creating(
            "mark order not placed",
            order_id,
            "SET #status = :np, lastError = :err, updatedAt = :now REMOVE pendingPk, pendingSk",
            vec![
                (":np", s(OrderStatus::NotPlaced.as_str())),
                (":err", json(problem)),
                (":now", s(rfc3339(now))),
            ],
        )
        .await
    }

    async fn mark_reconciling(
        &self,
        order_id: &str,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.update_creating(
            "mark order reconciling",
            order_id,
            "SET #status = :rc, lastError = :err, updatedAt = :now",
            vec![
                (":rc", s(OrderStatus::Reconciling.as_str())),
                (":err", json(problem)),
                (":now", s(rfc3339(now))),
            ],
        )
        .await
    }

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
            "pollCount = if_not_exists(pollCount, :zero) + :one",
            "lastPolledAt = :now",
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
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(millis(poll.now)))
            .expression_attribute_values(":errors", n(poll.consecutive_errors))
            .expression_attribute_values(":nowText", s(rfc3339(poll.now)));
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
    ) -> Result<Persisted, StoreError> {
        // An earlier attempt may have stored some codes before it was cut
        // short: those are kept, and only the rest is written. FoxReload's
        // list is compared as a multiset, since a re-read may give the same
        // codes in another order (items included).
        let stored = self.codes(&order.order_id).await?;
        let (missing, unlisted) = missing_codes(&stored, &terminal.codes);
        let received = rfc3339(terminal.at);
        let mut puts: Vec<TransactWriteItem> = missing
            .iter()
            .map(|code| {
                let mut item = key(codes_pk(&order.order_id), &code_sk(code.index));
                item.insert("orderId".into(), s(&order.order_id));
                item.insert("codeIndex".into(), n(code.index));
                item.insert("itemIndex".into(), n(code.item_index));
                item.insert("productId".into(), s(&code.product_id));
                item.insert("code".into(), s(&code.code));
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

    async fn mark_notified(&self, order_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression("SET notifiedAt = :now REMOVE pendingPk, pendingSk")
            .condition_expression(
                "#status IN (:c, :x, :f, :a, :n) AND attribute_not_exists(notifiedAt)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(millis(now)));
        for (name, status) in TERMINAL_VALUES {
            request = request.expression_attribute_values(name, s(status.as_str()));
        }
        // Already marked by another copy: the same event went out.
        conditional("mark order notified", request.send().await).map(drop)
    }

    async fn codes(&self, order_id: &str) -> Result<Vec<DeliveredCodeRecord>, StoreError> {
        let mut codes = self.codes_under(codes_pk(order_id)).await?;
        // Orders that ended before codes had their own partition keep them
        // beside the order; an order cut short across the upgrade may have
        // some in each place. Only a code stored twice alike is kept once:
        // two different codes at one position are both kept, never hidden.
        let legacy = self.codes_under(format!("ORDER#{order_id}")).await?;
        if !legacy.is_empty() {
            codes.extend(legacy);
            codes.sort_by(|a, b| (a.index, &a.code).cmp(&(b.index, &b.code)));
            codes.dedup();
        }
        Ok(codes)
    }

    async fn record_post(
        &self,
        order_id: &str,
        seen: usize,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id)))
            .update_expression(
                "SET postedAt = list_append(if_not_exists(postedAt, :none), :at), updatedAt = :now",
            )
            .condition_expression(format!(
                "attribute_exists(pk) AND attribute_not_exists(supplierOrderId) AND {STILL_CREATING} \
                 AND size(postedAt) = :seen"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":at", AttributeValue::L(vec![n(millis(at))]))
            .expression_attribute_values(":now", s(rfc3339(at)))
            .expression_attribute_values(":seen", n(seen));
        for (name, value) in creating_values() {
            request = request.expression_attribute_values(name, value);
        }
        conditional("record a POST", request.send().await)
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

    async fn clock_offset(&self) -> Result<Option<ClockOffset>, StoreError> {
        let Some(item) = self.get(clock_key(), "read FoxReload's clock").await? else {
            return Ok(None);
        };
        let r = Reader {
            item: &item,
            key: "CLOCK#foxreload".into(),
        };
        let offset = r
            .opt_n("offsetMs")?
            .ok_or_else(|| r.corrupt("offsetMs is missing"))?;
        let uncertainty = r
            .opt_n("uncertaintyMs")?
            .ok_or_else(|| r.corrupt("uncertaintyMs is missing"))?;
        let sampled_at = r
            .millis("sampledAt")?
            .ok_or_else(|| r.corrupt("sampledAt is missing"))?;
        Ok(Some(ClockOffset {
            offset: time::Duration::milliseconds(offset as i64),
            uncertainty: Duration::from_millis(uncertainty.max(0) as u64),
            sampled_at,
        }))
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
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(pollSeq) OR pollSeq = :seen) \
                 AND ((attribute_not_exists(nextPollDueAt) AND updatedAt = :updated) \
                      OR nextPollDueAt < :overdue) \
                 AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now) \
                 AND NOT #status IN (:c, :x, :f, :a, :n, :creating)",
            )
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
}
