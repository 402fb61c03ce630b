//! One polite client of FoxReload (issue 16): a request budget shared by
//! every container of every function, spent by priority, that slows down
//! when FoxReload answers `429` and creeps back up when it does not.
//!
//! Everything runs on a clock the caller gives (`now`: time since any fixed
//! origin; the Unix epoch in production), so tests run on a simulated one.
//!
//! - **One limiter for the whole stack** ([`slot`]): the generic cell rate
//!   algorithm over one shared value, the time the next request is due
//!   (`tat`). A request takes the slot at `tat` (or now, when the stack has
//!   been idle) and moves `tat` on by one interval of the budget, so the
//!   stack's requests are spaced evenly whichever containers send them:
//!   FoxReload never sees a burst at a second's edge, and the budget holds
//!   over any window, not on average.
//! - **Priorities are how far ahead a request may book** ([`Priority::ahead`]):
//!   a create (a customer is waiting) takes a slot up to seconds ahead and
//!   waits for it; a poll takes one only within half a second, a stalled
//!   order's only when the stack is nearly idle. While creates keep `tat`
//!   ahead of now, polls are refused (and re-enqueued), creates are not.
//! - **The budget adapts** ([`Adaptive`]): additive increase, multiplicative
//!   decrease. A `429` starts a cool-down (`Retry-After`, or half a second)
//!   that every container sees with its next slot, and cuts the budget
//!   once per cool-down; outside a cool-down the budget grows by a
//!   hundredth of the most per second, back up to the most. How deep the
//!   cut is comes from the refused request itself ([`accepted_before`]):
//!   since slots are spaced evenly, a request refused `φ` into FoxReload's
//!   second says FoxReload took about `φ × rate` in it, where the rate is
//!   the pace the stack was actually granted slots at ([`pace`], from
//!   the limiter's count of slots) when it had fewer requests than its
//!   budget allowed.

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

    /// How far ahead of now a request of this priority may take a slot
    /// (and wait for it): the more urgent, the further, so that the urgent
    /// keep the limiter busy and the rest find no slot near enough.
    pub fn ahead(self) -> Duration {
        match self {
            Self::Create => Duration::from_secs(8),
            Self::FirstPoll => Duration::from_millis(1_000),
            Self::Poll => Duration::from_millis(500),
            Self::Stalled => Duration::from_millis(100),
        }
    }
}

/// The longest interval between two requests (a rate near zero would name
/// years).
const LONGEST_INTERVAL: Duration = Duration::from_secs(60);

/// The time between two requests at `rate` requests per second.
pub fn interval(rate: f64) -> Duration {
    if rate.is_finite() && rate > 0.0 {
        Duration::try_from_secs_f64(1.0 / rate)
            .unwrap_or(LONGEST_INTERVAL)
            .min(LONGEST_INTERVAL)
    } else {
        LONGEST_INTERVAL
    }
}

/// Where a granted slot comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotFrom {
    /// Right after the last one taken: the stack is busy.
    Due,
    /// Now: the stack was idle.
    Now,
    /// The end of the cool-down.
    CoolDown,
}

/// What the limiter answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Send at `at` (now, or a wait of at most the priority's reach), and
    /// the next request is due at `next`.
    Go {
        at: Duration,
        next: Duration,
        from: SlotFrom,
    },
    /// No slot within reach: the first one comes in this long.
    Wait(Duration),
}

/// The slot for a request asked at `now` that may wait up to `ahead`,
/// given when the next request is due (`due`; `None`: never used) and the
/// end of the cool-down, at a budget of one request per `interval`.
pub fn slot(
    due: Option<Duration>,
    cool_until: Duration,
    now: Duration,
    interval: Duration,
    ahead: Duration,
) -> Slot {
    let due = due.unwrap_or_default();
    let (at, from) = if due >= now && due >= cool_until {
        (due, SlotFrom::Due)
    } else if cool_until > now {
        (cool_until, SlotFrom::CoolDown)
    } else {
        (now, SlotFrom::Now)
    };
    if at <= now.saturating_add(ahead) {
        Slot::Go {
            at,
            next: at.saturating_add(interval),
            from,
        }
    } else {
        Slot::Wait(at - now - ahead)
    }
}

