//! The release binary's shape: it starts under lambda_runtime, answers an
//! API Gateway event, and refuses to start without its settings.

use foxrelay_shared::testing::{Outcome, assert_stops_naming_missing, invoke_binary_with_output};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_create-order");

#[tokio::test]
async fn binary_answers_an_http_api_event_under_lambda_runtime() {
    let event = json!({
        "version": "2.0", "routeKey": "GET /orders/{orderId}", "rawPath": "/nowhere",
        "rawQueryString": "", "headers": {}, "isBase64Encoded": false,
        "requestContext": {"http": {"method": "GET", "path": "/nowhere", "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "test"}, "requestId": "r1", "routeKey": "GET /orders/{orderId}",
            "stage": "$default", "time": "28/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
            "accountId": "000000000000", "apiId": "api", "domainName": "localhost", "domainPrefix": "localhost"}
    });
    let (Outcome::Response(response), stdout) = invoke_binary_with_output(BINARY, event).await
    else {
        panic!("expected a response");
    };
    assert_eq!(response["statusCode"], 404);
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // Inside Lambda the request's metrics go to standard output as an EMF
    // line, in the default namespace, zeros included.
    let emf: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 1, "{stdout}");
    let directive = &emf[0]["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "foxrelay");
    assert_eq!(emf[0]["OrdersCreated"], 0);
    assert_eq!(emf[0]["SupplierErrors"], 0);
}

#[tokio::test]
async fn binary_without_table_name_stops_naming_it() {
    assert_stops_naming_missing(BINARY, "TABLE_NAME").await;
}
