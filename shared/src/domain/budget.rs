//! One polite client of FoxReload (issue 16): a request budget shared by
//! every container of every function, spent by priority, that slows down
//! when FoxReload answers `429` and creeps back up when it does not.
//!
//! Three parts, all on a clock the caller gives (`now`: time since any
//! fixed origin, so tests run on a simulated one):
//!
//! - [`Bucket`]: a container's token bucket. Its rate is the container's
//!   share of the budget; its burst is a tenth of a second of that rate
//!   (at least one request), so that many containers starting full cannot
//!   together overshoot the budget by more than a tenth of a second's
//!   worth.
//! - [`allocate`]: the budget split by [`Priority`], most urgent first:
//!   creates and payments (a customer is waiting) get what they ask, then
//!   first polls of fresh orders, then other polls, then stalled orders.
//!   Priorities live in different containers (create-order's and
//!   poll-order's), so this is how a create outranks a poll: each
//!   container says what it asked for per priority, and gets its part of
//!   each priority's allocation ([`container_rate`]).
//! - [`Adaptive`]: the budget itself, additive increase and multiplicative
//!   decrease. A `429` halves it (once per cool-down, however many answers
//!   say so) and starts a cool-down (`Retry-After`, or a second); outside
//!   a cool-down it grows by a hundredth of the maximum per second, back
//!   up to the maximum. 429s that keep coming after each cool-down keep
//!   halving it, so the stack converges on FoxReload's real limit without
//!   an operator.
//! - [`share`]: a container's part of a rate shared evenly.

use std::time::Duration;

/// Who is asking for a FoxReload request, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A create or a payment: a customer is waiting for the answer.
    Create,
    /// The first poll of a fresh order.
    FirstPoll,
    /// Any other poll of an open order.
    Poll,
    /// A poll of an order past the stall threshold, or a reconciliation
    /// of one.
    Stalled,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Create,
        Priority::FirstPoll,
        Priority::Poll,
        Priority::Stalled,
    ];

    /// The metric dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::FirstPoll => "first-poll",
            Self::Poll => "poll",
            Self::Stalled => "stalled",
        }
    }
}

/// A container's token bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Tokens per second: the container's share of the budget.
    rate: f64,
    tokens: f64,
    updated: Duration,
}

/// The burst a bucket holds, in seconds of its rate (at least one token).
const BURST_SECS: f64 = 0.1;

impl Bucket {
    /// A full bucket of `rate` tokens per second.
    pub fn new(rate: f64, now: Duration) -> Self {
        let rate = rate.max(0.0);
        Self {
            rate,
            tokens: Self::capacity_of(rate),
            updated: now,
        }
    }

    fn capacity_of(rate: f64) -> f64 {
        (rate * BURST_SECS).max(1.0)
    }

    /// The most tokens the bucket holds.
    pub fn capacity(&self) -> f64 {
        Self::capacity_of(self.rate)
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity());
        self.updated = self.updated.max(now);
    }

    /// A new rate from `now` on (what was earned at the old one is kept,
    /// up to the new capacity).
    pub fn set_rate(&mut self, rate: f64, now: Duration) {
        self.refill(now);
        self.rate = rate.max(0.0);
        self.tokens = self.tokens.min(self.capacity());
    }

    /// Takes a token if one is free now; otherwise how long until one is
    /// (at the current rate; `None` when the rate is zero: nothing comes
    /// until it changes).
    pub fn try_take(&mut self, now: Duration) -> Result<(), Option<Duration>> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.rate <= 0.0 {
            return Err(None);
        }
        Err(Some(Duration::from_secs_f64(
            (1.0 - self.tokens) / self.rate,
        )))
    }
}

/// The budget, adapted to what FoxReload accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct Adaptive {
    /// The configured budget: never more.
    pub most: f64,
    /// Never less (a budget of zero would stop everything for good).
    pub least: f64,
    /// Requests per second added per second without a 429.
    pub step: f64,
    /// The factor a 429 cuts the budget by.
    pub cut: f64,
    /// The cool-down after a 429 without `Retry-After`.
    pub backoff: Duration,
    /// What is shared: the budget the last cut left, and the end of its
    /// cool-down. Everything else follows from the time, so containers
    /// that read the same state agree on the budget without writing it.
    pub state: Shared,
}

/// The part of a budget every container must see the same: written only by
/// a cut (one conditional write per `429` episode, not per request).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shared {
    /// Requests per second from the end of the cool-down on, growing by
    /// [`Adaptive::step`] per second from there.
    pub base: f64,
    /// Nothing may be sent before this.
    pub cool_until: Duration,
}

