//! What API Gateway's HTTP API does in front of create-order, locally:
//! the caller put in the request's context as the authorizer puts it, and
//! the invocation's context (its deadline); then create-order's own router
//! answers, as in Lambda.
//!
//! The caller comes from `Authorization: Bearer <JWT>`: the token's claims
//! are decoded **without verifying its signature** and placed where API
//! Gateway's JWT authorizer puts them (`requestContext.authorizer.jwt.claims`,
//! the issuer in `iss`). Without the header the caller is `local` (an IAM
//! caller, as with the default `ApiAuth=IAM`; SigV4 itself is not emulated).

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequestContext,
};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// The caller of a request without an `Authorization` header.
pub const LOCAL_CALLER: &str = "local";

/// Said once when the runner starts.
pub const UNVERIFIED_TOKENS: &str = "foxrelay-local: bearer tokens are decoded but NOT verified \
     (no signature, issuer or audience check): any token is believed. In AWS, API Gateway \
     verifies them.";

/// How long an invocation of create-order may run (its template timeout
/// less a second).
const INVOCATION: Duration = Duration::from_secs(28);

/// The request as API Gateway hands it on: with its request context (the
/// caller) and the invocation's context; or why the gateway refuses it (a
/// token that is not a JWT: [`unauthorized`]).
pub fn prepare(request: Request) -> Result<Request, &'static str> {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.method = request.method().clone();
    context.http.path = Some(request.uri().path().to_owned());
    context.stage = Some("$default".into());
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.authorizer = Some(authorizer(request.headers())?);
    Ok(request
        .with_request_context(RequestContext::ApiGatewayV2(context))
        .with_lambda_context(crate::lambda::context(INVOCATION)))
}

/// The authorizer's part of the request context.
fn authorizer(headers: &HeaderMap) -> Result<ApiGatewayRequestAuthorizer, &'static str> {
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    match headers.get("authorization") {
        None => {
            let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
            iam.user_arn = Some(LOCAL_CALLER.to_owned());
            authorizer.iam = Some(iam);
        }
        Some(value) => {
            let claims = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
                .ok_or("Authorization must be 'Bearer <JWT>' locally")
                .and_then(|token| claims(token.trim()))?;
            let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
            jwt.claims = claims;
            authorizer.jwt = Some(jwt);
        }
    }
    Ok(authorizer)
}

/// A JWT's claims, unverified, flattened to text as API Gateway passes them
/// (strings as they are, anything else as JSON).
pub fn claims(token: &str) -> Result<HashMap<String, String>, &'static str> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the bearer token is not a JWT (three dot-separated parts)");
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the JWT's payload is not base64url")?;
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err("the JWT's payload is not a JSON object");
    };
    Ok(map
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect())
}

/// The gateway's 401, in the API's error shape.
pub fn unauthorized(why: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "unauthenticated", why)
}

/// An answer of the runner itself, in the API's error shape.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// API Gateway's answer when the function crashed mid-invocation: its own
/// `{"message"}` body, as in AWS.
pub fn crashed() -> Response {
    let mut response = Response::new(Body::from(r#"{"message":"Internal Server Error"}"#));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256"}"#),
            b64(payload.to_string().as_bytes()),
            b64(b"not-checked")
        )
    }

    #[test]
    fn claims_are_read_unverified_and_flattened_to_text() {
        let claims = claims(&token(&json!({
            "iss": "https://issuer.example", "sub": "client-a", "exp": 1, "scope": ["a", "b"]
        })))
        .unwrap();
        assert_eq!(claims["iss"], "https://issuer.example");
        assert_eq!(claims["sub"], "client-a");
        assert_eq!(claims["exp"], "1");
        assert_eq!(claims["scope"], r#"["a","b"]"#);
    }

    #[test]
    fn what_is_not_a_jwt_is_refused() {
        for bad in ["", "a.b", "a.b.c.d", "a.!!!.c", &format!("a.{}.c", "W10")] {
            assert!(claims(bad).is_err(), "{bad}");
        }
    }
}
