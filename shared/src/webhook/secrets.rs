//! Endpoints' signing secrets, read from Secrets Manager and kept a few
//! minutes per container: a rotation (a second secret added, later the
//! first removed) reaches every container within that time. One read at a
//! time per endpoint: the deliveries of a batch that all need a secret the
//! container does not hold wait for one read, not one each, and share its
//! failure too; a read is given [`SECRET_READ_TIMEOUT`], so none waits
//! longer than that behind another.

use super::signing::Signer;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a container keeps a secret it read.
pub const SECRET_CACHE: Duration = Duration::from_secs(300);
/// The longest one read of a secret is waited for (Secrets Manager
/// answers in tens of milliseconds).
pub const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an endpoint's secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager did not answer, or refused: tried again with the
    /// message.
    #[error("the signing secret {name} could not be read: {source}")]
    Unreadable {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The secret is not `whsec_…` (one, or two while rotating): nothing is
    /// sent unsigned; the delivery counts as a failed try.
    #[error("the signing secret {name} is unusable: {reason}")]
    Unusable { name: String, reason: String },
}

/// Where endpoints' signers come from.
pub trait WebhookSecrets: Send + Sync {
    fn signer(
        &self,
        endpoint: &str,
    ) -> impl Future<Output = Result<Arc<Signer>, SecretError>> + Send;
}

/// One endpoint's secret as this container last read it; locked while it
/// is read.
#[derive(Debug, Default)]
struct Kept {
    /// The signer and when it was read.
    signer: Option<(Instant, Arc<Signer>)>,
    /// The last read that failed: when it ended, and why.
    failed: Option<(Instant, Failed)>,
}

/// A failed read, as the deliveries waiting behind it are told.
#[derive(Clone, Debug)]
enum Failed {
    Unreadable(String),
    Unusable(String),
}

type Slot = Arc<Mutex<Kept>>;

/// Secrets named `{prefix}{endpoint}` in Secrets Manager.
#[derive(Clone, Debug)]
pub struct SecretsManagerSecrets {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    /// By endpoint (the configured ones: a short list).
    kept: Arc<std::sync::Mutex<HashMap<String, Slot>>>,
}

impl SecretsManagerSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            kept: Arc::default(),
        }
    }
}

impl WebhookSecrets for SecretsManagerSecrets {
    async fn signer(&self, endpoint: &str) -> Result<Arc<Signer>, SecretError> {
        let slot = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(endpoint.to_owned())
            .or_default()
            .clone();
        let asked = Instant::now();
        let mut slot = slot.lock().await;
        if let Some((read_at, signer)) = &slot.signer
            && read_at.elapsed() < SECRET_CACHE
        {
            return Ok(signer.clone());
        }
        let name = format!("{}{endpoint}", self.prefix);
        // A read that failed while this one waited is its answer too.
        if let Some((at, failed)) = &slot.failed
            && *at >= asked
        {
            return Err(match failed.clone() {
                Failed::Unreadable(why) => SecretError::Unreadable {
                    name,
                    source: why.into(),
                },
                Failed::Unusable(reason) => SecretError::Unusable { name, reason },
            });
        }
        let read = self.read(&name).await;
        match &read {
            Ok(signer) => {
                slot.signer = Some((Instant::now(), signer.clone()));
                slot.failed = None;
            }
            Err(error) => {
                let failed = match error {
                    SecretError::Unusable { reason, .. } => Failed::Unusable(reason.clone()),
                    SecretError::Unreadable { source, .. } => {
                        Failed::Unreadable(format!("a read just failed: {source}"))
                    }
                };
                slot.failed = Some((Instant::now(), failed));
            }
        }
        read
    }
}

impl SecretsManagerSecrets {
    /// One read of secret `name`, in at most [`SECRET_READ_TIMEOUT`].
    async fn read(&self, name: &str) -> Result<Arc<Signer>, SecretError> {
        let name = name.to_owned();
        let asked = self.client.get_secret_value().secret_id(&name).send();
        let out = tokio::time::timeout(SECRET_READ_TIMEOUT, asked)
            .await
            .map_err(|_| SecretError::Unreadable {
                name: name.clone(),
                source: format!("no answer in {} s", SECRET_READ_TIMEOUT.as_secs()).into(),
            })?
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception())
                {
                    // Not created yet: a failed try (tried again on the
                    // schedule), not a message failing again and again.
                    SecretError::Unusable {
                        name: name.clone(),
                        reason: "no such secret; create it (docs/events.md#webhooks)".into(),
                    }
                } else {
                    SecretError::Unreadable {
                        name: name.clone(),
                        source: Box::new(e),
                    }
                }
            })?;
        Ok(Arc::new(
            Signer::parse(out.secret_string().unwrap_or_default())
                .map_err(|reason| SecretError::Unusable { name, reason })?,
        ))
    }
}
