//! FoxReload's orders as the domain reads them: statuses, prices and
//! times kept as FoxReload sent them (so nothing is lost), items with
//! their delivered entries, and the create request. Plain data: the
//! FoxReload adapter (`foxreload/types.rs`) maps its lenient wire shapes
//! onto these, so a change in FoxReload's JSON stops there.

use serde_json::{Map, Value};
use std::fmt;
use time::OffsetDateTime;

/// An order's status at FoxReload. Statuses only move forward.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SupplierStatus {
    Active,
    Paid,
    Processing,
    Completed,
    Cancelled,
    Failed,
    /// A status this version does not know. Treated as not terminal: keep
    /// polling, never crash.
    Unknown(String),
}

impl SupplierStatus {
    pub fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "active" => Self::Active,
            "paid" => Self::Paid,
            "processing" => Self::Processing,
            "completed" => Self::Completed,
            "cancelled" | "canceled" => Self::Cancelled,
            "failed" => Self::Failed,
            _ => Self::Unknown(raw.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Paid => "paid",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
            Self::Unknown(raw) => raw,
        }
    }

    /// `completed`, `cancelled` and `failed` are final.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }
}

impl fmt::Display for SupplierStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decimal amount as FoxReload sent it (string or number), kept as text so
/// no money ever passes through a float.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price(String);

impl Price {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The amount in hundredths, when the text is a plain decimal with at
    /// most two fractional digits.
    pub fn cents(&self) -> Option<i64> {
        let text = self.0.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty()
            || frac.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let frac_cents = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().ok()? * 10,
            _ => frac.parse::<i64>().ok()?,
        };
        let cents = whole
            .parse::<i64>()
            .ok()?
            .checked_mul(100)?
            .checked_add(frac_cents)?;
        Some(if negative { -cents } else { cents })
    }
}

/// A timestamp as FoxReload sent it; `parsed` is set when it reads as an
/// instant (the FoxReload adapter reads several
/// formats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub raw: String,
    pub parsed: Option<OffsetDateTime>,
}

/// An order as `GET /api/orders/{id}` (and create, pay, list) return it.
#[derive(Clone, Debug, PartialEq)]
pub struct SupplierOrder {
    pub id: String,
    pub status: SupplierStatus,
    pub created_at: Option<Timestamp>,
    pub payment_expires_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    pub total_price: Option<Price>,
    /// Whether FoxReload says the order is a mock; `None` when it does not
    /// say (or says it in a form that is not a boolean).
    pub is_mock: Option<bool>,
    pub items: Vec<SupplierItem>,
}

impl SupplierOrder {
    /// Every delivered code or activation entry, in order, with the item it
    /// came from.
    pub fn delivered(&self) -> impl Iterator<Item = (usize, &SupplierItem, DeliveredCode)> {
        self.items.iter().enumerate().flat_map(|(index, item)| {
            item.external_data
                .iter()
                .map(move |entry| (index, item, DeliveredCode::from_entry(entry)))
        })
    }
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq)]
pub struct SupplierItem {
    pub product: Option<ProductRef>,
    pub quantity: Option<u32>,
    /// Every entry as sent; see [`DeliveredCode`] for how one becomes a code.
    pub external_data: Vec<Value>,
    /// Per-item error: a `completed` order can still carry one (partial
    /// fulfilment).
    pub error: Option<String>,
    /// The item's note as FoxReload echoes it: `None` when the field is
    /// absent, `Some(Value::Null)` when it is there but null.
    pub note: Option<Value>,
}

impl SupplierItem {
    pub fn product_id(&self) -> Option<&str> {
        self.product.as_ref().map(|p| p.id.as_str())
    }
}

/// The product an item refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductRef {
    pub id: String,
    pub name: Option<String>,
}

/// What one `externalData` entry delivers: its `code` when present, else the
/// whole entry as JSON (activation data: pin, serial, url, expiry…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveredCode {
    Code(String),
    Whole(String),
}

impl DeliveredCode {
    pub fn from_entry(entry: &Value) -> Self {
        match entry.get("code") {
            Some(Value::String(code)) if !code.is_empty() => Self::Code(code.clone()),
            Some(Value::Number(n)) => Self::Code(n.to_string()),
            _ => Self::Whole(match entry {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    }

    /// The secret itself. Never log it.
    pub fn secret(&self) -> &str {
        match self {
            Self::Code(s) | Self::Whole(s) => s,
        }
    }
}

/// `POST /api/orders/` body.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateOrderRequest {
    pub items: Vec<CreateOrderItem>,
    pub total_price: Option<String>,
    pub is_mock: bool,
}

/// One line of a create request.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateOrderItem {
    pub item_id: String,
    pub quantity: u32,
    pub note: Option<Map<String, Value>>,
}