impl Adaptive {
    /// A budget of at most `most` requests per second, starting there.
    pub fn new(most: f64, now: Duration) -> Self {
        let most = most.max(0.1);
        Self {
            most,
            least: (most / 20.0).max(0.1),
            step: (most / 100.0).max(0.01),
            cut: 0.5,
            backoff: Duration::from_secs(1),
            state: Shared {
                base: most,
                cool_until: now,
            },
        }
    }

    /// The budget now, in requests per second; none during a cool-down.
    pub fn rate(&self, now: Duration) -> f64 {
        if now < self.state.cool_until {
            0.0
        } else {
            self.current(now)
        }
    }

    /// The budget outside cool-downs: the base, grown since the cool-down
    /// ended, up to the most.
    pub fn current(&self, now: Duration) -> f64 {
        let calm = now.saturating_sub(self.state.cool_until).as_secs_f64();
        (self.state.base + self.step * calm).clamp(self.least, self.most)
    }

    /// Until when nothing may be sent.
    pub fn cool_until(&self) -> Duration {
        self.state.cool_until
    }

    /// The state a `429` at `now` leaves (asking to wait `retry_after` if
    /// it said): the budget cut and a cool-down started, or, for answers
    /// that arrive during the cool-down the first one started (requests
    /// sent before it), only the cool-down made as long as they ask.
    pub fn after_limited(&self, now: Duration, retry_after: Option<Duration>) -> Shared {
        if now < self.state.cool_until {
            return Shared {
                cool_until: retry_after.map_or(self.state.cool_until, |wait| {
                    self.state.cool_until.max(now + wait)
                }),
                ..self.state
            };
        }
        Shared {
            base: (self.current(now) * self.cut).max(self.least),
            cool_until: now + retry_after.unwrap_or(self.backoff),
        }
    }

    /// FoxReload answered `429` at `now`.
    pub fn limited(&mut self, now: Duration, retry_after: Option<Duration>) {
        self.state = self.after_limited(now, retry_after);
    }
}

/// A container's part of a budget of `rate` requests per second shared by
/// `holders` containers (itself included).
pub fn share(rate: f64, holders: u32) -> f64 {
    rate.max(0.0) / f64::from(holders.max(1))
}

/// Requests per second for each priority ([`Priority::ALL`]'s order).
pub type PerPriority = [f64; 4];

/// `budget` split by priority given what each asks (`demand`, requests
/// per second): most urgent first, each up to its demand; what is left
/// after every demand is met goes to each priority in proportion to its
/// demand (so a container that asks more finds it), or to creates when
/// nobody asks.
pub fn allocate(budget: f64, demand: PerPriority) -> PerPriority {
    let mut left = budget.max(0.0);
    let mut given = [0.0; 4];
    for (g, d) in given.iter_mut().zip(demand) {
        *g = d.max(0.0).min(left);
        left -= *g;
    }
    let asked: f64 = demand.iter().map(|d| d.max(0.0)).sum();
    if left > 0.0 {
        if asked > 0.0 {
            for (g, d) in given.iter_mut().zip(demand) {
                *g += left * d.max(0.0) / asked;
            }
        } else {
            given[0] += left;
        }
    }
    given
}

