//! Any request, however malformed: the decoder answers a route or a 4xx JSON
//! error, and never panics. Only decoded requests reach any I/O, so this is
//! the whole of what arbitrary input can do to the handler.

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequest,
};
use aws_lambda_events::http::{HeaderName, HeaderValue, Method};
use create_order::http::{Route, decode};
use foxrelay_shared::settings::ApiSettings;
use proptest::prelude::*;
use serde_json::{Map, Value};

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
        any::<bool>(),
        authorizer(),
    )
        .prop_map(
            |(method, path, content_type, key, body, base64, authorizer)| {
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
                request.body = Some(body);
                request.is_base64_encoded = base64;
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn any_request_is_routed_or_refused_with_a_4xx_json_error(
        request in request(),
        options in options(),
    ) {
        match decode(&request, &options) {
            Ok(Route::Create { order, key, principal }) => {
                prop_assert!(!order.lines.is_empty() && order.lines.len() <= 10);
                prop_assert!(key.is_some() || !options.require_idempotency_key);
                prop_assert!(!principal.as_str().is_empty() && principal.as_str().len() <= 1024);
            }
            Ok(Route::Read { order_id, principal }) => {
                prop_assert!(!principal.as_str().is_empty());
                prop_assert!(order_id.len() <= 64);
                prop_assert!(order_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
            }
            Err(error) => {
                prop_assert!((400..500).contains(&error.status), "{error:?}");
                let body: Value = serde_json::from_str(&error.body()).unwrap();
                prop_assert!(body["error"]["code"].is_string());
                prop_assert!(body["error"]["message"].is_string());
            }
        }
    }
}
