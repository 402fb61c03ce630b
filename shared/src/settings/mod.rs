//! Every setting foxrelay reads, named in one place.
//!
//! Settings come from environment variables (the Lambda convention; the SAM
//! template sets them from its Parameters) and are read once at start-up. A
//! missing or malformed setting stops start-up with a message naming it; all
//! problems are reported together so one deploy fixes them all.

use crate::domain::schedule::{Preset, Schedule};
use std::fmt;
use std::time::Duration;

mod catalog;
pub mod names;
mod ranges;
mod reader;

pub use catalog::{CATALOG, Documented, settings_table};
pub use ranges::{
    CALL_SLACK, MAX_REQUEST_TIMEOUT_MS, POLL_MESSAGE_BUDGET, POLL_MOVE_GRACE, RANGES,
    RECONCILE_MARGIN, Range, range,
};
use ranges::{DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS};
use reader::Reader;

/// Default CloudWatch namespace of foxrelay's metrics.
pub const DEFAULT_METRICS_NAMESPACE: &str = "foxrelay";

/// Default FoxReload base URL.
pub const DEFAULT_FOXRELOAD_BASE_URL: &str = "https://public-api.foxreload.com";

/// Everything a foxrelay function needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub resources: Resources,
    pub foxreload: FoxReloadSettings,
    pub stall: StallSettings,
    /// The polling schedule; its `stall_after` is `stall.after`.
    pub schedule: Schedule,
    /// Learned polling.
    pub learning: LearningSettings,
    /// CloudWatch namespace of the metrics foxrelay logs.
    pub metrics_namespace: String,
    /// What the orders API asks of callers.
    pub api: ApiSettings,
    /// Whether order events carry their codes.
    pub event_codes: EventCodes,
    /// Read codes stored in clear beside sealed ones (an upgrade, until
    /// they are resealed).
    pub read_codes_in_clear: bool,
    /// Webhook delivery (deliver-webhook; empty elsewhere).
    pub webhooks: WebhookSettings,
}

/// Where and how order events are POSTed (deliver-webhook).
#[derive(Clone, Debug, Default)]
pub struct WebhookSettings {
    pub endpoints: Vec<crate::domain::webhook::Endpoint>,
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    /// An endpoint's secret is named this and its id.
    pub secrets_prefix: String,
    /// How long an endpoint has to answer.
    pub timeout: Duration,
    pub retries: crate::domain::webhook::RetrySchedule,
    /// Loopback addresses may be reached (a local run, outside Lambda or
    /// against a local AWS endpoint).
    pub allow_loopback: bool,
}

/// Whether order events carry their codes (`ORDER_EVENT_CODES`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventCodes {
    /// The codes are in the event (unless it would pass SNS's size limit).
    #[default]
    Included,
    /// Only their count (`codesIncluded: false`): for stacks whose topic
    /// reaches email or third parties; the codes are read with
    /// `GET /orders/{orderId}`.
    Omitted,
}

/// Names of the AWS resources created by `template.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub table_name: String,
    pub poll_queue_url: String,
    pub order_events_topic_arn: String,
    pub ops_alerts_topic_arn: String,
    /// The KMS key sealing codes at rest (`None`: codes are stored as
    /// text, which only a local run allows, or the function never reads a
    /// code).
    pub codes_key: Option<String>,
}

/// How to reach FoxReload.
#[derive(Clone, Debug)]
pub struct FoxReloadSettings {
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub api_key: ApiKeySource,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// The stack's FoxReload budget in requests per second (`None`: off).
    pub max_rps: Option<u32>,
    pub auto_pay: bool,
    pub mock_orders: bool,
    pub currency: Option<String>,
    pub language: Option<String>,
}

impl FoxReloadSettings {
    /// Settings for a FoxReload (or simulator) at `base_url` with a plain key
    /// and the default timeouts, and no budget: what tests of the client
    /// alone use (the local stack's functions read the template's
    /// settings, the budget among them).
    pub fn local(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: ApiKeySource::Plain(ApiKey::new(api_key)),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            max_rps: None,
            auto_pay: true,
            mock_orders: false,
            currency: None,
            language: None,
        }
    }
}