/// A container's rate: for each priority, its part of that priority's
/// allocation in proportion to what it asked (`mine`) of what every
/// container asked (`asked`).
pub fn container_rate(allocation: PerPriority, asked: PerPriority, mine: PerPriority) -> f64 {
    allocation
        .iter()
        .zip(asked.iter().zip(mine))
        .map(|(a, (total, m))| {
            if *total > 0.0 {
                a * (m.max(0.0) / total).min(1.0)
            } else {
                0.0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_bucket_grants_its_rate_over_time_and_a_burst_of_a_tenth_of_a_second() {
        let mut bucket = Bucket::new(50.0, at(0.0));
        // Full: 5 tokens at once, then one every 20 ms.
        for _ in 0..5 {
            bucket.try_take(at(0.0)).unwrap();
        }
        let wait = bucket.try_take(at(0.0)).unwrap_err();
        assert_eq!(wait, Some(at(0.02)));
        let mut granted = 0;
        for ms in 0..10_000 {
            if bucket.try_take(at(f64::from(ms) / 1000.0)).is_ok() {
                granted += 1;
            }
        }
        assert!((499..=501).contains(&granted), "{granted}");
    }

    #[test]
    fn the_budget_goes_to_creates_first_then_fresh_orders_then_the_rest() {
        // 20/s: creates ask 8, first polls 6, polls 30, stalled 5.
        let given = allocate(20.0, [8.0, 6.0, 30.0, 5.0]);
        assert_eq!(given, [8.0, 6.0, 6.0, 0.0]);
        // Plenty: every demand met, and the rest shared by demand.
        let given = allocate(100.0, [10.0, 0.0, 30.0, 10.0]);
        assert_eq!(given, [20.0, 0.0, 60.0, 20.0]);
        // Nobody asks: creates may take it all.
        assert_eq!(allocate(5.0, [0.0; 4]), [5.0, 0.0, 0.0, 0.0]);
        // Never more than the budget.
        let given = allocate(7.5, [3.0, 3.0, 3.0, 3.0]);
        assert!((given.iter().sum::<f64>() - 7.5).abs() < 1e-9);
    }

    #[test]
    fn a_container_gets_its_part_of_each_priority_it_asked_for() {
        let asked = [8.0, 6.0, 30.0, 5.0];
        let allocation = allocate(20.0, asked);
        // create-order's container asking 4 of the 8 creates: 4.
        assert_eq!(container_rate(allocation, asked, [4.0, 0.0, 0.0, 0.0]), 4.0);
        // A poller asking 3 first polls and 15 polls: 3 and half of 6.
        assert_eq!(
            container_rate(allocation, asked, [0.0, 3.0, 15.0, 0.0]),
            6.0
        );
        // A poller with only stalled orders: nothing until the rest is met.
        assert_eq!(container_rate(allocation, asked, [0.0, 0.0, 0.0, 5.0]), 0.0);
        // Every container's rate adds up to the budget.
        let parts = [
            [8.0, 0.0, 0.0, 0.0],
            [0.0, 6.0, 10.0, 2.0],
            [0.0, 0.0, 20.0, 3.0],
        ];
        let total: f64 = parts
            .iter()
            .map(|mine| container_rate(allocation, asked, *mine))
            .sum();
        assert!((total - 20.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn a_429_halves_the_budget_once_and_stops_everything_for_its_retry_after() {
        let mut budget = Adaptive::new(40.0, at(0.0));
        budget.limited(at(1.0), Some(at(3.0)));
        assert_eq!(budget.rate(at(2.0)), 0.0);
        // More 429s for requests sent before the first: no further cut.
        budget.limited(at(1.5), None);
        budget.limited(at(2.5), None);
        assert_eq!(budget.rate(at(4.0)), 20.0);
        // Then it grows back by 0.4 requests/s per second, up to the most.
        assert!((budget.rate(at(14.0)) - 24.0).abs() < 1e-9);
        assert_eq!(budget.rate(at(100.0)), 40.0);
    }

    #[test]
    fn without_retry_after_each_429_after_a_cool_down_halves_again() {
        let mut budget = Adaptive::new(40.0, at(0.0));
        budget.limited(at(0.0), None);
        assert_eq!(budget.cool_until(), at(1.0));
        budget.limited(at(1.0), None);
        assert_eq!(budget.cool_until(), at(2.0));
        budget.limited(at(2.0), None);
        assert_eq!(budget.current(at(2.0)), 5.0);
        assert_eq!(budget.rate(at(2.5)), 0.0);
    }

    #[test]
    fn the_budget_never_falls_below_its_floor() {
        let mut budget = Adaptive::new(20.0, at(0.0));
        for i in 0..50 {
            budget.limited(at(f64::from(i) / 1000.0), Some(Duration::ZERO));
        }
        assert!((budget.current(at(0.05)) - 1.0).abs() < 0.01);
    }

    /// FoxReload as a limit of `limit` requests in each whole second, and
    /// `containers` containers sharing an adaptive budget of `most`, each
    /// wanting more than it is given: what FoxReload sees.
    fn converge(limit: u32, most: f64, containers: u32) -> (Vec<u32>, u32) {
        let mut budget = Adaptive::new(most, at(0.0));
        let mut buckets: Vec<Bucket> = (0..containers)
            .map(|_| Bucket::new(share(most, containers), at(0.0)))
            .collect();
        let mut per_second = vec![0u32; 120];
        let mut limited = 0;
        for ms in 0..120_000u32 {
            let now = at(f64::from(ms) / 1000.0);
            // The shared item is read every 100 ms.
            if ms % 100 == 0 {
                let rate = share(budget.rate(now), containers);
                for bucket in &mut buckets {
                    bucket.set_rate(rate, now);
                }
            }
            for bucket in &mut buckets {
                if bucket.try_take(now).is_ok() {
                    let second = (ms / 1000) as usize;
                    per_second[second] += 1;
                    if per_second[second] > limit {
                        limited += 1;
                        budget.limited(now, None);
                    }
                }
            }
        }
        (per_second, limited)
    }

    #[test]
    fn a_stack_over_foxreloads_limit_converges_on_it() {
        // A budget of 60/s against a limit of 20/s, over 8 containers.
        let (per_second, limited) = converge(20, 60.0, 8);
        let late = &per_second[60..];
        let mean = f64::from(late.iter().sum::<u32>()) / late.len() as f64;
        // Most of the limit is used, and 429s are rare once converged.
        assert!(mean > 12.0 && mean <= 20.5, "{mean} {per_second:?}");
        assert!(limited < 200, "{limited}");
    }
}
