//! The clock port: handlers ask it the wall-clock time (what is stored and
//! compared with FoxReload's), and keep their deadlines on tokio's clock.
//! The fast tier's `TestClock` (`testing`) reads tokio's clock too, so
//! under a paused runtime a test moves both at once.

use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock, in UTC.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