/// How many requests FoxReload took in its second before one it refused
/// that was sent at `sent` (FoxReload's clock), while the stack sent
/// `rate` a second (its [`pace`], or its budget when the pace is not
/// known): slots are spaced evenly, so a refusal `φ` into the second
/// follows about `φ × rate` requests in it. (`None` for an implausible
/// rate.)
pub fn accepted_before(sent: Duration, rate: f64) -> Option<f64> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    let into_second = f64::from(sent.subsec_nanos()) / 1e9;
    Some(into_second * rate)
}

/// A slot one container took, as a sample of the whole stack's pace: when
/// it was, and its serial (how many slots the stack had granted, this one
/// included; every container's count, as the limiter keeps one count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub at: Duration,
    pub serial: u64,
}

/// How far back the stack's pace is measured before a refused request.
pub const PACE_WINDOW: Duration = Duration::from_secs(1);

/// The shortest span of samples a pace is measured over (two slots a few
/// milliseconds apart say nothing of a second).
const SHORTEST_SPAN: Duration = Duration::from_millis(200);

/// The rate, in requests per second, at which the stack was granted slots
/// in the [`PACE_WINDOW`] up to `until`, from one container's `samples`
/// (`None` when they span too little to say). Below the budget when the
/// stack had fewer requests to send than it allowed: then a refusal `φ`
/// into FoxReload's second follows `φ × pace` requests, not `φ × budget`.
pub fn pace(samples: &[Granted], until: Duration) -> Option<f64> {
    let from = until.saturating_sub(PACE_WINDOW);
    let mut within = samples.iter().filter(|s| s.at >= from && s.at <= until);
    let first = within.next()?;
    // Taken in the order the slots were granted: a cut moves the limiter
    // back, so a later slot may come before one granted earlier (then void).
    let (first, last) = within.fold((first, first), |(lo, hi), s| {
        (
            if s.serial < lo.serial { s } else { lo },
            if s.serial > hi.serial { s } else { hi },
        )
    });
    let span = last.at.checked_sub(first.at)?;
    if span < SHORTEST_SPAN {
        return None;
    }
    let slots = last.serial.saturating_sub(first.serial);
    Some(slots as f64 / span.as_secs_f64())
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
    /// When the last cut was made: a 429 to a call granted before it (sent
    /// at the old rate, however late) is no news.
    pub cut_at: Duration,
}

/// The deepest one cut goes: to a quarter of the budget.
const DEEPEST_CUT: f64 = 0.25;
/// The shallowest: to nine tenths.
const SHALLOWEST_CUT: f64 = 0.9;
/// A cut without evidence: to half.
const BLIND_CUT: f64 = 0.5;
/// How far under what FoxReload took a cut goes.
const UNDER: f64 = 0.95;

