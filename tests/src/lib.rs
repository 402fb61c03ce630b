//! The kit foxrelay's integration tests share.
//!
//! - One moto server per test binary ([`moto`]), started on a free loopback
//!   port through `python3` (or `FOXRELAY_PYTHON`) with `moto[server]`.
//! - A fresh set of the template's resources per test ([`stack`]): every name
//!   carries a random prefix, so tests in one binary never see each other's
//!   tables, queues or topics and need no reset.
//! - The SDK is configured explicitly for moto: endpoint, region `us-east-1`
//!   and static credentials; nothing is looked up elsewhere.

pub mod binaries;
pub mod grants;
pub mod openapi;
pub mod world;

use aws_config::SdkConfig;
use foxrelay_local::{MotoServer, Provisioned, StackTemplate, provision};
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The test binary's moto server, started on first use.
pub fn moto() -> &'static MotoServer {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(|| MotoServer::start().unwrap_or_else(|e| panic!("{e}")))
}

/// The SDK configuration for the test binary's moto server.
pub async fn aws_config() -> SdkConfig {
    load_local(&LocalAws::new(moto().endpoint_url())).await
}

/// The template's resources, freshly created for one test.
pub struct TestStack {
    pub clients: AwsClients,
    pub template: StackTemplate,
    pub resources: Provisioned,
    pub prefix: String,
}

/// Creates the resources of the repository's `template.yaml` under a prefix
/// unique to this call.
pub async fn stack() -> TestStack {
    let clients = AwsClients::new(&aws_config().await);
    let template =
        StackTemplate::load(&StackTemplate::repository_path()).unwrap_or_else(|e| panic!("{e}"));
    let prefix = unique_prefix();
    let resources = provision(&template, &clients, &prefix)
        .await
        .unwrap_or_else(|e| panic!("provisioning failed: {e}"));
    TestStack {
        clients,
        template,
        resources,
        prefix,
    }
}

/// `t` and 10 random hex digits: short enough for every AWS name limit.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Settings for the functions against a test stack and a FoxReload at
/// `base_url` with `api_key`.
pub fn settings(
    stack: &TestStack,
    base_url: &str,
    api_key: &str,
) -> foxrelay_shared::settings::Settings {
    use foxrelay_shared::settings::{Settings, names};
    let mut env = stack
        .resources
        .function_environment(&stack.template)
        .unwrap_or_else(|e| panic!("{e}"));
    env.insert(names::FOXRELOAD_BASE_URL.into(), base_url.into());
    env.insert(names::FOXRELOAD_API_KEY.into(), api_key.into());
    Settings::from_lookup(|name| env.get(name).cloned()).unwrap_or_else(|e| panic!("{e}"))
}

/// A test stack, a simulator, and the context a handler is built from.
pub struct Harness {
    pub stack: TestStack,
    pub sim: foxreload_sim::Simulator,
    pub context: foxrelay_shared::startup::Context,
}

