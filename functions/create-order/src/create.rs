//! Creating an order without ever buying twice.
//!
//! 1. The intent (status `creating`) and the idempotency key are stored in one
//!    conditional transaction before FoxReload is called.
//! 2. `POST /api/orders/`; the supplier order is claimed for our order with a
//!    conditional write, so no two of our orders can hold the same one.
//! 3. An ambiguous create (the request may have taken effect) is reconciled
//!    against FoxReload's recent orders before anything is bought again; only
//!    when a re-check still finds nothing is a new POST made, a bounded number
//!    of times. Undecided within the time budget, the order is left
//!    `reconciling` for poll-order.
//! 4. With auto-pay, `POST /pay`; a refusal is stored and returned, and the
//!    order is still polled so its cancellation is published.
//! 5. The first poll message goes out with the schedule's first delay.

use crate::error::ApiError;
use crate::view::order_json;
use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::idempotency::{IdempotencyKey, RETENTION, fingerprint};
use foxrelay_shared::domain::{NewOrder, OrderStatus, PollKind, PollMessage};
use foxrelay_shared::foxreload::{ErrorClass, Supplier, SupplierError, SupplierOrder};
use foxrelay_shared::placement::{Found, Posted, ReconcileOptions, pay, undecided};
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::store::{
    Begin, IdempotencyClaim, IdempotencyRecord, OrderRecord, OrderStore, StoreError,
    StoredResponse, SupplierProblem,
};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

/// How the create flow behaves; every figure has a default.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub is_mock: bool,
    pub auto_pay: bool,
    /// Delay of the first poll message.
    pub first_poll_delay: Duration,
    /// POSTs at most per order (the first and the re-tries after
    /// reconciliation found nothing, or after a retryable failure).
    pub max_create_attempts: u32,
    /// How an ambiguous create is reconciled, and the time a FoxReload call
    /// may take (no call starts with less than that left in the budget).
    pub reconcile: ReconcileOptions,
    /// How long a request holds its idempotency key before another may take
    /// it over; longer than the function's timeout.
    pub key_lock: Duration,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            is_mock: false,
            auto_pay: true,
            first_poll_delay: Duration::from_secs(5),
            max_create_attempts: 3,
            reconcile: ReconcileOptions::default(),
            key_lock: Duration::from_secs(60),
        }
    }
}

/// A successful answer: `202` and the order, or a replayed answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub order_id: String,
    /// Whether this request placed the order (not a replay, not a takeover
    /// of an earlier request's order).
    pub new_order: bool,
}

/// The create flow over its ports.
pub struct Creator<S, Q, F, C> {
    pub store: S,
    pub queue: Q,
    pub supplier: F,
    pub clock: C,
    pub options: CreateOptions,
}

/// How placing the order at FoxReload ended.
enum Placed {
    /// Our order holds this supplier order.
    Ours(SupplierOrder),
    /// Nothing was bought, for sure.
    NotBought(SupplierError),
    /// FoxReload refused: nothing was bought, and retrying will not help.
    Refused(SupplierError),
    /// Could not decide in time: left to poll-order.
    Undecided(SupplierProblem),
    /// Our order moved on meanwhile (another holder finished it).
    Moved,
}

impl<S: OrderStore, Q: PollQueue, F: Supplier, C: Clock> Creator<S, Q, F, C> {
    /// `POST /orders`.
    pub async fn create(
        &self,
        order: NewOrder,
        key: Option<IdempotencyKey>,
        deadline: Instant,
    ) -> Result<Answer, ApiError> {
        let now = self.clock.now();
        let order_id = uuid::Uuid::new_v4().to_string();
        let holder = uuid::Uuid::new_v4().to_string();
        let claim = key.as_ref().map(|key| IdempotencyClaim {
            key: key.as_str().to_owned(),
            fingerprint: fingerprint(&order),
            holder: holder.clone(),
            locked_until: now + self.options.key_lock,
            expires_at: now + RETENTION,
        });
        let intent = OrderRecord::intent(
            order_id.clone(),
            &order,
            key.as_ref().map(|k| k.as_str().to_owned()),
            now,
        );
        match self
            .store
            .begin(&intent, claim.as_ref())
            .await
            .map_err(|e| store_error(&e))?
        {
            Begin::Started => {
                let span = info_span!("create", order_id = %order_id);
                self.place_and_answer(intent, claim.as_ref(), false, deadline)
                    .instrument(span)
                    .await
            }
            Begin::KeyTaken(record) => {
                let claim = claim.expect("a key was given");
                self.replay(record, claim, deadline).await
            }
        }
    }

