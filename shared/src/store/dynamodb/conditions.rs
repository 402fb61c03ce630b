//! The status conditions writes share, written once.

use super::codec::s;
use crate::domain::OrderStatus;
use aws_sdk_dynamodb::types::AttributeValue;

pub(super) const TERMINAL_VALUES: [(&str, OrderStatus); 5] = [
    (":c", OrderStatus::Completed),
    (":x", OrderStatus::Cancelled),
    (":f", OrderStatus::Failed),
    (":a", OrderStatus::Abandoned),
    (":n", OrderStatus::NotPlaced),
];

/// The order exists and has not ended.
pub(super) const STILL_OPEN: &str = "attribute_exists(pk) AND NOT #status IN (:c, :x, :f, :a, :n)";

/// `status IN (creating, reconciling)`: the states a create may still change.
pub(super) const STILL_CREATING: &str = "#status IN (:creating, :reconciling)";

pub(super) fn creating_values() -> [(&'static str, AttributeValue); 2] {
    [
        (":creating", s(OrderStatus::Creating.as_str())),
        (":reconciling", s(OrderStatus::Reconciling.as_str())),
    ]
}