/// A fresh stack and simulator; the FoxReload client's request timeout is
/// `request_timeout`.
pub async fn harness(
    sim: foxreload_sim::SimConfig,
    request_timeout: std::time::Duration,
) -> Harness {
    let stack = stack().await;
    let sim = foxreload_sim::Simulator::start(sim)
        .await
        .expect("simulator starts");
    let mut settings = settings(&stack, &sim.base_url(), sim.api_key());
    settings.foxreload.request_timeout = request_timeout;
    settings.foxreload.connect_timeout = request_timeout.min(settings.foxreload.connect_timeout);
    let context = foxrelay_shared::startup::Context::build(settings, stack.clients.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Harness {
        stack,
        sim,
        context,
    }
}

/// An API Gateway HTTP API (payload 2.0) event, with a Lambda deadline 30 s
/// away.
pub fn http_event(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_runtime::LambdaEvent<aws_lambda_events::apigw::ApiGatewayV2httpRequest> {
    http_event_as(&Caller::Iam(TEST_CALLER_ARN), method, path, headers, body)
}

/// The IAM caller of [`http_event`]'s requests.
pub const TEST_CALLER_ARN: &str = "arn:aws:iam::000000000000:user/foxrelay-tests";

/// [`http_event`]'s caller, as the handler names it.
pub fn test_caller() -> foxrelay_shared::domain::Principal {
    foxrelay_shared::domain::Principal::iam(TEST_CALLER_ARN).expect("an IAM ARN")
}

/// Who a test request comes from, as API Gateway's authorizer puts it in
/// the request context.
pub enum Caller<'a> {
    /// SigV4: the caller's ARN (`authorizer.iam.userArn`).
    Iam(&'a str),
    /// A JWT authorizer's claims (`authorizer.jwt.claims`).
    Jwt(serde_json::Value),
    /// No authorizer at all.
    Nobody,
}

/// An API Gateway (HTTP API, payload 2.0) request from `caller`.
pub fn http_event_as(
    caller: &Caller,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_runtime::LambdaEvent<aws_lambda_events::apigw::ApiGatewayV2httpRequest> {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::from(*v)))
        .collect();
    let mut request = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers, "body": body, "isBase64Encoded": false,
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "foxrelay-tests"}, "requestId": "test",
            "routeKey": "$default", "stage": "$default", "time": "28/Nov/2026:10:00:00 +0000",
            "timeEpoch": 0, "accountId": "000000000000", "apiId": "local",
            "domainName": "localhost", "domainPrefix": "localhost"}
    });
    let authorizer = match caller {
        Caller::Iam(arn) => Some(serde_json::json!({"iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "000000000000", "callerId": "AIDAEXAMPLE",
            "principalOrgId": null, "userArn": arn, "userId": "AIDAEXAMPLE"}})),
        Caller::Jwt(claims) => Some(serde_json::json!({"jwt": {"claims": claims, "scopes": null}})),
        Caller::Nobody => None,
    };
    if let Some(authorizer) = authorizer {
        request["requestContext"]["authorizer"] = authorizer;
    }
    let payload = serde_json::from_value(request).expect("a valid HTTP API event");
    foxrelay_local::lambda::event(payload, std::time::Duration::from_secs(30))
}

/// create-order's answer to `event`, checked against the OpenAPI document
/// ([`openapi::check`]): every answer the suite sees keeps the contract.
pub async fn call(
    handler: &create_order::Handler,
    event: lambda_runtime::LambdaEvent<aws_lambda_events::apigw::ApiGatewayV2httpRequest>,
) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    let method = event.payload.request_context.http.method.to_string();
    let path = event.payload.raw_path.clone().unwrap_or_default();
    let response = handler
        .handle(event)
        .await
        .expect("the handler is infallible");
    openapi::check(&method, &path, &response);
    response
}

/// The status and JSON body of an answer over HTTP (the local runner),
/// checked against the OpenAPI document like every handler answer.
pub async fn http_answer(method: &str, response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let path = response.url().path().to_owned();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    if let Some(reason) = openapi::http_violation(method, &path, status, &headers, &text) {
        panic!("the answer breaks openapi.yaml: {reason}");
    }
    (status, serde_json::from_str(&text).expect("a JSON body"))
}

/// POSTs `order` to `api` with Idempotency-Key `key` as a client following
/// the API does: a `503` (nothing bought) is sent again with the same key
/// after its `Retry-After`, up to five times. The last answer, checked
/// against openapi.yaml, with how many 503s came before it.
pub async fn place_order(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    order: &serde_json::Value,
) -> (u16, serde_json::Value, usize) {
    let mut unavailable = 0;
    loop {
        let response = http
            .post(api)
            .header("idempotency-key", key)
            .json(order)
            .send()
            .await
            .expect("POST /orders");
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let (status, answer) = http_answer("POST", response).await;
        match wait {
            Some(wait) if status == 503 && unavailable < 5 => {
                unavailable += 1;
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            }
            _ => return (status, answer, unavailable),
        }
    }
}

/// An order event as published, checked against its JSON Schema
/// ([`openapi::check_event`]) before it is read.
pub fn order_event(raw: serde_json::Value) -> foxrelay_shared::domain::event::OrderEvent {
    openapi::check_event(&raw);
    serde_json::from_value(raw).expect("an event the schema accepts reads as an OrderEvent")
}

