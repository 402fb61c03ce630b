//! Delivered secrets: codes shaped `FOX-XXXX-XXXX-XXXX` and activation
//! serials, unique for the life of the process.
//!
//! Each value comes from a process-wide counter (offset by a random salt
//! drawn once) pushed through a bijection of 60-bit integers, so no two
//! values drawn in one process can collide, across every simulator it runs,
//! while consecutive values look unrelated.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const BITS: u32 = 60;
const MASK: u64 = (1 << BITS) - 1;
/// Crockford's base 32: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SALT: OnceLock<u64> = OnceLock::new();

/// A bijection on 60-bit integers: odd multiplications and right xorshifts
/// are each invertible modulo 2^60.
fn scramble(mut x: u64) -> u64 {
    x = x.wrapping_mul(0x5DEE_CE66_D1CE_4E5B) & MASK;
    x ^= x >> 31;
    x = x.wrapping_mul(0x2545_F491_4F6C_DD1D) & MASK;
    x ^= x >> 29;
    x
}

fn next_token() -> u64 {
    let salt = *SALT.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    scramble(n.wrapping_add(salt) & MASK)
}

/// 12 base-32 characters in three groups of four: `ABCD-EFGH-JKMN`.
fn groups(token: u64) -> String {
    let mut out = String::with_capacity(14);
    for i in 0..12 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let shift = BITS - 5 * (i + 1);
        let index = usize::try_from((token >> shift) & 31).unwrap_or(0);
        out.push(char::from(ALPHABET[index]));
    }
    out
}

/// A fresh code: `FOX-XXXX-XXXX-XXXX`.
pub(crate) fn code() -> String {
    format!("FOX-{}", groups(next_token()))
}

/// A fresh activation identity: (4-digit pin, `SN-XXXX-XXXX-XXXX` serial).
pub(crate) fn activation() -> (String, String) {
    let token = next_token();
    (
        format!("{:04}", token % 10_000),
        format!("SN-{}", groups(token)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_have_the_fox_shape() {
        let code = code();
        assert_eq!(code.len(), 18, "{code}");
        let parts: Vec<_> = code.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "FOX");
        for part in &parts[1..] {
            assert_eq!(part.len(), 4);
            assert!(part.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        }
    }

    #[test]
    fn codes_never_repeat() {
        let codes: HashSet<_> = (0..20_000).map(|_| code()).collect();
        assert_eq!(codes.len(), 20_000);
    }

    #[test]
    fn scramble_is_injective_on_a_dense_range() {
        let out: HashSet<_> = (0..50_000u64).map(scramble).collect();
        assert_eq!(out.len(), 50_000);
        assert!(out.iter().all(|x| *x <= MASK));
    }

    #[test]
    fn activation_serials_are_unique_and_pins_have_four_digits() {
        let (pin, serial) = activation();
        assert_eq!(pin.len(), 4);
        assert!(pin.bytes().all(|b| b.is_ascii_digit()));
        assert!(serial.starts_with("SN-"));
        assert_ne!(activation().1, serial);
    }
}
