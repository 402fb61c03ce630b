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
//! 5. The first poll message goes out with the schedule's first delay, or
//!    the first time of the plan learned for the order's products (chosen
//!    with the intent, and stored on it).

use crate::error::ApiError;
use crate::view::order_json;
use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::budget::Priority;
use foxrelay_shared::domain::idempotency::{IdempotencyKey, RETENTION, fingerprint};
use foxrelay_shared::domain::{NewOrder, OrderStatus, PollKind, PollMessage, Principal};
use foxrelay_shared::events::{EventPublisher, OpsAlert};
use foxrelay_shared::foxreload::{
    ErrorClass, HeldBy, Operation, Supplier, SupplierError, SupplierOrder,
};
use foxrelay_shared::governor::Asking;
use foxrelay_shared::placement::{Found, Posted, ReconcileOptions, pay, undecided};
use foxrelay_shared::plans::Plans;
use foxrelay_shared::queue::{MAX_DELAY, PollQueue};
use foxrelay_shared::store::{
    Begin, IdempotencyClaim, IdempotencyRecord, IdempotencyStore, OrderRecord, PlacementStore,
    StackAlerts, StoreError, StoredResponse, SummaryReader, SupplierProblem,
};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

/// The answer to a create the stack's FoxReload budget held back: `busy`
/// when the budget is spent; when its store was too slow for the time the
/// request had left (or failed), or the request had too little time left
/// for a slot a create is given, not the budget: not sent in time.
fn held_back(error: &SupplierError) -> ApiError {
    let wait = error.retry_after().unwrap_or_default();
    match error {
        SupplierError::Throttled {
            by: HeldBy::Store | HeldBy::Deadline,
            ..
        } => ApiError::not_sent().retry_after(wait.max(Duration::from_secs(1))),
        _ => ApiError::budget_spent(wait),
    }
}

/// Most create attempts given back because a cut of the stack's FoxReload
/// budget voided their slots before they were sent.
const MAX_VOIDED: u32 = 3;

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
    /// How often operations are told again that FoxReload refuses the API
    /// key, while it does.
    pub key_alert_every: Duration,
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
            key_alert_every: Duration::from_secs(900),
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
    /// Whether this is the stored answer of an earlier request with the
    /// same key (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

/// The stack alert sent while FoxReload refuses foxrelay's API key.
pub const KEY_REFUSED_ALERT: &str = "foxreload_key_refused";

/// What create-order's role may do with the store: its keys, placing
/// orders, alerts about the whole stack, and reading the summaries plans
/// are made from (the template's `CreateOrderFunction` grants no more).
pub trait CreateOrderStore:
    IdempotencyStore + PlacementStore + StackAlerts + SummaryReader
{
}

impl<T: IdempotencyStore + PlacementStore + StackAlerts + SummaryReader> CreateOrderStore for T {}

/// The create flow over its ports.
pub struct Creator<S, Q, F, C, P> {
    pub store: S,
    pub queue: Q,
    pub supplier: F,
    pub clock: C,
    /// Where operations alerts go (FoxReload refusing our key).
    pub publisher: P,
    pub options: CreateOptions,
    /// Learned poll plans, per container.
    pub plans: Plans,
}

/// How placing the order at FoxReload ended.
enum Placed {
    /// Our order holds this supplier order.
    Ours(SupplierOrder),
    /// Nothing was bought, for sure.
    NotBought(SupplierError),
    /// No POST of this create left: the store was too slow to record one
    /// close enough to its send, or no time was left for a first one.
    /// Nothing was bought, for sure.
    NotSent(SupplierProblem),
    /// FoxReload refused: nothing was bought, and retrying will not help.
    Refused(SupplierError),
    /// Could not decide in time: left to poll-order.
    Undecided(SupplierProblem),
    /// Our order moved on meanwhile (another holder finished it).
    Moved,
}

