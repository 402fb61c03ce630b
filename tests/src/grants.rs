//! What each function's code calls, on which of the stack's resources (by
//! logical id), and on which partition keys where a role is narrower. Two tests hold the roles to it: the template test proves
//! each role grants exactly this (plus what the platform needs: logs, X-Ray,
//! the secret, the key, and the SQS event source for poll-order), and the
//! IAM-calls test proves the code, run through moto, calls exactly this.

use std::collections::{BTreeMap, BTreeSet};

pub const ORDERS_TABLE: &str = "OrdersTable";
/// The sparse index of pending orders: scan-stalled's sweep, and the
/// undecided orders reconciliation counts.
pub const PENDING_INDEX: &str = "OrdersTable/index/pending-orders";
pub const POLL_QUEUE: &str = "PollQueue";
pub const ORDER_EVENTS_TOPIC: &str = "OrderEventsTopic";
pub const OPS_ALERTS_TOPIC: &str = "OpsAlertsTopic";
/// The stack's KMS key: the data keys sealing codes are made and unwrapped
/// under it.
pub const STACK_KEY: &str = "StackKey";
/// deliver-webhook's queue: deliveries tried again are sent to it.
pub const WEBHOOK_QUEUE: &str = "WebhookQueue";
/// Where deliveries out of tries are kept.
pub const WEBHOOK_DEAD_LETTER_QUEUE: &str = "WebhookDeadLetterQueue";
/// The endpoints' signing secrets, `{stack}/webhooks/*`.
pub const WEBHOOK_SECRETS: &str = "webhooks/*";

pub type Calls = BTreeSet<(&'static str, &'static str)>;

fn calls(list: &[(&[&'static str], &[&'static str])]) -> Calls {
    list.iter()
        .flat_map(|(actions, resources)| {
            actions
                .iter()
                .flat_map(move |a| resources.iter().map(move |r| (*a, *r)))
        })
        .collect()
}

/// Per function (template logical id), the (IAM action, logical resource)
/// pairs its code calls.
pub fn code_calls() -> BTreeMap<&'static str, Calls> {
    BTreeMap::from([
        (
            "CreateOrderFunction",
            calls(&[
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:Query",
                    ],
                    &[ORDERS_TABLE],
                ),
                (&["dynamodb:Query"], &[PENDING_INDEX]),
                (&["sqs:SendMessage"], &[POLL_QUEUE]),
                (&["sns:Publish"], &[OPS_ALERTS_TOPIC]),
                // Opening codes for `GET /orders/{orderId}`.
                (&["kms:Decrypt"], &[STACK_KEY]),
            ]),
        ),
        (
            "PollOrderFunction",
            calls(&[
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:ConditionCheckItem",
                        "dynamodb:Query",
                    ],
                    &[ORDERS_TABLE],
                ),
                (&["dynamodb:Query"], &[PENDING_INDEX]),
                (&["sqs:SendMessage"], &[POLL_QUEUE]),
                (&["sns:Publish"], &[ORDER_EVENTS_TOPIC, OPS_ALERTS_TOPIC]),
                // Sealing the codes it stores; opening codes another
                // container sealed, to publish an end left un-notified.
                (&["kms:GenerateDataKey", "kms:Decrypt"], &[STACK_KEY]),
            ]),
        ),
        (
            "ScanStalledFunction",
            calls(&[
                // No code read, no event published: an un-notified end is
                // handed to poll-order.
                (&["dynamodb:Query"], &[PENDING_INDEX]),
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:ConditionCheckItem",
                    ],
                    &[ORDERS_TABLE],
                ),
                (&["sqs:SendMessage"], &[POLL_QUEUE]),
                (&["sns:Publish"], &[OPS_ALERTS_TOPIC]),
            ]),
        ),
        (
            "DeliverWebhookFunction",
            calls(&[
                // The order and its codes, each time an event is sent; the
                // marks of delivered events and the endpoints' breakers.
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:Query",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                    ],
                    &[ORDERS_TABLE],
                ),
                (
                    &["sqs:SendMessage"],
                    &[WEBHOOK_QUEUE, WEBHOOK_DEAD_LETTER_QUEUE],
                ),
                (&["secretsmanager:GetSecretValue"], &[WEBHOOK_SECRETS]),
                // Opening codes another container sealed.
                (&["kms:Decrypt"], &[STACK_KEY]),
            ]),
        ),
    ])
}

