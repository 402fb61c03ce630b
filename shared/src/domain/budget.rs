//! One polite client of FoxReload (issue 16): a request budget shared by
//! every container of every function, spent by priority, that slows down
//! when FoxReload answers `429` and creeps back up when it does not.
//!
//! Three parts, all on a clock the caller gives (`now`: time since any
//! fixed origin, so tests run on a simulated one):
//!
//! - [`Bucket`]: a container's limiter (the generic cell rate algorithm).
//!   Its rate is the container's share of the budget; a request may go a
//!   tenth of a second early, no more, and containers start at random
//!   phases, so that many of them cannot together overshoot the budget by
//!   more than about a tenth of a second's worth.
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

/// A container's limiter: the generic cell rate algorithm, a token bucket
/// kept as the time the next request is due, so a rate of 2.5 requests a
/// second spaces them 0.4 s apart (a bucket of whole tokens would let one
/// through at once whatever its rate), and a rate of zero lets nothing
/// through.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Requests per second: the container's share of the budget.
    rate: f64,
    /// When the next request is due at this rate ("theoretical arrival
    /// time"); one may go this much early ([`BURST_SECS`]).
    due: Duration,
}

/// How early a request may go, in seconds: a burst of up to a tenth of a
/// second of the rate (plus the one due).
const BURST_SECS: f64 = 0.1;

/// The longest wait a refusal names (a rate near zero would name years).
const LONGEST_WAIT: Duration = Duration::from_secs(60);

impl Bucket {
    /// A limiter of `rate` requests per second whose first request is due
    /// `phase` (in `[0, 1)`) of an interval from `now`: containers started
    /// together do not all send at once.
    pub fn new(rate: f64, now: Duration, phase: f64) -> Self {
        let mut bucket = Self {
            rate: 0.0,
            due: now,
        };
        bucket.set_rate(rate, now);
        bucket.due = now + bucket.interval().mul_f64(phase.clamp(0.0, 1.0));
        bucket
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The time between two requests at this rate (the longest wait at
    /// zero).
    fn interval(&self) -> Duration {
        if self.rate > 0.0 {
            Duration::try_from_secs_f64(1.0 / self.rate)
                .unwrap_or(LONGEST_WAIT)
                .min(LONGEST_WAIT)
        } else {
            LONGEST_WAIT
        }
    }

    /// A new rate from `now` on.
    pub fn set_rate(&mut self, rate: f64, now: Duration) {
        self.rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        // Not due later than one interval at the new rate: a faster rate
        // takes effect at once.
        self.due = self.due.min(now + self.interval());
    }

    /// Lets a request through now if one is due; otherwise how long until
    /// one is (`None` when the rate is zero: nothing comes until it
    /// changes).
    pub fn try_take(&mut self, now: Duration) -> Result<(), Option<Duration>> {
        if self.rate <= 0.0 {
            return Err(None);
        }
        let due = self.due.max(now);
        let early = Duration::from_secs_f64(BURST_SECS);
        if due <= now + early {
            self.due = due + self.interval();
            return Ok(());
        }
        Err(Some((due - early - now).min(LONGEST_WAIT)))
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
        (self.state.base + self.step * calm)
            .min(self.most)
            .max(self.least)
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
                    self.state.cool_until.max(now.saturating_add(wait))
                }),
                ..self.state
            };
        }
        Shared {
            base: (self.current(now) * self.cut).max(self.least),
            cool_until: now.saturating_add(retry_after.unwrap_or(self.backoff)),
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
    // Not a number: nothing; no end: as good as a billion a second.
    let mut left = if budget.is_nan() {
        0.0
    } else {
        budget.clamp(0.0, 1e9)
    };
    let demand = demand.map(|d| if d.is_finite() { d.max(0.0) } else { 0.0 });
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
        let mut bucket = Bucket::new(50.0, at(0.0), 0.0);
        // The one due and a tenth of a second's worth: 6 at once, then one
        // every 20 ms.
        for _ in 0..6 {
            bucket.try_take(at(0.0)).unwrap();
        }
        let wait = bucket.try_take(at(0.0)).unwrap_err().unwrap();
        assert!((wait.as_secs_f64() - 0.02).abs() < 1e-9, "{wait:?}");
        let mut granted = 6;
        for ms in 1..10_000 {
            if bucket.try_take(at(f64::from(ms) / 1000.0)).is_ok() {
                granted += 1;
            }
        }
        assert!((499..=506).contains(&granted), "{granted}");
    }

    #[test]
    fn a_slow_bucket_spaces_its_requests_and_a_stopped_one_sends_nothing() {
        // 2.5 requests a second: never two within 0.3 s (a request may go
        // a tenth of a second early), 10 in 4 s and the one early.
        let mut bucket = Bucket::new(2.5, at(0.0), 0.0);
        let mut sent = Vec::new();
        for ms in 0..4_000 {
            if bucket.try_take(at(f64::from(ms) / 1000.0)).is_ok() {
                sent.push(ms);
            }
        }
        assert_eq!(sent.len(), 11, "{sent:?}");
        assert!(sent.windows(2).all(|w| w[1] - w[0] >= 300), "{sent:?}");
        // A cool-down: rate zero, nothing at all, however long it lasts.
        bucket.set_rate(0.0, at(4.0));
        for ms in 4_000..10_000 {
            assert_eq!(bucket.try_take(at(f64::from(ms) / 1000.0)), Err(None));
        }
        // Odd rates are no rate.
        bucket.set_rate(f64::NAN, at(10.0));
        assert_eq!(bucket.try_take(at(10.0)), Err(None));
        let mut tiny = Bucket::new(1e-20, at(0.0), 0.5);
        assert!(tiny.try_take(at(0.0)).unwrap_err().unwrap() <= LONGEST_WAIT);
    }

    #[test]
    fn containers_started_together_at_random_phases_do_not_burst_together() {
        // Eight containers at 2.5/s each (20/s together): two requests per
        // 100 ms, four in the first (those due within a tenth of a second
        // go at once), where whole-token buckets would send eight at once.
        let phases = [0.05, 0.2, 0.33, 0.41, 0.58, 0.66, 0.79, 0.93];
        let mut buckets: Vec<Bucket> = phases
            .iter()
            .map(|p| Bucket::new(2.5, at(0.0), *p))
            .collect();
        let mut per_tenth = vec![0u32; 100];
        for ms in 0..10_000u32 {
            for bucket in &mut buckets {
                if bucket.try_take(at(f64::from(ms) / 1000.0)).is_ok() {
                    per_tenth[(ms / 100) as usize] += 1;
                }
            }
        }
        let total = per_tenth.iter().sum::<u32>();
        assert!((200..=208).contains(&total), "{total}");
        assert!(per_tenth[0] <= 4, "{per_tenth:?}");
        assert!(per_tenth[1..].iter().all(|n| *n <= 3), "{per_tenth:?}");
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
            .enumerate()
            .map(|(i, _)| {
                let phase = i as f64 / f64::from(containers);
                Bucket::new(share(most, containers), at(0.0), phase)
            })
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