impl Adaptive {
    /// A budget of at most `most` requests per second, starting there.
    pub fn new(most: f64, now: Duration) -> Self {
        let most = if most.is_finite() { most.max(0.1) } else { 0.1 };
        Self {
            most,
            least: (most / 20.0).max(0.1),
            step: (most / 100.0).max(0.01),
            backoff: Duration::from_millis(500),
            state: Shared {
                base: most,
                cool_until: now,
                cut_at: Duration::ZERO,
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

    /// The state a `429` at `now` to a call granted at `granted` leaves
    /// (asking to wait `retry_after` if it said so; `accepted`: what
    /// FoxReload took in its second before the refused request, when
    /// known): the budget cut and a cool-down started; or, for a call
    /// granted before the last cut (sent at the old rate) or answered during
    /// the cool-down, only the cool-down made as long as it asks. The cut
    /// goes a little under what FoxReload took, to between a quarter and
    /// nine tenths of the budget (to half without evidence).
    pub fn after_limited(
        &self,
        now: Duration,
        granted: Duration,
        retry_after: Option<Duration>,
        accepted: Option<f64>,
    ) -> Shared {
        if now < self.state.cool_until || granted < self.state.cut_at {
            return Shared {
                cool_until: retry_after.map_or(self.state.cool_until, |wait| {
                    self.state.cool_until.max(now.saturating_add(wait))
                }),
                ..self.state
            };
        }
        let current = self.current(now);
        let cut = match accepted.filter(|a| a.is_finite()) {
            Some(accepted) => {
                (accepted * UNDER).clamp(current * DEEPEST_CUT, current * SHALLOWEST_CUT)
            }
            None => current * BLIND_CUT,
        };
        Shared {
            base: cut.max(self.least),
            cool_until: now.saturating_add(retry_after.unwrap_or(self.backoff)),
            cut_at: now,
        }
    }

    /// FoxReload answered `429` at `now` to a call granted at `granted`.
    pub fn limited(
        &mut self,
        now: Duration,
        granted: Duration,
        retry_after: Option<Duration>,
        accepted: Option<f64>,
    ) {
        self.state = self.after_limited(now, granted, retry_after, accepted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_slot_follows_the_last_one_or_now_or_the_end_of_the_cool_down() {
        let tenth = at(0.1);
        // Idle: now.
        assert_eq!(
            slot(None, at(0.0), at(5.0), tenth, at(0.5)),
            Slot::Go {
                at: at(5.0),
                next: at(5.1),
                from: SlotFrom::Now
            }
        );
        // Busy: right after the last one, waited for within reach.
        assert_eq!(
            slot(Some(at(5.3)), at(0.0), at(5.0), tenth, at(0.5)),
            Slot::Go {
                at: at(5.3),
                next: at(5.4),
                from: SlotFrom::Due
            }
        );
        // Out of reach: how long until one is.
        assert_eq!(
            slot(Some(at(5.8)), at(0.0), at(5.0), tenth, at(0.5)),
            Slot::Wait(at(0.3))
        );
        // Cooling down: not before its end.
        assert_eq!(
            slot(Some(at(5.1)), at(7.0), at(5.0), tenth, at(8.0)),
            Slot::Go {
                at: at(7.0),
                next: at(7.1),
                from: SlotFrom::CoolDown
            }
        );
        assert_eq!(
            slot(Some(at(5.1)), at(7.0), at(5.0), tenth, at(0.5)),
            Slot::Wait(at(1.5))
        );
    }

    #[test]
    fn an_interval_is_the_inverse_of_the_rate_and_odd_rates_are_the_longest() {
        assert_eq!(interval(20.0), at(0.05));
        assert_eq!(interval(0.0), LONGEST_INTERVAL);
        assert_eq!(interval(f64::NAN), LONGEST_INTERVAL);
        assert_eq!(interval(1e-20), LONGEST_INTERVAL);
        assert_eq!(interval(f64::INFINITY), LONGEST_INTERVAL);
    }

    /// Requests per priority granted when each asks `demand` a second (its
    /// requests evenly spread) of a budget of `rate` for `secs` seconds.
    fn served(rate: f64, demand: [f64; 4], secs: u32) -> [u32; 4] {
        let gap = interval(rate);
        let mut due = None;
        let mut next_ask = [Duration::ZERO; 4];
        let mut granted = [0u32; 4];
        for ms in 0..secs * 1000 {
            let now = Duration::from_millis(u64::from(ms));
            for (i, priority) in Priority::ALL.iter().enumerate() {
                if demand[i] <= 0.0 || now < next_ask[i] {
                    continue;
                }
                // Refused: asks again when told (a re-enqueued poll).
                match slot(due, Duration::ZERO, now, gap, priority.ahead()) {
                    Slot::Go { at, next, .. } => {
                        due = Some(next);
                        // Counted when it is sent.
                        if at < Duration::from_secs(u64::from(secs)) {
                            granted[i] += 1;
                        }
                        next_ask[i] = now + interval(demand[i]);
                    }
                    Slot::Wait(wait) => next_ask[i] = now + wait.max(at(0.001)),
                }
            }
        }
        granted
    }

    #[test]
    fn creates_are_served_first_then_fresh_orders_then_polls_then_stalled_orders() {
        // 20/s for a minute: creates ask 8, first polls 6, polls 30,
        // stalled 5. Creates and first polls are served in full, polls get
        // the rest, stalled orders nearly nothing.
        let [create, first, poll, stalled] = served(20.0, [8.0, 6.0, 30.0, 5.0], 60);
        assert!(create >= 475, "{create}");
        assert!(first >= 355, "{first}");
        assert!((300..=400).contains(&poll), "{poll}");
        assert!(stalled <= 30, "{stalled}");
        assert!(create + first + poll + stalled <= 1202);
        // Creates asking more than the budget take all of it.
        let [create, first, poll, stalled] = served(20.0, [30.0, 6.0, 30.0, 5.0], 60);
        assert!(create >= 1180, "{create}");
        // (Polls find slots only in the first moments, before creates have
        // booked ahead.)
        assert!(first + poll + stalled <= 20, "{first} {poll} {stalled}");
        // Plenty: every demand met.
        let [create, first, poll, stalled] = served(100.0, [8.0, 6.0, 30.0, 5.0], 60);
        assert!(
            create >= 475 && first >= 355 && poll >= 1750 && stalled >= 290,
            "{create} {first} {poll} {stalled}"
        );
    }

    #[test]
    fn the_budget_holds_over_any_window_not_on_average() {
        // Bursty askers: 200 creates at once, every 5 s, against 20/s.
        let gap = interval(20.0);
        let mut due = None;
        let mut sent = Vec::new();
        let mut waiting: Vec<Duration> = Vec::new();
        for ms in 0..30_000u64 {
            let now = Duration::from_millis(ms);
            if ms % 5_000 == 0 {
                waiting.extend(std::iter::repeat_n(now, 200));
            }
            waiting.retain(|_| match slot(due, Duration::ZERO, now, gap, at(8.0)) {
                Slot::Go { at, next, .. } => {
                    due = Some(next);
                    sent.push(at);
                    false
                }
                Slot::Wait(_) => true,
            });
        }
        // In any second (not only whole ones), at most the rate and one.
        sent.sort();
        for (i, first) in sent.iter().enumerate() {
            let within = sent[i..]
                .iter()
                .take_while(|t| **t < *first + at(1.0))
                .count();
            assert!(within <= 21, "{within} from {first:?}");
        }
    }

    #[test]
    fn a_429_cuts_to_under_what_foxreload_took_once_per_cool_down() {
        let mut budget = Adaptive::new(50.0, at(0.0));
        // Refused 0.4 s into FoxReload's second at 50/s: it took 20.
        let accepted = accepted_before(at(100.4), 50.0);
        assert!((accepted.unwrap() - 20.0).abs() < 1e-6);
        budget.limited(at(100.5), at(100.5), Some(at(3.0)), accepted);
        assert_eq!(budget.rate(at(102.0)), 0.0);
        // More 429s for requests sent before the first: no further cut.
        budget.limited(at(101.0), at(101.0), None, Some(5.0));
        budget.limited(at(102.0), at(102.0), None, None);
        assert!((budget.rate(at(103.5)) - 19.0).abs() < 1e-9);
        // Then it grows back by half a request a second, up to the most.
        assert!((budget.rate(at(113.5)) - 24.0).abs() < 1e-9);
        assert_eq!(budget.rate(at(1_000.0)), 50.0);
    }

    #[test]
    fn a_cut_goes_no_shallower_than_nine_tenths_no_deeper_than_a_quarter() {
        let budget = Adaptive::new(40.0, at(0.0));
        // FoxReload took as much as we sent: still a cut.
        assert_eq!(
            budget
                .after_limited(at(1.0), at(1.0), None, Some(40.0))
                .base,
            36.0
        );
        // A refusal early in a second (a clock off, another kind of
        // limit): a quarter, not nothing.
        assert_eq!(
            budget.after_limited(at(1.0), at(1.0), None, Some(0.5)).base,
            10.0
        );
        // No evidence: half.
        assert_eq!(
            budget.after_limited(at(1.0), at(1.0), None, None).base,
            20.0
        );
        assert_eq!(
            budget
                .after_limited(at(1.0), at(1.0), None, Some(f64::NAN))
                .base,
            20.0
        );
        assert_eq!(accepted_before(at(1.5), f64::NAN), None);
        assert_eq!(accepted_before(at(1.5), 0.0), None);
    }

    #[test]
    fn a_429_to_a_call_granted_before_the_last_cut_cuts_nothing() {
        let mut budget = Adaptive::new(40.0, at(0.0));
        budget.limited(at(10.0), at(10.0), None, Some(20.0));
        let cut = budget.state;
        assert_eq!(cut.base, 19.0);
        assert_eq!(cut.cut_at, at(10.0));
        // A create booked at 9 s for a slot at 15 s, refused after the
        // cool-down: sent at the old rate, no news.
        budget.limited(at(15.2), at(9.0), None, Some(5.0));
        assert_eq!(budget.state, cut);
        // Unless it asks for a longer wait, which it gets.
        budget.limited(at(15.2), at(9.0), Some(at(4.0)), None);
        assert_eq!(budget.cool_until(), at(19.2));
        assert_eq!(budget.state.base, 19.0);
        // A call granted after the cut and refused: a new cut.
        budget.limited(at(20.0), at(19.5), None, Some(15.0));
        assert!(budget.state.base < 19.0);
        assert_eq!(budget.state.cut_at, at(20.0));
    }

    #[test]
    fn without_retry_after_each_429_after_a_cool_down_cuts_again() {
        let mut budget = Adaptive::new(40.0, at(0.0));
        budget.limited(at(0.0), at(0.0), None, None);
        assert_eq!(budget.cool_until(), at(0.5));
        budget.limited(at(0.5), at(0.5), None, None);
        assert_eq!(budget.cool_until(), at(1.0));
        budget.limited(at(1.0), at(1.0), None, None);
        assert_eq!(budget.current(at(1.0)), 5.0);
        assert_eq!(budget.rate(at(1.2)), 0.0);
    }

    #[test]
    fn the_budget_never_falls_below_its_floor() {
        let mut budget = Adaptive::new(20.0, at(0.0));
        for i in 0..50 {
            budget.limited(
                at(f64::from(i) / 1000.0),
                at(f64::from(i) / 1000.0),
                Some(Duration::ZERO),
                Some(0.0),
            );
        }
        assert!((budget.current(at(0.05)) - 1.0).abs() < 0.01);
    }

    /// FoxReload as a limit of `limit` requests in each of its whole
    /// seconds (`offset` ahead of ours), and `containers` containers
    /// sharing one limiter and an adaptive budget of `most`, with `demand`
    /// requests a second to send between them (`None`: always one more);
    /// each learns the shared state with every slot it takes, keeps its
    /// slots as samples of the stack's pace, and a cut is a swap on the
    /// state it saw. What FoxReload sees each second, and the 429s.
    fn converge(
        limit: u32,
        most: f64,
        containers: usize,
        offset: Duration,
        demand: Option<f64>,
    ) -> (Vec<u32>, u32) {
        let secs = 120;
        let mut shared = Adaptive::new(most, Duration::ZERO).state;
        let mut views = vec![Adaptive::new(most, Duration::ZERO); containers];
        let mut samples: Vec<Vec<Granted>> = vec![Vec::new(); containers];
        let mut due = None;
        let mut serial = 0;
        let mut next_request = Duration::ZERO;
        let mut per_second = vec![0u32; secs + 1];
        let mut limited = 0;
        for ms in 0..(secs as u64) * 1000 {
            let now = Duration::from_millis(ms);
            for (i, view) in views.iter_mut().enumerate() {
                // Containers ask in turn, a millisecond apart, when the
                // stack has a request to send.
                if ms % containers as u64 != i as u64 || now < next_request {
                    continue;
                }
                let rate = view.current(now);
                let Slot::Go { at, next, .. } =
                    slot(due, shared.cool_until, now, interval(rate), at(0.1))
                else {
                    view.state = shared;
                    continue;
                };
                due = Some(next);
                serial += 1;
                samples[i].push(Granted { at, serial });
                if let Some(demand) = demand {
                    next_request = now + interval(demand);
                }
                view.state = shared;
                let theirs = at + offset;
                let second = theirs.as_secs() as usize;
                if second >= per_second.len() {
                    continue;
                }
                per_second[second] += 1;
                if per_second[second] > limit {
                    limited += 1;
                    let paced = pace(&samples[i], at).map_or(rate, |pace| pace.min(rate));
                    let next = view.after_limited(at, now, None, accepted_before(theirs, paced));
                    if view.state == shared {
                        shared = next;
                    }
                    view.state = shared;
                }
            }
        }
        (per_second, limited)
    }

    /// Asserts that after the first 429 FoxReload (limit 20) never sees
    /// more than 22 in a second, that most of its limit is used, and 429s
    /// are rare.
    fn assert_converged(per_second: &[u32], limited: u32, case: &str) {
        let first = per_second.iter().position(|n| *n > 20).unwrap();
        let after = &per_second[first + 1..per_second.len() - 1];
        assert!(after.iter().all(|n| *n <= 22), "{case}: {per_second:?}");
        let late = &per_second[60..120];
        let mean = f64::from(late.iter().sum::<u32>()) / late.len() as f64;
        assert!(mean > 16.0, "{case}: {mean} {per_second:?}");
        eprintln!("{case}: mean {mean:.1}, {limited} refused");
        assert!(limited < 60, "{case}: {limited}");
    }

    #[test]
    fn a_stack_over_foxreloads_limit_converges_on_it_at_once() {
        // A budget of 50/s against a limit of 20/s, over 8 containers.
        for offset in [0.0, 0.3, 0.75] {
            let (per_second, limited) = converge(20, 50.0, 8, at(offset), None);
            assert_converged(&per_second, limited, &format!("offset {offset}"));
        }
    }

    #[test]
    fn a_stack_sending_under_its_budget_converges_on_the_limit_too() {
        // A budget of 50/s, but only 32 requests a second to send, against
        // a limit of 20/s.
        for offset in [0.0, 0.3, 0.75] {
            let (per_second, limited) = converge(20, 50.0, 8, at(offset), Some(32.0));
            assert_converged(&per_second, limited, &format!("offset {offset}"));
        }
    }

    #[test]
    fn the_pace_is_the_slots_granted_per_second_over_the_last_second() {
        let sample = |secs: f64, serial: u64| Granted {
            at: at(secs),
            serial,
        };
        // This container's slots, while others took the ones in between:
        // 30 slots in 0.75 s.
        let samples = [
            sample(8.0, 1),
            sample(9.2, 10),
            sample(9.45, 20),
            sample(9.7, 30),
            sample(9.95, 40),
        ];
        assert!((pace(&samples, at(10.0)).unwrap() - 40.0).abs() < 1e-9);
        // Only the last second counts.
        assert!((pace(&samples, at(9.7)).unwrap() - 40.0).abs() < 1e-9);
        // Samples kept out of order count in the order they were granted.
        let mut shuffled = samples;
        shuffled.reverse();
        assert_eq!(pace(&shuffled, at(10.0)), pace(&samples, at(10.0)));
        // A slot granted after a cut, but due before one granted earlier
        // (voided by the cut): no pace to tell.
        assert_eq!(pace(&[sample(9.9, 50), sample(9.3, 60)], at(10.0)), None);
        // Too short a span, one sample, or none: not known.
        assert_eq!(pace(&[sample(9.8, 35), samples[4]], at(10.0)), None);
        assert_eq!(pace(&samples[..1], at(8.5)), None);
        assert_eq!(pace(&[], at(10.0)), None);
    }
}
