//! The poll message: what create-order leaves on the poll queue and
//! poll-order consumes.
//!
//! `seq` numbers the links of one order's polling chain: the store lets
//! exactly one message per number proceed, so a duplicate delivery cannot
//! fork the chain.

use serde::{Deserialize, Serialize};

/// What the message asks poll-order to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// Read the supplier order and move ours along.
    Poll,
    /// Finish a create whose outcome create-order could not settle in its
    /// time budget: reconcile against FoxReload's recent orders under the
    /// never-buy-twice rules, then poll.
    Reconcile,
}

/// One link of an order's polling chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollMessage {
    pub order_id: String,
    pub seq: u64,
    pub kind: PollKind,
}

impl PollMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a poll message is plain JSON")
    }

    pub fn from_json(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_message_has_a_stable_wire_form() {
        let m = PollMessage {
            order_id: "o-1".into(),
            seq: 1,
            kind: PollKind::Reconcile,
        };
        assert_eq!(
            m.to_json(),
            r#"{"orderId":"o-1","seq":1,"kind":"reconcile"}"#
        );
        assert_eq!(PollMessage::from_json(&m.to_json()).unwrap(), m);
        assert!(PollMessage::from_json(r#"{"orderId":"o","seq":1}"#).is_err());
    }
}