impl<S, Q, F, C, P> Creator<S, Q, F, C, P>
where
    S: CreateOrderStore,
    Q: PollQueue,
    F: Supplier,
    C: Clock,
    P: EventPublisher,
{
    /// `POST /orders` by `principal`. Its idempotency key is its own: the
    /// same key from another principal is another request.
    pub async fn create(
        &self,
        order: NewOrder,
        key: Option<IdempotencyKey>,
        principal: Principal,
        deadline: Instant,
    ) -> Result<Answer, ApiError> {
        // A customer is waiting: FoxReload calls are creates, first in the
        // stack's budget, waited for while the request's time allows.
        // A slot waited for leaves time for the call itself.
        let until = deadline
            .checked_sub(self.options.reconcile.call_budget)
            .unwrap_or(deadline);
        let asking = Asking {
            priority: Priority::Create,
            until: Some(until),
        };
        asking
            .scope(self.create_within(order, key, principal, deadline))
            .await
    }

    async fn create_within(
        &self,
        order: NewOrder,
        key: Option<IdempotencyKey>,
        principal: Principal,
        deadline: Instant,
    ) -> Result<Answer, ApiError> {
        let now = self.clock.now();
        let order_id = uuid::Uuid::new_v4().to_string();
        let holder = uuid::Uuid::new_v4().to_string();
        let claim_for = |stored_key: String| IdempotencyClaim {
            key: stored_key,
            fingerprint: fingerprint(&order),
            holder: holder.clone(),
            locked_until: now + self.options.key_lock,
            expires_at: now + RETENTION,
        };
        if let Some(key) = &key
            && let Some(record) = self.unscoped_key(key).await?
        {
            return self
                .replay(record, claim_for(key.as_str().to_owned()), deadline)
                .await;
        }
        let claim = key.as_ref().map(|key| claim_for(key.scoped(&principal)));
        // A slot of the stack's FoxReload budget first: the intent records
        // its time as the first POST's, and the POST leaves in it.
        let slot = match self.supplier.reserve(Operation::CreateOrder).await {
            Ok(slot) => slot,
            Err(error) => {
                // A retry of a request already taken needs no slot.
                if let Some(claim) = &claim
                    && let Some(record) = self
                        .store
                        .idempotency(&claim.key)
                        .await
                        .map_err(|e| store_error(&e))?
                {
                    return self.replay(record, claim.clone(), deadline).await;
                }
                warn!(%error, "no slot of the FoxReload budget for a create; nothing stored");
                return Err(held_back(&error));
            }
        };
        let now = self.clock.now();
        let plan = self.plans.plan_for(&self.store, &order.lines).await;
        let mut intent = OrderRecord::intent(
            order_id.clone(),
            &order,
            claim.as_ref().map(|c| c.key.clone()),
            principal,
            now,
        );
        intent.posted_at = vec![slot.unwrap_or(now)];
        intent.plan_step = plan.as_ref().map(|_| 0);
        intent.poll_plan = plan;
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

    /// A key stored before keys were scoped by caller, still unexpired: its
    /// request is answered from it as before (its order may exist and be
    /// paid), so an upgrade never buys a retried order twice. Such keys stop
    /// existing 24 hours after the upgrade. A key that is another caller's
    /// scoped key (`{scope}#{key}` sent as a key) is not one: its order
    /// names its caller.
    async fn unscoped_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, ApiError> {
        let Some(record) = self
            .store
            .idempotency(key.as_str())
            .await
            .map_err(|e| store_error(&e))?
            .filter(|r| r.expires_at > self.clock.now())
        else {
            return Ok(None);
        };
        let order = self
            .store
            .order(&record.order_id)
            .await
            .map_err(|e| store_error(&e))?;
        let unscoped = order.is_none_or(|order| order.principal.is_none());
        Ok(unscoped.then_some(record))
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
            ));
        }
        if let Some(response) = record.response {
            return Ok(Answer {
                status: response.status,
                body: response.body,
                order_id: record.order_id,
                new_order: false,
                replayed: true,
            });
        }
        let now = self.clock.now();
        if record.locked_until > now {
            let wait = (record.locked_until - now).whole_seconds().clamp(1, 60) as u64;
            return Err(in_progress(Duration::from_secs(wait)));
        }
        // The holder died mid-way: take over its order, never a new one;
        // unless scan-stalled handed it to poll-order, which is settling it.
        if settling_in_poll_order(&self.stored(&record.order_id).await?) {
            return Err(in_progress(SETTLING_RETRY));
        }
        let taken = self
            .store
            .take_over(&record, &claim.holder, now + self.options.key_lock, now)
            .await
            .map_err(|e| store_error(&e))?;
        if !taken {
            return Err(in_progress(Duration::from_secs(1)));
        }
        let order = self.stored(&record.order_id).await?;
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

    /// The order as stored, or 404.
    async fn stored(&self, order_id: &str) -> Result<OrderRecord, ApiError> {
        self.store
            .order(order_id)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| ApiError::not_found("order"))
    }

    /// Places the order at FoxReload, pays, starts polling, and answers.
    async fn place_and_answer(
        &self,
        order: OrderRecord,
        claim: Option<&IdempotencyClaim>,
        ambiguous_from_start: bool,
        deadline: Instant,
    ) -> Result<Answer, ApiError> {
        // The POSTs recorded on the order as this request knows them: it is
        // settled only as such.
        // (None counted on an order from before POSTs were recorded.)
        let mut posts = if order.posts_recorded {
            order.posted_at.len()
        } else {
            0
        };
        let placed = self
            .place(&order, ambiguous_from_start, deadline, &mut posts)
            .await;
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
                self.start_polling(&order, PollKind::Poll).await;
            }
            Placed::NotBought(error) => {
                warn!(%error, "FoxReload unavailable; nothing bought");
                if self
                    .not_placed(id, posts, &SupplierProblem::from(&error), claim, None)
                    .await?
                {
                    let api = match error {
                        SupplierError::Throttled { .. } => held_back(&error),
                        _ => ApiError::supplier_unavailable(error.retry_after()),
                    };
                    return Err(api.with("orderId", id.clone()));
                }
            }
            Placed::NotSent(problem) => {
                warn!(
                    detail = problem.detail.as_deref(),
                    "no POST sent; nothing bought"
                );
                if self.not_placed(id, posts, &problem, claim, None).await? {
                    return Err(ApiError::not_sent().with("orderId", id.clone()));
                }
            }
            Placed::Refused(error) => {
                warn!(%error, "FoxReload refused the order");
                let api = ApiError::supplier_refused(&error).with("orderId", id.clone());
                // The request's fault: the same request gets the same
                // answer. Ours (our key, our account): a retry with the
                // same key must work once the operator has fixed it.
                let kept = (api.status < 500).then_some(&api);
                let settled = self
                    .not_placed(id, posts, &SupplierProblem::from(&error), claim, kept)
                    .await?;
                if matches!(error, SupplierError::Unauthorized { .. }) {
                    self.alert_key_refused(&order, &error).await;
                }
                if settled {
                    return Err(api);
                }
            }
            Placed::Undecided(problem) => {
                warn!(kind = %problem.kind, "create undecided; left to poll-order");
                match self.store.mark_reconciling(id, posts, &problem, now).await {
                    Ok(()) => self.start_polling(&order, PollKind::Reconcile).await,
                    Err(StoreError::Conflict { .. }) => moved_meanwhile(),
                    Err(error) => return Err(store_error(&error)),
                }
            }
            Placed::Moved => {}
        }
        let mut answer = self.answer(id, claim).await?;
        answer.new_order = !ambiguous_from_start;
        Ok(answer)
    }

    /// Settles an order FoxReload did not take: `not_placed`, and its key
    /// either keeps `answer` for replays or is freed for a retry. False
    /// when the order had moved meanwhile ([`moved_meanwhile`]): nothing
    /// is settled, and the order as it stands is the answer.
    async fn not_placed(
        &self,
        order_id: &str,
        posts: usize,
        problem: &SupplierProblem,
        claim: Option<&IdempotencyClaim>,
        answer: Option<&ApiError>,
    ) -> Result<bool, ApiError> {
        let now = self.clock.now();
        match self
            .store
            .mark_not_placed(order_id, posts, problem, now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                moved_meanwhile();
                return Ok(false);
            }
            Err(error) => return Err(store_error(&error)),
        }
        let Some(claim) = claim else {
            return Ok(true);
        };
        let done = match answer {
            Some(api) => {
                let response = StoredResponse {
                    status: api.status,
                    body: api.body(),
                };
                self.store
                    .finish(&claim.key, &claim.holder, &response)
                    .await
            }
            None => self.store.release(&claim.key, &claim.holder).await,
        };
        match done {
            Ok(()) => Ok(true),
            // Taken over meanwhile: its new holder answers from the order.
            Err(StoreError::Conflict { .. }) => {
                warn!("idempotency key taken over meanwhile");
                Ok(true)
            }
            Err(error) => Err(store_error(&error)),
        }
    }

    /// Tells operations that FoxReload refuses foxrelay's API key: once per
    /// [`CreateOptions::key_alert_every`] for the whole stack, however many
    /// creates fail meanwhile.
    async fn alert_key_refused(&self, order: &OrderRecord, error: &SupplierError) {
        let now = self.clock.now();
        let before = now - self.options.key_alert_every;
        match self
            .store
            .claim_stack_alert(KEY_REFUSED_ALERT, before, now)
            .await
        {
            Ok(true) => {
                let alert = OpsAlert::for_order(
                    order,
                    KEY_REFUSED_ALERT,
                    "FoxReload refuses foxrelay's API key: every create fails with 502 and nothing \
                     is bought. Check the key in Secrets Manager and the key's IP allowlist at \
                     FoxReload.",
                    Some(&SupplierProblem::from(error)),
                    now,
                );
                if let Err(publish) = self.publisher.publish_alert(&alert).await {
                    warn!(error = %publish, "API key alert not sent");
                    if let Err(release) =
                        self.store.release_stack_alert(KEY_REFUSED_ALERT, now).await
                    {
                        warn!(error = %release, "API key alert claim not given back");
                    }
                }
            }
            Ok(false) => {}
            Err(claim) => warn!(error = %claim, "API key alert not claimed"),
        }
    }

    /// Reads the order back and answers 202, keeping the answer for replays;
    /// or, for an order that bought nothing (settled `not_placed` by a
    /// holder this request took the key over from, or by another worker
    /// meanwhile), the retryable 503 its holder answered, with the key
    /// freed: a 202 would tell the client an order was accepted that is
    /// never bought and never published.
    async fn answer(
        &self,
        order_id: &str,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Answer, ApiError> {
        let order = self.stored(order_id).await?;
        if settling_in_poll_order(&order) {
            // Handed over while this request ran (its key's lock ran out):
            // the key is left as it is, for a retry to find the outcome.
            warn!("the order is being settled by poll-order; no answer kept");
            return Err(in_progress(SETTLING_RETRY));
        }
        if order.status == OrderStatus::Creating && order.supplier_order_id.is_none() {
            // Another request is placing it still (this one found the
            // order moved under it): never a 202 for an order that may yet
            // buy nothing. The key is left held, for a retry to find the
            // outcome. (Claimed, it is bought, whatever FoxReload's status
            // said.)
            warn!("another request is placing the order; no answer kept");
            return Err(in_progress(PLACING_RETRY));
        }
        if order.status == OrderStatus::NotPlaced {
            warn!("the order bought nothing; the key is freed for a retry");
            if let Some(claim) = claim {
                self.store
                    .release(&claim.key, &claim.holder)
                    .await
                    .map_err(|e| store_error(&e))?;
            }
            return Err(ApiError::not_sent().with("orderId", order_id.to_owned()));
        }
        let answer = Answer {
            status: 202,
            body: order_json(&order).to_string(),
            order_id: order_id.to_owned(),
            new_order: false,
            replayed: false,
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

    /// POSTs and claims, reconciling after every ambiguous outcome. `posts`:
    /// the POSTs recorded on the order, counted on as this request records
    /// its own (or reads them back).
    async fn place(
        &self,
        order: &OrderRecord,
        ambiguous_from_start: bool,
        deadline: Instant,
        posts: &mut usize,
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
        // The intent recorded the first POST.
        let mut intent_post = !ambiguous_from_start;
        let mut attempts = 0;
        let mut voided = 0;
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
                *posts = current.posted_at.len();
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
                let why = "no attempt left in the time budget";
                // Every POST so far was answered "not made" or never left.
                if !reconcile_first {
                    return Ok(Placed::NotSent(not_sent(why)));
                }
                return Ok(Placed::Undecided(undecided(why)));
            }
            attempts += 1;
            // The intent recorded the first POST's time.
            let recorded = std::mem::take(&mut intent_post)
                .then(|| order.posted_at.first().copied())
                .flatten();
            let posted = reconcile
                .post(
                    &self.store,
                    &self.supplier,
                    &self.clock,
                    &order.order_id,
                    &request,
                    posts,
                    recorded,
                )
                .await?;
            match posted {
                Posted::Claimed(created) => return Ok(Placed::Ours(created)),
                Posted::Moved => return Ok(Placed::Moved),
                // Never sent: a cut of the budget voided its slot. The
                // attempt is given back (a few times; a cut comes at most
                // once per cool-down) and another made in a new slot,
                // while there is time.
                Posted::SlotVoided => {
                    if voided < MAX_VOIDED {
                        voided += 1;
                        attempts -= 1;
                    }
                }
                Posted::NotSent => {
                    let why = "the store was too slow to record a POST before sending it";
                    // No earlier POST may have made an order (each was
                    // answered "not made" or never left), and this one was
                    // never sent: nothing was bought.
                    if !reconcile_first {
                        return Ok(Placed::NotSent(not_sent(why)));
                    }
                    return Ok(Placed::Undecided(undecided(why)));
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
                    // The stack's budget had no slot within the create's
                    // reach (it waited what it could): the caller is told
                    // at once, with when to come back.
                    ErrorClass::Retryable if matches!(error, SupplierError::Throttled { .. }) => {
                        return Ok(Placed::NotBought(error));
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
    async fn start_polling(&self, order: &OrderRecord, kind: PollKind) {
        let order_id = order.order_id.as_str();
        let now = self.clock.now();
        // On a plan, its first time counts from the payment just made. A
        // create left to reconciliation is not placed yet: its plan's clock
        // has not started, and it is reconciled after the usual delay.
        let delay = order
            .poll_plan
            .as_ref()
            .filter(|_| kind == PollKind::Poll)
            .and_then(|planned| {
                self.plans
                    .learning
                    .first_delay(&planned.plan, Duration::ZERO)
            })
            .unwrap_or(self.options.first_poll_delay);
        let message = PollMessage {
            order_id: order_id.to_owned(),
            seq: 1,
            kind,
        };
        if let Err(error) = self
            .store
            .schedule_poll(order_id, 1, now + delay.min(MAX_DELAY), now)
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

/// Why a create sent no POST.
fn not_sent(why: &str) -> SupplierProblem {
    SupplierProblem {
        kind: "not_sent".into(),
        status: None,
        code: None,
        detail: Some(why.into()),
    }
}

fn store_error(error: &StoreError) -> ApiError {
    ApiError::store(error)
}

/// How soon a retry comes back while poll-order settles its order: it
/// reconciles a handed-over create at once, in seconds.
const SETTLING_RETRY: Duration = Duration::from_secs(5);

/// When a retry of a create another request is still placing is told to
/// come back.
const PLACING_RETRY: Duration = Duration::from_secs(2);

/// The order left `creating` under this request: another request (one that
/// took its key over) or poll-order settled it, or is settling it. Nothing
/// is written over it; the order as it stands is the answer.
fn moved_meanwhile() {
    warn!("the order was settled by another meanwhile; answered from it as it stands");
}

/// A create that died before it was settled, handed by scan-stalled to
/// poll-order: it finds whether FoxReload took the order and, found
/// nowhere, ends it `not_placed` (its client had no answer). A retry
/// answered `202` meanwhile would be promised an order that may end
/// bought nothing; it is told the request is in progress, and comes back
/// to `202` once the order is FoxReload's, or to `503` with the key freed
/// (placed anew) once it is `not_placed`.
fn settling_in_poll_order(order: &OrderRecord) -> bool {
    order.handed_over && order.status == OrderStatus::Reconciling
}

/// 409: the first request with this key is still running.
fn in_progress(retry_after: Duration) -> ApiError {
    ApiError::new(
        409,
        "request_in_progress",
        "a request with this Idempotency-Key is still in progress; retry shortly",
    )
    .retry_after(retry_after)
}
