//! FoxReload's wire types, parsed leniently.
//!
//! FoxReload does not publish exact formats. These types accept every shape
//! `foxreload-api.md` describes: unknown fields are ignored, an unknown status
//! is kept as a non-terminal value, prices and quantities come as strings or
//! numbers, timestamps that do not parse are kept as text, and an
//! `externalData` entry without `code` is kept whole. Nothing is dropped.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

impl<'de> Deserialize<'de> for SupplierStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Self::parse(&s),
            other => Self::Unknown(other.to_string()),
        })
    }
}

/// A decimal amount as FoxReload sent it (string or number), kept as text so
/// no money ever passes through a float.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
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

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(scalar_text(Value::deserialize(d)?)))
    }
}

/// A timestamp as FoxReload sent it; `parsed` is set when it is RFC 3339 or a
/// Unix time in seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub raw: String,
    pub parsed: Option<OffsetDateTime>,
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let parsed = match &value {
            Value::String(s) => OffsetDateTime::parse(s.trim(), &Rfc3339).ok(),
            Value::Number(n) => n
                .as_i64()
                .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok()),
            _ => None,
        };
        Ok(Self {
            raw: scalar_text(value),
            parsed,
        })
    }
}

/// An order as `GET /api/orders/{id}` (and create, pay, list) return it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupplierOrder {
    #[serde(deserialize_with = "text")]
    pub id: String,
    pub status: SupplierStatus,
    #[serde(default, deserialize_with = "optional_timestamp")]
    pub created_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "optional_timestamp")]
    pub payment_expires_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "optional_text")]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub total_price: Option<Price>,
    #[serde(default, deserialize_with = "items")]
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
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupplierItem {
    #[serde(default)]
    pub product: Option<ProductRef>,
    #[serde(default, deserialize_with = "optional_quantity")]
    pub quantity: Option<u32>,
    /// Every entry as sent; see [`DeliveredCode`] for how one becomes a code.
    #[serde(default, deserialize_with = "external_data")]
    pub external_data: Vec<Value>,
    /// Per-item error: a `completed` order can still carry one (partial
    /// fulfilment).
    #[serde(default, deserialize_with = "optional_text")]
    pub error: Option<String>,
}

impl SupplierItem {
    pub fn product_id(&self) -> Option<&str> {
        self.product.as_ref().map(|p| p.id.as_str())
    }
}

/// The product an item refers to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ProductRef {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(default, deserialize_with = "optional_text")]
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

/// `GET /api/products/{id}/`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(default, deserialize_with = "optional_text")]
    pub name: Option<String>,
    #[serde(default)]
    pub price: Option<Price>,
    #[serde(default, deserialize_with = "optional_quantity")]
    pub min_quantity: Option<u32>,
    #[serde(default, deserialize_with = "optional_quantity")]
    pub max_quantity: Option<u32>,
    #[serde(default, deserialize_with = "string_list")]
    pub required_note_fields: Vec<String>,
}

/// `POST /api/orders/` body.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderRequest {
    pub items: Vec<CreateOrderItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_price: Option<String>,
    pub is_mock: bool,
}

/// One line of a create request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderItem {
    pub item_id: String,
    pub quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<Map<String, Value>>,
}

/// FoxReload's error body: `detail` (human text) and `code` (machine code).
/// Parsed only when the body is JSON; both may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default, deserialize_with = "optional_text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "optional_text")]
    pub detail: Option<String>,
}

/// Parses the recent-orders list: an object with an `items` array, or a bare
/// array. Any other shape, or any entry that is not an order, is an error:
/// reconciliation must never decide on a list it could not read whole.
pub fn parse_order_list(body: &[u8]) -> Result<Vec<SupplierOrder>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Object(mut map) => match map.remove("items") {
            Some(Value::Array(entries)) => entries,
            _ => return Err("an object without an `items` array".into()),
        },
        other => {
            return Err(format!(
                "expected an object or an array, got {}",
                kind(&other)
            ));
        }
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            serde_json::from_value(entry).map_err(|e| format!("entry {i} is not an order: {e}"))
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A scalar as text: strings as they are, everything else as JSON.
fn scalar_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, got {}",
            kind(&other)
        ))),
    }
}

fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        other => Some(scalar_text(other)),
    })
}

fn optional_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let value = Value::deserialize(d)?;
    if value.is_null() {
        return Ok(None);
    }
    Timestamp::deserialize(value)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn optional_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().and_then(|q| u32::try_from(q).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(values) => values.into_iter().map(scalar_text).collect(),
        Value::Null => Vec::new(),
        other => vec![scalar_text(other)],
    })
}

/// `externalData` is documented as an array; a single entry or a lone string
/// is kept as one entry, null as none. Never drop an entry.
fn external_data<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(entries) => entries,
        Value::Null => Vec::new(),
        single => vec![single],
    })
}

