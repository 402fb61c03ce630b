//! What the webhook queue carries: order events as the topic publishes
//! them (raw delivery), and deliveries to try again. A delivery names the
//! event and the endpoint, never a code: each try builds the event again
//! from the table.

use serde::{Deserialize, Serialize};

/// One message of the webhook queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookMessage {
    /// An order event from the topic: to be sent to every endpoint that
    /// wants it.
    Event(EventNotice),
    /// One endpoint's delivery of one event, tried again.
    Delivery(Delivery),
}

/// The fields of an order event deliver-webhook routes on; the rest is
/// read from the table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventNotice {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub order_id: String,
    #[serde(default)]
    pub placed_by: Option<String>,
}

/// One endpoint's delivery of one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delivery {
    pub event_id: String,
    pub order_id: String,
    /// The endpoint's id.
    pub endpoint: String,
    /// The try this message is for (the first is 1).
    pub attempt: u32,
    /// Not to be tried before this time (Unix milliseconds): SQS delays a
    /// message 15 minutes at most, so a longer wait takes several hops.
    pub not_before_ms: i64,
    /// The last try, held once while the endpoint's breaker was open: it
    /// is sent whatever the breaker says, so it ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl WebhookMessage {
    /// Reads a message body; what is neither an event nor a delivery is
    /// named.
    pub fn parse(body: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("endpoint").is_some() {
            serde_json::from_value(value)
                .map(Self::Delivery)
                .map_err(|e| format!("not a webhook delivery: {e}"))
        } else {
            serde_json::from_value(value)
                .map(Self::Event)
                .map_err(|e| format!("not an order event: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_event_and_a_delivery_are_told_apart_and_anything_else_is_named() {
        let event = WebhookMessage::parse(
            r#"{"eventId":"e","type":"order.completed","orderId":"o","placedBy":null,"codes":[]}"#,
        )
        .unwrap();
        assert!(matches!(event, WebhookMessage::Event(ref e) if e.order_id == "o"));
        let delivery = Delivery {
            event_id: "e".into(),
            order_id: "o".into(),
            endpoint: "shop".into(),
            attempt: 2,
            not_before_ms: 5,
            held: false,
        };
        let body = serde_json::to_string(&delivery).unwrap();
        assert!(!body.contains("code"));
        assert_eq!(
            WebhookMessage::parse(&body).unwrap(),
            WebhookMessage::Delivery(delivery)
        );
        for bad in ["", "[]", r#"{"endpoint":"x"}"#, r#"{"orderId":"o"}"#] {
            assert!(WebhookMessage::parse(bad).is_err(), "{bad}");
        }
    }
}
