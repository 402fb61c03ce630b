//! The local runner answers as API Gateway and the handler would: the
//! caller from a bearer JWT (decoded, not verified) or `local`, the request
//! answered by create-order's own router (as in Lambda), and every error,
//! the runner's and the router's, in the API's JSON error shape.

use foxrelay_local::{LocalStack, StackOptions, StackTemplate};
use foxrelay_tests::{http_answer, moto, unique_prefix};
use foxreload_sim::{PRODUCT_FAST, SimConfig};
use serde_json::{Value, json};
use std::time::Duration;

fn jwt(claims: Value) -> String {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"unverified")
    )
}

async fn stack() -> LocalStack {
    LocalStack::start(StackOptions {
        template: StackTemplate::repository_path(),
        aws_endpoint: Some(moto().endpoint_url()),
        foxreload: None,
        simulator: SimConfig::default(),
        prefix: unique_prefix(),
        api_addr: ([127, 0, 0, 1], 0).into(),
        overrides: Default::default(),
        scan_interval: Duration::from_secs(3600),
        poll_copies: 1,
        poll_wait: Duration::from_secs(1),
        pollers: 1,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_runner_takes_the_caller_from_the_token_and_answers_like_the_handler() {
    let stack = stack().await;
    let http = reqwest::Client::new();
    let orders = format!("http://{}/orders", stack.api_addr);
    let body = json!({"items": [{"productId": PRODUCT_FAST, "quantity": 1}]}).to_string();
    let shop = jwt(json!({"iss": "https://issuer.example", "sub": "shop"}));
    let partner = jwt(json!({"iss": "https://issuer.example", "sub": "partner"}));

    let post = |token: &str| {
        http.post(&orders)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("idempotency-key", "k-1")
            .body(body.clone())
            .send()
    };
    let (status, order) = http_answer("POST", post(&shop).await.unwrap()).await;
    assert_eq!(status, 202, "{order}");
    let url = format!("{orders}/{}", order["orderId"].as_str().unwrap());
    let read = |token: Option<&str>| {
        let mut request = http.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        http_answer("GET", read(Some(&shop)).await.unwrap()).await.0,
        200
    );
    // Another token's caller, and the anonymous `local` caller, see nothing.
    for other in [Some(partner.as_str()), None] {
        let (status, body) = http_answer("GET", read(other).await.unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
    }
    // The same key from another caller is another order.
    let (status, their_order) = http_answer("POST", post(&partner).await.unwrap()).await;
    assert_eq!(status, 202);
    assert_ne!(their_order["orderId"], order["orderId"]);
    // A replay is marked.
    let replay = post(&shop).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    // What is not a JWT is refused by the runner, in the API's shape.
    let garbage = http
        .get(&url)
        .header("authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    let (status, body) = http_answer("GET", garbage).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    // Over the API's 64 KB, small or far over API Gateway's 10 MB: the
    // router's own JSON 413.
    for size in [2 * 1024 * 1024, 11 * 1024 * 1024] {
        let big = format!(r#"{{"items":[],"pad":"{}"}}"#, "x".repeat(size));
        let response = http
            .post(&orders)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap();
        let (status, body) = http_answer("POST", response).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (413, Some("payload_too_large")),
            "{size}: {body}"
        );
    }
    // Unknown routes and wrong methods: the same JSON error shape.
    let (status, body) = http_answer(
        "GET",
        http.get(format!("http://{}/nowhere", stack.api_addr))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let wrong = http.delete(&orders).send().await.unwrap();
    assert_eq!(wrong.headers()["allow"], "POST");
    let (status, body) = http_answer("DELETE", wrong).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    stack.stop().await;
}
