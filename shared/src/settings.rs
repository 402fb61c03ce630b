//! Every setting foxrelay reads, named in one place.
//!
//! Settings come from environment variables (the Lambda convention; the SAM
//! template sets them from its Parameters) and are read once at start-up. A
//! missing or malformed setting stops start-up with a message naming it; all
//! problems are reported together so one deploy fixes them all.

use crate::domain::schedule::{MAX_DELAY, Preset, Schedule};
use std::fmt;
use std::time::Duration;

/// The names of every environment variable foxrelay reads.
pub mod names {
    /// The DynamoDB table holding orders, codes and idempotency records.
    pub const TABLE_NAME: &str = "TABLE_NAME";
    /// URL of the SQS queue carrying poll messages.
    pub const POLL_QUEUE_URL: &str = "POLL_QUEUE_URL";
    /// ARN of the SNS topic order events are published to.
    pub const ORDER_EVENTS_TOPIC_ARN: &str = "ORDER_EVENTS_TOPIC_ARN";
    /// ARN of the SNS topic operations alerts are published to.
    pub const OPS_ALERTS_TOPIC_ARN: &str = "OPS_ALERTS_TOPIC_ARN";
    /// FoxReload's API base URL.
    pub const FOXRELOAD_BASE_URL: &str = "FOXRELOAD_BASE_URL";
    /// ARN of the Secrets Manager secret holding the FoxReload API key.
    pub const FOXRELOAD_API_KEY_SECRET_ARN: &str = "FOXRELOAD_API_KEY_SECRET_ARN";
    /// The FoxReload API key itself: local runs only, refused inside Lambda.
    pub const FOXRELOAD_API_KEY: &str = "FOXRELOAD_API_KEY";
    /// Milliseconds allowed to open a connection to FoxReload.
    pub const FOXRELOAD_CONNECT_TIMEOUT_MS: &str = "FOXRELOAD_CONNECT_TIMEOUT_MS";
    /// Milliseconds allowed for a whole FoxReload request.
    pub const FOXRELOAD_REQUEST_TIMEOUT_MS: &str = "FOXRELOAD_REQUEST_TIMEOUT_MS";
    /// Pay each order from the account balance right after creating it.
    pub const FOXRELOAD_AUTO_PAY: &str = "FOXRELOAD_AUTO_PAY";
    /// Ask FoxReload for mock orders (no money moves).
    pub const FOXRELOAD_MOCK_ORDERS: &str = "FOXRELOAD_MOCK_ORDERS";
    /// Optional `X-Currency` header (`usd` or `rub`).
    pub const FOXRELOAD_CURRENCY: &str = "FOXRELOAD_CURRENCY";
    /// Optional `X-Language` header (`en` or `ru`).
    pub const FOXRELOAD_LANGUAGE: &str = "FOXRELOAD_LANGUAGE";
    /// Seconds without reaching a terminal status before an order is stalled.
    pub const STALL_AFTER_SECS: &str = "STALL_AFTER_SECS";
    /// Seconds before a stalled order is alerted again.
    pub const STALL_REALERT_SECS: &str = "STALL_REALERT_SECS";
    /// Seconds after placement past which an order is abandoned.
    pub const POLL_HORIZON_SECS: &str = "POLL_HORIZON_SECS";
    /// The named schedule the `POLL_*` figures start from: `foxrelay` (the
    /// default), `guide` (FoxReload's guide: 5 s ×1.5 to 30 s) or `practical`
    /// (the guide's text: 5 s for a minute, then 15–30 s).
    pub const POLL_SCHEDULE: &str = "POLL_SCHEDULE";
    /// Poll delay while an order is young, in seconds.
    pub const POLL_FAST_INTERVAL_SECS: &str = "POLL_FAST_INTERVAL_SECS";
    /// Age until which the fast interval applies, in seconds.
    pub const POLL_FAST_UNTIL_SECS: &str = "POLL_FAST_UNTIL_SECS";
    /// First delay after the fast phase, in seconds.
    pub const POLL_STEADY_START_SECS: &str = "POLL_STEADY_START_SECS";
    /// Growth of each delay over the previous one, in percent (150 = ×1.5).
    pub const POLL_GROWTH_PERCENT: &str = "POLL_GROWTH_PERCENT";
    /// Longest delay until the order is stalled, in seconds.
    pub const POLL_STEADY_CAP_SECS: &str = "POLL_STEADY_CAP_SECS";
    /// Longest delay once stalled, in seconds (at most 900).
    pub const POLL_SLOW_CAP_SECS: &str = "POLL_SLOW_CAP_SECS";
    /// Jitter of every delay, in percent (20 = ±20 %).
    pub const POLL_JITTER_PERCENT: &str = "POLL_JITTER_PERCENT";
    /// CloudWatch namespace of the Embedded Metric Format lines.
    pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
    /// create-order: the JWT claim that names the caller (default `sub`).
    pub const JWT_PRINCIPAL_CLAIM: &str = "JWT_PRINCIPAL_CLAIM";
    /// create-order: refuse a POST without an `Idempotency-Key` (default
    /// false).
    pub const REQUIRE_IDEMPOTENCY_KEY: &str = "REQUIRE_IDEMPOTENCY_KEY";
    /// Set by the Lambda service inside a function; its presence means "in AWS".
    pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
    /// Points the AWS SDK at another endpoint (moto, locally).
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

