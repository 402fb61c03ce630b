//! Any request, however malformed, through the router as Lambda hands it
//! (an API Gateway event, converted by `lambda_http`), over the in-memory
//! adapters: it places an order (202), or is refused with a 4xx JSON error
//! that changed nothing and reached no supplier; never a 5xx, never a
//! panic.

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequest,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderName, HeaderValue, Method};
use create_order::create::{CreateOptions, Creator};
use create_order::http::{Api, router, serve_event};
use foxrelay_shared::foxreload::Operation;
use foxrelay_shared::metrics::Metrics;
use foxrelay_shared::settings::ApiSettings;
use foxrelay_shared::testing::{
    MemoryPublisher, MemoryQueue, MemoryStore, ScriptedSupplier, TestClock,
};
use lambda_http::LambdaEvent;
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::sync::Arc;

const KEYS: &[&str] = &[
    "items",
    "productId",
    "quantity",
    "note",
    "customerReference",
    "totalPrice",
    "isMock",
    "itemId",
    "",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..2000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
        "[a-z_]{1,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 12, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        ".{0,200}",
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn request() -> impl Strategy<Value = ApiGatewayV2httpRequest> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        prop_oneof![
            Just("/orders".to_owned()),
            Just("/orders/".to_owned()),
            "/orders/[a-z0-9-]{0,40}",
            "/.{0,40}",
        ],
        prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/json; charset=utf-8".to_owned()),
            Just("text/plain".to_owned()),
            "[ -~]{0,40}",
        ]),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
        body(),
        0u8..3,
        authorizer(),
        (prop::option::of(".{0,40}"), prop::option::of("[ -~]{0,40}")),
    )
        .prop_map(
            |(method, path, content_type, key, body, base64, authorizer, (query, host))| {
                let mut request = ApiGatewayV2httpRequest::default();
                request.request_context.authorizer = authorizer;
                request.request_context.http.method =
                    Method::from_bytes(method.as_bytes()).unwrap();
                request.raw_path = Some(path);
                if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    request
                        .headers
                        .insert(HeaderName::from_static("content-type"), ct);
                }
                if let Some(key) = key.and_then(|k| HeaderValue::from_bytes(&k).ok()) {
                    request
                        .headers
                        .insert(HeaderName::from_static("idempotency-key"), key);
                }
                // API Gateway base64-encodes a body it does not take for
                // text (1); a direct invocation may flag one that is not (2).
                request.body = Some(if base64 == 1 {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(body.as_bytes())
                } else {
                    body
                });
                request.is_base64_encoded = base64 > 0;
                // A query and a Host the API never reads, whatever they hold.
                request.raw_query_string = query;
                if let Some(host) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
                    request
                        .headers
                        .insert(HeaderName::from_static("host"), host);
                }
                request
            },
        )
}

/// Whatever an authorizer may have put in the context: nothing, any ARN,
/// any claims (with or without `iss` and the principal claim).
fn authorizer() -> impl Strategy<Value = Option<ApiGatewayRequestAuthorizer>> {
    let claim = prop_oneof![Just("".to_owned()), ".{0,60}", "[a-z:/.]{1,30}"];
    prop_oneof![
        Just(None),
        prop::option::of(".{0,80}").prop_map(|arn| {
            let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
            iam.user_arn = arn;
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.iam = Some(iam);
            Some(authorizer)
        }),
        (
            prop::option::of(claim.clone()),
            prop::option::of(claim),
            ".{0,2000}"
        )
            .prop_map(|(iss, sub, other)| {
                let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
                if let Some(iss) = iss {
                    jwt.claims.insert("iss".into(), iss);
                }
                if let Some(sub) = sub {
                    jwt.claims.insert("sub".into(), sub);
                }
                jwt.claims.insert("client_id".into(), other);
                let mut authorizer = ApiGatewayRequestAuthorizer::default();
                authorizer.jwt = Some(jwt);
                Some(authorizer)
            }),
    ]
}

fn options() -> impl Strategy<Value = ApiSettings> {
    (
        prop::sample::select(vec!["sub", "client_id", "azp"]),
        any::<bool>(),
    )
        .prop_map(|(claim, require)| ApiSettings {
            principal_claim: claim.to_owned(),
            require_idempotency_key: require,
        })
}

type TestApi =
    Api<MemoryStore, MemoryQueue, ScriptedSupplier<TestClock>, TestClock, MemoryPublisher>;

fn api(settings: ApiSettings) -> Arc<TestApi> {
    let clock = TestClock::starting_at(time::OffsetDateTime::now_utc());
    Arc::new(Api {
        creator: Creator {
            store: MemoryStore::new(),
            queue: MemoryQueue::new(),
            supplier: ScriptedSupplier::new(clock),
            clock,
            publisher: MemoryPublisher::new(),
            options: CreateOptions::default(),
            plans: Default::default(),
        },
        settings,
        metrics: Metrics::in_memory("test", create_order::METRICS),
    })
}

/// An invocation with Lambda's 30 s ahead.
fn invocation(request: ApiGatewayV2httpRequest) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut context = lambda_http::Context::default();
    context.deadline = (std::time::SystemTime::now() + std::time::Duration::from_secs(30))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    LambdaEvent::new(request, context)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn any_request_places_an_order_or_is_refused_with_a_4xx_that_changes_nothing(
        request in request(),
        settings in options(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let api = api(settings);
        let answer = runtime.block_on(serve_event(router(api.clone()), invocation(request)));
        let status = answer.status_code;
        let body: Value = match &answer.body {
            Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
            other => panic!("not a JSON text body: {other:?}"),
        };
        let orders = api.creator.store.orders();
        let posts = api.creator.supplier.calls(Operation::CreateOrder);
        if status == 202 {
            prop_assert_eq!(orders.len(), 1);
            prop_assert_eq!(posts, 1);
            prop_assert_eq!(body["orderId"].as_str(), Some(orders[0].order_id.as_str()));
            let order = &orders[0];
            prop_assert!(!order.lines.is_empty() && order.lines.len() <= 10);
            prop_assert!(order.idempotency_key.is_some() || !api.settings.require_idempotency_key);
            let principal = order.principal.as_ref().unwrap();
            prop_assert!(!principal.as_str().is_empty() && principal.as_str().len() <= 1024);
        } else {
            prop_assert!((400..500).contains(&status), "{status} {body}");
            prop_assert!(body["error"]["code"].is_string(), "{body}");
            prop_assert!(body["error"]["message"].is_string(), "{body}");
            prop_assert!(orders.is_empty(), "a refused request stored an order");
            prop_assert_eq!(posts, 0);
        }
    }
}
