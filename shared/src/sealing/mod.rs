//! Codes sealed at rest: every code (and activation data) is encrypted
//! before it reaches DynamoDB, so whoever reads the table (a console user,
//! an export, a restored backup, a support tool) sees no code.
//!
//! Envelope encryption: a data key from KMS (`GenerateDataKey` under the
//! stack's key, with an encryption context naming its purpose) seals values with AES-256-GCM; its wrapped form is stored beside
//! each value. Each value is bound to its order and position as GCM's
//! associated data ([`Place`]), so a value moved to another item does not
//! open. A container keeps its data key for at most [`KeyLimits::max_age`]
//! and [`KeyLimits::max_uses`] values, and keeps the keys it unwrapped (a
//! bounded number, for as long), so KMS is asked about once per container
//! and key, not per code.
//!
//! Only the roles that must read codes may `kms:Decrypt` under the codes'
//! encryption context (poll-order, create-order); scan-stalled is denied it.

mod envelope;
mod kms;

pub use envelope::{DATA_KEY_LEN, Place, SEALED_VERSION};
pub use kms::KmsDataKeys;

use aws_lc_rs::aead::LessSafeKey;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The encryption context key naming what a data key protects, and its
/// value for codes: IAM conditions on `kms:EncryptionContext:foxrelay:purpose`
/// keep roles that must not read codes from unwrapping their keys.
pub const PURPOSE_CONTEXT_KEY: &str = "foxrelay:purpose";
pub const CODES_PURPOSE: &str = "codes";

/// A fresh data key: its plaintext (never stored) and its wrapped form.
pub struct DataKey {
    pub plaintext: Vec<u8>,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("wrapped_len", &self.wrapped.len())
            .finish_non_exhaustive()
    }
}

/// Where data keys come from: KMS ([`KmsDataKeys`]), or a local stand-in in
/// unit tests.
pub trait DataKeys: Send + Sync {
    /// A new data key.
    fn generate(&self) -> impl Future<Output = Result<DataKey, SealError>> + Send;
    /// The plaintext of a wrapped data key.
    fn unwrap(&self, wrapped: &[u8]) -> impl Future<Output = Result<Vec<u8>, SealError>> + Send;
}

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// KMS throttled, failed or did not answer: try again.
    #[error("KMS is unavailable for {operation}: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// KMS refused (no permission, a disabled or missing key): retrying
    /// will not help.
    #[error("KMS refused {operation}: {source}")]
    Refused {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The value is not one this stack sealed at this place: changed,
    /// moved, cut short, or its data key does not unwrap under this
    /// table's context.
    #[error("{0}")]
    Broken(&'static str),
}

/// How long and how much one data key is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLimits {
    /// A data key seals values for at most this long, and an unwrapped key
    /// is kept this long.
    pub max_age: Duration,
    /// A data key seals at most this many values (far below AES-GCM's
    /// bound for random nonces, 2³²).
    pub max_uses: u64,
    /// Unwrapped keys kept at most (the oldest goes first).
    pub max_unwrapped: usize,
}

impl Default for KeyLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_uses: 10_000,
            max_unwrapped: 256,
        }
    }
}

struct Current {
    key: Arc<LessSafeKey>,
    wrapped: Arc<[u8]>,
    born: Instant,
    uses: u64,
}

#[derive(Default)]
struct Unwrapped {
    keys: HashMap<Arc<[u8]>, (Arc<LessSafeKey>, Instant)>,
}

impl Unwrapped {
    fn get(&mut self, wrapped: &[u8], max_age: Duration) -> Option<Arc<LessSafeKey>> {
        match self.keys.get(wrapped) {
            Some((key, at)) if at.elapsed() < max_age => Some(key.clone()),
            Some(_) => {
                self.keys.remove(wrapped);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, wrapped: Arc<[u8]>, key: Arc<LessSafeKey>, limit: usize) {
        while self.keys.len() >= limit.max(1) {
            let oldest = self
                .keys
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(w, _)| w.clone())
                .expect("a full cache has an oldest entry");
            self.keys.remove(&oldest);
        }
        self.keys.insert(wrapped, (key, Instant::now()));
    }
}

/// Seals and opens codes, keeping data keys per container within
/// [`KeyLimits`].
pub struct Sealer<K = KmsDataKeys> {
    keys: K,
    limits: KeyLimits,
    current: Mutex<Option<Current>>,
    unwrapped: Mutex<Unwrapped>,
    /// KMS calls made, for tests and benchmarks: (generated, unwrapped).
    calls: Mutex<(u64, u64)>,
}

impl<K> std::fmt::Debug for Sealer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<K: DataKeys> Sealer<K> {
    pub fn new(keys: K, limits: KeyLimits) -> Self {
        Self {
            keys,
            limits,
            current: Mutex::new(None),
            unwrapped: Mutex::new(Unwrapped::default()),
            calls: Mutex::new((0, 0)),
        }
    }

