//! Request bodies, validated by hand so every refusal names the field at
//! fault, the way FoxReload's `VALIDATION_ERROR` does.

use serde_json::{Map, Value};

use crate::catalog::{self, MAX_QUANTITY, MIN_QUANTITY, Product};
use crate::error::ApiError;
use crate::money;

/// The most items one order may hold.
pub const MAX_ITEMS: usize = 10;

/// A create request that passed validation.
#[derive(Debug)]
pub(crate) struct NewOrder {
    pub items: Vec<NewItem>,
    pub total_cents: i64,
    pub is_mock: bool,
}

#[derive(Debug)]
pub(crate) struct NewItem {
    pub product: &'static Product,
    pub quantity: u64,
    pub note: Map<String, Value>,
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Malformed JSON body: {e}.")))?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::validation(
            "The request body must be a JSON object.",
        )),
    }
}

/// Validates `POST /api/orders/`: shape, 1–10 items, known products (404
/// otherwise), quantities, required note fields, and `totalPrice` against the
/// computed price (`OFFER_PRICE_NOT_MATCHED`).
pub(crate) fn parse_create(body: &[u8]) -> Result<NewOrder, ApiError> {
    let object = json_object(body)?;
    let raw_items = match object.get("items") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::validation("items: Expected a list of items.")),
        None => return Err(ApiError::validation("items: This field is required.")),
    };
    if raw_items.is_empty() || raw_items.len() > MAX_ITEMS {
        return Err(ApiError::validation(format!(
            "items: An order holds 1 to {MAX_ITEMS} items, got {}.",
            raw_items.len()
        )));
    }
    let mut items = Vec::with_capacity(raw_items.len());
    for (index, raw) in raw_items.iter().enumerate() {
        items.push(parse_item(index, raw)?);
    }
    let total_cents = items
        .iter()
        .map(|item| item.product.price_cents * i64::try_from(item.quantity).unwrap_or(0))
        .sum::<i64>();

    match object.get("totalPrice") {
        None | Some(Value::Null) => {}
        Some(given) => {
            let given = money::parse_price_value(given).ok_or_else(|| {
                ApiError::validation(
                    "totalPrice: A valid price with at most 2 decimals is required.",
                )
            })?;
            if given != total_cents {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "OFFER_PRICE_NOT_MATCHED",
                    format!(
                        "The offer price is {}, not {}.",
                        money::format_cents(total_cents),
                        money::format_cents(given)
                    ),
                )
                .with_price(money::format_cents(total_cents)));
            }
        }
    }
    let is_mock = match object.get("isMock") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(ApiError::validation("isMock: Must be a valid boolean.")),
    };
    Ok(NewOrder {
        items,
        total_cents,
        is_mock,
    })
}

fn parse_item(index: usize, raw: &Value) -> Result<NewItem, ApiError> {
    let field = |name: &str| format!("items[{index}].{name}");
    let Value::Object(item) = raw else {
        return Err(ApiError::validation(format!(
            "items[{index}]: Expected an object."
        )));
    };
    let Some(item_id) = item.get("itemId").and_then(Value::as_str) else {
        return Err(ApiError::validation(format!(
            "{}: This field is required and must be a string.",
            field("itemId")
        )));
    };
    let quantity = match item.get("quantity") {
        None | Some(Value::Null) => {
            return Err(ApiError::validation(format!(
                "{}: This field is required.",
                field("quantity")
            )));
        }
        Some(value) => value.as_u64().ok_or_else(|| {
            ApiError::validation(format!(
                "{}: A valid positive integer is required.",
                field("quantity")
            ))
        })?,
    };
    let product = catalog::product(item_id)
        .ok_or_else(|| ApiError::not_found(format!("Product {item_id} not found.")))?;
    if !(MIN_QUANTITY..=MAX_QUANTITY).contains(&quantity) {
        return Err(ApiError::validation(format!(
            "{}: Must be between {MIN_QUANTITY} and {MAX_QUANTITY}, got {quantity}.",
            field("quantity")
        )));
    }
    let note = match item.get("note") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(note)) => note.clone(),
        Some(_) => {
            return Err(ApiError::validation(format!(
                "{}: Expected an object.",
                field("note")
            )));
        }
    };
    for required in product.required_note_fields {
        let present = match note.get(*required) {
            None | Some(Value::Null) => false,
            Some(Value::String(text)) => !text.trim().is_empty(),
            Some(_) => true,
        };
        if !present {
            return Err(ApiError::validation(format!(
                "{}: This field is required for product {}.",
                field(&format!("note.{required}")),
                product.id
            )));
        }
    }
    Ok(NewItem {
        product,
        quantity,
        note,
    })
}

/// Validates `POST /api/orders/{id}/pay`: a JSON object whose
/// `paymentProvider` is absent or null (pay from balance, the only way the
/// simulator takes money).
pub(crate) fn parse_pay(body: &[u8]) -> Result<(), ApiError> {
    let object = json_object(body)?;
    match object.get("paymentProvider") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(ApiError::validation(
            "paymentProvider: Only null (pay from balance) is supported.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(body: &str) -> (u16, Option<&'static str>, String) {
        let err = parse_create(body.as_bytes()).unwrap_err();
        (err.status.as_u16(), err.code, err.detail)
    }

    #[test]
    fn create_computes_the_total_in_cents_across_items() {
        let order = parse_create(
            br#"{"items":[{"itemId":"product_fast","quantity":2},{"itemId":"product_activation","quantity":1}],"totalPrice":"32.15"}"#,
        )
        .unwrap();
        assert_eq!(order.total_cents, 2 * 1250 + 715);
        assert!(!order.is_mock);
    }

    #[test]
    fn create_refusals_name_the_field() {
        assert_eq!(code_of("{").1, Some("VALIDATION_ERROR"));
        assert_eq!(code_of("[]").1, Some("VALIDATION_ERROR"));
        assert!(code_of(r#"{"items":[]}"#).2.starts_with("items"));
        let (status, code, detail) =
            code_of(r#"{"items":[{"itemId":"product_fast","quantity":0}]}"#);
        assert_eq!((status, code), (400, Some("VALIDATION_ERROR")));
        assert!(detail.contains("items[0].quantity"), "{detail}");
        let (_, _, detail) = code_of(
            r#"{"items":[{"itemId":"product_player","quantity":1,"note":{"player_id":" "}}]}"#,
        );
        assert!(detail.contains("player_id"), "{detail}");
        let (status, code, _) = code_of(r#"{"items":[{"itemId":"product_nope","quantity":1}]}"#);
        assert_eq!((status, code), (404, Some("NOT_FOUND")));
        let (status, code, _) =
            code_of(r#"{"items":[{"itemId":"product_fast","quantity":1}],"isMock":"yes"}"#);
        assert_eq!((status, code), (400, Some("VALIDATION_ERROR")));
    }

    #[test]
    fn pay_takes_a_null_provider_only() {
        assert!(parse_pay(br#"{"paymentProvider":null}"#).is_ok());
        assert!(parse_pay(b"{}").is_ok());
        assert!(parse_pay(br#"{"paymentProvider":"card"}"#).is_err());
        assert!(parse_pay(b"").is_err());
    }
}