    /// The settings `template.yaml` sets on every function: every name above
    /// but the local-only ones (`FOXRELOAD_API_KEY`, `AWS_ENDPOINT_URL`), the
    /// one Lambda sets itself, the optional request headers, and those of
    /// [`SUPPLIER_KEY`] and [`API`].
    pub const DEPLOYED: &[&str] = &[
        TABLE_NAME,
        POLL_QUEUE_URL,
        ORDER_EVENTS_TOPIC_ARN,
        OPS_ALERTS_TOPIC_ARN,
        FOXRELOAD_BASE_URL,
        FOXRELOAD_CONNECT_TIMEOUT_MS,
        FOXRELOAD_REQUEST_TIMEOUT_MS,
        FOXRELOAD_AUTO_PAY,
        FOXRELOAD_MOCK_ORDERS,
        STALL_AFTER_SECS,
        STALL_REALERT_SECS,
        POLL_HORIZON_SECS,
        POLL_SCHEDULE,
        POLL_FAST_INTERVAL_SECS,
        POLL_FAST_UNTIL_SECS,
        POLL_STEADY_START_SECS,
        POLL_GROWTH_PERCENT,
        POLL_STEADY_CAP_SECS,
        POLL_SLOW_CAP_SECS,
        POLL_JITTER_PERCENT,
        METRICS_NAMESPACE,
    ];

    /// Set only on the functions that call FoxReload (create-order,
    /// poll-order): scan-stalled neither has nor may read the key.
    pub const SUPPLIER_KEY: &[&str] = &[FOXRELOAD_API_KEY_SECRET_ARN];

    /// Set only on create-order: what the orders API asks of callers.
    pub const API: &[&str] = &[JWT_PRINCIPAL_CLAIM, REQUIRE_IDEMPOTENCY_KEY];
}

/// The time poll-order gives one message: well inside the queue's
/// visibility timeout and the function's 30 s timeout.
pub const POLL_MESSAGE_BUDGET: Duration = Duration::from_secs(20);

/// Added to a FoxReload call's timeout before another call is started, and
/// after a POST's timeout before reconciliation may say "nothing there".
pub const CALL_SLACK: Duration = Duration::from_secs(1);
/// See [`crate::domain::reconcile::Margins::margin`].
pub const RECONCILE_MARGIN: Duration = Duration::from_secs(2);

/// The longest FoxReload request timeout: one POST, its window's margin and
/// a list call of the same length must fit in one poll message.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = (POLL_MESSAGE_BUDGET.as_millis() as u64
    - CALL_SLACK.as_millis() as u64
    - RECONCILE_MARGIN.as_millis() as u64)
    / 2
    / 500
    * 500;

/// The range and default of a whole-number setting: the one source of truth
/// the code reads with and the template's Parameters are tested against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub name: &'static str,
    pub min: u64,
    pub max: u64,
    /// `None`: the default comes from the named poll schedule.
    pub default: Option<u64>,
}

