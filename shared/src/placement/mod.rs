//! Placing an order at FoxReload without buying twice, or taking another
//! buyer's order: the POST and the reconciliation that create-order and
//! poll-order share.
//!
//! Every POST's send time is recorded on the order before it is sent (the
//! first one with the intent), so reconciliation knows the windows in which
//! one of our POSTs could have made an order. FoxReload's order list is
//! then read back, page after page, until it is older than those windows,
//! and each entry is compared exactly ([`crate::domain::reconcile`]). An
//! entry that cannot be evaluated is fetched by id; still unreadable, or
//! more fitting candidates than our undecided orders that could own them,
//! and the answer is *ambiguous*: nothing is claimed, nothing is bought, and
//! poll-order alerts operations. "Nothing" is an answer only when the list
//! was read back far enough, twice, after every window closed.
//!
//! `post` sends one POST; `reconcile` reads FoxReload's list back and
//! decides; `pay` pays an order claimed.

mod pay;
mod post;
mod reconcile;

pub use pay::pay;

use crate::domain::reconcile::Margins;
use crate::foxreload::{SupplierError, SupplierOrder};
use crate::store::SupplierProblem;
use std::time::Duration;
use tokio::time::Instant;

/// The most a POST may be sent after the time recorded for it; well inside
/// [`Margins::margin`], which widens every window.
pub const SEND_SLACK: Duration = Duration::from_millis(800);

/// Figures of a reconciliation.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// Orders asked for per page of the list.
    pub page_size: u32,
    /// Pages read at most; a list not read back far enough within them
    /// leaves the answer undecided.
    pub max_pages: u32,
    /// How the windows are widened.
    pub margins: Margins,
    /// Whether our orders are FoxReload mock orders.
    pub is_mock: bool,
    /// Pause before the re-check of a list that showed nothing.
    pub recheck_delay: Duration,
    /// The time one FoxReload call may take: none starts with less left.
    pub call_budget: Duration,
    /// A stored clock measure older than this is replaced by any new one.
    pub clock_stale_after: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            page_size: 50,
            max_pages: 20,
            margins: Margins::default(),
            is_mock: false,
            recheck_delay: Duration::from_secs(1),
            call_budget: Duration::from_secs(9),
            clock_stale_after: Duration::from_secs(600),
        }
    }
}

/// How a reconciliation ended.
#[derive(Clone, Debug)]
pub enum Found {
    /// Our order now holds this supplier order.
    Claimed(SupplierOrder),
    /// Read back far enough, twice, after our POSTs' windows closed: nothing
    /// of ours is there, and buying again is safe.
    Nothing,
    /// The list could not be read far enough, or no time was left: try
    /// again later.
    Undecided(SupplierProblem),
    /// Candidates that cannot be told apart from somebody else's: nothing
    /// is claimed or bought until they can, or an operator settles it.
    Ambiguous {
        problem: SupplierProblem,
        candidates: Vec<String>,
    },
    /// Our order moved on meanwhile (another worker settled it).
    Moved,
}

/// A problem saying why a create could not be decided.
pub fn undecided(why: impl Into<String>) -> SupplierProblem {
    SupplierProblem {
        kind: "undecided".into(),
        status: None,
        code: None,
        detail: Some(why.into()),
    }
}

/// The kind of an undecided reconciliation that waits for other orders of
/// ours whose POSTs may still be in flight.
pub const OWNERS_IN_FLIGHT: &str = "owners_in_flight";

/// How one POST ended.
#[derive(Debug)]
pub enum Posted {
    /// Made, and now held by our order.
    Claimed(SupplierOrder),
    /// Made, but another of our orders claimed it first (it reconciled onto
    /// it while our answer was in flight): reconcile to find ours.
    TakenByAnother,
    /// Not sent: another worker recorded a POST or settled the order.
    Moved,
    /// Not sent: its send time could not be recorded close enough to the
    /// send (the store is slow): undecided, try again later.
    NotSent,
    /// Not sent: a cut of the stack's FoxReload budget voided the slot it
    /// was to leave in while its send time was recorded. Another attempt
    /// (a new slot, a new send time) may follow at once.
    SlotVoided,
    /// Sent and failed.
    Failed(SupplierError),
}

impl ReconcileOptions {
    /// These options for the FoxReload client `settings` build: a call may
    /// take the client's timeout and a second more, a POST is in flight for
    /// at most that timeout, and mock orders are what we ask for.
    pub fn fitted_to(mut self, settings: &crate::settings::FoxReloadSettings) -> Self {
        self.call_budget = settings.request_timeout + crate::settings::CALL_SLACK;
        self.margins.request_timeout = settings.request_timeout;
        self.is_mock = settings.mock_orders;
        self
    }

    /// Whether a FoxReload call still fits before `deadline`.
    pub fn time_left(&self, deadline: Instant) -> bool {
        Instant::now() + self.call_budget <= deadline
    }

    /// Sleeps `pause` if there is time for it and a call after it.
    pub async fn pause(&self, pause: Duration, deadline: Instant) -> bool {
        if Instant::now() + pause + self.call_budget > deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }
}

pub(crate) fn ambiguous(detail: String) -> SupplierProblem {
    SupplierProblem {
        kind: "reconcile_ambiguous".into(),
        status: None,
        code: None,
        detail: Some(detail),
    }
}
