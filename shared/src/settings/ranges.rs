//! The ranges and defaults of the whole-number settings, and the time
//! budgets they must fit: the one source of truth the code reads with and
//! the template's Parameters are tested against.

use super::names;
use crate::domain::schedule::MAX_DELAY;
use std::time::Duration;

pub(super) const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub(super) const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 8_000;

/// The time poll-order gives one message: well inside the queue's
/// visibility timeout and the function's 30 s timeout.
pub const POLL_MESSAGE_BUDGET: Duration = Duration::from_secs(20);

/// How long past its budget a poll message that has begun to move its chain
/// on may take to finish (its next message sent): with the budget, inside
/// the function's timeout.
pub const POLL_MOVE_GRACE: Duration = Duration::from_secs(5);

/// Added to a FoxReload call's timeout before another call is started, and
/// after a POST's timeout before reconciliation may say "nothing there".
pub const CALL_SLACK: Duration = Duration::from_secs(1);
/// See [`crate::domain::reconcile::Margins::margin`].
pub const RECONCILE_MARGIN: Duration = Duration::from_secs(2);

/// The longest FoxReload request timeout: one POST, its window's margin and
/// a list call of the same length must fit in one poll message.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = (POLL_MESSAGE_BUDGET.as_millis() as u64
    - CALL_SLACK.as_millis() as u64
    - RECONCILE_MARGIN.as_millis() as u64)
    / 2
    / 500
    * 500;

/// The range and default of a whole-number setting: the one source of truth
/// the code reads with and the template's Parameters are tested against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub name: &'static str,
    pub min: u64,
    pub max: u64,
    /// `None`: the default comes from the named poll schedule.
    pub default: Option<u64>,
}

/// Every whole-number setting's range.
pub const RANGES: &[Range] = &[
    Range {
        name: names::WEBHOOK_TIMEOUT_MS,
        min: 1_000,
        max: 15_000,
        default: Some(10_000),
    },
    Range {
        name: names::FOXRELOAD_CONNECT_TIMEOUT_MS,
        min: 100,
        max: 10_000,
        default: Some(DEFAULT_CONNECT_TIMEOUT_MS),
    },
    Range {
        name: names::FOXRELOAD_REQUEST_TIMEOUT_MS,
        min: 500,
        max: MAX_REQUEST_TIMEOUT_MS,
        default: Some(DEFAULT_REQUEST_TIMEOUT_MS),
    },
    Range {
        name: names::FOXRELOAD_MAX_RPS,
        min: 0,
        max: 1_000,
        default: Some(50),
    },
    Range {
        name: names::STALL_AFTER_SECS,
        min: 10,
        max: 86_400,
        default: Some(600),
    },
    Range {
        name: names::STALL_REALERT_SECS,
        min: 5,
        max: 7 * 86_400,
        default: Some(3_600),
    },
    Range {
        name: names::POLL_FAST_INTERVAL_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_FAST_UNTIL_SECS,
        min: 0,
        max: 86_400,
        default: None,
    },
    Range {
        name: names::POLL_STEADY_START_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_GROWTH_PERCENT,
        min: 100,
        max: 400,
        default: None,
    },
    Range {
        name: names::POLL_STEADY_CAP_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_SLOW_CAP_SECS,
        min: 1,
        max: MAX_DELAY.as_secs(),
        default: None,
    },
    Range {
        name: names::POLL_HORIZON_SECS,
        min: 60,
        max: 14 * 86_400,
        default: None,
    },
    Range {
        name: names::POLL_JITTER_PERCENT,
        min: 0,
        max: 50,
        default: None,
    },
    Range {
        name: names::POLL_TARGET_P95_LAG_SECS,
        min: 1,
        max: 300,
        default: Some(10),
    },
    Range {
        name: names::POLL_LEARN_MIN_OBSERVATIONS,
        min: 5,
        max: 10_000,
        default: Some(20),
    },
    Range {
        name: names::POLL_PLAN_CACHE_SECS,
        min: 0,
        max: 3_600,
        default: Some(60),
    },
];

/// The range of the whole-number setting `name`.
pub fn range(name: &str) -> Range {
    *RANGES
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} has no range"))
}
