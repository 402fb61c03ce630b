//! A world for poll-order tests: a stack, the simulator, create-order to
//! place orders, queues subscribed to both topics, and an SQS event source
//! feeding poll-order as Lambda's would.

use crate::{Harness, drain_json, harness, http_event, subscribe_both};
use aws_lambda_events::encodings::Body;
use create_order::create::CreateOptions;
use foxrelay_local::{EventSourceOptions, SqsEventSource};
use foxrelay_shared::domain::event::OrderEvent;
use foxrelay_shared::domain::schedule::Schedule;
use foxrelay_shared::events::{EventPublisher, SnsPublisher};
use foxrelay_shared::metrics::Metrics;
use foxrelay_shared::store::{DynamoStore, OrderReader, OrderRecord};
use foxreload_sim::{SimConfig, Timing};
use poll_order::poll::{PollOptions, Poller};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Polls every second for a minute: the practical schedule, shortened.
pub fn quick_schedule() -> Schedule {
    Schedule {
        fast_interval: Duration::from_secs(1),
        jitter: 0.0,
        ..Schedule::practical()
    }
}

pub struct World {
    pub h: Harness,
    pub create: create_order::Handler,
    /// poll-order's metrics (in memory) for every handler of this world.
    pub metrics: Metrics,
    pub store: DynamoStore,
    pub events: String,
    pub alerts: String,
}

pub async fn world(timing: Timing) -> World {
    let h = harness(
        SimConfig {
            timing,
            ..SimConfig::default()
        },
        Duration::from_secs(2),
    )
    .await;
    // create-order plans warm-ups and learned plans from the schedule the
    // world polls on (its first poll after a second leaves no room for a
    // warm-up probe: orders start on the schedule itself).
    let mut context = h.context.clone();
    context.settings.schedule = quick_schedule();
    let create = create_order::Handler::with_options(
        context,
        CreateOptions {
            first_poll_delay: Duration::from_secs(1),
            ..CreateOptions::default()
        },
    );
    let store = h.context.store();
    let (events, alerts) =
        subscribe_both(&h.stack.clients, &h.stack.resources, &h.stack.prefix).await;
    let metrics = h.context.metrics(poll_order::METRICS);
    World {
        h,
        metrics,
        create,
        store,
        events,
        alerts,
    }
}

pub fn quick_timing() -> Timing {
    Timing {
        paid_to_processing: Duration::from_millis(100),
        fast_fulfilment: Duration::from_millis(500),
        payment_window: Duration::from_secs(3),
        unknown_status_for: Duration::from_millis(1_500),
        ..Timing::default()
    }
}

pub fn poll_options() -> PollOptions {
    PollOptions {
        schedule: quick_schedule(),
        ..PollOptions::default()
    }
}

impl World {
    pub fn source(&self, copies: usize, shuffle: bool) -> SqsEventSource {
        SqsEventSource::new(
            self.h.stack.clients.sqs.clone(),
            self.h.stack.resources.poll_queue_url(),
            self.h.stack.resources.arns["PollQueue"].clone(),
            EventSourceOptions {
                wait: Duration::from_secs(1),
                visibility: Some(Duration::from_secs(1)),
                copies,
                shuffle,
                ..EventSourceOptions::default()
            },
        )
    }

    /// poll-order over this world's poller, counting into its metrics.
    pub fn poll_handler<P: EventPublisher + 'static>(
        &self,
        publisher: P,
    ) -> poll_order::Handler<
        DynamoStore,
        foxrelay_shared::queue::SqsPollQueue,
        foxrelay_shared::startup::LiveFoxReload,
        P,
        foxrelay_shared::clock::SystemClock,
    > {
        poll_order::Handler::from_poller(self.poller(publisher), self.metrics.clone())
    }

    pub fn poller<P: EventPublisher>(
        &self,
        publisher: P,
    ) -> Poller<
        DynamoStore,
        foxrelay_shared::queue::SqsPollQueue,
        foxrelay_shared::startup::LiveFoxReload,
        P,
        foxrelay_shared::clock::SystemClock,
    > {
        Poller {
            store: self.store.clone(),
            queue: foxrelay_shared::queue::SqsPollQueue::new(
                self.h.stack.clients.sqs.clone(),
                self.h.stack.resources.poll_queue_url(),
            ),
            supplier: self.h.context.governed_foxreload(&self.metrics),
            publisher,
            clock: foxrelay_shared::clock::SystemClock,
            options: poll_options(),
        }
    }

    pub fn sns(&self) -> SnsPublisher {
        SnsPublisher::new(
            self.h.stack.clients.sns.clone(),
            self.h.stack.resources.order_events_topic_arn(),
            self.h.stack.resources.ops_alerts_topic_arn(),
        )
    }

    pub async fn place(&self, product: &str, quantity: u32) -> String {
        let body = json!({"items": [{"productId": product, "quantity": quantity}], "customerReference": format!("ref-{product}")});
        let response = crate::call(
            &self.create,
            http_event(
                "POST",
                "/orders",
                &[("content-type", "application/json")],
                Some(&body.to_string()),
            ),
        )
        .await;
        assert_eq!(response.status_code, 202, "{:?}", response.body);
        let Some(Body::Text(text)) = &response.body else {
            panic!("no body");
        };
        serde_json::from_str::<Value>(text).unwrap()["orderId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn order(&self, id: &str) -> OrderRecord {
        self.store.order(id).await.unwrap().expect("order stored")
    }

    /// Runs the event source into `handler` until every order in `ids` is
    /// notified, checking on each event's arrival that its codes were stored
    /// before it; returns the events by order id.
    pub async fn run_until_notified<S, Q, F, P, C>(
        &self,
        handler: &poll_order::Handler<S, Q, F, P, C>,
        source: &SqsEventSource,
        ids: &[String],
    ) -> BTreeMap<String, Vec<OrderEvent>>
    where
        S: poll_order::poll::PollOrderStore + 'static,
        Q: foxrelay_shared::queue::PollQueue + 'static,
        F: foxrelay_shared::foxreload::Supplier + 'static,
        P: EventPublisher + 'static,
        C: foxrelay_shared::clock::Clock + 'static,
    {
        let mut events: BTreeMap<String, Vec<OrderEvent>> = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            source
                .run_once(|event| async { handler.handle(event).await.unwrap() })
                .await
                .unwrap();
            for raw in drain_json(&self.h.stack.clients, &self.events).await {
                let event = crate::order_event(raw);
                let stored = self.store.codes(&event.order_id).await.unwrap();
                if event.codes_included {
                    assert_eq!(stored, event.codes, "codes stored before the event arrived");
                } else {
                    assert!(event.codes.is_empty());
                    assert_eq!(stored.len() as u32, event.code_count, "codes stored first");
                }
                events
                    .entry(event.order_id.clone())
                    .or_default()
                    .push(event);
            }
            let mut done = true;
            for id in ids {
                done &= self.order(id).await.notified_at.is_some() && events.contains_key(id);
            }
            if done {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "orders not finished in time"
            );
        }
    }

    /// What the simulator delivered for our order, by the documented rule.
    pub async fn delivered_by_simulator(&self, id: &str) -> Vec<String> {
        let order = self.order(id).await;
        crate::simulator_codes(&self.h.sim, order.supplier_order_id.as_deref().unwrap())
    }
}

pub fn codes_of(event: &OrderEvent) -> Vec<String> {
    event.codes.iter().map(|c| c.code.clone()).collect()
}
