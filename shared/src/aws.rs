//! AWS SDK set-up, done once per process, and the API key read from Secrets
//! Manager.
//!
//! In Lambda the SDK takes region and credentials from the environment the
//! service provides. Outside AWS (moto, the local stack, tests) the SDK must
//! be given all of: an endpoint (`AWS_ENDPOINT_URL` or [`LocalAws`]), a region
//! and static credentials; otherwise it falls back to the EC2 metadata
//! address. Set `AWS_EC2_METADATA_DISABLED=true` there too.

use crate::settings::{ApiKey, ApiKeySource};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// Slowest single AWS call we wait for. Longer than any SQS long poll the
/// local runner makes (20 s), shorter than any function's timeout.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(25);
/// Per-attempt limit inside [`OPERATION_TIMEOUT`] for ordinary calls.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(22);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A local AWS endpoint (moto's server) and the settings it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAws {
    pub endpoint_url: String,
    pub region: String,
}

impl LocalAws {
    /// Static credentials moto accepts; they reach no real account.
    pub const ACCESS_KEY_ID: &'static str = "testing";
    pub const SECRET_ACCESS_KEY: &'static str = "testing";
    /// The region used locally.
    pub const REGION: &'static str = "us-east-1";

    pub fn new(endpoint_url: impl Into<String>) -> Self {
        Self {
            endpoint_url: endpoint_url.into(),
            region: Self::REGION.to_owned(),
        }
    }
}

/// Whether an AWS SDK failure passes with time: no answer (a timeout, a
/// connection that failed, an answer cut short), a 5xx, or one of the
/// service's `transient` error codes (its throttling and the like). Every
/// SDK crate's `SdkError` is this one type, so each adapter sorts its
/// failures here with its service's codes.
pub fn passes_with_time<E: ProvideErrorMetadata>(error: &SdkError<E>, transient: &[&str]) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|code| transient.contains(&code))
        }
        _ => false,
    }
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SDK configuration from the environment (Lambda's, or a developer's
/// including `AWS_ENDPOINT_URL`), with foxrelay's timeouts.
pub async fn load_from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .load()
        .await
}

/// The SDK configuration for a local endpoint: explicit endpoint, region and
/// static credentials, so nothing is looked up elsewhere.
pub async fn load_local(local: &LocalAws) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .region(Region::new(local.region.clone()))
        .endpoint_url(&local.endpoint_url)
        .credentials_provider(Credentials::new(
            LocalAws::ACCESS_KEY_ID,
            LocalAws::SECRET_ACCESS_KEY,
            None,
            None,
            "foxrelay-local",
        ))
        .load()
        .await
}

/// The AWS clients foxrelay uses, built once from one configuration.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub kms: aws_sdk_kms::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
        }
    }
}

/// Why the API key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the FoxReload API key secret {arn} could not be read: {source}")]
    Unreadable {
        arn: String,
        #[source]
        source: Box<
            aws_sdk_secretsmanager::error::SdkError<
                aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
            >,
        >,
    },
    #[error(
        "the FoxReload API key secret {arn} holds no usable key: store the key as the secret string, or as JSON {{\"apiKey\": \"…\"}}"
    )]
    Empty { arn: String },
    #[error("no FoxReload API key is configured: set FOXRELOAD_API_KEY_SECRET_ARN")]
    NotGiven,
}

/// Resolves the API key: the plain key as it is, or the secret's value read
/// once (a secret string, or JSON with an `apiKey` field).
pub async fn resolve_api_key(
    source: &ApiKeySource,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<ApiKey, ApiKeyError> {
    let arn = match source {
        ApiKeySource::Plain(key) => return Ok(key.clone()),
        ApiKeySource::SecretArn(arn) => arn,
        ApiKeySource::NotGiven => return Err(ApiKeyError::NotGiven),
    };
    let output = secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|source| ApiKeyError::Unreadable {
            arn: arn.clone(),
            source: Box::new(source),
        })?;
    let text = output.secret_string().unwrap_or_default().trim();
    let key = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map
            .get("apiKey")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .trim()
            .to_owned(),
        _ => text.to_owned(),
    };
    if key.is_empty() {
        return Err(ApiKeyError::Empty { arn: arn.clone() });
    }
    Ok(ApiKey::new(key))
}
