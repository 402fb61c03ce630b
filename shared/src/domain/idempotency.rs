//! Client retries made safe: the `Idempotency-Key` header and the request
//! fingerprint that tells "the same request again" from "another request
//! with a reused key".

use super::order::NewOrder;
use super::principal::Principal;
use super::request::FieldError;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The header clients send.
pub const HEADER: &str = "idempotency-key";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A validated idempotency key: 1 to 255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty()
            || raw.len() > MAX_KEY_LEN
            || !raw.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(FieldError {
                field: "Idempotency-Key".into(),
                message: format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// Parses a header's raw bytes (which need not be text).
    pub fn parse_header(raw: &[u8]) -> Result<Self, FieldError> {
        Self::parse(std::str::from_utf8(raw).unwrap_or("\u{7f}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as stored: scoped by the principal that sent it, so the same
    /// key from two principals is two requests.
    pub fn scoped(&self, principal: &Principal) -> String {
        format!("{}#{}", principal.scope(), self.0)
    }
}

/// SHA-256 of the validated request in canonical JSON, hex-encoded. Two
/// requests with the same meaning have the same fingerprint whatever their
/// spacing.
pub fn fingerprint(order: &NewOrder) -> String {
    let canonical = serde_json::to_vec(order).expect("a validated order is plain JSON");
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::parse_new_order;

    #[test]
    fn keys_must_be_printable_and_bounded() {
        assert!(IdempotencyKey::parse("order-2026-11-28 #1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "tab\there", "é", &"k".repeat(256)] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().field,
                "Idempotency-Key"
            );
        }
    }

    #[test]
    fn fingerprint_ignores_layout_but_not_meaning() {
        let a = parse_new_order(br#"{"items":[{"productId":"p","quantity":1}]}"#).unwrap();
        let b = parse_new_order(b"{ \"items\" : [ { \"quantity\" : 1, \"productId\" : \"p\" } ] }")
            .unwrap();
        let c = parse_new_order(br#"{"items":[{"productId":"p","quantity":2}]}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_eq!(fingerprint(&a).len(), 64);
    }
}
