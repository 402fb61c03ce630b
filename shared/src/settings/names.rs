//! The names of every environment variable foxrelay reads.

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
/// The KMS key (ARN, id or alias) whose data keys seal codes before they
/// are stored; required inside Lambda for the functions that read or
/// write codes.
pub const CODES_KMS_KEY_ID: &str = "CODES_KMS_KEY_ID";
/// Read codes stored in clear by a version before sealing (default
/// false: refused as unreadable).
pub const READ_CODES_IN_CLEAR: &str = "READ_CODES_IN_CLEAR";
/// Whether order events carry their codes (`included`, the default) or
/// only their count (`omitted`): poll-order, which publishes them.
pub const ORDER_EVENT_CODES: &str = "ORDER_EVENT_CODES";
/// deliver-webhook: the endpoints order events are POSTed to (a JSON
/// list; empty: none).
pub const WEBHOOK_ENDPOINTS: &str = "WEBHOOK_ENDPOINTS";
/// deliver-webhook: the SQS queue carrying order events and deliveries to
/// try again.
pub const WEBHOOK_QUEUE_URL: &str = "WEBHOOK_QUEUE_URL";
/// deliver-webhook: where a delivery out of tries is kept.
pub const WEBHOOK_DEAD_LETTER_QUEUE_URL: &str = "WEBHOOK_DEAD_LETTER_QUEUE_URL";
/// deliver-webhook: each endpoint's signing secret is the Secrets Manager
/// secret named this prefix and the endpoint's id.
pub const WEBHOOK_SECRETS_PREFIX: &str = "WEBHOOK_SECRETS_PREFIX";
/// deliver-webhook: milliseconds an endpoint has to answer.
pub const WEBHOOK_TIMEOUT_MS: &str = "WEBHOOK_TIMEOUT_MS";
/// deliver-webhook: seconds between tries of a failed delivery.
pub const WEBHOOK_RETRY_SCHEDULE_SECS: &str = "WEBHOOK_RETRY_SCHEDULE_SECS";
/// The FoxReload API key itself: local runs only, refused inside Lambda.
pub const FOXRELOAD_API_KEY: &str = "FOXRELOAD_API_KEY";
/// Milliseconds allowed to open a connection to FoxReload.
pub const FOXRELOAD_CONNECT_TIMEOUT_MS: &str = "FOXRELOAD_CONNECT_TIMEOUT_MS";
/// Milliseconds allowed for a whole FoxReload request.
pub const FOXRELOAD_REQUEST_TIMEOUT_MS: &str = "FOXRELOAD_REQUEST_TIMEOUT_MS";
/// The most requests per second the whole stack sends FoxReload (0: no
/// budget).
pub const FOXRELOAD_MAX_RPS: &str = "FOXRELOAD_MAX_RPS";
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
/// Learned polling: plan each order's polls from how its products' orders
/// ended (default true).
pub const POLL_LEARNING: &str = "POLL_LEARNING";
/// Learned polling: the 95th-percentile lag, in seconds, plans aim for.
pub const POLL_TARGET_P95_LAG_SECS: &str = "POLL_TARGET_P95_LAG_SECS";
/// Learned polling: observations a product needs before its orders get a
/// plan.
pub const POLL_LEARN_MIN_OBSERVATIONS: &str = "POLL_LEARN_MIN_OBSERVATIONS";
/// Learned polling: seconds a container keeps a plan before reading the
/// summaries again.
pub const POLL_PLAN_CACHE_SECS: &str = "POLL_PLAN_CACHE_SECS";
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
/// [`SUPPLIER_KEY`], [`CODES`], [`EVENTS`], [`WEBHOOKS`] and [`API`].
pub const DEPLOYED: &[&str] = &[
    TABLE_NAME,
    POLL_QUEUE_URL,
    ORDER_EVENTS_TOPIC_ARN,
    OPS_ALERTS_TOPIC_ARN,
    FOXRELOAD_BASE_URL,
    FOXRELOAD_CONNECT_TIMEOUT_MS,
    FOXRELOAD_REQUEST_TIMEOUT_MS,
    FOXRELOAD_MAX_RPS,
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
    POLL_LEARNING,
    POLL_TARGET_P95_LAG_SECS,
    POLL_LEARN_MIN_OBSERVATIONS,
    POLL_PLAN_CACHE_SECS,
    METRICS_NAMESPACE,
];

/// Set only on the functions that call FoxReload (create-order,
/// poll-order): scan-stalled neither has nor may read the key.
pub const SUPPLIER_KEY: &[&str] = &[FOXRELOAD_API_KEY_SECRET_ARN];

/// Set only on the functions that read or write codes (create-order reads
/// them for `GET /orders/{orderId}`, poll-order stores them and builds the
/// event, deliver-webhook builds each endpoint's event): scan-stalled may
/// not open a code.
pub const CODES: &[&str] = &[CODES_KMS_KEY_ID, READ_CODES_IN_CLEAR];

/// Set only on poll-order, which publishes order events.
pub const EVENTS: &[&str] = &[ORDER_EVENT_CODES];

/// Set only on deliver-webhook.
pub const WEBHOOKS: &[&str] = &[
    WEBHOOK_ENDPOINTS,
    WEBHOOK_QUEUE_URL,
    WEBHOOK_DEAD_LETTER_QUEUE_URL,
    WEBHOOK_SECRETS_PREFIX,
    WEBHOOK_TIMEOUT_MS,
    WEBHOOK_RETRY_SCHEDULE_SECS,
];

/// Set only on create-order: what the orders API asks of callers.
pub const API: &[&str] = &[JWT_PRINCIPAL_CLAIM, REQUIRE_IDEMPOTENCY_KEY];
