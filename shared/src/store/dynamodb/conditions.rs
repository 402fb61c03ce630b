//! The status conditions writes share, written once.

use super::codec::s;
use crate::domain::OrderStatus;
use aws_sdk_dynamodb::types::AttributeValue;

/// `status` is an end (with [`TERMINAL_VALUES`] bound). A macro, so the
/// conditions built on it stay literals.
macro_rules! ended {
    () => {
        "#status IN (:c, :x, :f, :a, :n)"
    };
}
pub(super) use ended;

/// The values [`ended!`] names: every terminal status.
pub(super) const TERMINAL_VALUES: [(&str, OrderStatus); 5] = [
    (":c", OrderStatus::Completed),
    (":x", OrderStatus::Cancelled),
    (":f", OrderStatus::Failed),
    (":a", OrderStatus::Abandoned),
    (":n", OrderStatus::NotPlaced),
];

/// The order exists and has not ended.
pub(super) const STILL_OPEN: &str = concat!("attribute_exists(pk) AND NOT ", ended!());

/// `status IN (creating, reconciling)`: the states a create may still change.
pub(super) const STILL_CREATING: &str = "#status IN (:creating, :reconciling)";

pub(super) fn creating_values() -> [(&'static str, AttributeValue); 2] {
    [
        (":creating", s(OrderStatus::Creating.as_str())),
        (":reconciling", s(OrderStatus::Reconciling.as_str())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ended_condition_names_every_terminal_status_and_nothing_else() {
        let named: Vec<OrderStatus> = TERMINAL_VALUES.iter().map(|(_, s)| *s).collect();
        let terminal: Vec<OrderStatus> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(named, terminal);
        for (name, _) in TERMINAL_VALUES {
            assert!(ended!().contains(name), "{name} is not in the condition");
        }
    }
}