fn items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SupplierItem>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        other => serde_json::from_value(other).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(value: Value) -> SupplierOrder {
        serde_json::from_value(value).expect("parses")
    }

    #[test]
    fn documented_order_parses_with_codes_in_order() {
        let o = order(json!({
            "id": "9a7c", "status": "completed", "createdAt": "2026-11-27T10:00:00Z",
            "paymentExpiresAt": "2026-11-27T10:15:00Z", "cancelReason": null, "totalPrice": "12.50",
            "items": [{"product": {"id": "product_1", "name": "Steam 10 USD"}, "quantity": 2,
                       "externalData": [{"code": "AAAA-BBBB"}, {"code": "CCCC-DDDD"}], "error": null}]
        }));
        assert_eq!(o.status, SupplierStatus::Completed);
        assert!(o.status.is_terminal());
        assert_eq!(o.total_price.as_ref().and_then(Price::cents), Some(1250));
        assert!(o.created_at.as_ref().unwrap().parsed.is_some());
        let codes: Vec<_> = o.delivered().map(|(i, _, c)| (i, c)).collect();
        assert_eq!(
            codes,
            vec![
                (0, DeliveredCode::Code("AAAA-BBBB".into())),
                (0, DeliveredCode::Code("CCCC-DDDD".into()))
            ]
        );
    }

    #[test]
    fn unknown_status_is_kept_and_not_terminal() {
        let o = order(json!({"id": "1", "status": "on_hold", "items": []}));
        assert_eq!(o.status, SupplierStatus::Unknown("on_hold".into()));
        assert!(!o.status.is_terminal());
        assert_eq!(o.status.to_string(), "on_hold");
    }

    #[test]
    fn extra_fields_and_odd_scalars_are_tolerated() {
        let o = order(json!({
            "id": 42, "status": "PROCESSING", "createdAt": "yesterday-ish", "totalPrice": 12.5,
            "customer": {"type": "api"}, "flags": [1, 2],
            "items": [{"product": {"id": "p", "name": null, "sku": "x"}, "quantity": "3",
                       "price": 4.25, "externalData": null, "error": {"reason": "x"}}]
        }));
        assert_eq!(o.id, "42");
        assert_eq!(o.status, SupplierStatus::Processing);
        let created = o.created_at.unwrap();
        assert_eq!(
            (created.raw.as_str(), created.parsed),
            ("yesterday-ish", None)
        );
        assert_eq!(o.total_price.unwrap().cents(), Some(1250));
        assert_eq!(o.items[0].quantity, Some(3));
        assert!(o.items[0].external_data.is_empty());
        assert_eq!(o.items[0].error.as_deref(), Some(r#"{"reason":"x"}"#));
    }

    #[test]
    fn activation_entries_without_code_are_kept_whole() {
        let o = order(json!({"id": "1", "status": "completed", "items": [
            {"product": {"id": "esim"}, "quantity": 1,
             "externalData": [{"pin": "1234", "serial": "SN-1"}, {"code": ""}, "RAW-CODE"]}
        ]}));
        let codes: Vec<_> = o.delivered().map(|(_, _, c)| c).collect();
        assert_eq!(
            codes,
            vec![
                DeliveredCode::Whole(r#"{"pin":"1234","serial":"SN-1"}"#.into()),
                DeliveredCode::Whole(r#"{"code":""}"#.into()),
                DeliveredCode::Whole("RAW-CODE".into()),
            ]
        );
    }

    #[test]
    fn partial_fulfilment_keeps_codes_and_item_error() {
        let o = order(json!({"id": "1", "status": "completed", "items": [
            {"product": {"id": "a"}, "quantity": 2, "externalData": [{"code": "C1"}], "error": "1 of 2 units not delivered"}
        ]}));
        assert_eq!(o.delivered().count(), 1);
        assert_eq!(
            o.items[0].error.as_deref(),
            Some("1 of 2 units not delivered")
        );
    }

    #[test]
    fn price_cents_refuse_what_is_not_plain_money() {
        assert_eq!(Price::new("12").cents(), Some(1200));
        assert_eq!(Price::new("0.05").cents(), Some(5));
        assert_eq!(Price::new("-1.5").cents(), Some(-150));
        assert_eq!(Price::new("1.005").cents(), None);
        assert_eq!(Price::new("1e3").cents(), None);
        assert_eq!(Price::new("").cents(), None);
    }

    #[test]
    fn order_list_accepts_envelopes_and_bare_arrays_only() {
        let one = json!({"id": "1", "status": "active"});
        for body in [
            json!({"items": [one], "limit": 10, "offset": 0, "total": 1}),
            json!({"items": [one], "limit": 10, "nextCursor": null}),
            json!([one]),
        ] {
            let list = parse_order_list(body.to_string().as_bytes()).expect("parses");
            assert_eq!(list.len(), 1);
        }
        assert!(parse_order_list(b"<html>").is_err());
        assert!(parse_order_list(br#"{"orders": []}"#).is_err());
        assert!(
            parse_order_list(br#"[{"id": "1"}]"#).is_err(),
            "an entry without status"
        );
    }
}