/// The JSON body of an API answer.
pub fn body_of(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> serde_json::Value {
    match &response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => {
            serde_json::from_str(text).expect("JSON body")
        }
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

/// `POST /orders` with `body`, and `Idempotency-Key: key` when given.
pub async fn post_order(
    handler: &create_order::Handler,
    body: &str,
    key: Option<&str>,
) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    call(handler, http_event("POST", "/orders", &headers, Some(body))).await
}

/// A queue named `name` subscribed to `topic_arn` with raw delivery;
/// returns its URL.
pub async fn subscribe_queue(clients: &AwsClients, topic_arn: &str, name: &str) -> String {
    foxrelay_local::subscribe_queue(clients, &[topic_arn], name)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every message now on a queue (read until a receive comes back empty),
/// deleted as read, bodies parsed as JSON.
pub async fn drain_json(clients: &AwsClients, queue_url: &str) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    loop {
        let got = clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return all;
        }
        for message in got.messages() {
            all.push(serde_json::from_str(message.body().unwrap_or("null")).expect("JSON"));
            clients
                .sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// What the simulator delivered for a supplier order, by the documented
/// rule: each `externalData` entry's `code`, or the whole entry as JSON.
pub fn simulator_codes(sim: &foxreload_sim::Simulator, supplier_order_id: &str) -> Vec<String> {
    sim.codes(supplier_order_id)
        .expect("the simulator knows the order")
}

/// Queues subscribed to the order-events and ops-alerts topics of a stack:
/// `(events, alerts)`.
pub async fn subscribe_both(
    clients: &AwsClients,
    resources: &Provisioned,
    prefix: &str,
) -> (String, String) {
    let events = subscribe_queue(
        clients,
        resources.order_events_topic_arn(),
        &format!("{prefix}-events"),
    )
    .await;
    let alerts = subscribe_queue(
        clients,
        resources.ops_alerts_topic_arn(),
        &format!("{prefix}-alerts"),
    )
    .await;
    (events, alerts)
}

/// Sums EMF lines: each counter by name, supplier errors by kind under
/// `SupplierErrors/{kind}`; a timing counts its values (`TimeToNotify`: the
/// orders notified; `SupplierLatency/{operation}`: the calls). Checks each
/// line is the EMF shape CloudWatch reads, with the `Function` dimension
/// first.
pub fn metric_totals(lines: &[String]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in lines {
        let line: serde_json::Value = serde_json::from_str(line).expect("an EMF line is JSON");
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert!(line["_aws"]["Timestamp"].is_u64(), "{line}");
        let dimensions = directive["Dimensions"][0]
            .as_array()
            .expect("one dimension set");
        assert_eq!(dimensions.first(), Some(&"Function".into()), "{line}");
        assert!(line["Function"].is_string(), "{line}");
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().expect("a name");
            let value = match metric["Unit"].as_str() {
                // A count, or counts (one per order: polls per order).
                Some("Count") => match line[name].as_array() {
                    Some(counts) => counts.iter().filter_map(serde_json::Value::as_u64).sum(),
                    None => line[name].as_u64().expect("a count beside the directive"),
                },
                Some("Milliseconds") => line[name]
                    .as_array()
                    .expect("values beside the directive")
                    .len() as u64,
                // A gauge (the FoxReload budget as last seen): no total.
                Some("Count/Second") => {
                    assert!(
                        line[name].is_number(),
                        "a rate beside the directive: {line}"
                    );
                    continue;
                }
                other => panic!("unit {other:?} in {line}"),
            };
            // `Name`, or `Name/value` per dimension beyond `Function`
            // (`TimeToNotify/product_fast/learned`).
            let key = std::iter::once(name.to_owned())
                .chain(dimensions[1..].iter().map(|dimension| {
                    line[dimension.as_str().unwrap()]
                        .as_str()
                        .unwrap()
                        .to_owned()
                }))
                .collect::<Vec<_>>()
                .join("/");
            *totals.entry(key).or_default() += value;
        }
    }
    totals
}

/// The EMF lines of `lines` that carry the function's counters (one per
/// flush; a line of gauges or timings alone, such as the FoxReload budget
/// or the rest of a long list of times to notify, is not one).
pub fn counter_lines(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let directive = &line["_aws"]["CloudWatchMetrics"][0];
            directive["Dimensions"][0] == serde_json::json!(["Function"])
                && directive["Metrics"]
                    .as_array()
                    .is_some_and(|metrics| metrics.iter().any(|m| m["Unit"] == "Count"))
        })
        .count()
}

/// An order placed at `created` and, unless `status` is `creating`, claimed
/// with a supplier order in `status`.
/// The state a claim of a FoxReload order in `status` (as FoxReload says
/// it) stores.
pub fn claimed_in(status: &str) -> foxrelay_shared::store::SupplierState {
    foxrelay_shared::store::SupplierState::claimed(
        &foxrelay_shared::foxreload::SupplierStatus::parse(status),
    )
}

