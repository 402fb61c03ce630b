//! Handing a request on to another HTTP server unchanged, and its answer
//! back unchanged: the counting proxy's forwarding, and the local stack's
//! router in front of its two moto servers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::Response;

/// An answer as it came back: status, headers and the whole body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The client to relay with: no proxy of the environment's, and redirects
/// handed back rather than followed.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Sends the request to the same path and query at `upstream` (a base URL
/// without a trailing slash), with its headers but those of the connection.
pub async fn send(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Answer, reqwest::Error> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http.request(method, format!("{upstream}{path}")).body(body);
    for (name, value) in headers {
        if !is_hop_by_hop(name) {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

impl Answer {
    /// The answer to give the caller: as it came, but the headers of the
    /// connection it came on.
    pub fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        for (name, value) in &self.headers {
            if !is_hop_by_hop(name) {
                response.headers_mut().append(name, value.clone());
            }
        }
        response
    }
}

/// `502` saying which relay could not reach its upstream, and why.
pub fn bad_gateway(relay: &str, error: &reqwest::Error) -> Response {
    let mut response = Response::new(Body::from(format!("{relay}: {error}")));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// Headers that belong to one connection, and the length the body sets.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::CONTENT_LENGTH
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::PROXY_AUTHORIZATION
        || name == header::EXPECT
        || name.as_str() == "keep-alive"
}
