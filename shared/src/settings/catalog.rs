//! What each setting means, for the settings table in
//! `docs/configuration.md`: rendered from here and from [`RANGES`], so the
//! documented ranges and defaults are the ones the code reads with (a test
//! holds the file to [`settings_table`]).

use super::{FoxReloadAccess, RANGES, Range, Settings, names};
use crate::domain::schedule::Preset;

/// One documented setting.
#[derive(Clone, Copy, Debug)]
pub struct Documented {
    pub name: &'static str,
    /// The template Parameter that sets it, if one does.
    pub parameter: Option<&'static str>,
    /// The default, for a setting without a [`Range`].
    pub default: &'static str,
    /// What is allowed, for a setting without a [`Range`] (a ranged one
    /// shows its range, then this, when given).
    pub allowed: &'static str,
    pub meaning: &'static str,
}

const fn doc(
    name: &'static str,
    parameter: Option<&'static str>,
    default: &'static str,
    allowed: &'static str,
    meaning: &'static str,
) -> Documented {
    Documented {
        name,
        parameter,
        default,
        allowed,
        meaning,
    }
}

/// Every setting a function reads, in the order of the table.
pub const CATALOG: &[Documented] = &[
    doc(
        names::TABLE_NAME,
        None,
        "(set by the template)",
        "",
        "DynamoDB table of orders, codes and idempotency records",
    ),
    doc(
        names::POLL_QUEUE_URL,
        None,
        "(set by the template)",
        "",
        "SQS queue carrying poll messages",
    ),
    doc(
        names::ORDER_EVENTS_TOPIC_ARN,
        None,
        "(set by the template)",
        "",
        "SNS topic order events are published to",
    ),
    doc(
        names::OPS_ALERTS_TOPIC_ARN,
        None,
        "(set by the template)",
        "",
        "SNS topic operations alerts are published to",
    ),
    doc(
        names::CODES_KMS_KEY_ID,
        None,
        "(set by the template: the stack's key)",
        "a KMS key ARN, key id, alias ARN or `alias/NAME`",
        "KMS key whose data keys seal codes before they are stored; create-order and poll-order only (scan-stalled may not open a code). Required inside Lambda; unset locally, codes are stored in clear",
    ),
    doc(
        names::READ_CODES_IN_CLEAR,
        Some("ReadCodesInClear"),
        "false",
        "true, false",
        "create-order and poll-order: read codes a version before sealing stored in clear; false refuses one as unreadable (nobody with write access to the table slips a code in). true only while upgrading, until `foxrelay-local reseal` has sealed them",
    ),
    doc(
        names::ORDER_EVENT_CODES,
        Some("OrderEventCodes"),
        "included",
        "included, omitted",
        "poll-order: whether order events carry their codes, or only `codeCount` with `codesIncluded: false` (for a topic that reaches email or third parties; the codes are read with `GET /orders/{orderId}`)",
    ),
    doc(
        names::WEBHOOK_ENDPOINTS,
        Some("WebhookEndpoints"),
        "[] (none)",
        "a JSON list of at most 20 endpoints",
        "deliver-webhook: where order events are POSTed, each `{\"id\", \"url\", \"types\", \"placedBy\", \"codes\"}`: an id (a-z, 0-9, -) naming its signing secret, an https URL to a public address, the event types and callers it receives (all when omitted), whether its events carry codes (default true)",
    ),
    doc(
        names::WEBHOOK_QUEUE_URL,
        None,
        "(set by the template)",
        "",
        "deliver-webhook: SQS queue of order events and of deliveries to try again",
    ),
    doc(
        names::WEBHOOK_DEAD_LETTER_QUEUE_URL,
        None,
        "(set by the template)",
        "",
        "deliver-webhook: where a delivery out of tries is kept (its alarm tells operations)",
    ),
    doc(
        names::WEBHOOK_SECRETS_PREFIX,
        None,
        "(set by the template: `{stack}/webhooks/`)",
        "",
        "deliver-webhook: endpoint `id`'s signing secret is the Secrets Manager secret named this prefix and `id`; its string is one `whsec_…` secret, or two separated by a space while rotating",
    ),
    doc(
        names::WEBHOOK_TIMEOUT_MS,
        Some("WebhookTimeoutMs"),
        "",
        "",
        "deliver-webhook: milliseconds an endpoint has to answer a delivery with a 2xx",
    ),
    doc(
        names::WEBHOOK_RETRY_SCHEDULE_SECS,
        Some("WebhookRetryScheduleSecs"),
        "5,300,1800,7200,18000,36000,36000",
        "at most 20 whole numbers of seconds, 1–86400 each",
        "deliver-webhook: the delays between tries of a failed delivery (the default is Standard Webhooks': 8 tries over about 27.6 hours); out of tries, it goes to the dead-letter queue",
    ),
    doc(
        names::FOXRELOAD_API_KEY_SECRET_ARN,
        Some("FoxReloadApiKeySecretArn"),
        "the stack's own secret",
        "a full secret ARN",
        "Secrets Manager secret holding the FoxReload API key; create-order and poll-order only (scan-stalled never calls FoxReload)",
    ),
    doc(
        names::FOXRELOAD_API_KEY,
        None,
        "—",
        "local runs only",
        "the key itself; refused inside Lambda",
    ),
    doc(
        names::FOXRELOAD_BASE_URL,
        Some("FoxReloadBaseUrl"),
        super::DEFAULT_FOXRELOAD_BASE_URL,
        "https; plain http for loopback only",
        "FoxReload's API",
    ),
    doc(
        names::FOXRELOAD_CONNECT_TIMEOUT_MS,
        Some("FoxReloadConnectTimeoutMs"),
        "",
        "",
        "milliseconds to open a connection to FoxReload",
    ),
    doc(
        names::FOXRELOAD_REQUEST_TIMEOUT_MS,
        Some("FoxReloadRequestTimeoutMs"),
        "",
        "not below the connect timeout",
        "milliseconds for a whole FoxReload request: a POST, the reconciliation margin and a list call must fit poll-order's 20 s message budget; also how long a POST counts as in flight when reconciling",
    ),
    doc(
        names::FOXRELOAD_MAX_RPS,
        Some("FoxReloadMaxRps"),
        "",
        "0: no budget",
        "the most requests per second the whole stack sends FoxReload, shared by every container of every function, creates first; a 429 lowers it until FoxReload stops refusing, and it creeps back up while the stack sends all it allows. Each FoxReload call costs one conditional DynamoDB write (see docs/design.md); 0 turns the budget off",
    ),
    doc(
        names::FOXRELOAD_AUTO_PAY,
        Some("AutoPay"),
        "true",
        "true, false",
        "pay each order from the balance right after creating it",
    ),
    doc(
        names::FOXRELOAD_MOCK_ORDERS,
        Some("MockOrders"),
        "false",
        "true, false",
        "ask FoxReload for mock orders (no money moves)",
    ),
    doc(
        names::FOXRELOAD_CURRENCY,
        Some("FoxReloadCurrency"),
        "none",
        "usd, rub",
        "the `X-Currency` header",
    ),
    doc(
        names::FOXRELOAD_LANGUAGE,
        Some("FoxReloadLanguage"),
        "none",
        "en, ru",
        "the `X-Language` header",
    ),
    doc(
        names::STALL_AFTER_SECS,
        Some("StallAfterSecs"),
        "",
        "",
        "an order not ended after this many seconds is stalled: alerted, and polled at the slow pace",
    ),
    doc(
        names::STALL_REALERT_SECS,
        Some("StallRealertSecs"),
        "",
        "",
        "a stalled order is alerted again at most this often",
    ),
    doc(
        names::POLL_HORIZON_SECS,
        Some("PollHorizonSecs"),
        "",
        "above STALL_AFTER_SECS",
        "past this age an order never paid is abandoned; a paid one is polled on every POLL_SLOW_CAP_SECS",
    ),
    doc(
        names::POLL_SCHEDULE,
        Some("PollSchedule"),
        "foxrelay",
        "foxrelay, guide, practical",
        "the named schedule the POLL_* figures start from; each figure set overrides it",
    ),
    doc(
        names::POLL_FAST_INTERVAL_SECS,
        Some("PollFastIntervalSecs"),
        "",
        "",
        "poll delay while the order is young (the first poll too)",
    ),
    doc(
        names::POLL_FAST_UNTIL_SECS,
        Some("PollFastUntilSecs"),
        "",
        "",
        "age until which the fast interval applies",
    ),
    doc(
        names::POLL_STEADY_START_SECS,
        Some("PollSteadyStartSecs"),
        "",
        "",
        "first delay after the fast phase",
    ),
    doc(
        names::POLL_GROWTH_PERCENT,
        Some("PollGrowthPercent"),
        "",
        "",
        "each later delay is this percent of the previous one",
    ),
    doc(
        names::POLL_STEADY_CAP_SECS,
        Some("PollSteadyCapSecs"),
        "",
        "not below the steady start",
        "longest delay until the order is stalled",
    ),
    doc(
        names::POLL_SLOW_CAP_SECS,
        Some("PollSlowCapSecs"),
        "",
        "",
        "longest delay once stalled (SQS allows 900 at most)",
    ),
    doc(
        names::POLL_JITTER_PERCENT,
        Some("PollJitterPercent"),
        "",
        "",
        "± jitter on every delay after the first, in percent",
    ),
    doc(
        names::POLL_LEARNING,
        Some("PollLearning"),
        "true",
        "true, false",
        "plan each order's polls from how its products' orders ended (docs/design.md#learned-polling); false: the schedule above for every order",
    ),
    doc(
        names::POLL_TARGET_P95_LAG_SECS,
        Some("PollTargetP95LagSecs"),
        "",
        "",
        "learned plans keep 95 % of orders notified within this many seconds of their end at FoxReload, with the fewest reads",
    ),
    doc(
        names::POLL_LEARN_MIN_OBSERVATIONS,
        Some("PollLearnMinObservations"),
        "",
        "",
        "ended orders a product needs before its orders get a learned plan (after a change its summary detects, at most 8 since the change)",
    ),
    doc(
        names::POLL_PLAN_CACHE_SECS,
        Some("PollPlanCacheSecs"),
        "",
        "",
        "create-order keeps a product's plan this long before reading its summary again",
    ),
    doc(
        names::METRICS_NAMESPACE,
        Some("MetricsNamespace"),
        super::DEFAULT_METRICS_NAMESPACE,
        "1–255 characters, no colon",
        "CloudWatch namespace of the metrics",
    ),
    doc(
        names::JWT_PRINCIPAL_CLAIM,
        Some("JwtPrincipalClaim"),
        "sub",
        "a claim name",
        "create-order, with JWT auth: the claim that names the caller (with the issuer)",
    ),
    doc(
        names::REQUIRE_IDEMPOTENCY_KEY,
        Some("RequireIdempotencyKey"),
        "false",
        "true, false",
        "create-order: refuse a POST without `Idempotency-Key` (400 `idempotency_key_required`)",
    ),
    doc(
        "RUST_LOG",
        Some("RustLog"),
        "info",
        "a tracing filter",
        "log filter; logs are JSON lines inside Lambda",
    ),
];

