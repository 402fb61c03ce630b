//! Reading the environment: every setting parsed and checked against its
//! range, every problem collected so one deploy fixes them all.

use super::*;

pub(super) struct Reader<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(super) problems: Vec<SettingProblem>,
    pub(super) access: FoxReloadAccess,
}

impl Reader<'_> {
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn invalid(&mut self, name: &'static str, reason: impl Into<String>) {
        self.problems.push(SettingProblem::Invalid {
            name,
            reason: reason.into(),
        });
    }

    pub(super) fn required(&mut self, name: &'static str) -> String {
        self.get(name).unwrap_or_else(|| {
            self.problems.push(SettingProblem::Missing { name });
            String::new()
        })
    }

    pub(super) fn required_url(&mut self, name: &'static str) -> String {
        let value = self.required(name);
        if !(value.is_empty() || value.starts_with("https://") || value.starts_with("http://")) {
            self.invalid(name, "expected an http(s) URL");
        }
        value
    }

    pub(super) fn required_arn(&mut self, name: &'static str, service: &str) -> String {
        let value = self.required(name);
        if !value.is_empty() && !is_arn_of(&value, service) {
            self.invalid(
                name,
                format!("expected an {service} ARN (arn:aws:{service}:…)"),
            );
        }
        value
    }

    pub(super) fn flag(&mut self, name: &'static str, default: bool) -> bool {
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
    pub(super) fn number(&mut self, name: &'static str, default: u64) -> u64 {
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

    pub(super) fn seconds(&mut self, name: &'static str, default: u64) -> Duration {
        Duration::from_secs(self.number(name, default))
    }

    pub(super) fn millis(&mut self, name: &'static str) -> Duration {
        Duration::from_millis(self.number(name, 0))
    }

    pub(super) fn one_of(&mut self, name: &'static str, allowed: &[&str]) -> Option<String> {
        let value = self.get(name)?.to_ascii_lowercase();
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            self.invalid(name, format!("expected one of {}", allowed.join(", ")));
            None
        }
    }

    pub(super) fn foxreload(&mut self) -> FoxReloadSettings {
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
        let max_rps = self.number(names::FOXRELOAD_MAX_RPS, 50);
        FoxReloadSettings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            connect_timeout,
            request_timeout,
            max_rps: u32::try_from(max_rps).ok().filter(|rps| *rps > 0),
            auto_pay: self.flag(names::FOXRELOAD_AUTO_PAY, true),
            mock_orders: self.flag(names::FOXRELOAD_MOCK_ORDERS, false),
            currency: self.one_of(names::FOXRELOAD_CURRENCY, &["usd", "rub"]),
            language: self.one_of(names::FOXRELOAD_LANGUAGE, &["en", "ru"]),
        }
    }

    pub(super) fn schedule(&mut self, stall_after: Duration) -> Schedule {
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
    pub(super) fn metrics_namespace(&mut self) -> String {
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

    pub(super) fn api(&mut self) -> ApiSettings {
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

    /// The key sealing codes. A function that calls FoxReload handles codes
    /// (create-order reads them, poll-order stores them): inside Lambda it
    /// must have one, so no deployed stack stores a code in clear.
    pub(super) fn codes_key(&mut self) -> Option<String> {
        let key = self.get(names::CODES_KMS_KEY_ID);
        let in_lambda = self.get(names::AWS_LAMBDA_FUNCTION_NAME).is_some();
        let local_endpoint = self.get(names::AWS_ENDPOINT_URL).is_some();
        match &key {
            Some(key) if !is_kms_key_id(key) => self.invalid(
                names::CODES_KMS_KEY_ID,
                "expected a KMS key ARN, key id, alias ARN or alias/NAME",
            ),
            None if self.access != FoxReloadAccess::NotNeeded && in_lambda && !local_endpoint => {
                self.invalid(
                    names::CODES_KMS_KEY_ID,
                    "codes would be stored in clear: inside AWS Lambda a KMS key must seal them",
                )
            }
            _ => {}
        }
        key
    }

    /// A deployed stack's endpoints are HTTPS to public addresses; a
    /// local run (outside Lambda) may reach loopback over plain HTTP.
    /// Inside Lambda never, whatever else is set: loopback there is the
    /// Lambda Runtime API.
    fn is_local(&self) -> bool {
        self.get(names::AWS_LAMBDA_FUNCTION_NAME).is_none()
    }

    /// deliver-webhook's settings; the others read none.
    pub(super) fn webhooks(&mut self) -> WebhookSettings {
        use crate::domain::webhook::{RetrySchedule, Schemes, parse_endpoints};
        if self.access != FoxReloadAccess::Webhooks {
            return WebhookSettings::default();
        }
        let allow_loopback = self.is_local();
        let schemes = if allow_loopback {
            Schemes::LoopbackHttp
        } else {
            Schemes::HttpsOnly
        };
        let endpoints = match parse_endpoints(
            &self.get(names::WEBHOOK_ENDPOINTS).unwrap_or_default(),
            schemes,
        ) {
            Ok(endpoints) => endpoints,
            Err(problems) => {
                self.invalid(names::WEBHOOK_ENDPOINTS, problems.join("; "));
                Vec::new()
            }
        };
        let retries = match self.get(names::WEBHOOK_RETRY_SCHEDULE_SECS) {
            None => RetrySchedule::default(),
            Some(text) => RetrySchedule::parse(&text).unwrap_or_else(|why| {
                self.invalid(names::WEBHOOK_RETRY_SCHEDULE_SECS, why);
                RetrySchedule::default()
            }),
        };
        WebhookSettings {
            endpoints,
            queue_url: self.required_url(names::WEBHOOK_QUEUE_URL),
            dead_letter_queue_url: self.required_url(names::WEBHOOK_DEAD_LETTER_QUEUE_URL),
            secrets_prefix: self.required(names::WEBHOOK_SECRETS_PREFIX),
            timeout: self.millis(names::WEBHOOK_TIMEOUT_MS),
            retries,
            allow_loopback,
        }
    }

    pub(super) fn api_key(&mut self) -> ApiKeySource {
        if self.access != FoxReloadAccess::Needed {
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

fn is_kms_key_id(value: &str) -> bool {
    if value.starts_with("arn:") {
        return is_arn_of(value, "kms");
    }
    let plain = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c))
    };
    match value.strip_prefix("alias/") {
        Some(name) => plain(name),
        None => plain(value) && !value.contains('/'),
    }
}

fn is_arn_of(value: &str, service: &str) -> bool {
    let mut parts = value.splitn(6, ':');
    parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some(service)
        && parts.count() == 3
}
