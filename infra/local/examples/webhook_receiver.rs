//! A webhook receiver verifying foxrelay's deliveries (the README's):
//! `WEBHOOK_SECRET=whsec_… cargo run -p foxrelay-local --example webhook_receiver`,
//! then `cargo run -p foxrelay-local -- demo --webhook
//! http://127.0.0.1:8088/hooks/foxrelay --webhook-secret whsec_…`.
use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
use standardwebhooks::Webhook;
use std::sync::Arc;

#[tokio::main]
async fn main() {
    let secret = std::env::var("WEBHOOK_SECRET").expect("the endpoint's whsec_ secret");
    let hook = Arc::new(Webhook::new(&secret).expect("a whsec_ secret"));
    let receive = move |headers: HeaderMap, body: Bytes| async move {
        if hook.verify(&body, &headers).is_err() {
            return StatusCode::UNAUTHORIZED; // not from foxrelay, or replayed late
        }
        // Every try of one event has the same webhook-id: deduplicate on it.
        let id = &headers["webhook-id"];
        println!("{id:?} {}", String::from_utf8_lossy(&body));
        StatusCode::NO_CONTENT
    };
    let app = Router::new().route("/hooks/foxrelay", post(receive));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8088")
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
