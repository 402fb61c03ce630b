//! Our order: what the reseller asked for, and where it stands.

use super::supplier::{CreateOrderItem, CreateOrderRequest, SupplierStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// One line of an order, as the reseller asked for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Map<String, Value>>,
}

/// A validated `POST /orders` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    pub lines: Vec<OrderLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_price: Option<String>,
}

impl NewOrder {
    /// The request FoxReload receives for this order.
    pub fn supplier_request(&self, is_mock: bool) -> CreateOrderRequest {
        CreateOrderRequest {
            items: self
                .lines
                .iter()
                .map(|line| CreateOrderItem {
                    item_id: line.product_id.clone(),
                    quantity: line.quantity,
                    note: line.note.clone(),
                })
                .collect(),
            total_price: self.total_price.clone(),
            is_mock,
        }
    }
}

/// Where one of our orders stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Intent stored; FoxReload is being asked.
    Creating,
    /// FoxReload's answer was lost; matching its recent orders before anything
    /// is bought again.
    Reconciling,
    Active,
    Paid,
    Processing,
    Completed,
    Cancelled,
    Failed,
    /// Polled past the horizon without an end.
    Abandoned,
    /// FoxReload refused the order, or could not be reached: nothing bought.
    NotPlaced,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 10] = [
        Self::Creating,
        Self::Reconciling,
        Self::Active,
        Self::Paid,
        Self::Processing,
        Self::Completed,
        Self::Cancelled,
        Self::Failed,
        Self::Abandoned,
        Self::NotPlaced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Reconciling => "reconciling",
            Self::Active => "active",
            Self::Paid => "paid",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
            Self::NotPlaced => "not_placed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No further change will come.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Cancelled | Self::Failed | Self::Abandoned | Self::NotPlaced
        )
    }

    /// Our status for a supplier order that is ours. An unknown supplier
    /// status keeps the order in `processing`: not terminal, polled on.
    pub fn from_supplier(status: &SupplierStatus) -> Self {
        match status {
            SupplierStatus::Active => Self::Active,
            SupplierStatus::Paid => Self::Paid,
            SupplierStatus::Processing | SupplierStatus::Unknown(_) => Self::Processing,
            SupplierStatus::Completed => Self::Completed,
            SupplierStatus::Cancelled => Self::Cancelled,
            SupplierStatus::Failed => Self::Failed,
        }
    }
}

impl OrderStatus {
    /// Our status for a supplier order seen outside the poll that finishes
    /// orders (a claim, a payment, a list): a terminal supplier status is
    /// `processing` here, since an order ends only with its codes stored, by
    /// the poll that reads them.
    pub fn open_from_supplier(status: &SupplierStatus) -> Self {
        match Self::from_supplier(status) {
            ended if ended.is_terminal() => Self::Processing,
            open => open,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }

    #[test]
    fn an_end_seen_outside_the_finishing_poll_keeps_the_order_open() {
        for ended in [
            SupplierStatus::Completed,
            SupplierStatus::Cancelled,
            SupplierStatus::Failed,
        ] {
            assert_eq!(
                OrderStatus::open_from_supplier(&ended),
                OrderStatus::Processing
            );
        }
        assert_eq!(
            OrderStatus::open_from_supplier(&SupplierStatus::Paid),
            OrderStatus::Paid
        );
    }

    #[test]
    fn unknown_supplier_status_keeps_the_order_open() {
        let ours = OrderStatus::from_supplier(&SupplierStatus::Unknown("on_hold".into()));
        assert_eq!(ours, OrderStatus::Processing);
        assert!(!ours.is_terminal());
    }
}
