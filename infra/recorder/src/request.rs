//! What one AWS request is: its service (from the SigV4 credential scope)
//! and operation (from `X-Amz-Target` for JSON-protocol services, the form
//! body's `Action` for query-protocol SNS).

use axum::http::{HeaderMap, header};

/// A request's service (as in the SigV4 scope) and operation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    pub service: String,
    pub operation: String,
}

impl Call {
    pub fn new(service: &str, operation: &str) -> Self {
        Self {
            service: service.to_owned(),
            operation: operation.to_owned(),
        }
    }
}

/// The service and operation of an AWS request.
pub fn classify(headers: &HeaderMap, body: &[u8]) -> Call {
    let scope = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(scope_service);
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok())
        && let Some((prefix, operation)) = target.split_once('.')
    {
        let service = scope.unwrap_or_else(|| match prefix {
            p if p.starts_with("DynamoDB") => "dynamodb".to_owned(),
            "AmazonSQS" => "sqs".to_owned(),
            p => p.to_ascii_lowercase(),
        });
        return Call::new(&service, operation);
    }
    let form = form_pairs(body);
    match form.iter().find(|(name, _)| name == "Action") {
        Some((_, action)) => Call::new(scope.as_deref().unwrap_or("unknown"), action),
        None => Call::new(scope.as_deref().unwrap_or("unknown"), "(unclassified)"),
    }
}

/// The service of a SigV4 `Authorization` header's credential scope
/// (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`).
fn scope_service(authorization: &str) -> Option<String> {
    let credential = authorization.split("Credential=").nth(1)?;
    let credential = credential.split([',', ' ']).next()?;
    credential.split('/').nth(3).map(str::to_owned)
}

/// The pairs of an `application/x-www-form-urlencoded` body, decoded.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (byte, None) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::sns_payload_bytes;
    use axum::http::HeaderValue;

    fn signed(service: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential=testing/20261128/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
            ))
            .unwrap(),
        );
        headers
    }

    #[test]
    fn json_protocol_requests_are_named_by_their_target_header() {
        let mut headers = signed("dynamodb");
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.PutItem"),
        );
        assert_eq!(classify(&headers, b"{}"), Call::new("dynamodb", "PutItem"));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSQS.SendMessage"),
        );
        assert_eq!(classify(&headers, b"{}"), Call::new("sqs", "SendMessage"));
    }

    #[test]
    fn query_protocol_sns_is_named_by_the_action_in_its_form_body() {
        let body = b"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At&Message=%7B%22a%22%3A+1%7D";
        assert_eq!(classify(&signed("sns"), body), Call::new("sns", "Publish"));
        let form = form_pairs(body);
        assert!(form.contains(&("Message".to_owned(), "{\"a\": 1}".to_owned())));
        assert_eq!(sns_payload_bytes(&form), 8);
    }
}
