//! The body of `POST /orders`, validated field by field.
//!
//! Every refusal names the field at fault (`items[2].quantity`), so a
//! reseller's engineer can fix a request from the error alone. Unknown fields
//! are refused: a typo must not silently drop a note or a reference.

use super::order::{NewOrder, OrderLine};
use serde_json::{Map, Value};

/// Items per order, as FoxReload allows.
pub const MAX_ITEMS: usize = 10;
/// Units per item. FoxReload's products cap lower; this bounds our side.
pub const MAX_QUANTITY: u64 = 1_000;
/// Longest product id.
pub const MAX_PRODUCT_ID: usize = 128;
/// Longest customer reference.
pub const MAX_REFERENCE: usize = 128;
/// Note fields per item, and their lengths.
pub const MAX_NOTE_FIELDS: usize = 20;
pub const MAX_NOTE_KEY: usize = 64;
pub const MAX_NOTE_VALUE: usize = 512;

/// One thing wrong with a request, naming the field (empty for the body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Parses and validates a `POST /orders` body.
pub fn parse_new_order(body: &[u8]) -> Result<NewOrder, FieldError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("", format!("the body is not valid JSON ({e})")))?;
    let Value::Object(mut root) = value else {
        return Err(FieldError::new("", "the body must be a JSON object"));
    };
    let items = root
        .remove("items")
        .ok_or_else(|| FieldError::new("items", "is required"))?;
    let customer_reference = match root.remove("customerReference") {
        None | Some(Value::Null) => None,
        Some(v) => Some(bounded_text("customerReference", &v, MAX_REFERENCE)?),
    };
    let total_price = match root.remove("totalPrice") {
        None | Some(Value::Null) => None,
        Some(v) => Some(price("totalPrice", &v)?),
    };
    refuse_unknown("", &root)?;
    Ok(NewOrder {
        lines: lines(items)?,
        customer_reference,
        total_price,
    })
}

fn refuse_unknown(prefix: &str, rest: &Map<String, Value>) -> Result<(), FieldError> {
    match rest.keys().next() {
        Some(unknown) => Err(FieldError::new(
            format!("{prefix}{unknown}"),
            "is not a known field",
        )),
        None => Ok(()),
    }
}

fn lines(items: Value) -> Result<Vec<OrderLine>, FieldError> {
    let Value::Array(items) = items else {
        return Err(FieldError::new("items", "must be an array"));
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(FieldError::new(
            "items",
            format!("must hold 1 to {MAX_ITEMS} items"),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| line(i, item))
        .collect()
}

fn line(index: usize, item: Value) -> Result<OrderLine, FieldError> {
    let at = |field: &str| format!("items[{index}].{field}");
    let Value::Object(mut item) = item else {
        return Err(FieldError::new(
            format!("items[{index}]"),
            "must be an object",
        ));
    };
    let product_id = match item.remove("productId") {
        None | Some(Value::Null) => return Err(FieldError::new(at("productId"), "is required")),
        Some(v) => bounded_text(&at("productId"), &v, MAX_PRODUCT_ID)?,
    };
    if !product_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        return Err(FieldError::new(
            at("productId"),
            "may hold only letters, digits, '_', '-', '.' and ':'",
        ));
    }
    let quantity = match item.remove("quantity") {
        None | Some(Value::Null) => return Err(FieldError::new(at("quantity"), "is required")),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(q) if (1..=MAX_QUANTITY).contains(&q) => q as u32,
            _ => {
                return Err(FieldError::new(
                    at("quantity"),
                    format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                ));
            }
        },
        Some(_) => {
            return Err(FieldError::new(at("quantity"), "must be a number"));
        }
    };
    let note = match item.remove("note") {
        None | Some(Value::Null) => None,
        Some(Value::Object(note)) => Some(check_note(&at("note"), note)?),
        Some(_) => return Err(FieldError::new(at("note"), "must be an object")),
    };
    refuse_unknown(&format!("items[{index}]."), &item)?;
    Ok(OrderLine {
        product_id,
        quantity,
        note,
    })
}