    /// Data keys generated and unwrapped by KMS so far.
    pub fn kms_calls(&self) -> (u64, u64) {
        *self
            .calls
            .lock()
            .expect("the counters' lock is never poisoned")
    }

    /// Seals `value` at `place`.
    pub async fn seal(&self, place: &Place<'_>, value: &str) -> Result<Vec<u8>, SealError> {
        let (key, wrapped) = self.sealing_key().await?;
        envelope::seal(&key, &wrapped, place, value)
    }

    /// Opens a value sealed at `place`.
    pub async fn open(&self, place: &Place<'_>, sealed: &[u8]) -> Result<String, SealError> {
        let parts = envelope::parts(sealed)?;
        let key = self.opening_key(parts.wrapped).await?;
        envelope::open(&key, &parts, place)
    }

    /// The current data key, counted as used once; a new one when it is
    /// missing, too old or used up.
    async fn sealing_key(&self) -> Result<(Arc<LessSafeKey>, Arc<[u8]>), SealError> {
        {
            let mut current = self.current.lock().expect("never poisoned");
            if let Some(c) = current.as_mut()
                && c.born.elapsed() < self.limits.max_age
                && c.uses < self.limits.max_uses
            {
                c.uses += 1;
                return Ok((c.key.clone(), c.wrapped.clone()));
            }
        }
        // Two seals may both find no key and both generate one: harmless,
        // each value names its own key.
        // Boxed: the SDK's futures are large, and this one would otherwise
        // sit inside every future that stores codes.
        let fresh = Box::pin(self.keys.generate()).await?;
        self.calls.lock().expect("never poisoned").0 += 1;
        let key = Arc::new(envelope::cipher(&fresh.plaintext)?);
        let wrapped: Arc<[u8]> = fresh.wrapped.into();
        // What this container sealed it can open without asking KMS.
        self.unwrapped.lock().expect("never poisoned").put(
            wrapped.clone(),
            key.clone(),
            self.limits.max_unwrapped,
        );
        *self.current.lock().expect("never poisoned") = Some(Current {
            key: key.clone(),
            wrapped: wrapped.clone(),
            born: Instant::now(),
            uses: 1,
        });
        Ok((key, wrapped))
    }

    async fn opening_key(&self, wrapped: &[u8]) -> Result<Arc<LessSafeKey>, SealError> {
        if let Some(key) = self
            .unwrapped
            .lock()
            .expect("never poisoned")
            .get(wrapped, self.limits.max_age)
        {
            return Ok(key);
        }
        let plaintext = Box::pin(self.keys.unwrap(wrapped)).await?;
        self.calls.lock().expect("never poisoned").1 += 1;
        let key = Arc::new(envelope::cipher(&plaintext)?);
        self.unwrapped.lock().expect("never poisoned").put(
            wrapped.into(),
            key.clone(),
            self.limits.max_unwrapped,
        );
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Data keys made and "wrapped" locally: the wrapped form is a counter,
    /// and unwrapping looks it up, as KMS would decrypt it.
    #[derive(Default)]
    struct LocalKeys {
        made: AtomicU64,
        fail: std::sync::atomic::AtomicBool,
    }

    fn key_bytes(n: u64) -> Vec<u8> {
        let mut key = vec![0u8; DATA_KEY_LEN];
        key[..8].copy_from_slice(&n.to_be_bytes());
        key
    }

    impl DataKeys for LocalKeys {
        async fn generate(&self) -> Result<DataKey, SealError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(SealError::Unavailable {
                    operation: "generate a data key",
                    source: "throttled".into(),
                });
            }
            let n = self.made.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(DataKey {
                plaintext: key_bytes(n),
                wrapped: format!("key-{n}").into_bytes(),
            })
        }

        async fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, SealError> {
            let n = std::str::from_utf8(wrapped)
                .ok()
                .and_then(|w| w.strip_prefix("key-"))
                .and_then(|n| n.parse().ok())
                .ok_or(SealError::Broken("not a key of this test"))?;
            Ok(key_bytes(n))
        }
    }

