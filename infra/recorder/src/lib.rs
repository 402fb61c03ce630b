//! foxrelay-recorder: a counting reverse proxy between the AWS SDK and moto: the benchmark's
//! cost section counts what AWS would bill through it, and the IAM test
//! records which actions each function's code calls, on what.
//!
//! The SDK's endpoint is the proxy; every request goes on to moto unchanged
//! and its answer comes back unchanged. On the way the proxy records what
//! AWS would bill for it:
//!
//! - the request, by service and operation: JSON-protocol services name the
//!   operation in `X-Amz-Target` (`DynamoDB_20120810.PutItem`,
//!   `AmazonSQS.SendMessage`, `secretsmanager.GetSecretValue`), query-protocol
//!   SNS in the form body (`Action=Publish`); the service comes from the
//!   SigV4 credential scope. A `ReceiveMessage` that returned nothing is
//!   recorded as `ReceiveMessage (empty)`;
//! - for SQS and SNS, the billed requests: one per started 64 KB of payload;
//! - for DynamoDB, every item read or written, with its size when the
//!   request or the response shows it (a Put's item, a Get's or a Query's
//!   returned items), the item key when it does not (an Update is billed on
//!   the stored item, sized afterwards), and the writes to global secondary
//!   indexes: the proxy learns each table's key and index keys from its
//!   `CreateTable` request and follows which items are in each index;
//! - the IAM action each request needs and the resource it names
//!   ([`iam_actions`]): a transaction needs the action of each item in it.
//!
//! It can also inject faults moto never produces: a share of DynamoDB
//! transactions (or the next few) cancelled with `TransactionConflict`, as
//! DynamoDB answers when two transactions touch one item at once
//! ([`CountingProxy::cancel_transactions`]). A cancelled transaction is not
//! forwarded: nothing of it is written.
//!
//! | module | holds |
//! |---|---|
//! | `proxy` | the proxy and its injected faults |
//! | `request` | naming a request: service and operation |
//! | `iam` | the IAM action map and the item keys a request touches |
//! | `billing` | the billing model: requests, payload chunks, item sizes, index writes |
//! | `update_expression` | the attributes an update expression sets and removes |
//!
//! Test and benchmark support only: nothing deployed depends on it.

mod billing;
mod iam;
mod proxy;
pub mod relay;
mod request;
mod update_expression;

pub use billing::{ItemRead, ItemWrite, PAYLOAD_CHUNK, Tally, item_bytes, value_bytes};
pub use iam::{iam_actions, item_keys};
pub use proxy::CountingProxy;
pub use request::{Call, classify, form_pairs};
pub use update_expression::update_targets;