/// Every whole-number setting's range.
pub const RANGES: &[Range] = &[
    Range {
        name: names::FOXRELOAD_CONNECT_TIMEOUT_MS,
        min: 100,
        max: 10_000,
        default: Some(DEFAULT_CONNECT_TIMEOUT_MS),
    },
    Range {
        name: names::FOXRELOAD_REQUEST_TIMEOUT_MS,
        min: 500,
        max: MAX_REQUEST_TIMEOUT_MS,
        default: Some(DEFAULT_REQUEST_TIMEOUT_MS),
    },
    Range {
        name: names::STALL_AFTER_SECS,
        min: 10,
        max: 86_400,
        default: Some(600),
    },
    Range {
        name: names::STALL_REALERT_SECS,
        min: 5,
        max: 7 * 86_400,
        default: Some(3_600),
    },
    Range {
        name: names::POLL_FAST_INTERVAL_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_FAST_UNTIL_SECS,
        min: 0,
        max: 86_400,
        default: None,
    },
    Range {
        name: names::POLL_STEADY_START_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_GROWTH_PERCENT,
        min: 100,
        max: 400,
        default: None,
    },
    Range {
        name: names::POLL_STEADY_CAP_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_SLOW_CAP_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_HORIZON_SECS,
        min: 60,
        max: 14 * 86_400,
        default: None,
    },
    Range {
        name: names::POLL_JITTER_PERCENT,
        min: 0,
        max: 50,
        default: None,
    },
];

/// The range of the whole-number setting `name`.
pub fn range(name: &str) -> Range {
    *RANGES
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} has no range"))
}

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
    /// CloudWatch namespace of the metrics foxrelay logs.
    pub metrics_namespace: String,
    /// What the orders API asks of callers.
    pub api: ApiSettings,
}

/// Names of the AWS resources created by `template.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub table_name: String,
    pub poll_queue_url: String,
    pub order_events_topic_arn: String,
    pub ops_alerts_topic_arn: String,
}

/// How to reach FoxReload.
#[derive(Clone, Debug)]
pub struct FoxReloadSettings {
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub api_key: ApiKeySource,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub auto_pay: bool,
    pub mock_orders: bool,
    pub currency: Option<String>,
    pub language: Option<String>,
}

impl FoxReloadSettings {
    /// Settings for a FoxReload (or simulator) at `base_url` with a plain key
    /// and the default timeouts: what the local stack and tests use.
    pub fn local(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: ApiKeySource::Plain(ApiKey::new(api_key)),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            auto_pay: true,
            mock_orders: false,
            currency: None,
            language: None,
        }
    }
}

/// Stall detection figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallSettings {
    pub after: Duration,
    pub realert: Duration,
}

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 8_000;

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
    Needed,
    NotNeeded,
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
        };
        let foxreload = reader.foxreload();
        let stall = StallSettings {
            after: reader.seconds(names::STALL_AFTER_SECS, 0),
            realert: reader.seconds(names::STALL_REALERT_SECS, 0),
        };
        let schedule = reader.schedule(stall.after);
        let metrics_namespace = reader.metrics_namespace();
        let api = reader.api();
        if reader.problems.is_empty() {
            Ok(Settings {
                resources,
                foxreload,
                stall,
                schedule,
                metrics_namespace,
                api,
            })
        } else {
            Err(SettingsError {
                problems: reader.problems,
            })
        }
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<SettingProblem>,
    access: FoxReloadAccess,
}

