//! The sweep: every order that is not finished (or not yet notified), read
//! through the sparse pending-orders index, never a table scan, so its cost
//! grows with pending orders, not with the table.
//!
//! Per order:
//! - ended and stored but never notified, past a grace → handed to poll-order,
//!   which publishes it with the same `eventId` (scan-stalled may not open a
//!   code, so it never builds an event itself);
//! - a polling chain whose next poll is overdue by more than a grace, with no
//!   worker holding it → revived with the next sequence number (poll-order's
//!   rules keep it from forking);
//! - not ended after `STALL_AFTER_SECS` → one alert to operations, again only
//!   after `STALL_REALERT_SECS`;
//! - still `creating` past a grace longer than create-order's key lock (its
//!   invocation died mid-way, or its client never retried) → handed to
//!   poll-order as `reconciling`, settled by reconciliation, never by a
//!   blind POST;
//! - an item that does not read as an order → skipped, counted, alerted
//!   once; the sweep goes on past it.
//!
//! Work per run is bounded; a run that stops early leaves a cursor, and the
//! next run resumes from it.

use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::{OrderStatus, PollKind, PollMessage};
use foxrelay_shared::events::{EventPublisher, OpsAlert};
use foxrelay_shared::placement::undecided;
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::store::{AlertSlot, OrderAlerts, OrderRecord, StoreError, SweepStore};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};

/// How the sweep behaves; every figure has a default.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Index items per query.
    pub page_size: u32,
    /// Index items per run at most; the next run resumes.
    pub max_items: u64,
    /// How overdue a chain's next poll must be before it is revived.
    pub revive_grace: Duration,
    /// How long an ended order may stay un-notified before it is published
    /// again.
    pub notify_grace: Duration,
    /// How long an order may stay `creating` before it is handed to
    /// reconciliation: longer than create-order's key lock (60 s) and its
    /// timeout, so no create-order invocation still works on it.
    pub creating_grace: Duration,
    pub stall_after: Duration,
    pub realert_after: Duration,
    /// Revivals in a row without a poll in between before the chain is
    /// alerted `chain_stuck` and revived only every `stuck_revival_delay`.
    pub max_revivals: u32,
    pub stuck_revival_delay: Duration,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            page_size: 100,
            max_items: 5_000,
            revive_grace: Duration::from_secs(120),
            notify_grace: Duration::from_secs(60),
            creating_grace: Duration::from_secs(120),
            stall_after: Duration::from_secs(600),
            realert_after: Duration::from_secs(3_600),
            max_revivals: 3,
            stuck_revival_delay: Duration::from_secs(900),
        }
    }
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// Index items the queries returned (the run's read cost).
    pub index_items_read: u64,
    /// Non-terminal orders past the stall threshold, alerted now or not.
    pub stalled_seen: u64,
    pub stalled_alerted: u64,
    pub stuck_alerted: u64,
    /// Orders left `creating` handed to poll-order's reconciliation.
    pub creates_handed_over: u64,
    pub chains_revived: u64,
    /// Ended orders never notified, handed to poll-order to publish their
    /// event again.
    pub events_republished: u64,
    /// Orders whose handling failed this run (retried next run).
    pub errors: u64,
    /// Index items that do not read as orders (skipped; alerted once).
    pub unreadable: u64,
    /// Whether the run reached the end of the index.
    pub complete: bool,
}

/// What scan-stalled's role may do with the store: read the pending index,
/// repair what it finds and claim alerts about orders (the template's
/// `ScanStalledFunction` grants no more; it may not open a code).
pub trait ScanStalledStore: SweepStore + OrderAlerts {}

impl<T: SweepStore + OrderAlerts> ScanStalledStore for T {}

/// The sweep over its ports.
pub struct Sweeper<S, Q, P, C> {
    pub store: S,
    pub queue: Q,
    pub publisher: P,
    pub clock: C,
    pub options: SweepOptions,
}