/// Learned polling's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearningSettings {
    pub enabled: bool,
    pub target_lag: Duration,
    pub min_observations: u64,
    pub plan_cache: Duration,
}

impl Settings {
    /// Learned polling over this stack's schedule.
    pub fn learning(&self) -> crate::domain::learning::Learning {
        let mut learning = crate::domain::learning::Learning::new(
            &self.schedule,
            self.learning.target_lag,
            self.learning.min_observations,
        );
        learning.enabled = self.learning.enabled;
        learning
    }
}

/// Stall detection figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallSettings {
    pub after: Duration,
    pub realert: Duration,
}

/// Where the FoxReload API key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiKeySource {
    /// A Secrets Manager secret (its ARN); read once per container.
    SecretArn(String),
    /// The key itself: only outside Lambda, or against a local endpoint.
    Plain(ApiKey),
    /// None: the function never calls FoxReload (scan-stalled), and its role
    /// may not read the key.
    NotGiven,
}

/// Whether a function calls FoxReload, and so needs its API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoxReloadAccess {
    /// create-order and poll-order: they call FoxReload and handle codes.
    Needed,
    /// scan-stalled: neither FoxReload nor a code.
    NotNeeded,
    /// deliver-webhook: no FoxReload, but it opens codes to deliver them
    /// and reads the webhook settings.
    Webhooks,
}

/// What the orders API asks of its callers (create-order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// The JWT claim that names the caller, with the issuer (`sub`).
    pub principal_claim: String,
    /// A POST without an `Idempotency-Key` is refused (400).
    pub require_idempotency_key: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            principal_claim: DEFAULT_PRINCIPAL_CLAIM.to_owned(),
            require_idempotency_key: false,
        }
    }
}

/// The JWT claim naming the caller unless `JWT_PRINCIPAL_CLAIM` says another.
pub const DEFAULT_PRINCIPAL_CLAIM: &str = "sub";

/// The FoxReload API key. Its `Debug` and `Display` never show it, so it
/// cannot leak into a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key, for the one place that sends it: the `X-API-Key` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One thing wrong with the settings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingProblem {
    #[error("{name} is not set")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Every problem found while reading the settings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("foxrelay cannot start, its settings are wrong: {}", list(.problems))]
pub struct SettingsError {
    pub problems: Vec<SettingProblem>,
}

impl SettingsError {
    /// The names of the settings at fault.
    pub fn names(&self) -> Vec<&'static str> {
        self.problems
            .iter()
            .map(|p| match p {
                SettingProblem::Missing { name } | SettingProblem::Invalid { name, .. } => *name,
            })
            .collect()
    }
}

