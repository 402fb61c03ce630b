//! The SSRF guard: webhook requests resolve names through [`PublicOnly`],
//! which drops every address [`is_public`] refuses, so an endpoint whose
//! name points (or is repointed, between deliveries) at a private,
//! loopback, link-local or metadata address is never reached. A URL
//! naming an address is not resolved at all: those are refused when the
//! endpoint list is read.

use crate::domain::webhook::is_public;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A resolver that keeps only public addresses (and loopback ones, for a
/// local run).
#[derive(Clone, Debug, Default)]
pub struct PublicOnly {
    /// Keep loopback addresses too: local runs only.
    pub allow_loopback: bool,
    /// Names answered with these addresses instead of the system's
    /// resolver, as a hosts file would (tests pin a name to a private or
    /// metadata address); the guard judges them all the same.
    pub pinned: Arc<[(String, IpAddr)]>,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        let pinned: Vec<SocketAddr> = self
            .pinned
            .iter()
            .filter(|(pinned, _)| pinned.eq_ignore_ascii_case(&host))
            .map(|(_, ip)| SocketAddr::new(*ip, 0))
            .collect();
        Box::pin(async move {
            let found: Vec<SocketAddr> = if pinned.is_empty() {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            } else {
                pinned
            };
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()) || (allow_loopback && a.ip().is_loopback()))
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address ({} refused)",
                    found.len()
                )
                .into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PublicOnly;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on loopback answering every request 204.
    async fn loopback_server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        port
    }

    fn client(allow_loopback: bool) -> reqwest::Client {
        reqwest::Client::builder()
            .dns_resolver(PublicOnly {
                allow_loopback,
                ..PublicOnly::default()
            })
            .no_proxy()
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_never_reached_unless_a_local_run_allows_it() {
        let port = loopback_server().await;
        let url = format!("http://localhost:{port}/hook");
        let refused = client(false).post(&url).send().await.unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        let mut chain = Some(&refused as &dyn std::error::Error);
        let mut said = String::new();
        while let Some(error) = chain {
            said.push_str(&error.to_string());
            chain = error.source();
        }
        assert!(said.contains("no public address"), "{said}");
        let local = client(true).post(&url).send().await.unwrap();
        assert_eq!(local.status(), 204);
    }
}
