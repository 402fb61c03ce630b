//! One polite client of FoxReload (issue 16): a request budget shared by
//! every container of every function, spent by priority, that slows down
//! when FoxReload answers `429` and creeps back up while the stack sends all
//! it allows and FoxReload does not refuse.
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
//!   once per cool-down; after it the budget grows by a hundredth of the
//!   most per second *in which the stack sent all its budget allowed*, back
//!   up to the most. Growth is counted in busy slots ([`busy`]: granted
//!   right after the one before, two seconds or more into a run of the
//!   limiter booked without a break), not in time: a stack that sends less
//!   than its budget learns nothing about FoxReload's limit, so a calm
//!   minute (or a bunch of calls at once now and then) does not let the
//!   next burst go out above it. How deep the
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
    /// keep the limiter busy and the rest find no slot near enough. A
    /// create waits as long as its request allows (28 s, less the time its
    /// POST may take): turned away, its customer would come back later and
    /// ask again, for the same slot.
    pub fn ahead(self) -> Duration {
        match self {
            Self::Create => Duration::from_secs(15),
            Self::FirstPoll => Duration::from_millis(1_000),
            Self::Poll => Duration::from_millis(500),
            Self::Stalled => Duration::from_millis(100),
        }
    }

    /// How far ahead of now a request of this priority may take a slot at
    /// `rate`: its [`Priority::ahead`], and never less than one interval.
    /// The slot after one just taken (a flow's next call: the payment
    /// after a read, a list's next page; the next order of a batch) is
    /// then within reach whenever nobody holds it. A reach shorter than an
    /// interval (a budget cut below ten a second, for a stalled order's)
    /// would refuse every such call, however idle the budget.
    pub fn reach(self, rate: f64) -> Duration {
        self.ahead().max(interval(rate))
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
    let (at, from) = match due {
        Some(due) if due >= now && due >= cool_until => (due, SlotFrom::Due),
        _ if cool_until > now => (cool_until, SlotFrom::CoolDown),
        _ => (now, SlotFrom::Now),
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

/// A read's slot (any call but a create), given the slot the limiter
/// would give it (`slot`, asked at `now` with reach `ahead`) and the span a
/// cut keeps for the creates it voided (until `creates_until`): a slot in
/// that span is not a read's. The creates the cut voided take theirs again
/// in it, ahead of reads, as they did before the cut; the read waits for
/// the span's end (at least an interval, so it never asks again at once).
pub fn for_read(
    slot: Slot,
    now: Duration,
    ahead: Duration,
    interval: Duration,
    creates_until: Option<Duration>,
) -> Slot {
    match (slot, creates_until) {
        (Slot::Go { at, .. }, Some(until)) if at < until => Slot::Wait(
            until
                .saturating_sub(now.saturating_add(ahead))
                .max(interval),
        ),
        _ => slot,
    }
}

/// How many requests FoxReload took in its second before one it refused
/// that was sent at `sent` (FoxReload's clock), while the stack sent
/// `rate` a second (its [`pace`], or its budget when the pace is not
/// known) for `sending` (since it last began after a quiet spell; `None`:
/// not known): slots are spaced evenly, so a refusal `φ` into the second
/// follows about `φ × rate` requests in it, or `sending × rate` when the
/// stack began sending within that second. (`None` for an implausible
/// rate.)
pub fn accepted_before(sent: Duration, rate: f64, sending: Option<Duration>) -> Option<f64> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    let into_second = f64::from(sent.subsec_nanos()) / 1e9;
    let span = sending.map_or(into_second, |sending| {
        into_second.min(sending.as_secs_f64())
    });
    Some(span * rate)
}

/// How long the limiter must have stood idle for the stack to count as
/// having stopped sending: a slot given after such a spell begins its
/// sending ([`accepted_before`]'s `sending`).
pub const QUIET: Duration = Duration::from_secs(1);

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

/// How long the limiter must have been booked without a break before its
/// slots count as busy: a bunch of calls at once (a batch of polls) books
/// it for a moment; a stack sending all its budget allows, for good. Two
/// seconds, so that the run holds a whole second of FoxReload's (whatever
/// the clocks' offset) sent at the budget.
pub const BUSY_AFTER: Duration = Duration::from_secs(2);

/// Whether a slot at `at`, granted from `from`, is busy (it grows the
/// budget): right after the one before, at least [`BUSY_AFTER`] into the
/// run of the limiter that began at `run_from` (a run begins with a slot
/// given to an idle limiter or at the end of a cool-down).
pub fn busy(from: SlotFrom, at: Duration, run_from: Option<Duration>) -> bool {
    from == SlotFrom::Due && run_from.is_some_and(|began| at >= began.saturating_add(BUSY_AFTER))
}

impl SlotFrom {
    /// Whether a slot from here begins a new run of the limiter.
    pub fn begins_run(self) -> bool {
        !matches!(self, Self::Due)
    }
}

/// The budget, adapted to what FoxReload accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct Adaptive {
    /// The configured budget: never more.
    pub most: f64,
    /// Never less (a budget of zero would stop everything for good).
    pub least: f64,
    /// Requests per second added per second the stack sends at its budget
    /// without a 429.
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
    /// [`Adaptive::step`] per busy second from there.
    pub base: f64,
    /// Nothing may be sent before this.
    pub cool_until: Duration,
    /// When the last cut was made: a 429 to a call granted before it (sent
    /// at the old rate, however late) is no news.
    pub cut_at: Duration,
    /// How many busy slots ([`busy`]) the stack had been granted
    /// when the last cut was made: the budget grows with those granted
    /// since. (The store sets it as the cut lands.)
    pub busy_at_cut: u64,
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
                busy_at_cut: 0,
            },
        }
    }

    /// The budget now, in requests per second, when the stack has been
    /// granted `busy` busy slots in all; none during a cool-down.
    pub fn rate(&self, now: Duration, busy: u64) -> f64 {
        if now < self.state.cool_until {
            0.0
        } else {
            self.current(busy)
        }
    }

    /// The budget outside cool-downs, when the stack has been granted
    /// `busy` busy slots in all: the base, grown by [`Adaptive::step`] per
    /// second of the busy slots granted since the cut, up to the most.
    /// (Sending at rate `r`, a busy second grants `r` slots: `r dr = step
    /// dn`, so `r² = base² + 2 step n`.)
    pub fn current(&self, busy: u64) -> f64 {
        let since = busy.saturating_sub(self.state.busy_at_cut) as f64;
        let base = self.state.base.max(0.0);
        (base * base + 2.0 * self.step * since)
            .sqrt()
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
    /// known; `busy`: the busy slots granted in all, as last seen): the
    /// budget cut and a cool-down started; or, for a call
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
        busy: u64,
    ) -> Shared {
        if now < self.state.cool_until || granted < self.state.cut_at {
            return Shared {
                cool_until: retry_after.map_or(self.state.cool_until, |wait| {
                    self.state.cool_until.max(now.saturating_add(wait))
                }),
                ..self.state
            };
        }
        let current = self.current(busy);
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
            busy_at_cut: busy,
        }
    }

    /// FoxReload answered `429` at `now` to a call granted at `granted`.
    pub fn limited(
        &mut self,
        now: Duration,
        granted: Duration,
        retry_after: Option<Duration>,
        accepted: Option<f64>,
        busy: u64,
    ) {
        self.state = self.after_limited(now, granted, retry_after, accepted, busy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

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
    fn a_read_takes_no_slot_in_the_span_a_cut_keeps_for_creates() {
        let tenth = at(0.1);
        let span = Some(at(9.0));
        // In the span: the read waits for its end, past its reach.
        let in_span = slot(Some(at(7.2)), at(7.0), at(7.0), tenth, at(1.0));
        assert_eq!(
            for_read(in_span, at(7.0), at(1.0), tenth, span),
            Slot::Wait(at(1.0))
        );
        // Its end within reach: at least an interval, never at once.
        let near = slot(Some(at(8.5)), at(0.0), at(8.2), tenth, at(1.0));
        assert_eq!(
            for_read(near, at(8.2), at(1.0), tenth, span),
            Slot::Wait(tenth)
        );
        // Creates filled the span: the slot after it is a read's.
        let after = slot(Some(at(9.0)), at(0.0), at(8.5), tenth, at(1.0));
        assert_eq!(for_read(after, at(8.5), at(1.0), tenth, span), after);
        // No span, or one gone by: the limiter's answer.
        assert_eq!(for_read(in_span, at(7.0), at(1.0), tenth, None), in_span);
        let later = slot(None, at(0.0), at(9.5), tenth, at(1.0));
        assert_eq!(for_read(later, at(9.5), at(1.0), tenth, span), later);
        // A wait stays a wait.
        let wait = Slot::Wait(at(2.0));
        assert_eq!(for_read(wait, at(7.0), at(1.0), tenth, span), wait);
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
                match slot(due, Duration::ZERO, now, gap, priority.reach(rate)) {
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
    fn a_priority_reaches_at_least_the_slot_after_the_next_at_any_budget() {
        // At 20/s, each priority's own reach.
        for priority in Priority::ALL {
            assert_eq!(priority.reach(20.0), priority.ahead());
        }
        // Cut to 2.5/s (400 ms apart): a stalled order's call may take the
        // slot after one just taken, as a poll's may; a fresh order's and
        // a create's reach further still.
        assert_eq!(Priority::Stalled.reach(2.5), at(0.4));
        assert_eq!(Priority::Poll.reach(2.5), at(0.5));
        assert_eq!(Priority::FirstPoll.reach(2.5), at(1.0));
        // Slower than a fresh order's reach: every priority the next slot.
        assert_eq!(Priority::FirstPoll.reach(0.5), at(2.0));
        assert_eq!(Priority::Create.reach(0.5), Priority::Create.ahead());
        // The slot after one taken now is within a stalled order's reach.
        let gap = interval(2.5);
        let taken = slot(None, at(0.0), at(10.0), gap, Priority::Stalled.reach(2.5));
        let Slot::Go { next, .. } = taken else {
            panic!("{taken:?}")
        };
        assert!(matches!(
            slot(Some(next), at(0.0), at(10.0), gap, Priority::Stalled.reach(2.5)),
            Slot::Go { at: sent, .. } if sent == at(10.4)
        ));
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
        let accepted = accepted_before(at(100.4), 50.0, None);
        assert!((accepted.unwrap() - 20.0).abs() < 1e-6);
        budget.limited(at(100.5), at(100.5), Some(at(3.0)), accepted, 1_000);
        assert_eq!(budget.rate(at(102.0), 1_000), 0.0);
        // More 429s for requests sent before the first: no further cut.
        budget.limited(at(101.0), at(101.0), None, Some(5.0), 1_010);
        budget.limited(at(102.0), at(102.0), None, None, 1_020);
        assert!((budget.rate(at(103.5), 1_000) - 19.0).abs() < 1e-9);
        // Then it grows back by half a request a second in which the stack
        // sends at its budget: 24² - 19² = 2 × ½ × 215 busy slots.
        assert!((budget.rate(at(113.5), 1_215) - 24.0).abs() < 1e-9);
        assert_eq!(budget.rate(at(1_000.0), 100_000), 50.0);
        // Not while it sends less, however long that lasts.
        assert!((budget.rate(at(1_000.0), 1_000) - 19.0).abs() < 1e-9);
        assert!((budget.current(1_101) - 21.5).abs() < 0.01);
    }

    #[test]
    fn a_cut_goes_no_shallower_than_nine_tenths_no_deeper_than_a_quarter() {
        let budget = Adaptive::new(40.0, at(0.0));
        // FoxReload took as much as we sent: still a cut.
        assert_eq!(
            budget
                .after_limited(at(1.0), at(1.0), None, Some(40.0), 0)
                .base,
            36.0
        );
        // A refusal early in a second (a clock off, another kind of
        // limit): a quarter, not nothing.
        assert_eq!(
            budget
                .after_limited(at(1.0), at(1.0), None, Some(0.5), 0)
                .base,
            10.0
        );
        // No evidence: half.
        assert_eq!(
            budget.after_limited(at(1.0), at(1.0), None, None, 0).base,
            20.0
        );
        assert_eq!(
            budget
                .after_limited(at(1.0), at(1.0), None, Some(f64::NAN), 0)
                .base,
            20.0
        );
        assert_eq!(accepted_before(at(1.5), f64::NAN, None), None);
        assert_eq!(accepted_before(at(1.5), 0.0, None), None);
        // Sending since 0.25 s before a refusal 0.6 s into FoxReload's
        // second: what it sent since, not what 0.6 s at its rate would be.
        let since = accepted_before(at(1.6), 40.0, Some(at(0.25))).unwrap();
        assert!((since - 10.0).abs() < 1e-9, "{since}");
        let long = accepted_before(at(1.6), 40.0, Some(at(5.0))).unwrap();
        assert!((long - 24.0).abs() < 1e-9, "{long}");
    }

    #[test]
    fn a_429_to_a_call_granted_before_the_last_cut_cuts_nothing() {
        let mut budget = Adaptive::new(40.0, at(0.0));
        budget.limited(at(10.0), at(10.0), None, Some(20.0), 0);
        let cut = budget.state;
        assert_eq!(cut.base, 19.0);
        assert_eq!(cut.cut_at, at(10.0));
        // A create booked at 9 s for a slot at 15 s, refused after the
        // cool-down: sent at the old rate, no news.
        budget.limited(at(15.2), at(9.0), None, Some(5.0), 0);
        assert_eq!(budget.state, cut);
        // Unless it asks for a longer wait, which it gets.
        budget.limited(at(15.2), at(9.0), Some(at(4.0)), None, 0);
        assert_eq!(budget.cool_until(), at(19.2));
        assert_eq!(budget.state.base, 19.0);
        // A call granted after the cut and refused: a new cut.
        budget.limited(at(20.0), at(19.5), None, Some(15.0), 0);
        assert!(budget.state.base < 19.0);
        assert_eq!(budget.state.cut_at, at(20.0));
    }

    #[test]
    fn without_retry_after_each_429_after_a_cool_down_cuts_again() {
        let mut budget = Adaptive::new(40.0, at(0.0));
        budget.limited(at(0.0), at(0.0), None, None, 0);
        assert_eq!(budget.cool_until(), at(0.5));
        budget.limited(at(0.5), at(0.5), None, None, 0);
        assert_eq!(budget.cool_until(), at(1.0));
        budget.limited(at(1.0), at(1.0), None, None, 0);
        assert_eq!(budget.current(0), 5.0);
        assert_eq!(budget.rate(at(1.2), 0), 0.0);
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
                0,
            );
        }
        assert!((budget.current(0) - 1.0).abs() < 0.01);
    }

    /// FoxReload as a limit of `limit` requests in each of its whole
    /// seconds (`offset` ahead of ours), and `containers` containers
    /// sharing one limiter and an adaptive budget of `most`, with requests
    /// to send between them (`demand(now)`: when the next one comes after
    /// one at `now`). Each container learns the shared state (and the
    /// count of busy slots) with every slot it takes, keeps its slots as
    /// samples of the stack's pace, and sends a request in its slot unless
    /// a cut since its grant voided it. A 429 reaches its container
    /// `feedback` after the request left (FoxReload's answer, and the
    /// store's round trip); its cut is a swap on the state as it stands,
    /// which the store stamps with its count of busy slots, and restarts
    /// the limiter (and its run) at the end of the cool-down. What
    /// FoxReload sees each second, and the 429s.
    fn converge(
        limit: u32,
        most: f64,
        containers: usize,
        offset: Duration,
        demand: &dyn Fn(Duration) -> Duration,
        feedback: Duration,
    ) -> (Vec<u32>, u32) {
        /// A request granted a slot, not sent yet.
        struct Booked {
            container: usize,
            granted: Duration,
            at: Duration,
            rate: f64,
            sending_from: Option<Duration>,
        }
        let secs = 120;
        let mut shared = Adaptive::new(most, Duration::ZERO).state;
        let mut views = vec![Adaptive::new(most, Duration::ZERO); containers];
        let mut samples: Vec<Vec<Granted>> = vec![Vec::new(); containers];
        let mut due = None;
        let mut serial = 0;
        let mut busy = 0;
        let mut run_from = None;
        let mut sending_from = None;
        let mut seen_busy = vec![0; containers];
        let mut next_request = Duration::ZERO;
        let mut per_second = vec![0u32; secs + 1];
        let mut limited = 0;
        let mut booked: Vec<Booked> = Vec::new();
        // Refusals on their way back: when each arrives, the request, and
        // when it reached FoxReload (its clock).
        let mut refusals: VecDeque<(Duration, Booked, Duration)> = VecDeque::new();
        for ms in 0..(secs as u64) * 1000 {
            let now = Duration::from_millis(ms);
            while refusals
                .front()
                .is_some_and(|(arrives, ..)| *arrives <= now)
            {
                let Some((_, refused, theirs)) = refusals.pop_front() else {
                    break;
                };
                let i = refused.container;
                let view = &mut views[i];
                view.state = shared;
                let paced = pace(&samples[i], refused.at)
                    .map_or(refused.rate, |pace| pace.min(refused.rate));
                let next = view.after_limited(
                    now,
                    refused.granted,
                    None,
                    accepted_before(
                        theirs,
                        paced,
                        refused.sending_from.map(|from| refused.at - from),
                    ),
                    seen_busy[i],
                );
                if next.cut_at > shared.cut_at {
                    due = Some(next.cool_until);
                    run_from = due;
                    if next.cool_until - next.cut_at >= QUIET {
                        sending_from = due;
                    }
                    shared = Shared {
                        busy_at_cut: busy,
                        ..next
                    };
                } else {
                    shared = next;
                }
                view.state = shared;
            }
            // Sent in their slots, unless a cut since their grant voided
            // them (their callers ask again).
            let (sent, waiting): (Vec<Booked>, Vec<Booked>) =
                booked.into_iter().partition(|b| b.at <= now);
            booked = waiting;
            for request in sent {
                if request.granted < shared.cut_at {
                    continue;
                }
                let theirs = request.at + offset;
                let second = theirs.as_secs() as usize;
                if second >= per_second.len() {
                    continue;
                }
                per_second[second] += 1;
                if per_second[second] > limit {
                    limited += 1;
                    refusals.push_back((now + feedback, request, theirs));
                }
            }
            for (i, view) in views.iter_mut().enumerate() {
                // Containers ask in turn, a millisecond apart, when the
                // stack has a request to send.
                if ms % containers as u64 != i as u64 || now < next_request {
                    continue;
                }
                let rate = view.current(seen_busy[i]);
                let Slot::Go { at, next, from } =
                    slot(due, shared.cool_until, now, interval(rate), at(0.1))
                else {
                    view.state = shared;
                    continue;
                };
                if from == SlotFrom::Now && due.is_none_or(|due| due + QUIET <= at) {
                    sending_from = Some(at);
                }
                due = Some(next);
                serial += 1;
                if from.begins_run() {
                    run_from = Some(at);
                }
                busy += u64::from(super::busy(from, at, run_from));
                seen_busy[i] = busy;
                samples[i].push(Granted { at, serial });
                next_request = demand(now);
                view.state = shared;
                booked.push(Booked {
                    container: i,
                    granted: now,
                    at,
                    rate,
                    sending_from,
                });
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
            let (per_second, limited) = converge(20, 50.0, 8, at(offset), &|now| now, at(0.0));
            assert_converged(&per_second, limited, &format!("offset {offset}"));
        }
    }

    #[test]
    fn a_stack_sending_under_its_budget_converges_on_the_limit_too() {
        // A budget of 50/s, but only 32 requests a second to send, against
        // a limit of 20/s.
        for offset in [0.0, 0.3, 0.75] {
            let (per_second, limited) = converge(
                20,
                50.0,
                8,
                at(offset),
                &|now| now + interval(32.0),
                at(0.0),
            );
            assert_converged(&per_second, limited, &format!("offset {offset}"));
        }
    }

    #[test]
    fn a_calm_spell_under_the_limit_does_not_let_the_next_burst_go_out_above_it() {
        // Over the limit for 30 s (it converges), then 5 requests a second
        // for 40 s (calm: the budget is never all used), evenly or all at
        // once at the start of each second (a batch of polls), then a
        // burst. Had the budget grown with time in the calm, or with every
        // slot granted right after another, the burst would go out at 25
        // to 40 a second.
        let even = |now: Duration| match now.as_secs() {
            0..30 => now + interval(32.0),
            30..70 => now + interval(5.0),
            _ => now,
        };
        let batched = |now: Duration| match now.as_secs() {
            0..30 => now + interval(32.0),
            30..70 if now.subsec_millis() < 4 => now + at(0.001),
            30..70 => Duration::from_secs(now.as_secs() + 1),
            _ => now,
        };
        let cases: [(&str, &dyn Fn(Duration) -> Duration); 2] =
            [("even", &even), ("batched", &batched)];
        for ((calm, demand), offset) in cases
            .into_iter()
            .flat_map(|case| [0.0, 0.3, 0.75].map(|offset| (case, offset)))
        {
            let case = format!("{calm}, offset {offset}");
            // A 429 reaches its container 0.3 s after the request left.
            let (per_second, limited) = converge(20, 50.0, 8, at(offset), demand, at(0.3));
            let first = per_second.iter().position(|n| *n > 20).unwrap();
            assert!(first < 30, "{case}: {per_second:?}");
            // After the first 429, FoxReload never sees more than 22 a
            // second: neither at the start (the stack began sending within
            // FoxReload's second) nor after the calm.
            assert!(
                per_second[first + 1..].iter().all(|n| *n <= 22),
                "{case}: {per_second:?}"
            );
            // The burst is sent at FoxReload's limit, not far under it.
            let burst = &per_second[72..118];
            let mean = f64::from(burst.iter().sum::<u32>()) / burst.len() as f64;
            assert!(mean > 17.0, "{case}: {mean} {per_second:?}");
            eprintln!("{case}: burst mean {mean:.1}, {limited} refused");
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
