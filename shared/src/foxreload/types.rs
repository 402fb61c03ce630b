//! FoxReload's wire shapes, parsed leniently onto the domain's supplier
//! types (`domain::supplier`), and the create request written out.
//!
//! FoxReload does not publish exact formats. These types accept every shape
//! `foxreload-api.md` describes: unknown fields are ignored, an unknown status
//! is kept as a non-terminal value, prices and quantities come as strings or
//! numbers, timestamps that do not parse are kept as text, and an
//! `externalData` entry without `code` is kept whole. Nothing is dropped.

use crate::domain::supplier::{
    CreateOrderItem, CreateOrderRequest, Price, ProductRef, SupplierItem, SupplierOrder,
    SupplierStatus, Timestamp,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

impl<'de> Deserialize<'de> for SupplierStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Self::parse(&s),
            other => Self::Unknown(other.to_string()),
        })
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Price::new(scalar_text(Value::deserialize(d)?)))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(Self {
            parsed: parse_instant(&value),
            raw: scalar_text(value),
        })
    }
}

/// Unix times at or above this many units are milliseconds, below it seconds
/// (10^11 seconds is the year 5138; 10^11 milliseconds is 1973).
const MILLIS_FROM: i128 = 100_000_000_000;

/// Reads an instant in every form FoxReload might use, since it publishes
/// none: RFC 3339 (with or without fractional seconds), the same without an
/// offset or with a space for the `T` (read as UTC), and Unix times in
/// seconds or milliseconds, as numbers or numeric strings, with or without a
/// fraction. `None` for anything else: a reader must then treat the instant
/// as unknown, never as "not ours".
pub fn parse_instant(value: &Value) -> Option<OffsetDateTime> {
    match value {
        Value::Number(n) => unix_instant(&n.to_string()),
        Value::String(s) => {
            let text = s.trim();
            if let Some(at) = unix_instant(text) {
                return Some(at);
            }
            if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
                return Some(at);
            }
            let mut normal = text.replacen(' ', "T", 1);
            if !has_offset(&normal) {
                normal.push('Z');
            }
            OffsetDateTime::parse(&normal, &Rfc3339).ok()
        }
        _ => None,
    }
}

/// A plain decimal Unix time (`1764237600`, `1764237600250`,
/// `1764237600.25`), read exactly.
fn unix_instant(text: &str) -> Option<OffsetDateTime> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 18
    {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    let unit: i128 = if whole >= MILLIS_FROM {
        1_000_000
    } else {
        1_000_000_000
    };
    let digits = &fraction[..fraction.len().min(9)];
    let scale = 10i128.pow(digits.len() as u32);
    let part = if digits.is_empty() {
        0
    } else {
        digits.parse::<i128>().ok()?
    };
    OffsetDateTime::from_unix_timestamp_nanos(whole * unit + part * unit / scale).ok()
}

/// Whether an ISO 8601 date-time text ends with `Z` or a `±hh:mm` offset.
fn has_offset(text: &str) -> bool {
    let Some((_, time)) = text.split_once('T') else {
        return false;
    };
    time.ends_with(['Z', 'z']) || time.contains('+') || time.contains('-')
}

/// An order as `GET /api/orders/{id}` (and create, pay, list) return it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOrder {
    #[serde(deserialize_with = "text")]
    id: String,
    status: SupplierStatus,
    #[serde(default, deserialize_with = "optional_timestamp")]
    created_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "optional_timestamp")]
    payment_expires_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "optional_text")]
    cancel_reason: Option<String>,
    #[serde(default)]
    total_price: Option<Price>,
    #[serde(default, deserialize_with = "optional_bool")]
    is_mock: Option<bool>,
    #[serde(default, deserialize_with = "items")]
    items: Vec<WireItem>,
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem {
    #[serde(default)]
    product: Option<WireProduct>,
    #[serde(default, deserialize_with = "optional_quantity")]
    quantity: Option<u32>,
    #[serde(default, deserialize_with = "external_data")]
    external_data: Vec<Value>,
    #[serde(default, deserialize_with = "optional_text")]
    error: Option<String>,
    #[serde(default, deserialize_with = "present")]
    note: Option<Value>,
}