fn check_note(field: &str, note: Map<String, Value>) -> Result<Map<String, Value>, FieldError> {
    if note.len() > MAX_NOTE_FIELDS {
        return Err(FieldError::new(
            field,
            format!("may hold at most {MAX_NOTE_FIELDS} fields"),
        ));
    }
    for (key, value) in &note {
        let at = format!("{field}.{key}");
        if key.is_empty() || key.chars().count() > MAX_NOTE_KEY {
            return Err(FieldError::new(
                field,
                format!("field names must be 1 to {MAX_NOTE_KEY} characters"),
            ));
        }
        match value {
            Value::String(_) => {
                bounded_text(&at, value, MAX_NOTE_VALUE)?;
            }
            Value::Number(_) | Value::Bool(_) => {}
            _ => {
                return Err(FieldError::new(at, "must be a string, number or boolean"));
            }
        }
    }
    Ok(note)
}

/// A non-empty string of at most `max` characters with no control characters.
fn bounded_text(field: &str, value: &Value, max: usize) -> Result<String, FieldError> {
    let Value::String(text) = value else {
        return Err(FieldError::new(field, "must be a string"));
    };
    let count = text.chars().count();
    if count == 0 || count > max {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not hold control characters"));
    }
    Ok(text.clone())
}

/// A decimal string with at most two fractional digits, above zero.
fn price(field: &str, value: &Value) -> Result<String, FieldError> {
    let Value::String(text) = value else {
        return Err(FieldError::new(
            field,
            "must be a decimal string such as \"12.50\"",
        ));
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !whole.is_empty()
        && whole.len() <= 9
        && digits(whole)
        && frac.len() <= 2
        && digits(frac)
        && frac.is_empty() != text.contains('.');
    if !well_formed || text.bytes().all(|b| b == b'0' || b == b'.') {
        return Err(FieldError::new(
            field,
            "must be a positive decimal string with at most two decimals, such as \"12.50\"",
        ));
    }
    Ok(text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> String {
        parse_new_order(body.as_bytes()).unwrap_err().field
    }

    #[test]
    fn a_full_request_is_accepted() {
        let order = parse_new_order(
            br#"{"items": [{"productId": "product_01", "quantity": 2, "note": {"player_id": "123"}}],
                 "customerReference": "cart-77", "totalPrice": "25.00"}"#,
        )
        .unwrap();
        assert_eq!(order.lines.len(), 1);
        assert_eq!(order.lines[0].quantity, 2);
        assert_eq!(order.customer_reference.as_deref(), Some("cart-77"));
        assert_eq!(order.total_price.as_deref(), Some("25.00"));
    }

    #[test]
    fn each_malformed_request_names_its_field() {
        let cases = [
            ("not json", ""),
            ("[1]", ""),
            (r#"{}"#, "items"),
            (r#"{"items": {}}"#, "items"),
            (r#"{"items": []}"#, "items"),
            (r#"{"items": [1]}"#, "items[0]"),
            (r#"{"items": [{"quantity": 1}]}"#, "items[0].productId"),
            (
                r#"{"items": [{"productId": "", "quantity": 1}]}"#,
                "items[0].productId",
            ),
            (
                r#"{"items": [{"productId": "a b", "quantity": 1}]}"#,
                "items[0].productId",
            ),
            (
                r#"{"items": [{"productId": 7, "quantity": 1}]}"#,
                "items[0].productId",
            ),
            (r#"{"items": [{"productId": "p"}]}"#, "items[0].quantity"),
            (
                r#"{"items": [{"productId": "p", "quantity": 0}]}"#,
                "items[0].quantity",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": -1}]}"#,
                "items[0].quantity",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1.5}]}"#,
                "items[0].quantity",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": "1"}]}"#,
                "items[0].quantity",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1001}]}"#,
                "items[0].quantity",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1, "note": "x"}]}"#,
                "items[0].note",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1, "note": {"a": [1]}}]}"#,
                "items[0].note.a",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1, "colour": "red"}]}"#,
                "items[0].colour",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1}], "totalPrice": 12.5}"#,
                "totalPrice",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1}], "totalPrice": "12.505"}"#,
                "totalPrice",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1}], "totalPrice": "0.00"}"#,
                "totalPrice",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1}], "totalPrice": "1."}"#,
                "totalPrice",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1}], "customerReference": ""}"#,
                "customerReference",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1}], "customerReference": "a\u0000"}"#,
                "customerReference",
            ),
            (
                r#"{"items": [{"productId": "p", "quantity": 1}], "isMock": true}"#,
                "isMock",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body), field, "{body}");
        }
        let eleven = format!(
            r#"{{"items": [{}]}}"#,
            [r#"{"productId": "p", "quantity": 1}"#; 11].join(",")
        );
        assert_eq!(field_of(&eleven), "items");
    }
}