impl<S: ScanStalledStore, Q: PollQueue, P: EventPublisher, C: Clock> Sweeper<S, Q, P, C> {
    /// One run: from the saved cursor, at most `max_items` index items.
    pub async fn run(&self) -> Result<ScanReport, StoreError> {
        let mut report = ScanReport::default();
        let mut cursor = self.store.sweep_cursor().await?;
        loop {
            let room = self.options.max_items - report.index_items_read;
            let limit = (self.options.page_size as u64).min(room) as u32;
            let page = self.store.pending(limit, cursor.as_deref()).await?;
            report.index_items_read += page.items_read;
            for (pk, reason) in &page.unreadable {
                report.unreadable += 1;
                warn!(key = %pk, %reason, "pending item unreadable; skipped");
                if let Err(error) = self.alert_unreadable(pk, reason).await {
                    warn!(key = %pk, %error, "unreadable item not alerted; next run retries");
                }
            }
            for order in &page.orders {
                // Every line about this order carries its id.
                let span = info_span!("inspect", order_id = %order.order_id);
                if let Err(error) = self.inspect(order, &mut report).instrument(span).await {
                    warn!(order_id = %order.order_id, %error, "order not swept; next run retries");
                    report.errors += 1;
                }
            }
            cursor = page.next;
            if cursor.is_none() {
                report.complete = true;
                break;
            }
            if report.index_items_read >= self.options.max_items {
                break;
            }
        }
        self.store
            .save_sweep_cursor(cursor.as_deref(), self.clock.now())
            .await?;
        info!(
            index_items_read = report.index_items_read,
            stalled_seen = report.stalled_seen,
            stalled_alerted = report.stalled_alerted,
            stuck_alerted = report.stuck_alerted,
            chains_revived = report.chains_revived,
            events_republished = report.events_republished,
            errors = report.errors,
            unreadable = report.unreadable,
            creates_handed_over = report.creates_handed_over,
            complete = report.complete,
            "sweep finished"
        );
        Ok(report)
    }

    async fn inspect(
        &self,
        order: &OrderRecord,
        report: &mut ScanReport,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let now = self.clock.now();
        if order.status.is_terminal() {
            let ended = order.terminal_at.unwrap_or(order.updated_at);
            if order.notified_at.is_none() && now - ended >= self.options.notify_grace {
                // Handed over on every run at first. Still un-notified past
                // the stall threshold, poll-order cannot publish it (a code
                // that does not open, KMS or SNS refusing): alerted, and
                // handed over once per re-alert interval, not every run
                // into the dead-letter queue.
                let stuck = now - ended >= self.options.stall_after;
                if stuck {
                    let waited = (now - ended).whole_seconds();
                    let message = format!(
                        "the order ended {waited} s ago and its event is still not published: \
                         poll-order fails to publish it; look at poll-order's log for the order \
                         and at the dead-letter queue"
                    );
                    if !self
                        .alert(order, AlertSlot::NotNotified, "not_notified", message, now)
                        .await?
                    {
                        return Ok(());
                    }
                    report.stuck_alerted += 1;
                }
                // poll-order publishes a stored end it finds un-notified,
                // whatever the message's sequence number, and marks it.
                let message = PollMessage {
                    order_id: order.order_id.clone(),
                    seq: order.poll_seq,
                    kind: PollKind::Poll,
                };
                self.queue.send(&message, Duration::ZERO).await?;
                info!("un-notified end handed to poll-order to publish");
                report.events_republished += 1;
            }
            return Ok(());
        }
        let age = now - order.created_at;
        if order.status == OrderStatus::Creating {
            if age >= self.options.stall_after {
                report.stalled_seen += 1;
            }
            if age >= self.options.creating_grace {
                let seq = order.poll_seq + 1;
                let problem =
                    undecided("create-order stopped before the order was settled; reconciling it");
                if self
                    .store
                    .hand_over_create(order, seq, &problem, now)
                    .await?
                {
                    let message = PollMessage {
                        order_id: order.order_id.clone(),
                        seq,
                        kind: PollKind::Reconcile,
                    };
                    // Not sent: the due time is stored, a later run revives.
                    if let Err(error) = self.queue.send(&message, Duration::ZERO).await {
                        warn!(order_id = %order.order_id, %error, "reconcile message not sent");
                    }
                    info!(order_id = %order.order_id, "order left creating handed to reconciliation");
                    report.creates_handed_over += 1;
                } else if age >= self.options.stall_after
                    && self
                        .alert(
                            order,
                            AlertSlot::Stall,
                            "stuck_creating",
                            stall_message(order, "stuck_creating", now),
                            now,
                        )
                        .await?
                {
                    // A client's retry holds the key and is settling it.
                    report.stuck_alerted += 1;
                }
            }
            return Ok(());
        }
        let overdue_before = now - self.options.revive_grace;
        // With no next poll recorded, the order is still being placed:
        // overdue only when it has not changed for the grace.
        let overdue = match order.next_poll_due_at {
            Some(due) => due < overdue_before,
            None => order.updated_at < overdue_before,
        };
        let leased = order.lease_until.is_some_and(|lease| lease > now);
        // A chain revived again and again with no poll made in between (a
        // message that keeps failing, e.g. a persist that never completes)
        // is alerted and revived only at the slow pace, not in a loop.
        let streak = if order.revived_at_polls == Some(order.poll_count) {
            order.revivals + 1
        } else {
            1
        };
        let stuck = streak > self.options.max_revivals;
        let delay = if stuck {
            self.options.stuck_revival_delay
        } else {
            Duration::ZERO
        };
        if overdue
            && !leased
            && self
                .store
                .revive_chain(order, overdue_before, now, streak, now + delay)
                .await?
        {
            if stuck {
                let message = format!(
                    "the order's polling chain was revived {streak} times without a poll; \
                     it is now revived every {} s: look at its last error and the dead-letter queue",
                    delay.as_secs()
                );
                let alerted = self
                    .alert(order, AlertSlot::ChainStuck, "chain_stuck", message, now)
                    .await;
                if let Err(error) = alerted {
                    warn!(order_id = %order.order_id, %error, "chain_stuck alert not sent");
                }
            }
            let settled =
                order.supplier_order_id.is_some() && order.status != OrderStatus::Reconciling;
            let message = PollMessage {
                order_id: order.order_id.clone(),
                seq: order.poll_seq + 1,
                kind: if settled {
                    PollKind::Poll
                } else {
                    PollKind::Reconcile
                },
            };
            self.queue.send(&message, delay).await?;
            info!(order_id = %order.order_id, seq = message.seq, streak, "polling chain revived");
            report.chains_revived += 1;
        }
        if age >= self.options.stall_after {
            report.stalled_seen += 1;
            let kind = if order.status == OrderStatus::Reconciling {
                "stuck_reconciling"
            } else {
                "stalled"
            };
            let message = stall_message(order, kind, now);
            if self
                .alert(order, AlertSlot::Stall, kind, message, now)
                .await?
            {
                report.stalled_alerted += 1;
            }
        }
        Ok(())
    }

