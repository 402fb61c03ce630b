//! The API's contract, enforced: every answer the handler gives in the test
//! suite is checked against `functions/create-order/openapi.yaml` (its
//! status is documented for the operation, its body validates against the
//! documented schema with a JSON Schema validator, and its headers are the
//! documented ones). Every order event published in the suite is checked
//! against `schemas/order-event.v1.json` the same way.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderMap;
use serde_json::{Map, Value, json};
use std::path::Path;
use std::sync::LazyLock;

fn repo_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The OpenAPI document, parsed.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
        serde_yaml_ng::from_str(&repo_file("functions/create-order/openapi.yaml"))
            .expect("openapi.yaml is YAML")
    });
    &DOCUMENT
}

/// OpenAPI 3.0's schema dialect as JSON Schema draft 7: `nullable: true`
/// admits `null`; everything else is the same.
fn json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(key, _)| *key != "nullable")
                .map(|(key, value)| (key.clone(), json_schema(value)))
                .collect();
            if map.get("nullable") != Some(&Value::Bool(true)) {
                return Value::Object(out);
            }
            match out.get("type").cloned() {
                Some(Value::String(kind)) if !out.contains_key("enum") => {
                    out.insert("type".into(), json!([kind, "null"]));
                    Value::Object(out)
                }
                _ => json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// Follows `{"$ref": "#/…"}` within the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => {
            let target = doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("openapi.yaml: {pointer} does not exist"));
            resolve(doc, target)
        }
        None => value,
    }
}

/// The document's path template matching `path` (`/orders/abc` →
/// `/orders/{orderId}`), if any.
fn template_of(doc: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    doc["paths"].as_object()?.keys().find_map(|template| {
        let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        let fits = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(p, s)| p == s || (p.starts_with('{') && p.ends_with('}')));
        fits.then(|| template.clone())
    })
}

/// Why `response`, the handler's answer to `method` `path`, breaks the
/// document; `None` when it keeps it.
pub fn violation(method: &str, path: &str, response: &ApiGatewayV2httpResponse) -> Option<String> {
    let body = match &response.body {
        Some(Body::Text(text)) => text.as_str(),
        None | Some(Body::Empty) => "",
        Some(other) => return Some(format!("{method} {path}: a non-text body {other:?}")),
    };
    http_violation(
        method,
        path,
        response.status_code as u16,
        &response.headers,
        body,
    )
}

/// Why an HTTP answer (status, headers, body) to `method` `path` breaks the
/// document: the same check for answers seen over HTTP (the local runner).
pub fn http_violation(
    method: &str,
    path: &str,
    status: u16,
    response_headers: &HeaderMap,
    body: &str,
) -> Option<String> {
    let doc = document();
    let status = status.to_string();
    let operation = template_of(doc, path).and_then(|template| {
        doc["paths"][template]
            .get(method.to_ascii_lowercase())
            .cloned()
    });
    let documented = match &operation {
        Some(operation) => match operation["responses"].get(&status) {
            Some(response) => resolve(doc, response).clone(),
            None => return Some(format!("{method} {path}: {status} is not documented")),
        },
        // A path or method the API does not have: API Gateway answers those
        // itself; the handler, called directly, must still answer as the
        // document says (405 with `Allow`, or an Error).
        None if status == "405" => doc["components"]["responses"]["MethodNotAllowed"].clone(),
        None => {
            json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        }
    };
    let schema = &documented["content"]["application/json"]["schema"];
    if schema.is_null() {
        return (!body.is_empty())
            .then(|| format!("{method} {path} {status}: an undocumented body"));
    }
    if response_headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return Some(format!("{method} {path} {status}: not application/json"));
    }
    let instance: Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(e) => return Some(format!("{method} {path} {status}: not JSON ({e}): {body}")),
    };
    let mut root = json_schema(&json!({"components": doc["components"]}));
    root["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    root["allOf"] = json!([json_schema(schema)]);
    let validator = jsonschema::draft7::new(&root).expect("openapi.yaml's schemas compile");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Some(format!(
            "{method} {path} {status}: the body breaks its schema: {}\n{instance}",
            errors.join("; ")
        ));
    }
    let headers = documented["headers"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for name in ["location", "retry-after", "idempotent-replayed", "allow"] {
        let sent = response_headers.contains_key(name);
        let listed = headers.keys().any(|h| h.eq_ignore_ascii_case(name));
        if sent && !listed {
            return Some(format!(
                "{method} {path} {status}: sends {name}, which is not documented"
            ));
        }
    }
    None
}

/// Panics with the reason when `response` breaks the document.
pub fn check(method: &str, path: &str, response: &ApiGatewayV2httpResponse) {
    if let Some(reason) = violation(method, path, response) {
        panic!("the answer breaks openapi.yaml: {reason}");
    }
}

/// Why `event` (an order event as published) breaks
/// `schemas/order-event.v1.json`; `None` when it keeps it.
pub fn event_violation(event: &Value) -> Option<String> {
    static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        let schema: Value = serde_json::from_str(&repo_file("schemas/order-event.v1.json"))
            .expect("the event schema is JSON");
        jsonschema::validator_for(&schema).expect("the event schema compiles")
    });
    let errors: Vec<String> = VALIDATOR
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| format!("{}\n{event}", errors.join("; ")))
}

/// Panics with the reason when `event` breaks the event schema.
pub fn check_event(event: &Value) {
    if let Some(reason) = event_violation(event) {
        panic!("the event breaks schemas/order-event.v1.json: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(
        status: i64,
        body: &str,
        headers: &[(&'static str, &str)],
    ) -> ApiGatewayV2httpResponse {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = status;
        response.body = Some(Body::Text(body.into()));
        response
            .headers
            .insert("content-type", "application/json".parse().unwrap());
        for (name, value) in headers {
            response.headers.insert(*name, value.parse().unwrap());
        }
        response
    }

    #[test]
    fn the_checker_refuses_what_the_document_does_not_say() {
        let error = r#"{"error":{"code":"not_found","message":"order not found"}}"#;
        let path = "/orders/0b6f3c1e-2f7d-4c7e-9d55-2d8f0b7a1e11";
        assert_eq!(violation("GET", path, &response(404, error, &[])), None);
        // An undocumented status, an unknown field, a missing field, an
        // undocumented header, a wrong type.
        assert!(violation("GET", path, &response(418, error, &[])).is_some());
        let extra = r#"{"error":{"code":"x","message":"y","secret":"z"}}"#;
        assert!(violation("GET", path, &response(404, extra, &[])).is_some());
        assert!(
            violation(
                "GET",
                path,
                &response(404, r#"{"error":{"code":"x"}}"#, &[])
            )
            .is_some()
        );
        assert!(violation("GET", path, &response(404, error, &[("location", "/x")])).is_some());
        let order = r#"{"orderId":"0b6f3c1e-2f7d-4c7e-9d55-2d8f0b7a1e11","status":"paid"}"#;
        assert!(violation("GET", path, &response(200, order, &[])).is_some());
    }

    #[test]
    fn the_event_checker_refuses_a_broken_event() {
        assert!(event_violation(&json!({"orderId": "x"})).is_some());
    }
}
