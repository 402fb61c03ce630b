//! What every function does once, before its first event: logging, settings,
//! AWS clients, the API key, the FoxReload client. Any failure stops start-up
//! with a message that names the cause.

use crate::aws::{self, ApiKeyError, AwsClients};
use crate::clock::SystemClock;
use crate::events::SnsPublisher;
use crate::foxreload::{ClientBuildError, FoxReloadClient};
use crate::governor::{Governed, Governor, GovernorSettings};
use crate::metrics::{Metered, MetricSet, Metrics};
use crate::queue::SqsPollQueue;
use crate::sealing::{KeyLimits, KmsDataKeys, Sealer};
use crate::settings::{ApiKeySource, FoxReloadAccess, Settings, SettingsError};
use crate::store::DynamoStore;
use crate::telemetry;
use std::sync::Arc;

/// The FoxReload port as the functions use it: measured, and governed by
/// the stack's budget.
pub type LiveFoxReload = Governed<Metered<FoxReloadClient>, DynamoStore, SystemClock>;

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// Everything a handler needs, built once per container.
#[derive(Clone, Debug)]
pub struct Context {
    pub settings: Settings,
    pub aws: AwsClients,
    /// `None` in a function that never calls FoxReload (scan-stalled): it
    /// neither has nor reads the API key.
    pub foxreload: Option<FoxReloadClient>,
    /// Seals codes before they are stored and opens them when read, one
    /// per container (it keeps its data keys); `None` without
    /// `CODES_KMS_KEY_ID`.
    pub sealer: Option<Arc<Sealer>>,
    /// Whether metrics go to standard output as EMF lines (inside Lambda) or
    /// are kept in memory (the local runner and in-process tests, whose
    /// standard output is their own).
    pub metrics_to_stdout: bool,
}

impl Context {
    /// Builds the context of `function` from the process environment, as in
    /// Lambda.
    pub async fn from_env(
        function: &'static str,
        access: FoxReloadAccess,
    ) -> Result<Self, StartupError> {
        telemetry::init(function);
        let settings = Settings::from_env(access)?;
        let aws = AwsClients::new(&aws::load_from_env().await);
        let mut context = Self::build(settings, aws).await?;
        context.metrics_to_stdout = true;
        Ok(context)
    }

    /// [`Context::from_env`], or the process ends with the reason on standard
    /// error and in the log, and a non-zero exit code (Lambda reports it as
    /// an init failure).
    pub async fn from_env_or_exit(function: &'static str, access: FoxReloadAccess) -> Self {
        match Self::from_env(function, access).await {
            Ok(context) => context,
            Err(error) => {
                tracing::error!(%error, "start-up failed");
                eprintln!("{error}");
                std::process::exit(1);
            }
        }
    }

    /// The order store on the stack's table, sealing codes with the
    /// container's sealer when it has one.
    pub fn store(&self) -> DynamoStore {
        let store = DynamoStore::new(
            self.aws.dynamodb.clone(),
            &self.settings.resources.table_name,
        )
        .reading_codes_in_clear(self.settings.read_codes_in_clear);
        match &self.sealer {
            Some(sealer) => store.with_sealer(sealer.clone()),
            None => store,
        }
    }

    /// Learned poll plans for new orders, kept per container.
    pub fn plans(&self) -> crate::plans::Plans {
        crate::plans::Plans::new(self.settings.learning(), self.settings.learning.plan_cache)
    }

    /// The stack's poll queue.
    pub fn poll_queue(&self) -> SqsPollQueue {
        SqsPollQueue::new(
            self.aws.sqs.clone(),
            &self.settings.resources.poll_queue_url,
        )
    }

    /// The publisher to the stack's two topics.
    pub fn publisher(&self) -> SnsPublisher {
        let resources = &self.settings.resources;
        SnsPublisher::new(
            self.aws.sns.clone(),
            &resources.order_events_topic_arn,
            &resources.ops_alerts_topic_arn,
        )
    }

    /// This function's metrics; it writes `set`'s counters on every flush.
    pub fn metrics(&self, set: MetricSet) -> Metrics {
        let namespace = &self.settings.metrics_namespace;
        if self.metrics_to_stdout {
            Metrics::stdout(namespace, set)
        } else {
            Metrics::in_memory(namespace, set)
        }
    }

    /// The FoxReload client, counting its polls and failures into `metrics`.
    ///
    /// # Panics
    /// In a context built without FoxReload access
    /// ([`FoxReloadAccess::NotNeeded`]): only a function that never calls
    /// FoxReload is started that way.
    pub fn metered_foxreload(&self, metrics: &Metrics) -> Metered<FoxReloadClient> {
        Metered {
            inner: self
                .foxreload
                .clone()
                .expect("a function that calls FoxReload is started with FoxReloadAccess::Needed"),
            metrics: metrics.clone(),
        }
    }

    /// The FoxReload client, counting its calls into `metrics`, each call
    /// taking a slot of the stack's budget first (`FOXRELOAD_MAX_RPS`; none
    /// when it is 0).
    ///
    /// # Panics
    /// As [`Context::metered_foxreload`].
    pub fn governed_foxreload(&self, metrics: &Metrics) -> LiveFoxReload {
        let governor = self.settings.foxreload.max_rps.map(|max_rps| {
            Arc::new(Governor::new(
                self.store(),
                SystemClock,
                GovernorSettings {
                    max_rps: f64::from(max_rps),
                },
                Some(metrics.clone()),
            ))
        });
        Governed {
            inner: self.metered_foxreload(metrics),
            governor,
        }
    }

    /// Builds the context from given settings and clients (local runner,
    /// tests).
    pub async fn build(settings: Settings, aws: AwsClients) -> Result<Self, StartupError> {
        let foxreload = match &settings.foxreload.api_key {
            ApiKeySource::NotGiven => None,
            source => {
                let key = aws::resolve_api_key(source, &aws.secrets).await?;
                Some(FoxReloadClient::new(&settings.foxreload, &key)?)
            }
        };
        let sealer = settings.resources.codes_key.as_ref().map(|key| {
            Arc::new(Sealer::new(
                KmsDataKeys::new(aws.kms.clone(), key),
                KeyLimits::default(),
            ))
        });
        Ok(Self {
            settings,
            aws,
            foxreload,
            sealer,
            metrics_to_stdout: false,
        })
    }
}
