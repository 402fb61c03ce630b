//! One sealed value, as stored: AES-256-GCM under a data key, the data key
//! itself wrapped by KMS beside it, and the value's place (its order and
//! position) as associated data, so a value moved to another item, order
//! or position does not open.
//!
//! Layout, version 1:
//!
//! | bytes | holds |
//! |---|---|
//! | 1 | version, `1` |
//! | 2 | length `n` of the wrapped data key, big-endian |
//! | `n` | the wrapped data key (KMS's ciphertext blob) |
//! | 12 | nonce, random |
//! | rest | ciphertext, then GCM's 16-byte tag |

use super::SealError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The layout's version byte.
pub const SEALED_VERSION: u8 = 1;
/// A data key's length: AES-256.
pub const DATA_KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Where a sealed value belongs: every field is bound to the ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place<'a> {
    pub order_id: &'a str,
    /// Position among the order's codes.
    pub index: u32,
    pub item_index: u32,
    pub product_id: &'a str,
    /// `code` or `data`.
    pub kind: &'a str,
}

impl Place<'_> {
    /// The associated data: a label, then each field length-prefixed, so no
    /// two places share it.
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"foxrelay code v1".to_vec();
        for text in [self.order_id, self.product_id, self.kind] {
            aad.extend_from_slice(&(text.len() as u32).to_be_bytes());
            aad.extend_from_slice(text.as_bytes());
        }
        aad.extend_from_slice(&self.index.to_be_bytes());
        aad.extend_from_slice(&self.item_index.to_be_bytes());
        aad
    }
}

/// An AES-256-GCM key made from a data key's plaintext.
pub fn cipher(plaintext_key: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, plaintext_key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Broken("a data key is not 32 bytes"))
}

/// Seals `value` at `place` under `key`, whose wrapped form is `wrapped`.
pub fn seal(
    key: &LessSafeKey,
    wrapped: &[u8],
    place: &Place<'_>,
    value: &str,
) -> Result<Vec<u8>, SealError> {
    let wrapped_len = u16::try_from(wrapped.len())
        .map_err(|_| SealError::Broken("a wrapped data key over 65,535 bytes"))?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Broken("no random nonce"))?;
    let mut body = value.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(place.aad()),
        &mut body,
    )
    .map_err(|_| SealError::Broken("AES-GCM refused to seal"))?;
    let mut out = Vec::with_capacity(3 + wrapped.len() + NONCE_LEN + body.len());
    out.push(SEALED_VERSION);
    out.extend_from_slice(&wrapped_len.to_be_bytes());
    out.extend_from_slice(wrapped);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// A sealed value taken apart, not yet opened.
#[derive(Debug)]
pub struct Parts<'a> {
    pub wrapped: &'a [u8],
    nonce: [u8; NONCE_LEN],
    body: &'a [u8],
}

/// Takes a sealed value apart; refuses an unknown version or a value too
/// short to hold its parts.
pub fn parts(sealed: &[u8]) -> Result<Parts<'_>, SealError> {
    let (&version, rest) = sealed
        .split_first()
        .ok_or(SealError::Broken("an empty sealed value"))?;
    if version != SEALED_VERSION {
        return Err(SealError::Broken("an unknown sealed-value version"));
    }
    let short = SealError::Broken("a sealed value cut short");
    let (len, rest) = rest.split_at_checked(2).ok_or(short)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let (wrapped, rest) = rest
        .split_at_checked(len)
        .ok_or(SealError::Broken("a sealed value cut short"))?;
    let (nonce, body) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(SealError::Broken("a sealed value cut short"))?;
    if body.len() < TAG_LEN || wrapped.is_empty() {
        return Err(SealError::Broken("a sealed value cut short"));
    }
    Ok(Parts {
        wrapped,
        nonce: nonce.try_into().expect("split at the nonce's length"),
        body,
    })
}

/// Opens `parts` at `place` with the data key they were sealed under.
/// Anything changed (the value, its place, its key) fails: GCM's tag
/// covers them all.
pub fn open(key: &LessSafeKey, parts: &Parts<'_>, place: &Place<'_>) -> Result<String, SealError> {
    let mut body = parts.body.to_vec();
    let value = key
        .open_in_place(
            Nonce::assume_unique_for_key(parts.nonce),
            Aad::from(place.aad()),
            &mut body,
        )
        .map_err(|_| SealError::Broken("the sealed value does not open at its place"))?;
    String::from_utf8(value.to_vec()).map_err(|_| SealError::Broken("the opened value is not text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place<'static> = Place {
        order_id: "order-1",
        index: 3,
        item_index: 1,
        product_id: "product_1",
        kind: "code",
    };

    fn key(byte: u8) -> LessSafeKey {
        cipher(&[byte; DATA_KEY_LEN]).unwrap()
    }

    fn sealed() -> Vec<u8> {
        seal(&key(7), b"wrapped-key", &PLACE, "AAAA-BBBB").unwrap()
    }

    #[test]
    fn a_sealed_value_opens_at_its_place_and_holds_no_plaintext() {
        let sealed = sealed();
        assert!(
            !sealed.windows(9).any(|w| w == b"AAAA-BBBB"),
            "the code is not in the sealed bytes"
        );
        let parts = parts(&sealed).unwrap();
        assert_eq!(parts.wrapped, b"wrapped-key");
        assert_eq!(open(&key(7), &parts, &PLACE).unwrap(), "AAAA-BBBB");
        // Two seals of one value differ (random nonces).
        assert_ne!(sealed, self::sealed());
    }

    #[test]
    fn a_value_moved_to_another_order_position_item_product_or_kind_does_not_open() {
        let sealed = sealed();
        let parts = parts(&sealed).unwrap();
        let elsewhere = [
            Place {
                order_id: "order-2",
                ..PLACE
            },
            Place { index: 4, ..PLACE },
            Place {
                item_index: 0,
                ..PLACE
            },
            Place {
                product_id: "product_2",
                ..PLACE
            },
            Place {
                kind: "data",
                ..PLACE
            },
            // Length prefixes keep fields from sliding into each other.
            Place {
                order_id: "order-1p",
                product_id: "roduct_1",
                ..PLACE
            },
        ];
        for place in elsewhere {
            assert!(
                matches!(open(&key(7), &parts, &place), Err(SealError::Broken(_))),
                "{place:?}"
            );
        }
        assert!(open(&key(8), &parts, &PLACE).is_err(), "another data key");
    }

    #[test]
    fn a_changed_cut_or_unknown_sealed_value_is_refused() {
        let sealed = sealed();
        // The version, the wrapped key's length, the nonce, the ciphertext,
        // the tag (a bent wrapped key is refused by KMS, which unwraps it).
        for at in [0, 1, 14, 26, sealed.len() - 1] {
            let mut bent = sealed.clone();
            bent[at] ^= 1;
            let refused = parts(&bent).and_then(|p| open(&key(7), &p, &PLACE));
            assert!(refused.is_err(), "byte {at} changed");
        }
        for cut in [0, 1, 2, 14, sealed.len() - 1] {
            assert!(
                parts(&sealed[..cut])
                    .and_then(|p| open(&key(7), &p, &PLACE))
                    .is_err(),
                "cut at {cut}"
            );
        }
    }
}