fn list(problems: &[SettingProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env(access: FoxReloadAccess) -> Result<Self, SettingsError> {
        Self::from_lookup_for(|name| std::env::var(name).ok(), access)
    }

    /// Reads the settings through `lookup` (the environment, or a map in
    /// tests), for a function that calls FoxReload.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        Self::from_lookup_for(lookup, FoxReloadAccess::Needed)
    }

    /// Reads the settings through `lookup`; the API key is required only
    /// when `access` says FoxReload is called.
    pub fn from_lookup_for(
        lookup: impl Fn(&str) -> Option<String>,
        access: FoxReloadAccess,
    ) -> Result<Self, SettingsError> {
        let mut reader = Reader {
            lookup: &lookup,
            problems: Vec::new(),
            access,
        };
        let resources = Resources {
            table_name: reader.required(names::TABLE_NAME),
            poll_queue_url: reader.required_url(names::POLL_QUEUE_URL),
            order_events_topic_arn: reader.required_arn(names::ORDER_EVENTS_TOPIC_ARN, "sns"),
            ops_alerts_topic_arn: reader.required_arn(names::OPS_ALERTS_TOPIC_ARN, "sns"),
            codes_key: reader.codes_key(),
        };
        let foxreload = reader.foxreload();
        let stall = StallSettings {
            after: reader.seconds(names::STALL_AFTER_SECS, 0),
            realert: reader.seconds(names::STALL_REALERT_SECS, 0),
        };
        let schedule = reader.schedule(stall.after);
        let learning = LearningSettings {
            enabled: reader.flag(names::POLL_LEARNING, true),
            target_lag: reader.seconds(names::POLL_TARGET_P95_LAG_SECS, 0),
            min_observations: reader.number(names::POLL_LEARN_MIN_OBSERVATIONS, 0),
            plan_cache: reader.seconds(names::POLL_PLAN_CACHE_SECS, 0),
        };
        let metrics_namespace = reader.metrics_namespace();
        let api = reader.api();
        let event_codes = match reader.one_of(names::ORDER_EVENT_CODES, &["included", "omitted"]) {
            Some(value) if value == "omitted" => EventCodes::Omitted,
            _ => EventCodes::Included,
        };
        let read_codes_in_clear = reader.flag(names::READ_CODES_IN_CLEAR, false);
        let webhooks = reader.webhooks();
        if reader.problems.is_empty() {
            Ok(Settings {
                resources,
                foxreload,
                stall,
                schedule,
                learning,
                metrics_namespace,
                api,
                event_codes,
                read_codes_in_clear,
                webhooks,
            })
        } else {
            Err(SettingsError {
                problems: reader.problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn minimal() -> HashMap<&'static str, String> {
        HashMap::from([
            (names::TABLE_NAME, "orders".to_owned()),
            (
                names::POLL_QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/123456789012/poll".to_owned(),
            ),
            (
                names::ORDER_EVENTS_TOPIC_ARN,
                "arn:aws:sns:us-east-1:123456789012:order-events".to_owned(),
            ),
            (
                names::OPS_ALERTS_TOPIC_ARN,
                "arn:aws:sns:us-east-1:123456789012:ops-alerts".to_owned(),
            ),
            (
                names::FOXRELOAD_API_KEY_SECRET_ARN,
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:foxreload-AbCdEf".to_owned(),
            ),
            (
                names::CODES_KMS_KEY_ID,
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                    .to_owned(),
            ),
        ])
    }

    fn load(env: &HashMap<&'static str, String>) -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn minimal_settings_take_documented_defaults() {
        let s = load(&minimal()).expect("valid");
        assert_eq!(s.foxreload.base_url, DEFAULT_FOXRELOAD_BASE_URL);
        assert_eq!(s.foxreload.connect_timeout, Duration::from_millis(2_000));
        assert_eq!(s.foxreload.request_timeout, Duration::from_millis(8_000));
        assert!(s.foxreload.auto_pay);
        assert!(!s.foxreload.mock_orders);
        assert_eq!(s.stall.after, Duration::from_secs(600));
        assert_eq!(s.stall.realert, Duration::from_secs(3_600));
        assert_eq!(s.schedule, Schedule::default());
        assert!(matches!(s.foxreload.api_key, ApiKeySource::SecretArn(_)));
        assert_eq!(s.metrics_namespace, DEFAULT_METRICS_NAMESPACE);
    }

    #[test]
    fn a_schedule_preset_gives_the_defaults_each_figure_overrides() {
        let mut env = minimal();
        env.insert(names::POLL_SCHEDULE, "guide".into());
        assert_eq!(load(&env).unwrap().schedule, Schedule::guide());
        env.insert(names::POLL_STEADY_CAP_SECS, "20".into());
        let s = load(&env).unwrap().schedule;
        assert_eq!(s.steady_cap, Duration::from_secs(20));
        assert_eq!(s.growth, 1.5);
        env.insert(names::POLL_SCHEDULE, "hourly".into());
        assert_eq!(load(&env).unwrap_err().names(), vec![names::POLL_SCHEDULE]);
    }

    #[test]
    fn a_metrics_namespace_cloudwatch_would_refuse_is_named() {
        let mut env = minimal();
        env.insert(names::METRICS_NAMESPACE, "foxrelay:prod".into());
        assert_eq!(
            load(&env).unwrap_err().names(),
            vec![names::METRICS_NAMESPACE]
        );
        env.insert(names::METRICS_NAMESPACE, "foxrelay/prod".into());
        assert_eq!(load(&env).unwrap().metrics_namespace, "foxrelay/prod");
    }

    #[test]
    fn every_missing_required_setting_is_named() {
        let err = load(&HashMap::new()).unwrap_err();
        assert_eq!(
            err.names(),
            vec![
                names::TABLE_NAME,
                names::POLL_QUEUE_URL,
                names::ORDER_EVENTS_TOPIC_ARN,
                names::OPS_ALERTS_TOPIC_ARN,
                names::FOXRELOAD_API_KEY_SECRET_ARN,
            ]
        );
        assert!(err.to_string().contains("TABLE_NAME is not set"));
    }

    #[test]
    fn malformed_settings_are_named_with_the_reason() {
        let mut env = minimal();
        env.insert(names::FOXRELOAD_AUTO_PAY, "maybe".into());
        env.insert(names::FOXRELOAD_REQUEST_TIMEOUT_MS, "fast".into());
        env.insert(names::ORDER_EVENTS_TOPIC_ARN, "order-events".into());
        env.insert(names::FOXRELOAD_CURRENCY, "eur".into());
        let err = load(&env).unwrap_err();
        assert_eq!(
            err.names(),
            vec![
                names::ORDER_EVENTS_TOPIC_ARN,
                names::FOXRELOAD_REQUEST_TIMEOUT_MS,
                names::FOXRELOAD_AUTO_PAY,
                names::FOXRELOAD_CURRENCY,
            ]
        );
        assert!(err.to_string().contains("expected true or false"));
    }

    #[test]
    fn the_longest_request_timeout_leaves_a_poll_message_room_for_a_post_and_a_list() {
        let timeout = Duration::from_millis(range(names::FOXRELOAD_REQUEST_TIMEOUT_MS).max);
        // A POST, the margin before its window may be read, then a list call.
        let worst = timeout + RECONCILE_MARGIN + (timeout + CALL_SLACK);
        assert!(worst <= POLL_MESSAGE_BUDGET, "{worst:?}");
        let mut env = minimal();
        env.insert(
            names::FOXRELOAD_REQUEST_TIMEOUT_MS,
            (timeout.as_millis() + 1).to_string(),
        );
        assert_eq!(
            load(&env).unwrap_err().names(),
            vec![names::FOXRELOAD_REQUEST_TIMEOUT_MS]
        );
        for r in RANGES {
            assert!(r.min <= r.max && r.default.is_none_or(|d| (r.min..=r.max).contains(&d)));
        }
    }

    #[test]
    fn plain_http_base_url_is_refused_unless_loopback() {
        let mut env = minimal();
        env.insert(names::FOXRELOAD_BASE_URL, "http://api.example.com".into());
        assert_eq!(
            load(&env).unwrap_err().names(),
            vec![names::FOXRELOAD_BASE_URL]
        );
        env.insert(names::FOXRELOAD_BASE_URL, "http://127.0.0.1:8090/".into());
        assert_eq!(
            load(&env).unwrap().foxreload.base_url,
            "http://127.0.0.1:8090"
        );
    }

    #[test]
    fn plain_api_key_is_refused_inside_lambda_but_allowed_locally() {
        let mut env = minimal();
        env.remove(names::FOXRELOAD_API_KEY_SECRET_ARN);
        env.insert(names::FOXRELOAD_API_KEY, "secret-key-value".into());
        let local = load(&env).unwrap();
        assert_eq!(
            local.foxreload.api_key,
            ApiKeySource::Plain(ApiKey::new("secret-key-value"))
        );

        env.insert(names::AWS_LAMBDA_FUNCTION_NAME, "poll-order".into());
        let err = load(&env).unwrap_err();
        assert_eq!(err.names(), vec![names::FOXRELOAD_API_KEY]);
        assert!(!err.to_string().contains("secret-key-value"));

        env.insert(names::AWS_ENDPOINT_URL, "http://127.0.0.1:5000".into());
        assert!(load(&env).is_ok(), "a local endpoint allows a plain key");
    }

    #[test]
    fn inside_lambda_a_function_handling_codes_needs_a_key_to_seal_them() {
        let mut env = minimal();
        env.insert(names::AWS_LAMBDA_FUNCTION_NAME, "poll-order".into());
        assert!(load(&env).unwrap().resources.codes_key.is_some());
        env.remove(names::CODES_KMS_KEY_ID);
        let err = load(&env).unwrap_err();
        assert_eq!(err.names(), vec![names::CODES_KMS_KEY_ID]);
        assert!(err.to_string().contains("stored in clear"), "{err}");
        // scan-stalled never reads a code: it needs none.
        let scan =
            Settings::from_lookup_for(|name| env.get(name).cloned(), FoxReloadAccess::NotNeeded)
                .unwrap();
        assert_eq!(scan.resources.codes_key, None);
        // Locally (no Lambda) codes may be stored in clear.
        env.remove(names::AWS_LAMBDA_FUNCTION_NAME);
        assert_eq!(load(&env).unwrap().resources.codes_key, None);
    }

    #[test]
    fn a_codes_key_is_a_kms_key_arn_id_or_alias() {
        for good in [
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:alias/foxrelay/prod",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/foxrelay/prod",
        ] {
            let mut env = minimal();
            env.insert(names::CODES_KMS_KEY_ID, good.into());
            assert_eq!(
                load(&env).unwrap().resources.codes_key.as_deref(),
                Some(good)
            );
        }
        for bad in [
            "arn:aws:sns:us-east-1:123456789012:topic",
            "alias/",
            "a key",
            "key/1234",
        ] {
            let mut env = minimal();
            env.insert(names::CODES_KMS_KEY_ID, bad.into());
            assert_eq!(
                load(&env).unwrap_err().names(),
                vec![names::CODES_KMS_KEY_ID],
                "{bad}"
            );
        }
    }

    #[test]
    fn inside_lambda_webhooks_never_reach_loopback_even_against_a_local_aws_endpoint() {
        let mut env = minimal();
        for (name, value) in [
            (
                names::WEBHOOK_QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/123456789012/hooks",
            ),
            (
                names::WEBHOOK_DEAD_LETTER_QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/123456789012/hooks-dlq",
            ),
            (names::WEBHOOK_SECRETS_PREFIX, "prod/webhooks/"),
            (
                names::WEBHOOK_ENDPOINTS,
                r#"[{"id": "x", "url": "http://127.0.0.1:9001/2018-06-01/runtime"}]"#,
            ),
        ] {
            env.insert(name, value.to_owned());
        }
        let read = |env: &HashMap<&'static str, String>| {
            Settings::from_lookup_for(|n| env.get(n).cloned(), FoxReloadAccess::Webhooks)
        };
        let local = read(&env).unwrap();
        assert!(local.webhooks.allow_loopback);
        assert_eq!(local.webhooks.endpoints.len(), 1);
        assert_eq!(
            local.webhooks.retries,
            crate::domain::webhook::RetrySchedule::default()
        );
        assert_eq!(local.webhooks.timeout, Duration::from_secs(10));
        env.insert(names::AWS_LAMBDA_FUNCTION_NAME, "deliver-webhook".into());
        env.insert(names::AWS_ENDPOINT_URL, "http://127.0.0.1:5000".into());
        assert_eq!(
            read(&env).unwrap_err().names(),
            vec![names::WEBHOOK_ENDPOINTS]
        );
        env.insert(
            names::WEBHOOK_ENDPOINTS,
            r#"[{"id": "x", "url": "https://hooks.example.com/in"}]"#.into(),
        );
        assert!(!read(&env).unwrap().webhooks.allow_loopback);
        // Only deliver-webhook reads them.
        assert!(load(&env).unwrap().webhooks.endpoints.is_empty());
        env.insert(names::WEBHOOK_RETRY_SCHEDULE_SECS, "5,0".into());
        env.remove(names::WEBHOOK_QUEUE_URL);
        assert_eq!(
            read(&env).unwrap_err().names(),
            vec![names::WEBHOOK_RETRY_SCHEDULE_SECS, names::WEBHOOK_QUEUE_URL]
        );
    }

    #[test]
    fn api_key_never_shows_in_debug_or_display() {
        let key = ApiKey::new("k-123456");
        let settings = FoxReloadSettings::local("http://127.0.0.1:1", "k-123456");
        assert!(!format!("{key:?} {key} {settings:?}").contains("k-123456"));
        assert_eq!(key.expose(), "k-123456");
    }
}