impl Reader<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn invalid(&mut self, name: &'static str, reason: impl Into<String>) {
        self.problems.push(SettingProblem::Invalid {
            name,
            reason: reason.into(),
        });
    }

    fn required(&mut self, name: &'static str) -> String {
        self.get(name).unwrap_or_else(|| {
            self.problems.push(SettingProblem::Missing { name });
            String::new()
        })
    }

    fn required_url(&mut self, name: &'static str) -> String {
        let value = self.required(name);
        if !(value.is_empty() || value.starts_with("https://") || value.starts_with("http://")) {
            self.invalid(name, "expected an http(s) URL");
        }
        value
    }

    fn required_arn(&mut self, name: &'static str, service: &str) -> String {
        let value = self.required(name);
        if !value.is_empty() && !is_arn_of(&value, service) {
            self.invalid(
                name,
                format!("expected an {service} ARN (arn:aws:{service}:…)"),
            );
        }
        value
    }

    fn flag(&mut self, name: &'static str, default: bool) -> bool {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => false,
            Some(_) => {
                self.invalid(name, "expected true or false");
                default
            }
        }
    }

    /// The whole-number setting `name`, in its [`RANGES`] entry; `default`
    /// when unset (the entry's own default, when it has one).
    fn number(&mut self, name: &'static str, default: u64) -> u64 {
        let range = range(name);
        let default = range.default.unwrap_or(default);
        let Some(raw) = self.get(name) else {
            return default;
        };
        match raw.parse::<u64>() {
            Ok(n) if (range.min..=range.max).contains(&n) => n,
            _ => {
                self.invalid(
                    name,
                    format!(
                        "expected a whole number from {} to {}",
                        range.min, range.max
                    ),
                );
                default
            }
        }
    }

    fn seconds(&mut self, name: &'static str, default: u64) -> Duration {
        Duration::from_secs(self.number(name, default))
    }

    fn millis(&mut self, name: &'static str) -> Duration {
        Duration::from_millis(self.number(name, 0))
    }

    fn one_of(&mut self, name: &'static str, allowed: &[&str]) -> Option<String> {
        let value = self.get(name)?.to_ascii_lowercase();
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.invalid(name, format!("expected one of {}", allowed.join(", ")));
            None
        }
    }

    fn foxreload(&mut self) -> FoxReloadSettings {
        let base_url = self
            .get(names::FOXRELOAD_BASE_URL)
            .unwrap_or_else(|| DEFAULT_FOXRELOAD_BASE_URL.to_owned());
        if let Err(reason) = check_base_url(&base_url) {
            self.invalid(names::FOXRELOAD_BASE_URL, reason);
        }
        let api_key = self.api_key();
        let connect_timeout = self.millis(names::FOXRELOAD_CONNECT_TIMEOUT_MS);
        let request_timeout = self.millis(names::FOXRELOAD_REQUEST_TIMEOUT_MS);
        if request_timeout < connect_timeout {
            self.invalid(
                names::FOXRELOAD_REQUEST_TIMEOUT_MS,
                "must not be shorter than FOXRELOAD_CONNECT_TIMEOUT_MS",
            );
        }
        FoxReloadSettings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            connect_timeout,
            request_timeout,
            auto_pay: self.flag(names::FOXRELOAD_AUTO_PAY, true),
            mock_orders: self.flag(names::FOXRELOAD_MOCK_ORDERS, false),
            currency: self.one_of(names::FOXRELOAD_CURRENCY, &["usd", "rub"]),
            language: self.one_of(names::FOXRELOAD_LANGUAGE, &["en", "ru"]),
        }
    }

    fn schedule(&mut self, stall_after: Duration) -> Schedule {
        let preset = match self.get(names::POLL_SCHEDULE) {
            None => Preset::Foxrelay,
            Some(name) => Preset::parse(&name).unwrap_or_else(|| {
                self.invalid(
                    names::POLL_SCHEDULE,
                    format!("expected one of {}", Preset::NAMES.join(", ")),
                );
                Preset::Foxrelay
            }),
        };
        let base = preset.schedule();
        let secs = |d: Duration| d.as_secs();
        let percent = |f: f64| (f * 100.0).round() as u64;
        let schedule = Schedule {
            fast_interval: self.seconds(names::POLL_FAST_INTERVAL_SECS, secs(base.fast_interval)),
            fast_until: self.seconds(names::POLL_FAST_UNTIL_SECS, secs(base.fast_until)),
            steady_start: self.seconds(names::POLL_STEADY_START_SECS, secs(base.steady_start)),
            growth: self.number(names::POLL_GROWTH_PERCENT, percent(base.growth)) as f64 / 100.0,
            steady_cap: self.seconds(names::POLL_STEADY_CAP_SECS, secs(base.steady_cap)),
            stall_after,
            slow_cap: self.seconds(names::POLL_SLOW_CAP_SECS, secs(base.slow_cap)),
            horizon: self.seconds(names::POLL_HORIZON_SECS, secs(base.horizon)),
            jitter: self.number(names::POLL_JITTER_PERCENT, percent(base.jitter)) as f64 / 100.0,
        };
        if schedule.steady_cap < schedule.steady_start {
            self.invalid(
                names::POLL_STEADY_CAP_SECS,
                "must not be shorter than POLL_STEADY_START_SECS",
            );
        }
        if schedule.horizon <= schedule.stall_after {
            self.invalid(
                names::POLL_HORIZON_SECS,
                "must be longer than STALL_AFTER_SECS",
            );
        }
        schedule
    }

    /// CloudWatch allows 1 to 255 characters, none of them a colon.
    fn metrics_namespace(&mut self) -> String {
        let namespace = self
            .get(names::METRICS_NAMESPACE)
            .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());
        if namespace.len() > 255
            || namespace.contains(':')
            || namespace.chars().any(char::is_control)
        {
            self.invalid(
                names::METRICS_NAMESPACE,
                "must be at most 255 characters, without a colon",
            );
        }
        namespace
    }

    fn api(&mut self) -> ApiSettings {
        let principal_claim = self
            .get(names::JWT_PRINCIPAL_CLAIM)
            .unwrap_or_else(|| DEFAULT_PRINCIPAL_CLAIM.to_owned());
        let well_formed = principal_claim.len() <= 128
            && principal_claim
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b));
        if !well_formed {
            self.invalid(
                names::JWT_PRINCIPAL_CLAIM,
                "expected a claim name: 1 to 128 letters, digits, '_', '-', ':' or '.'",
            );
        }
        ApiSettings {
            principal_claim,
            require_idempotency_key: self.flag(names::REQUIRE_IDEMPOTENCY_KEY, false),
        }
    }

    fn api_key(&mut self) -> ApiKeySource {
        if self.access == FoxReloadAccess::NotNeeded {
            // Never read, whatever is set: the role may not read the secret.
            return ApiKeySource::NotGiven;
        }
        let arn = self.get(names::FOXRELOAD_API_KEY_SECRET_ARN);
        let plain = self.get(names::FOXRELOAD_API_KEY);
        let in_lambda = self.get(names::AWS_LAMBDA_FUNCTION_NAME).is_some();
        let local_endpoint = self.get(names::AWS_ENDPOINT_URL).is_some();
        match (arn, plain) {
            (Some(arn), _) => {
                if !is_arn_of(&arn, "secretsmanager") {
                    self.invalid(
                        names::FOXRELOAD_API_KEY_SECRET_ARN,
                        "expected a Secrets Manager ARN (arn:aws:secretsmanager:…)",
                    );
                }
                ApiKeySource::SecretArn(arn)
            }
            (None, Some(_)) if in_lambda && !local_endpoint => {
                self.invalid(
                    names::FOXRELOAD_API_KEY,
                    "a plain API key is refused inside AWS Lambda; store it in Secrets Manager and set FOXRELOAD_API_KEY_SECRET_ARN",
                );
                ApiKeySource::Plain(ApiKey::new(String::new()))
            }
            (None, Some(key)) => ApiKeySource::Plain(ApiKey::new(key)),
            (None, None) => {
                self.problems.push(SettingProblem::Missing {
                    name: names::FOXRELOAD_API_KEY_SECRET_ARN,
                });
                ApiKeySource::Plain(ApiKey::new(String::new()))
            }
        }
    }
}

/// Production FoxReload is HTTPS only; plain HTTP is allowed for loopback
/// (the simulator, tests).
fn check_base_url(url: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]") {
            return Ok(());
        }
        return Err("plain http is allowed for loopback addresses only; use https".into());
    }
    if url.strip_prefix("https://").is_some_and(|r| !r.is_empty()) {
        Ok(())
    } else {
        Err("expected an https URL".into())
    }
}

fn is_arn_of(value: &str, service: &str) -> bool {
    let mut parts = value.splitn(6, ':');
    parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some(service)
        && parts.count() == 3
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
    fn api_key_never_shows_in_debug_or_display() {
        let key = ApiKey::new("k-123456");
        let settings = FoxReloadSettings::local("http://127.0.0.1:1", "k-123456");
        assert!(!format!("{key:?} {key} {settings:?}").contains("k-123456"));
        assert_eq!(key.expose(), "k-123456");
    }
}