    fn place(index: u32) -> Place<'static> {
        Place {
            order_id: "order-1",
            index,
            item_index: 0,
            product_id: "product_1",
            kind: "code",
        }
    }

    fn wrapped_of(sealed: &[u8]) -> Vec<u8> {
        envelope::parts(sealed).unwrap().wrapped.to_vec()
    }

    #[tokio::test(start_paused = true)]
    async fn one_data_key_seals_until_its_age_is_up_and_then_a_new_one_is_generated() {
        let sealer = Sealer::new(LocalKeys::default(), KeyLimits::default());
        let first = sealer.seal(&place(0), "A").await.unwrap();
        tokio::time::advance(Duration::from_secs(299)).await;
        let second = sealer.seal(&place(1), "B").await.unwrap();
        assert_eq!(wrapped_of(&first), wrapped_of(&second));
        tokio::time::advance(Duration::from_secs(1)).await;
        let third = sealer.seal(&place(2), "C").await.unwrap();
        assert_ne!(wrapped_of(&second), wrapped_of(&third));
        assert_eq!(sealer.kms_calls(), (2, 0));
        // Each opens at its place, the older ones with a key unwrapped once.
        for (i, (sealed, value)) in [(&first, "A"), (&second, "B"), (&third, "C")]
            .into_iter()
            .enumerate()
        {
            assert_eq!(sealer.open(&place(i as u32), sealed).await.unwrap(), value);
        }
        assert_eq!(sealer.kms_calls(), (2, 1), "the first key was too old");
    }

    #[tokio::test(start_paused = true)]
    async fn a_data_key_seals_at_most_its_use_count() {
        let limits = KeyLimits {
            max_uses: 3,
            ..KeyLimits::default()
        };
        let sealer = Sealer::new(LocalKeys::default(), limits);
        let mut wrapped = Vec::new();
        for i in 0..7 {
            wrapped.push(wrapped_of(&sealer.seal(&place(i), "X").await.unwrap()));
        }
        assert_eq!(wrapped[0], wrapped[2]);
        assert_ne!(wrapped[2], wrapped[3]);
        assert_eq!(wrapped[3], wrapped[5]);
        assert_ne!(wrapped[5], wrapped[6]);
        assert_eq!(sealer.kms_calls().0, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn another_container_unwraps_each_data_key_once_within_its_age_and_bound() {
        let writer = Sealer::new(LocalKeys::default(), KeyLimits::default());
        let limits = KeyLimits {
            max_unwrapped: 2,
            ..KeyLimits::default()
        };
        let reader = Sealer::new(LocalKeys::default(), limits);
        let a = writer.seal(&place(0), "A").await.unwrap();
        let b = writer.seal(&place(1), "B").await.unwrap();
        for _ in 0..3 {
            assert_eq!(reader.open(&place(0), &a).await.unwrap(), "A");
            assert_eq!(reader.open(&place(1), &b).await.unwrap(), "B");
        }
        assert_eq!(reader.kms_calls(), (0, 1), "one key, unwrapped once");
        tokio::time::advance(Duration::from_secs(300)).await;
        reader.open(&place(0), &a).await.unwrap();
        assert_eq!(reader.kms_calls(), (0, 2), "kept no longer than its age");
        // Past the bound, the oldest unwrapped key goes first.
        let keys = (10..13)
            .map(|n| {
                let key = envelope::cipher(&key_bytes(n)).unwrap();
                envelope::seal(&key, format!("key-{n}").as_bytes(), &place(0), "Z").unwrap()
            })
            .collect::<Vec<_>>();
        for (i, sealed) in keys.iter().enumerate() {
            tokio::time::advance(Duration::from_secs(1)).await;
            reader.open(&place(0), sealed).await.unwrap();
            assert_eq!(reader.kms_calls().1, 3 + i as u64);
        }
        reader.open(&place(0), &keys[2]).await.unwrap();
        reader.open(&place(0), &keys[1]).await.unwrap();
        assert_eq!(reader.kms_calls().1, 5, "the two newest are kept");
        reader.open(&place(0), &keys[0]).await.unwrap();
        assert_eq!(reader.kms_calls().1, 6, "the oldest was dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_generate_seals_nothing_and_the_next_seal_tries_again() {
        let sealer = Sealer::new(LocalKeys::default(), KeyLimits::default());
        sealer.keys.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            sealer.seal(&place(0), "A").await,
            Err(SealError::Unavailable { .. })
        ));
        sealer.keys.fail.store(false, Ordering::SeqCst);
        let sealed = sealer.seal(&place(0), "A").await.unwrap();
        assert_eq!(sealer.open(&place(0), &sealed).await.unwrap(), "A");
        assert_eq!(sealer.kms_calls(), (1, 0));
    }
}
