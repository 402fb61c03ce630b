//! Money in integer cents. Prices cross the wire as decimal text; they are
//! never summed as floating point.

use serde_json::{Number, Value};

/// `1250` → `"12.50"`.
pub(crate) fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A price as JSON number, the other form FoxReload uses (item `price`).
/// One division of an exact integer, so the shortest rendering is exact
/// (`1250` → `12.5`).
pub(crate) fn cents_to_number(cents: i64) -> Value {
    // i64 cents of real prices are far below 2^53: the conversion is exact.
    let value = cents as f64 / 100.0;
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// Parses a non-negative decimal price (`"12.5"`, `"12.50"`, `"12"`,
/// `"12.500"`) into cents. More than two decimals are accepted only when the
/// extra digits are zeros. Anything else is `None`.
pub(crate) fn parse_price(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, frac) = match text.split_once('.') {
        Some((whole, frac)) => (whole, frac),
        None => (text, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && frac.is_empty()) {
        return None;
    }
    if frac.len() > 2 && !frac[2..].bytes().all(|b| b == b'0') {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut frac_cents = 0i64;
    for (i, b) in frac.bytes().take(2).enumerate() {
        let digit = i64::from(b - b'0');
        frac_cents += if i == 0 { digit * 10 } else { digit };
    }
    whole.checked_mul(100)?.checked_add(frac_cents)
}

/// A price given as JSON: a string, or (leniently) a number read through its
/// exact text.
pub(crate) fn parse_price_value(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => parse_price(text),
        Value::Number(number) => parse_price(&number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_format_with_two_decimals() {
        assert_eq!(format_cents(1250), "12.50");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(0), "0.00");
        assert_eq!(format_cents(999_999_900), "9999999.00");
        assert_eq!(format_cents(-1250), "-12.50");
    }

    #[test]
    fn item_price_number_is_the_shortest_exact_decimal() {
        assert_eq!(cents_to_number(1250).to_string(), "12.5");
        assert_eq!(cents_to_number(1040).to_string(), "10.4");
        assert_eq!(cents_to_number(715).to_string(), "7.15");
    }

    #[test]
    fn prices_parse_leniently_but_exactly() {
        assert_eq!(parse_price("12.50"), Some(1250));
        assert_eq!(parse_price("12.5"), Some(1250));
        assert_eq!(parse_price("12"), Some(1200));
        assert_eq!(parse_price("12.500"), Some(1250));
        assert_eq!(parse_price("0.05"), Some(5));
        assert_eq!(parse_price("12.505"), None);
        assert_eq!(parse_price("12."), None);
        assert_eq!(parse_price(".5"), None);
        assert_eq!(parse_price("-1.00"), None);
        assert_eq!(parse_price("1e3"), None);
        assert_eq!(parse_price(""), None);
        assert_eq!(parse_price_value(&serde_json::json!(12.5)), Some(1250));
        assert_eq!(parse_price_value(&serde_json::json!(true)), None);
    }
}