    /// Sends the `slot` alert `kind` about `order` unless one was sent
    /// within the re-alert interval (a conditional claim, so concurrent
    /// sweeps alert once; given back when the publish fails). Returns
    /// whether an alert went out.
    async fn alert(
        &self,
        order: &OrderRecord,
        slot: AlertSlot,
        kind: &str,
        message: String,
        now: OffsetDateTime,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let realert_before = now - self.options.realert_after;
        if !self
            .store
            .claim_alert(&order.order_id, slot, realert_before, now)
            .await?
        {
            return Ok(false);
        }
        let alert = OpsAlert::for_order(order, kind, message, None, now);
        if let Err(error) = self.publisher.publish_alert(&alert).await {
            self.store.release_alert(&order.order_id, slot, now).await?;
            return Err(error.into());
        }
        warn!(order_id = %order.order_id, kind, status = %order.status, "operations alerted");
        Ok(true)
    }

    /// Alerts once about a pending item that does not read as an order.
    async fn alert_unreadable(
        &self,
        pk: &str,
        reason: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let now = self.clock.now();
        if !self.store.claim_unreadable_alert(pk, now).await? {
            return Ok(());
        }
        let alert = OpsAlert {
            kind: "unreadable_item".into(),
            order_id: pk.strip_prefix("ORDER#").unwrap_or(pk).to_owned(),
            supplier_order_id: None,
            status: "unknown".into(),
            age_secs: 0,
            last_polled_at: None,
            last_error: None,
            message: format!(
                "a pending item does not read as an order ({reason}); the sweep skips it: repair or remove it"
            ),
            alerted_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        self.publisher.publish_alert(&alert).await?;
        Ok(())
    }
}

/// What a stall alert of `kind` says about `order`.
fn stall_message(order: &OrderRecord, kind: &str, now: OffsetDateTime) -> String {
    match kind {
        "stuck_creating" => {
            "the order is still being created: check FoxReload for it before buying again"
                .to_owned()
        }
        "stuck_reconciling" => {
            "FoxReload's answer to the create was lost and no match is found yet".to_owned()
        }
        _ => format!(
            "the order has not ended after {} s",
            (now - order.created_at).whole_seconds()
        ),
    }
}