/// The product an item refers to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct WireProduct {
    #[serde(deserialize_with = "text")]
    id: String,
    #[serde(default, deserialize_with = "optional_text")]
    name: Option<String>,
}

impl From<WireOrder> for SupplierOrder {
    fn from(wire: WireOrder) -> Self {
        Self {
            id: wire.id,
            status: wire.status,
            created_at: wire.created_at,
            payment_expires_at: wire.payment_expires_at,
            cancel_reason: wire.cancel_reason,
            total_price: wire.total_price,
            is_mock: wire.is_mock,
            items: wire.items.into_iter().map(SupplierItem::from).collect(),
        }
    }
}

impl From<WireItem> for SupplierItem {
    fn from(wire: WireItem) -> Self {
        Self {
            product: wire.product.map(|p| ProductRef {
                id: p.id,
                name: p.name,
            }),
            quantity: wire.quantity,
            external_data: wire.external_data,
            error: wire.error,
            note: wire.note,
        }
    }
}

impl<'de> Deserialize<'de> for SupplierOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WireOrder::deserialize(d).map(Self::from)
    }
}

/// `POST /api/orders/` body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireCreate<'a> {
    items: Vec<WireCreateItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_price: Option<&'a str>,
    is_mock: bool,
}

/// One line of a create request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireCreateItem<'a> {
    item_id: &'a str,
    quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a Map<String, Value>>,
}

impl Serialize for CreateOrderRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = WireCreate {
            items: self
                .items
                .iter()
                .map(|item: &CreateOrderItem| WireCreateItem {
                    item_id: &item.item_id,
                    quantity: item.quantity,
                    note: item.note.as_ref(),
                })
                .collect(),
            total_price: self.total_price.as_deref(),
            is_mock: self.is_mock,
        };
        wire.serialize(s)
    }
}

/// FoxReload's error body: `detail` (human text) and `code` (machine code).
/// Parsed only when the body is JSON; both may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default, deserialize_with = "optional_text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "optional_text")]
    pub detail: Option<String>,
    /// The current price, when a refusal for a changed price gives it (the
    /// field's name is not published; these are the names seen).
    #[serde(
        default,
        rename = "totalPrice",
        alias = "currentPrice",
        alias = "price",
        deserialize_with = "optional_text"
    )]
    pub price: Option<String>,
}

/// Which page of `GET /api/orders/` to read: by `offset`, or by the
/// `cursor` a previous page gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub offset: u64,
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page, `limit` orders at most.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            offset: 0,
            cursor: None,
        }
    }

    /// The query string (without `?`).
    pub fn query(&self) -> String {
        match &self.cursor {
            Some(cursor) => format!("limit={}&cursor={}", self.limit, query_escape(cursor)),
            None if self.offset == 0 => format!("limit={}", self.limit),
            None => format!("limit={}&offset={}", self.limit, self.offset),
        }
    }
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One page of the order list, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderPage {
    pub orders: Vec<SupplierOrder>,
    /// The page after this one; `None` when the list says it ended here.
    pub next: Option<PageRequest>,
}

/// What is wrong with a body FoxReload sent, without any of its values:
/// serde's own messages quote what they found (`invalid type: string
/// "…"`), and in an order that may be a code, which must never reach an
/// error message or a log line.
pub fn unreadable_because(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "could not be read",
        Category::Syntax => "is not valid JSON",
        Category::Eof => "is cut short",
        Category::Data => "is not the documented shape",
    };
    if error.line() > 0 {
        format!("{what} (line {}, column {})", error.line(), error.column())
    } else {
        what.to_owned()
    }
}

