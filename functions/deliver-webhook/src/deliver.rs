//! One message of the webhook queue: an order event, sent to every
//! endpoint that wants it, or one endpoint's delivery tried again.
//!
//! Each try builds the event again from the table (with the codes when
//! the endpoint takes them), signs it with the endpoint's secret and POSTs
//! it with the event's id as `webhook-id`, so every copy a receiver gets
//! of one event carries the same id. A 2xx is recorded, and a redelivered
//! message does not send there again; anything else is tried again on the
//! retry schedule, then kept in the dead-letter queue.

use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::event::event_id;
use foxrelay_shared::domain::webhook::{Breaker, Endpoint, RetrySchedule};
use foxrelay_shared::events::order_event;
use foxrelay_shared::metrics::{Metric, Metrics};
use foxrelay_shared::store::{StoreError, WebhookStore};
use foxrelay_shared::webhook::{
    Attempt, Delivery, QueueError, SecretError, Sender, WebhookMessage, WebhookQueue,
    WebhookSecrets,
};
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, info, info_span, warn};

/// Why a message is kept for redelivery: nothing was lost, the next
/// receipt goes on where this one stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("not a webhook queue message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// What became of one endpoint's delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 2xx.
    Delivered { status: u16 },
    /// It had reached the endpoint before (a redelivered message).
    AlreadyDelivered,
    /// Failed; queued for another try.
    Retrying { attempt: u32, after: Duration },
    /// Not due yet: queued again until it is.
    Waiting,
    /// Out of tries, or impossible: kept in the dead-letter queue.
    DeadLettered { reason: String },
}

/// How one try went, as the deliverer sees it.
enum Tried {
    /// Sent (or counted as a failed try while the breaker is open).
    Sent(Attempt),
    /// It can never succeed: the order or its event is gone.
    Impossible(String),
    /// The last try, and the endpoint's breaker is open: kept until it
    /// may be tried (Unix milliseconds), so the last try is always a
    /// request.
    Postponed(i64),
}

/// What a delivery found of a half-open breaker.
enum Claim {
    /// Closed (or closed meanwhile): sent as any delivery.
    Closed,
    /// This delivery probes it; the claim holds until then (Unix ms).
    Probe(i64),
    /// Another delivery holds it: held back as while it was open.
    HeldBack(Breaker, i64),
}

/// The deliverer over its ports; one per container.
pub struct Deliverer<S, Q, W, C> {
    pub store: S,
    pub queue: Q,
    pub secrets: W,
    pub sender: Sender,
    pub endpoints: Arc<[Endpoint]>,
    pub retries: RetrySchedule,
    pub clock: C,
    /// What became of each delivery, counted as it ends (the handler
    /// flushes after each batch).
    pub metrics: Metrics,
}