    /// The key is known: the same answer, a refusal, or a takeover.
    async fn replay(
        &self,
        record: IdempotencyRecord,
        claim: IdempotencyClaim,
        deadline: Instant,
    ) -> Result<Answer, ApiError> {
        if record.fingerprint != claim.fingerprint {
            return Err(ApiError::new(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            )
            .with("orderId", record.order_id));
        }
        if let Some(response) = record.response {
            return Ok(Answer {
                status: response.status,
                body: response.body,
                order_id: record.order_id,
                new_order: false,
            });
        }
        let now = self.clock.now();
        if record.locked_until > now {
            return Err(ApiError::new(
                409,
                "request_in_progress",
                "a request with this Idempotency-Key is still in progress; retry shortly",
            )
            .with("orderId", record.order_id));
        }
        // The holder died mid-way: take over its order, never a new one.
        let taken = self
            .store
            .take_over(&record, &claim.holder, now + self.options.key_lock, now)
            .await
            .map_err(|e| store_error(&e))?;
        if !taken {
            return Err(ApiError::new(
                409,
                "request_in_progress",
                "a request with this Idempotency-Key is still in progress; retry shortly",
            ));
        }
        let order = self
            .store
            .order(&record.order_id)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| ApiError::not_found("order"))?;
        let span = info_span!("create", order_id = %order.order_id, takeover = true);
        match order.status {
            OrderStatus::Creating => {
                // The holder may have POSTed: reconcile before anything else.
                self.place_and_answer(order, Some(&claim), true, deadline)
                    .instrument(span)
                    .await
            }
            _ => {
                self.answer(&order.order_id, Some(&claim))
                    .instrument(span)
                    .await
            }
        }
    }

    /// Places the order at FoxReload, pays, starts polling, and answers.
    async fn place_and_answer(
        &self,
        order: OrderRecord,
        claim: Option<&IdempotencyClaim>,
        ambiguous_from_start: bool,
        deadline: Instant,
    ) -> Result<Answer, ApiError> {
        let placed = self.place(&order, ambiguous_from_start, deadline).await;
        let now = self.clock.now();
        let id = &order.order_id;
        match placed.map_err(|e| store_error(&e))? {
            Placed::Ours(supplier_order) => {
                info!(supplier_order_id = %supplier_order.id, "supplier order claimed");
                if self.options.auto_pay {
                    pay(
                        &self.store,
                        &self.supplier,
                        &self.clock,
                        id,
                        &supplier_order,
                    )
                    .await;
                }
                self.start_polling(id, PollKind::Poll).await;
            }
            Placed::NotBought(error) => {
                warn!(%error, "FoxReload unavailable; nothing bought");
                self.store
                    .mark_not_placed(id, &SupplierProblem::from(&error), now)
                    .await
                    .map_err(|e| store_error(&e))?;
                if let Some(claim) = claim {
                    self.store
                        .release(&claim.key, &claim.holder)
                        .await
                        .map_err(|e| store_error(&e))?;
                }
                return Err(ApiError::supplier_unavailable().with("orderId", id.clone()));
            }
            Placed::Refused(error) => {
                warn!(%error, "FoxReload refused the order");
                self.store
                    .mark_not_placed(id, &SupplierProblem::from(&error), now)
                    .await
                    .map_err(|e| store_error(&e))?;
                let api = ApiError::supplier_refused(&error).with("orderId", id.clone());
                if let Some(claim) = claim {
                    let response = StoredResponse {
                        status: api.status,
                        body: api.body(),
                    };
                    self.store
                        .finish(&claim.key, &claim.holder, &response)
                        .await
                        .map_err(|e| store_error(&e))?;
                }
                return Err(api);
            }
            Placed::Undecided(problem) => {
                warn!(kind = %problem.kind, "create undecided; left to poll-order");
                self.store
                    .mark_reconciling(id, &problem, now)
                    .await
                    .map_err(|e| store_error(&e))?;
                self.start_polling(id, PollKind::Reconcile).await;
            }
            Placed::Moved => {}
        }
        let mut answer = self.answer(id, claim).await?;
        answer.new_order = !ambiguous_from_start;
        Ok(answer)
    }

    /// Reads the order back and answers 202, keeping the answer for replays.
    async fn answer(
        &self,
        order_id: &str,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Answer, ApiError> {
        let order = self
            .store
            .order(order_id)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| ApiError::not_found("order"))?;
        let answer = Answer {
            status: 202,
            body: order_json(&order).to_string(),
            order_id: order_id.to_owned(),
            new_order: false,
        };
        if let Some(claim) = claim {
            let response = StoredResponse {
                status: answer.status,
                body: answer.body.clone(),
            };
            match self
                .store
                .finish(&claim.key, &claim.holder, &response)
                .await
            {
                Ok(()) => {}
                // Taken over meanwhile: the new holder keeps the answer; this
                // one is still true.
                Err(StoreError::Conflict { .. }) => warn!("idempotency key taken over meanwhile"),
                Err(error) => return Err(store_error(&error)),
            }
        }
        Ok(answer)
    }

    /// POSTs and claims, reconciling after every ambiguous outcome.
    async fn place(
        &self,
        order: &OrderRecord,
        ambiguous_from_start: bool,
        deadline: Instant,
    ) -> Result<Placed, StoreError> {
        let reconcile = &self.options.reconcile;
        if !order.posts_recorded {
            // Placed by an earlier version that did not record when it
            // POSTed: never bought again automatically (poll-order alerts).
            return Ok(Placed::Undecided(undecided(
                "placed by an earlier version that did not record when it POSTed",
            )));
        }
        let request = order.supplier_request(self.options.is_mock);
        // POSTs recorded on the order; the intent recorded the first one.
        let mut posts = order.posted_at.len();
        let mut intent_post = !ambiguous_from_start;
        let mut attempts = 0;
        let mut reconcile_first = ambiguous_from_start;
        loop {
            if reconcile_first {
                // Read back: the POSTs of this invocation are on it now.
                let current = self.store.order(&order.order_id).await?.ok_or_else(|| {
                    StoreError::Conflict {
                        operation: "reconcile",
                        order_id: order.order_id.clone(),
                    }
                })?;
                posts = current.posted_at.len();
                match reconcile
                    .run(&self.store, &self.supplier, &self.clock, &current, deadline)
                    .await?
                {
                    Found::Claimed(supplier_order) => return Ok(Placed::Ours(supplier_order)),
                    Found::Moved => return Ok(Placed::Moved),
                    Found::Undecided(problem) | Found::Ambiguous { problem, .. } => {
                        return Ok(Placed::Undecided(problem));
                    }
                    Found::Nothing => {}
                }
            }
            if attempts >= self.options.max_create_attempts || !reconcile.time_left(deadline) {
                return Ok(Placed::Undecided(undecided(
                    "no attempt left in the time budget",
                )));
            }
            attempts += 1;
            // The intent recorded the first POST's time.
            let recorded = std::mem::take(&mut intent_post).then_some(order.created_at);
            let posted = reconcile
                .post(
                    &self.store,
                    &self.supplier,
                    &self.clock,
                    &order.order_id,
                    &request,
                    &mut posts,
                    recorded,
                )
                .await?;
            match posted {
                Posted::Claimed(created) => return Ok(Placed::Ours(created)),
                Posted::Moved => return Ok(Placed::Moved),
                Posted::NotSent => {
                    return Ok(Placed::Undecided(undecided(
                        "the store was too slow to record a POST before sending it",
                    )));
                }
                // Another of ours reconciled onto this one while our answer
                // was in flight: find the one it left us.
                Posted::TakenByAnother => reconcile_first = true,
                Posted::Failed(error) => match error.class() {
                    // An earlier attempt was ambiguous: it may exist, so the
                    // order is not settled as "not placed"; poll-order
                    // reconciles it.
                    ErrorClass::Permanent if reconcile_first => {
                        warn!(%error, "FoxReload refused a new attempt after an ambiguous one");
                        return Ok(Placed::Undecided(SupplierProblem::from(&error)));
                    }
                    ErrorClass::Permanent => return Ok(Placed::Refused(error)),
                    ErrorClass::Ambiguous => {
                        warn!(%error, "create outcome unknown; reconciling");
                        reconcile_first = true;
                    }
                    ErrorClass::Retryable if reconcile_first => {
                        // An earlier attempt was ambiguous: never give up as
                        // "not bought"; look again.
                    }
                    ErrorClass::Retryable => {
                        if attempts >= self.options.max_create_attempts
                            || !reconcile.time_left(deadline)
                        {
                            return Ok(Placed::NotBought(error));
                        }
                        let pause = error.retry_after().unwrap_or(Duration::from_millis(300));
                        if !reconcile.pause(pause, deadline).await {
                            return Ok(Placed::NotBought(error));
                        }
                    }
                },
            }
        }
    }

    /// Sends poll message 1. Its due time is stored first, so a lost send is
    /// found and revived by scan-stalled.
    async fn start_polling(&self, order_id: &str, kind: PollKind) {
        let now = self.clock.now();
        let delay = self.options.first_poll_delay;
        let message = PollMessage {
            order_id: order_id.to_owned(),
            seq: 1,
            kind,
        };
        if let Err(error) = self
            .store
            .schedule_poll(order_id, 1, now + delay, now)
            .await
        {
            warn!(%error, "first poll not recorded");
            return;
        }
        if let Err(error) = self.queue.send(&message, delay).await {
            warn!(%error, "first poll message not sent; scan-stalled will revive the chain");
        }
    }
}

fn store_error(error: &StoreError) -> ApiError {
    ApiError::store(error)
}
