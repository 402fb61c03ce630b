//! POSTing one signed event to one endpoint: names resolved through the
//! SSRF guard ([`PublicOnly`]), redirects never followed, the answer read
//! up to a cap, a 2xx within the timeout the only success.

use super::guard::PublicOnly;
use super::signing::Signer;
use crate::domain::webhook::is_public;
use std::net::IpAddr;
use std::time::Duration;
use url::Url;

/// The most of an answer's body read (and never shown).
pub const BODY_CAP: usize = 4 * 1024;

/// How one try went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Answered 2xx.
    Delivered { status: u16 },
    /// Anything else: another status, a refused address, no answer in
    /// time. `status` when the endpoint answered.
    Failed { status: Option<u16>, reason: String },
}

/// Sends webhooks; one per container (it keeps connections).
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    allow_loopback: bool,
    timeout: Duration,
}

impl Sender {
    /// A sender whose requests take at most `timeout` each, reaching
    /// loopback addresses only when `allow_loopback` (a local run).
    pub fn new(timeout: Duration, allow_loopback: bool) -> Result<Self, reqwest::Error> {
        Self::with_guard(
            timeout,
            PublicOnly {
                allow_loopback,
                ..PublicOnly::default()
            },
        )
    }

    /// A sender resolving through `guard` (tests pin names to addresses).
    pub fn with_guard(timeout: Duration, guard: PublicOnly) -> Result<Self, reqwest::Error> {
        let allow_loopback = guard.allow_loopback;
        let client = reqwest::Client::builder()
            .dns_resolver(guard)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("foxrelay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            allow_loopback,
            timeout,
        })
    }

    /// The longest a request takes, its answer read.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` to `url` as message `id`, signed by `signer` at
    /// `timestamp` (Unix seconds).
    pub async fn send(
        &self,
        url: &Url,
        id: &str,
        timestamp: i64,
        body: &str,
        signer: &Signer,
    ) -> Attempt {
        // A URL naming an address is never resolved: the guard is asked
        // here instead.
        let literal: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip.into()),
            Some(url::Host::Ipv6(ip)) => Some(ip.into()),
            _ => None,
        };
        if let Some(ip) = literal
            && !is_public(ip)
            && !(self.allow_loopback && ip.is_loopback())
        {
            return Attempt::Failed {
                status: None,
                reason: format!("{ip} is not a public address; not sent"),
            };
        }
        let sent = self
            .client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signer.sign(id, timestamp, body))
            .body(body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Failed {
                    status: None,
                    reason: describe(&error),
                };
            }
        };
        let status = response.status();
        // Read (up to the cap) so the connection can be used again; a slow
        // body counts against the same timeout.
        let mut answer = Vec::new();
        while answer.len() < BODY_CAP {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                _ => break,
            }
        }
        if status.is_success() {
            Attempt::Delivered {
                status: status.as_u16(),
            }
        } else {
            // The answer's text is not kept: a receiver may echo the
            // request, codes and all, and the reason goes to the log and
            // the dead-letter queue.
            let why = if status.is_redirection() {
                "redirects are not followed"
            } else {
                "not a 2xx"
            };
            Attempt::Failed {
                status: Some(status.as_u16()),
                reason: format!("answered {status} ({why}; {} bytes)", answer.len()),
            }
        }
    }
}

/// A request error with its causes (the guard's refusal is one).
fn describe(error: &reqwest::Error) -> String {
    let mut said = if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        said.push_str(": ");
        said.push_str(&cause.to_string());
        source = cause.source();
    }
    said
}