fn unix_ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl<S, Q, W, C> Deliverer<S, Q, W, C>
where
    S: WebhookStore + 'static,
    Q: WebhookQueue + 'static,
    W: WebhookSecrets + 'static,
    C: Clock + 'static,
{
    /// Handles one message; an event's deliveries run side by side, so a
    /// slow endpoint does not hold the others back.
    pub async fn handle(self: &Arc<Self>, body: &str) -> Result<Vec<Outcome>, DeliverError> {
        let deliveries = match WebhookMessage::parse(body).map_err(DeliverError::Malformed)? {
            WebhookMessage::Delivery(delivery) => vec![delivery],
            WebhookMessage::Event(event) => self
                .endpoints
                .iter()
                .filter(|e| e.wants(&event.kind, event.placed_by.as_deref()))
                .map(|endpoint| Delivery {
                    event_id: event.event_id.clone(),
                    order_id: event.order_id.clone(),
                    endpoint: endpoint.id.clone(),
                    attempt: 1,
                    not_before_ms: 0,
                    held: false,
                })
                .collect(),
        };
        let fanned_out = deliveries.len() > 1;
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in deliveries {
            let this = self.clone();
            let span = info_span!(
                "delivery",
                order_id = %delivery.order_id,
                event_id = %delivery.event_id,
                endpoint = %delivery.endpoint,
                attempt = delivery.attempt,
            );
            tasks.spawn(
                async move {
                    let outcome = match this.deliver(delivery.clone()).await {
                        // One endpoint's trouble (a throttled table, a
                        // secret unreadable for now) is queued as that
                        // endpoint's own delivery, so the event is not
                        // received again and sent anew to all.
                        Err(error) if fanned_out => {
                            warn!(%error, "webhook delivery queued to be tried again");
                            this.queue.retry(&delivery, Duration::ZERO).await?;
                            Ok(Outcome::Waiting)
                        }
                        other => other,
                    };
                    // Counted here, so a sibling delivery's failure does
                    // not hide what this one did.
                    if let Ok(outcome) = &outcome {
                        this.count(outcome);
                    }
                    outcome
                }
                .instrument(span),
            );
        }
        let mut outcomes = Vec::new();
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(outcome)) => outcomes.push(outcome),
                Ok(Err(error)) => failure = Some(error),
                Err(error) => failure = Some(DeliverError::Malformed(error.to_string())),
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(outcomes),
        }
    }

    fn count(&self, outcome: &Outcome) {
        let metric = match outcome {
            Outcome::Delivered { .. } => Metric::WebhooksDelivered,
            Outcome::Retrying { .. } => Metric::WebhookRetries,
            Outcome::DeadLettered { .. } => Metric::WebhooksDeadLettered,
            Outcome::AlreadyDelivered | Outcome::Waiting => return,
        };
        self.metrics.add(metric, 1);
    }

    /// One endpoint's delivery, one try.
    async fn deliver(&self, delivery: Delivery) -> Result<Outcome, DeliverError> {
        let now = self.clock.now();
        let now_ms = unix_ms(now);
        if delivery.not_before_ms > now_ms {
            let wait = Duration::from_millis((delivery.not_before_ms - now_ms).unsigned_abs());
            self.queue.retry(&delivery, wait).await?;
            return Ok(Outcome::Waiting);
        }
        let Some(endpoint) = self.endpoints.iter().find(|e| e.id == delivery.endpoint) else {
            return self
                .dead_letter(&delivery, "the endpoint is no longer configured".into())
                .await;
        };
        if self
            .store
            .delivered(&delivery.event_id, &endpoint.id)
            .await?
        {
            info!("already delivered");
            return Ok(Outcome::AlreadyDelivered);
        }
        let breaker = self.store.breaker(&endpoint.id).await?;
        match self.attempt(&delivery, endpoint, &breaker, now).await? {
            Tried::Sent(Attempt::Delivered { status }) => {
                // Recorded first: a failure after this leaves at worst the
                // breaker counting, never a second POST.
                self.store
                    .mark_delivered(&delivery.event_id, &endpoint.id, status, self.clock.now())
                    .await?;
                if breaker != Breaker::default() {
                    self.store.close_breaker(&endpoint.id).await?;
                }
                info!(status, "webhook delivered");
                Ok(Outcome::Delivered { status })
            }
            Tried::Sent(Attempt::Failed { reason, .. }) => self.try_again(&delivery, reason).await,
            Tried::Impossible(reason) => self.dead_letter(&delivery, reason).await,
            Tried::Postponed(until_ms) => {
                let wait = Duration::from_millis((until_ms - now_ms).max(0).unsigned_abs());
                let later = Delivery {
                    not_before_ms: until_ms,
                    held: true,
                    ..delivery
                };
                self.queue.retry(&later, wait).await?;
                info!(
                    wait_secs = wait.as_secs(),
                    "last try kept until the breaker closes"
                );
                Ok(Outcome::Waiting)
            }
        }
    }

    /// One try. While the endpoint's breaker is open no request is sent:
    /// the try counts as failed, but for the last, which waits once for
    /// the breaker, then is sent.
    async fn attempt(
        &self,
        delivery: &Delivery,
        endpoint: &Endpoint,
        breaker: &Breaker,
        now: time::OffsetDateTime,
    ) -> Result<Tried, DeliverError> {
        let now_ms = unix_ms(now);
        if !breaker.allows(now_ms) && !delivery.held {
            return Ok(self.held_back(delivery, breaker, now_ms));
        }
        let Some(order) = self.store.order(&delivery.order_id).await? else {
            return Ok(Tried::Impossible("the order is not in the table".into()));
        };
        if event_id(&order.order_id, order.status) != delivery.event_id {
            return Ok(Tried::Impossible(format!(
                "the order is {}: this event is not its own",
                order.status.as_str()
            )));
        }
        let codes = if endpoint.codes {
            match self.store.codes(&order.order_id).await {
                Ok(codes) => Some(codes),
                Err(StoreError::Corrupt { key, reason }) => {
                    return Ok(Tried::Impossible(format!(
                        "a code item is unreadable ({key}): {reason}"
                    )));
                }
                Err(error) => return Err(error.into()),
            }
        } else {
            None
        };
        let event = order_event(&order, codes);
        // Routed on what is stored, not on what the message says: a forged
        // or altered message cannot send one caller's order to another's
        // endpoint, nor a type the endpoint did not ask for.
        if !endpoint.wants(&event.kind, event.placed_by.as_deref()) {
            return Ok(Tried::Impossible(format!(
                "the order's {} event (placed by {}) is not for this endpoint",
                event.kind,
                event.placed_by.as_deref().unwrap_or("an unrecorded caller")
            )));
        }
        let body = serde_json::to_string(&event).expect("an order event is plain JSON");
        let signer = match self.secrets.signer(&endpoint.id).await {
            Ok(signer) => signer,
            // Nothing is sent unsigned: a failed try, not counted against
            // the endpoint, which was not asked.
            Err(error @ SecretError::Unusable { .. }) => {
                return Ok(Tried::Sent(Attempt::Failed {
                    status: None,
                    reason: error.to_string(),
                }));
            }
            Err(error) => return Err(error.into()),
        };
        // Half-open: one delivery probes, claimed when all is ready to
        // send; the others are held back as while it was open.
        let probe = if delivery.held {
            None
        } else {
            match self.claim_if_half_open(endpoint, breaker).await? {
                Claim::Closed => None,
                Claim::Probe(until) => Some(until),
                Claim::HeldBack(breaker, now_ms) => {
                    return Ok(self.held_back(delivery, &breaker, now_ms));
                }
            }
        };
        let attempt = self
            .sender
            .send(
                &endpoint.url,
                &delivery.event_id,
                now.unix_timestamp(),
                &body,
                &signer,
            )
            .await;
        if let Attempt::Failed { .. } = &attempt {
            self.count_failure(endpoint, delivery, breaker, probe)
                .await?;
        }
        Ok(Tried::Sent(attempt))
    }

    /// A request to `endpoint` failed: counted on its breaker as what it
    /// was (`probe`: the claim it held until, if it was the probe).
    async fn count_failure(
        &self,
        endpoint: &Endpoint,
        delivery: &Delivery,
        breaker: &Breaker,
        probe: Option<i64>,
    ) -> Result<(), DeliverError> {
        let now_ms = unix_ms(self.clock.now());
        match probe {
            // The probe failed: open again, for longer.
            Some(claimed_until) => {
                let next = breaker.after_failed_probe(now_ms);
                self.store
                    .record_failed_probe(&endpoint.id, claimed_until, &next)
                    .await?;
            }
            // A last try sent past an open or half-open breaker says
            // nothing new of the endpoint.
            None if delivery.held && Breaker::opens_at(breaker.failures) => {}
            None => {
                self.store.record_failure(&endpoint.id, now_ms).await?;
            }
        }
        Ok(())
    }

    /// Half-open: claims the probe for this delivery, or finds another
    /// delivery holds it. A claim lost to a breaker read before another
    /// probe's (since lapsed) is tried once more on the breaker as it is.
    async fn claim_if_half_open(
        &self,
        endpoint: &Endpoint,
        breaker: &Breaker,
    ) -> Result<Claim, DeliverError> {
        let mut seen = *breaker;
        for _ in 0..2 {
            let now_ms = unix_ms(self.clock.now());
            if !seen.half_open(now_ms) {
                return Ok(Claim::Closed);
            }
            let until = Breaker::probe_until(now_ms, self.sender.timeout());
            if self
                .store
                .claim_probe(&endpoint.id, seen.open_until_ms, until)
                .await?
            {
                info!("the endpoint's breaker is half-open: this delivery probes it");
                return Ok(Claim::Probe(until));
            }
            seen = self.store.breaker(&endpoint.id).await?;
            if !seen.allows(now_ms) {
                return Ok(Claim::HeldBack(seen, now_ms));
            }
        }
        let now_ms = unix_ms(self.clock.now());
        Ok(if seen.half_open(now_ms) {
            Claim::HeldBack(seen, now_ms)
        } else {
            Claim::Closed
        })
    }

    /// A try while the endpoint's breaker is open: failed without a
    /// request, but for the last, kept until the breaker lets it go.
    fn held_back(&self, delivery: &Delivery, breaker: &Breaker, now_ms: i64) -> Tried {
        if self.retries.after(delivery.attempt).is_none() {
            return Tried::Postponed(breaker.open_until_ms);
        }
        Tried::Sent(Attempt::Failed {
            status: None,
            reason: format!(
                "not sent: the endpoint failed {} times in a row; its breaker is open for {} s more",
                breaker.failures,
                (breaker.open_until_ms - now_ms).max(0) / 1_000
            ),
        })
    }

    async fn try_again(
        &self,
        delivery: &Delivery,
        reason: String,
    ) -> Result<Outcome, DeliverError> {
        let Some(after) = self.retries.after(delivery.attempt) else {
            return self
                .dead_letter(
                    delivery,
                    format!("out of tries ({}): {reason}", delivery.attempt),
                )
                .await;
        };
        let next = Delivery {
            attempt: delivery.attempt + 1,
            not_before_ms: unix_ms(self.clock.now())
                .saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            ..delivery.clone()
        };
        self.queue.retry(&next, after).await?;
        warn!(%reason, next_in_secs = after.as_secs(), "webhook failed; tried again later");
        Ok(Outcome::Retrying {
            attempt: next.attempt,
            after,
        })
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        reason: String,
    ) -> Result<Outcome, DeliverError> {
        self.queue.dead_letter(delivery, &reason).await?;
        warn!(%reason, "webhook dead-lettered");
        Ok(Outcome::DeadLettered { reason })
    }
}