/// Parses one page of the order list, answered to `request`. The envelope is
/// not published, so three are accepted:
/// - `{"items": [...], "nextCursor": …}`: the list ends where the cursor is
///   null;
/// - `{"items": [...], "total": N, …}`: paged by offset, the list ends at
///   `total`;
/// - a bare array, or `{"items": [...]}` alone: paged by offset, the list
///   ends only at an empty page (a short page may be the server's own cap).
///
/// Any other shape, any entry that is not an order, or a page that
/// contradicts its own envelope (empty before `total`) is an error:
/// reconciliation must never decide on a list it could not read whole.
pub fn parse_order_page(body: &[u8], request: &PageRequest) -> Result<OrderPage, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the list {}", unreadable_because(&e)))?;
    let (entries, cursor, total) = match value {
        Value::Array(entries) => (entries, None, None),
        Value::Object(mut map) => {
            let entries = match map.remove("items") {
                Some(Value::Array(entries)) => entries,
                _ => return Err("an object without an `items` array".into()),
            };
            let cursor = map.remove("nextCursor").map(|c| match c {
                Value::Null => None,
                other => Some(scalar_text(other)).filter(|c| !c.is_empty()),
            });
            let total = match map.remove("total") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.as_u64().ok_or("`total` is not a count")?),
                Some(_) => return Err("`total` is not a count".into()),
            };
            (entries, cursor, total)
        }
        other => {
            return Err(format!(
                "expected an object or an array, got {}",
                kind(&other)
            ));
        }
    };
    let orders: Vec<SupplierOrder> = entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            serde_json::from_value(entry)
                .map_err(|e| format!("entry {i} is not an order: it {}", unreadable_because(&e)))
        })
        .collect::<Result<_, _>>()?;
    let after = request.offset + orders.len() as u64;
    let next = match (cursor, total) {
        (Some(cursor), _) => cursor.map(|cursor| PageRequest {
            limit: request.limit,
            offset: after,
            cursor: Some(cursor),
        }),
        (None, Some(total)) if after < total => {
            if orders.is_empty() {
                return Err(format!(
                    "an empty page at offset {} of {total} orders",
                    request.offset
                ));
            }
            Some(PageRequest {
                limit: request.limit,
                offset: after,
                cursor: None,
            })
        }
        (None, Some(_)) => None,
        (None, None) => (!orders.is_empty()).then_some(PageRequest {
            limit: request.limit,
            offset: after,
            cursor: None,
        }),
    };
    Ok(OrderPage { orders, next })
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

fn optional_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// A field that is present, whatever its value (null included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn optional_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().and_then(|q| u32::try_from(q).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
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