/// Item actions a function may take only on some partition keys (IAM's
/// `dynamodb:LeadingKeys`, `ForAllValues:StringLike`): per function, per
/// action on the orders table, the key patterns. create-order writes no
/// code (nothing under `CODES#`) and deletes only idempotency keys.
pub fn leading_keys() -> BTreeMap<(&'static str, &'static str), &'static [&'static str]> {
    // scan-stalled never touches a code item (CODES#).
    const SCAN_STALLED_ITEMS: &[&str] = &["ORDER#*", "IDEMPOTENCY#*", "ALERT#*", "SWEEP#*"];
    const CREATE_ORDER_WRITES: &[&str] = &[
        "ORDER#*",
        "SUPPLIER#*",
        "IDEMPOTENCY#*",
        "CLOCK#*",
        "ALERT#*",
        "BUDGET#*",
    ];
    // deliver-webhook reads orders and codes; it writes only its marks.
    const DELIVER_READS: &[&str] = &["ORDER#*", "CODES#*", "WEBHOOK#*"];
    BTreeMap::from([
        (
            ("DeliverWebhookFunction", "dynamodb:GetItem"),
            DELIVER_READS,
        ),
        (("DeliverWebhookFunction", "dynamodb:Query"), DELIVER_READS),
        (
            ("DeliverWebhookFunction", "dynamodb:PutItem"),
            &["WEBHOOK#*"][..],
        ),
        (
            ("DeliverWebhookFunction", "dynamodb:UpdateItem"),
            &["WEBHOOK#*"][..],
        ),
        (
            ("CreateOrderFunction", "dynamodb:PutItem"),
            CREATE_ORDER_WRITES,
        ),
        (
            ("CreateOrderFunction", "dynamodb:UpdateItem"),
            CREATE_ORDER_WRITES,
        ),
        (
            ("CreateOrderFunction", "dynamodb:DeleteItem"),
            &["IDEMPOTENCY#*"][..],
        ),
        (
            ("ScanStalledFunction", "dynamodb:GetItem"),
            SCAN_STALLED_ITEMS,
        ),
        (
            ("ScanStalledFunction", "dynamodb:UpdateItem"),
            SCAN_STALLED_ITEMS,
        ),
        (
            ("ScanStalledFunction", "dynamodb:ConditionCheckItem"),
            SCAN_STALLED_ITEMS,
        ),
    ])
}

/// Whether `key` matches an IAM `StringLike` pattern (`*` any run, `?` one
/// character).
pub fn string_like(pattern: &str, key: &str) -> bool {
    fn matches(p: &[char], k: &[char]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some(('*', rest)) => (0..=k.len()).any(|i| matches(rest, &k[i..])),
            Some(('?', rest)) => !k.is_empty() && matches(rest, &k[1..]),
            Some((c, rest)) => k.first() == Some(c) && matches(rest, &k[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let k: Vec<char> = key.chars().collect();
    matches(&p, &k)
}

/// `action` as the table spells it (the table's entries are `'static`).
pub fn code_calls_action(action: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Scan",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "sqs:SendMessage",
        "sqs:SendMessageBatch",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:DeleteMessageBatch",
        "sqs:GetQueueAttributes",
        "sns:Publish",
        "secretsmanager:GetSecretValue",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    ];
    KNOWN
        .iter()
        .find(|known| **known == action)
        .copied()
        .unwrap_or_else(|| panic!("{action} is not an action foxrelay knows"))
}
