//! Data keys from AWS KMS: `GenerateDataKey` and `Decrypt` under one key,
//! with the codes' encryption context, so a wrapped key unwraps only as a
//! key for codes, and only for roles allowed to. The context names no
//! table: the stack's key is the stack's own, and a table restored under
//! another name (point-in-time recovery always restores to a new one)
//! must still open its codes.

use super::{CODES_PURPOSE, DATA_KEY_LEN, DataKey, DataKeys, PURPOSE_CONTEXT_KEY, SealError};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use std::collections::HashMap;

/// The KMS adapter of [`DataKeys`].
#[derive(Clone, Debug)]
pub struct KmsDataKeys {
    client: aws_sdk_kms::Client,
    key_id: String,
    context: HashMap<String, String>,
}

impl KmsDataKeys {
    /// Data keys for codes under `key_id` (an ARN, id or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
            context: HashMap::from([(PURPOSE_CONTEXT_KEY.to_owned(), CODES_PURPOSE.to_owned())]),
        }
    }
}

impl DataKeys for KmsDataKeys {
    async fn generate(&self) -> Result<DataKey, SealError> {
        const OPERATION: &str = "generate a data key for codes";
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(self.context.clone()))
            .send()
            .await
            .map_err(|e| kms_error(OPERATION, e))?;
        match (out.plaintext, out.ciphertext_blob) {
            (Some(plaintext), Some(wrapped)) if plaintext.as_ref().len() == DATA_KEY_LEN => {
                Ok(DataKey {
                    plaintext: plaintext.into_inner(),
                    wrapped: wrapped.into_inner(),
                })
            }
            _ => Err(SealError::Refused {
                operation: OPERATION,
                source: "KMS answered without a 32-byte data key and its wrapped form".into(),
            }),
        }
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, SealError> {
        const OPERATION: &str = "unwrap a data key for codes";
        let out = self
            .client
            .decrypt()
            // Only this key may have wrapped it: KMS refuses a blob of
            // another key rather than unwrapping it with that one.
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(self.context.clone()))
            .send()
            .await
            .map_err(|e| kms_error(OPERATION, e))?;
        out.plaintext
            .map(Blob::into_inner)
            .filter(|key| key.len() == DATA_KEY_LEN)
            .ok_or(SealError::Broken("KMS unwrapped no 32-byte data key"))
    }
}

/// KMS's error codes that pass with time.
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
];

/// Sorts a KMS failure: throttling, KMS's own failures and transport
/// trouble pass with time; a blob that does not unwrap (another key,
/// another context, changed) is a broken value; the rest is refused.
fn kms_error<E>(operation: &'static str, error: SdkError<E>) -> SealError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &error
        && matches!(
            service.err().code(),
            Some("InvalidCiphertextException" | "IncorrectKeyException")
        )
    {
        return SealError::Broken(
            "the data key does not unwrap under this stack's key as a key for codes",
        );
    }
    let passes = crate::aws::passes_with_time(&error, TRANSIENT);
    let source = Box::new(error);
    if passes {
        SealError::Unavailable { operation, source }
    } else {
        SealError::Refused { operation, source }
    }
}
