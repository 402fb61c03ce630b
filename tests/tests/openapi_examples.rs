//! The OpenAPI document matches the handler: every request example is
//! replayed against create-order (through moto and the simulator), and the
//! answer has the status, shape and error of the response example with the
//! same name.

use aws_lambda_events::encodings::Body;
use create_order::Handler;
use create_order::create::CreateOptions;
use foxrelay_tests::{call, harness, http_event};
use foxreload_sim::SimConfig;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn document() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/create-order/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml is YAML")
}

/// Response examples of an operation: name → (status, example body).
fn response_examples(operation: &Value) -> Vec<(String, u16, Value)> {
    let mut found = Vec::new();
    for (status, response) in operation["responses"].as_object().unwrap() {
        let examples = &response["content"]["application/json"]["examples"];
        for (name, example) in examples.as_object().into_iter().flatten() {
            found.push((
                name.clone(),
                status.parse().unwrap(),
                example["value"].clone(),
            ));
        }
    }
    found
}

fn json_body(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("not a JSON body: {other:?}"),
    }
}

#[tokio::test]
async fn every_request_example_gets_the_documented_answer() {
    let h = harness(SimConfig::default(), Duration::from_secs(2)).await;
    let handler = Handler::with_options(h.context.clone(), CreateOptions::default());
    let doc = document();
    let create = &doc["paths"]["/orders"]["post"];
    let requests = create["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap();
    let responses = response_examples(create);
    assert!(requests.len() >= 5);
    for (name, request) in requests {
        let (_, status, expected) = responses
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("request example {name} has no response example"));
        let body = request["value"].to_string();
        let response = call(
            &handler,
            http_event(
                "POST",
                "/orders",
                &[("content-type", "application/json")],
                Some(&body),
            ),
        )
        .await;
        assert_eq!(
            response.status_code,
            i64::from(*status),
            "{name}: {:?}",
            response.body
        );
        let actual = json_body(&response);
        if *status < 300 {
            for key in expected.as_object().unwrap().keys() {
                assert!(actual.get(key).is_some(), "{name}: the answer lacks {key}");
            }
            assert_eq!(actual["status"], expected["status"], "{name}");
            assert_eq!(actual["items"], expected["items"], "{name}");
        } else {
            let (want, got) = (&expected["error"], &actual["error"]);
            assert_eq!(got["code"], want["code"], "{name}");
            assert_eq!(got["field"], want["field"], "{name}");
            assert_eq!(got["supplierCode"], want["supplierCode"], "{name}");
            if *status == 400 {
                assert_eq!(got["message"], want["message"], "{name}");
            }
        }
    }

    let get = &doc["paths"]["/orders/{orderId}"]["get"];
    let (_, status, expected) = &response_examples(get)[0];
    let response = call(
        &handler,
        http_event(
            "GET",
            &format!("/orders/{}", uuid::Uuid::new_v4()),
            &[],
            None,
        ),
    )
    .await;
    assert_eq!(response.status_code, i64::from(*status));
    assert_eq!(json_body(&response), *expected);
}