/// The settings table as `docs/configuration.md` holds it.
pub fn settings_table() -> String {
    let mut table = String::from(
        "| variable | Parameter | default | allowed | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for setting in CATALOG {
        let ranged = RANGES.iter().find(|r| r.name == setting.name);
        let (default, allowed) = match ranged {
            Some(range) => (
                ranged_default(range),
                ranged_allowed(range, setting.allowed),
            ),
            None => (setting.default.to_owned(), setting.allowed.to_owned()),
        };
        let parameter = setting
            .parameter
            .map_or_else(|| "—".to_owned(), |p| format!("`{p}`"));
        table.push_str(&format!(
            "| `{}` | {parameter} | {default} | {allowed} | {} |\n",
            setting.name, setting.meaning
        ));
    }
    table
}

fn ranged_allowed(range: &Range, more: &str) -> String {
    let span = format!("{}–{}", range.min, range.max);
    if more.is_empty() {
        span
    } else {
        format!("{span}, {more}")
    }
}

/// A fixed default, or each schedule's figure (from the settings as the
/// code reads them with only `POLL_SCHEDULE` set).
fn ranged_default(range: &Range) -> String {
    if let Some(default) = range.default {
        return default.to_string();
    }
    let figures: Vec<String> = Preset::NAMES
        .iter()
        .map(|preset| {
            let figure = schedule_figure(preset, range.name);
            if *preset == Preset::NAMES[0] {
                figure.to_string()
            } else {
                format!("{preset} {figure}")
            }
        })
        .collect();
    format!("{} ({})", figures[0], figures[1..].join(", "))
}