pub async fn pending_order(
    store: &foxrelay_shared::store::DynamoStore,
    id: &str,
    created: time::OffsetDateTime,
    status: &str,
) {
    use foxrelay_shared::store::{IdempotencyStore, OrderRecord, PlacementStore};
    let order = foxrelay_shared::domain::parse_new_order(
        br#"{"items":[{"productId":"product_fast","quantity":1}]}"#,
    )
    .unwrap();
    let intent = OrderRecord::intent(id.to_owned(), &order, None, test_caller(), created);
    store.begin(&intent, None).await.unwrap();
    if status != "creating" {
        store
            .claim_supplier_order(id, &format!("sup-{id}"), &claimed_in(status), created)
            .await
            .unwrap();
    }
}

/// An order placed at `placed` that completed a minute later with one
/// `code`, stored but never published (its notification was lost).
pub async fn unnotified_completion(
    store: &foxrelay_shared::store::DynamoStore,
    id: &str,
    placed: time::OffsetDateTime,
    code: &str,
) {
    use foxrelay_shared::store::{OrderReader, PollChain};
    pending_order(store, id, placed, "processing").await;
    let order = store.order(id).await.unwrap().unwrap();
    let mut terminal = completed_with(&[code]);
    terminal.at = placed + time::Duration::minutes(1);
    store.persist_terminal(&order, &terminal).await.unwrap();
}

/// An end completed now, with `codes` (of `product_fast`, one item).
pub fn completed_with(codes: &[&str]) -> foxrelay_shared::store::Terminal {
    use foxrelay_shared::domain::OrderStatus;
    use foxrelay_shared::domain::event::{CodeKind, DeliveredCodeRecord, ItemOutcome};
    foxrelay_shared::store::Terminal {
        status: OrderStatus::Completed,
        supplier_status: Some("completed".into()),
        cancel_reason: None,
        items: vec![ItemOutcome {
            product_id: "product_fast".into(),
            quantity: Some(codes.len() as u32),
            delivered: codes.len() as u32,
            error: None,
            missing: 0,
        }],
        codes: codes
            .iter()
            .enumerate()
            .map(|(index, code)| DeliveredCodeRecord {
                index: index as u32,
                item_index: 0,
                product_id: "product_fast".into(),
                code: (*code).into(),
                kind: CodeKind::Code,
            })
            .collect(),
        at: time::OffsetDateTime::now_utc(),
    }
}

/// `context` with a FoxReload client that sends a key FoxReload refuses
/// (401), as after a revoked or mistyped key.
pub fn with_wrong_api_key(
    context: &foxrelay_shared::startup::Context,
) -> foxrelay_shared::startup::Context {
    let mut wrong = context.clone();
    wrong.foxreload = Some(
        foxrelay_shared::foxreload::FoxReloadClient::new(
            &context.settings.foxreload,
            &foxrelay_shared::settings::ApiKey::new("not-the-key"),
        )
        .unwrap(),
    );
    wrong
}

/// `context` with a FoxReload that cannot be reached: a loopback port where
/// nothing listens.
pub fn with_foxreload_down(
    context: &foxrelay_shared::startup::Context,
) -> foxrelay_shared::startup::Context {
    let mut down = context.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut settings = down.settings.foxreload.clone();
    settings.base_url = format!("http://{closed}");
    down.foxreload = Some(
        foxrelay_shared::foxreload::FoxReloadClient::new(
            &settings,
            &foxrelay_shared::settings::ApiKey::new("k"),
        )
        .unwrap(),
    );
    down
}

/// A local runner's options against moto and `sim`: the repository's
/// template, the settings it sets with `overrides`, each poll message
/// delivered `poll_copies` times, the sweep every `scan_interval`.
pub fn local_stack_options(
    prefix: &str,
    sim: &foxreload_sim::Simulator,
    overrides: &[(&str, &str)],
    poll_copies: usize,
    scan_interval: std::time::Duration,
) -> foxrelay_local::StackOptions {
    foxrelay_local::StackOptions {
        template: StackTemplate::repository_path(),
        aws_endpoint: Some(moto().endpoint_url()),
        foxreload: Some((sim.base_url(), sim.api_key().to_owned())),
        simulator: foxreload_sim::SimConfig::default(),
        prefix: prefix.to_owned(),
        api_addr: ([127, 0, 0, 1], 0).into(),
        overrides: overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        scan_interval,
        poll_copies,
        poll_wait: std::time::Duration::from_secs(1),
        pollers: 1,
    }
}