fn items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WireItem>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        other => serde_json::from_value(other).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::supplier::DeliveredCode;
    use serde_json::json;

    fn order(value: Value) -> SupplierOrder {
        serde_json::from_value(value).expect("parses")
    }

    #[test]
    fn an_unreadable_order_or_list_is_described_without_its_values() {
        let code = "SECRET-CODE-0001";
        let bodies = [
            json!({"id": "x", "status": "completed", "items": [code]}),
            json!({"id": "x", "status": "completed", "items": [{"product": code}]}),
            json!({"id": "x", "status": "completed", "items": code}),
        ];
        for body in &bodies {
            let bytes = body.to_string().into_bytes();
            let error = serde_json::from_slice::<SupplierOrder>(&bytes).unwrap_err();
            let said = unreadable_because(&error);
            assert!(!said.contains(code), "{said}");
            assert!(
                said.starts_with("is not the documented shape (line 1"),
                "{said}"
            );
            let listed = parse_order_page(
                json!({"items": [body]}).to_string().as_bytes(),
                &PageRequest {
                    limit: 10,
                    offset: 0,
                    cursor: None,
                },
            )
            .unwrap_err();
            assert!(!listed.contains(code), "{listed}");
            assert!(listed.starts_with("entry 0 is not an order"), "{listed}");
        }
        let cut = serde_json::from_slice::<SupplierOrder>(format!("{{\"id\": \"{code}").as_bytes())
            .unwrap_err();
        assert!(!unreadable_because(&cut).contains(code));
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
    fn order_pages_accept_three_envelopes_and_say_where_the_list_ends() {
        let one = json!({"id": "1", "status": "active"});
        let first = PageRequest::first(1);
        let page = |body: Value| parse_order_page(body.to_string().as_bytes(), &first);
        let next = |offset, cursor: Option<&str>| PageRequest {
            limit: 1,
            offset,
            cursor: cursor.map(str::to_owned),
        };
        let offset = page(json!({"items": [one], "limit": 1, "offset": 0, "total": 2})).unwrap();
        assert_eq!(offset.orders.len(), 1);
        assert_eq!(offset.next, Some(next(1, None)));
        let last = page(json!({"items": [one], "limit": 1, "offset": 0, "total": 1})).unwrap();
        assert_eq!(last.next, None);
        let cursor = page(json!({"items": [one], "limit": 1, "nextCursor": "c-2"})).unwrap();
        assert_eq!(cursor.next, Some(next(1, Some("c-2"))));
        let end = page(json!({"items": [one], "limit": 1, "nextCursor": null})).unwrap();
        assert_eq!(end.next, None);
        // A bare array ends only at an empty page: a short page may be the
        // server's own cap on `limit`.
        assert_eq!(page(json!([one])).unwrap().next, Some(next(1, None)));
        assert_eq!(
            page(json!({"items": [one]})).unwrap().next,
            Some(next(1, None))
        );
        assert_eq!(page(json!([])).unwrap().next, None);
        assert_eq!(next(1, Some("a b")).query(), "limit=1&cursor=a%20b");
        assert_eq!(next(40, None).query(), "limit=1&offset=40");
    }

    #[test]
    fn order_pages_that_cannot_be_read_whole_are_errors() {
        let first = PageRequest::first(10);
        for body in [
            &b"<html>"[..],
            br#"{"orders": []}"#,
            br#"[{"id": "1"}]"#,
            br#"{"items": [], "total": 5}"#,
            br#"{"items": [], "total": "many"}"#,
        ] {
            assert!(
                parse_order_page(body, &first).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn instants_are_read_in_every_form_seen_or_refused() {
        let at = |v: Value| parse_instant(&v);
        let ten = time::macros::datetime!(2026-11-27 10:00:00 UTC);
        let ten_ms = ten + time::Duration::milliseconds(250);
        assert_eq!(at(json!("2026-11-27T10:00:00Z")), Some(ten));
        assert_eq!(at(json!("2026-11-27T12:00:00+02:00")), Some(ten));
        assert_eq!(at(json!("2026-11-27T10:00:00.250Z")), Some(ten_ms));
        assert_eq!(at(json!("2026-11-27T10:00:00.250")), Some(ten_ms));
        assert_eq!(at(json!("2026-11-27 10:00:00")), Some(ten));
        assert_eq!(at(json!("2026-11-27 10:00:00.25")), Some(ten_ms));
        assert_eq!(at(json!(ten.unix_timestamp())), Some(ten));
        assert_eq!(at(json!(ten.unix_timestamp() * 1000 + 250)), Some(ten_ms));
        assert_eq!(at(json!(ten.unix_timestamp() as f64 + 0.25)), Some(ten_ms));
        assert_eq!(
            at(json!(format!("{}", ten.unix_timestamp() * 1000 + 250))),
            Some(ten_ms)
        );
        for odd in [
            json!("soon"),
            json!(null),
            json!(-5),
            json!("27/11/2026"),
            json!({}),
        ] {
            assert_eq!(at(odd.clone()), None, "{odd}");
        }
    }

    #[test]
    fn notes_and_mock_flag_are_kept_as_echoed() {
        let o = order(
            json!({"id": "1", "status": "active", "isMock": true, "items": [
                {"product": {"id": "a"}, "quantity": 1, "note": {"player_id": "7"}},
                {"product": {"id": "b"}, "quantity": 1, "note": null},
                {"product": {"id": "c"}, "quantity": 1}
            ]}),
        );
        assert_eq!(o.is_mock, Some(true));
        assert_eq!(o.items[0].note, Some(json!({"player_id": "7"})));
        assert_eq!(o.items[1].note, Some(Value::Null));
        assert_eq!(o.items[2].note, None);
    }
}