fn schedule_figure(preset: &str, name: &str) -> u64 {
    let settings = Settings::from_lookup_for(
        |n| match n {
            names::POLL_SCHEDULE => Some(preset.to_owned()),
            names::TABLE_NAME => Some("orders".into()),
            names::POLL_QUEUE_URL => {
                Some("https://sqs.us-east-1.amazonaws.com/000000000000/x".into())
            }
            names::ORDER_EVENTS_TOPIC_ARN | names::OPS_ALERTS_TOPIC_ARN => {
                Some("arn:aws:sns:us-east-1:000000000000:x".into())
            }
            _ => None,
        },
        FoxReloadAccess::NotNeeded,
    )
    .unwrap_or_else(|e| panic!("the {preset} schedule's settings read: {e}"));
    let s = &settings.schedule;
    let percent = |f: f64| (f * 100.0).round() as u64;
    match name {
        names::POLL_FAST_INTERVAL_SECS => s.fast_interval.as_secs(),
        names::POLL_FAST_UNTIL_SECS => s.fast_until.as_secs(),
        names::POLL_STEADY_START_SECS => s.steady_start.as_secs(),
        names::POLL_GROWTH_PERCENT => percent(s.growth),
        names::POLL_STEADY_CAP_SECS => s.steady_cap.as_secs(),
        names::POLL_SLOW_CAP_SECS => s.slow_cap.as_secs(),
        names::POLL_HORIZON_SECS => s.horizon.as_secs(),
        names::POLL_JITTER_PERCENT => percent(s.jitter),
        other => panic!("{other} is not a schedule figure"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_read_is_documented_once() {
        let mut read: Vec<&str> = names::DEPLOYED
            .iter()
            .chain(names::SUPPLIER_KEY)
            .chain(names::CODES)
            .chain(names::EVENTS)
            .chain(names::WEBHOOKS)
            .chain(names::API)
            .copied()
            .chain([
                names::FOXRELOAD_API_KEY,
                names::FOXRELOAD_CURRENCY,
                names::FOXRELOAD_LANGUAGE,
            ])
            .collect();
        read.sort_unstable();
        let mut documented: Vec<&str> = CATALOG
            .iter()
            .map(|d| d.name)
            .filter(|n| *n != "RUST_LOG")
            .collect();
        documented.sort_unstable();
        assert_eq!(documented, read);
    }

    #[test]
    fn the_table_shows_the_code_ranges_and_each_schedule_figure() {
        let table = settings_table();
        assert!(table.contains("| `STALL_AFTER_SECS` | `StallAfterSecs` | 600 | 10–86400 |"));
        assert!(table.contains(
            "| `POLL_FAST_INTERVAL_SECS` | `PollFastIntervalSecs` | 10 (guide 5, practical 5) | 1–900 |"
        ));
        assert_eq!(table.lines().count(), CATALOG.len() + 2);
    }
}
