//! The polling schedule: when to read an order at FoxReload next.
//!
//! The default ([`Schedule::default`]) polls every 10 s for the first 40 s
//! after the order was placed; then from 12 s growing 5 % a poll to a 25 s
//! cap until 10 minutes; then, the order being stalled (operations are
//! alerted), growing on to 900 s (the longest SQS delay) until the horizon
//! (24 h), when the order is abandoned. Every delay carries ±20 % jitter so
//! that orders placed together do not poll together.
//!
//! It was chosen by the schedule benchmark (`foxrelay-bench`, see the
//! docs/benchmarks.md) over 10,000 orders of a documented completion mix: against the
//! reference in FoxReload's guide ([`Schedule::guide`]: 5 s, then ×1.5 to a
//! 30 s cap) it has a lower mean and p95 notification lag and fewer FoxReload
//! reads per order. The guide's schedule, and the "practical schedule" of its
//! text ([`Schedule::practical`]), stay available as presets
//! (`POLL_SCHEDULE`); every figure is also a setting of its own.

use std::time::Duration;

/// The longest delay SQS can give a message.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// The schedule's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Delay while the order is young.
    pub fast_interval: Duration,
    /// Age until which `fast_interval` applies.
    pub fast_until: Duration,
    /// First delay after the fast phase.
    pub steady_start: Duration,
    /// Growth of each delay over the previous one, after the fast phase.
    pub growth: f64,
    /// Longest delay until `stall_after`.
    pub steady_cap: Duration,
    /// Age past which the order is stalled: operations are alerted and the
    /// delays grow on towards `slow_cap`.
    pub stall_after: Duration,
    /// Longest delay once stalled (at most 900 s).
    pub slow_cap: Duration,
    /// Age past which the order is abandoned.
    pub horizon: Duration,
    /// Jitter as a fraction: 0.2 means each delay is within ±20 % of its
    /// nominal value.
    pub jitter: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            fast_interval: Duration::from_secs(10),
            fast_until: Duration::from_secs(40),
            steady_start: Duration::from_secs(12),
            growth: 1.05,
            steady_cap: Duration::from_secs(25),
            stall_after: Duration::from_secs(600),
            slow_cap: MAX_DELAY,
            horizon: Duration::from_secs(86_400),
            jitter: 0.2,
        }
    }
}

/// The named schedules `POLL_SCHEDULE` chooses between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// [`Schedule::default`].
    Foxrelay,
    /// [`Schedule::guide`].
    Guide,
    /// [`Schedule::practical`].
    Practical,
}

impl Preset {
    pub const NAMES: [&str; 3] = ["foxrelay", "guide", "practical"];

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "foxrelay" => Some(Self::Foxrelay),
            "guide" => Some(Self::Guide),
            "practical" => Some(Self::Practical),
            _ => None,
        }
    }

    pub fn schedule(self) -> Schedule {
        match self {
            Self::Foxrelay => Schedule::default(),
            Self::Guide => Schedule::guide(),
            Self::Practical => Schedule::practical(),
        }
    }
}

impl Schedule {
    /// The loop in FoxReload's polling guide: the first poll after 5 s, each
    /// delay ×1.5 of the last, capped at 30 s, for as long as the order runs;
    /// no jitter. (Stalled orders are still alerted after `stall_after`.)
    pub fn guide() -> Self {
        Self {
            fast_interval: Duration::from_secs(5),
            fast_until: Duration::ZERO,
            steady_start: Duration::from_secs(5),
            growth: 1.5,
            steady_cap: Duration::from_secs(30),
            slow_cap: Duration::from_secs(30),
            jitter: 0.0,
            ..Self::default()
        }
    }

    /// The "practical schedule" of FoxReload's guide text (foxrelay's first
    /// default): every 5 s for 60 s, then from 15 s growing ×1.5 to a 30 s
    /// cap until 10 minutes, then slower.
    pub fn practical() -> Self {
        Self {
            fast_interval: Duration::from_secs(5),
            fast_until: Duration::from_secs(60),
            steady_start: Duration::from_secs(15),
            growth: 1.5,
            steady_cap: Duration::from_secs(30),
            ..Self::default()
        }
    }
}

/// What to do after a poll that did not find the order finished.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// Poll again after `delay` (`nominal` with jitter applied; `nominal` is
    /// what the following decision grows from).
    Poll { nominal: Duration, delay: Duration },
    /// Past the horizon: stop and mark the order abandoned.
    Abandon,
}

impl Schedule {
    /// The first poll's nominal delay after the order is placed.
    pub fn first_delay(&self) -> Duration {
        match self.first(0.5) {
            Next::Poll { nominal, .. } => nominal,
            Next::Abandon => Duration::from_secs(1),
        }
    }

    /// The first poll's delay after the order is placed.
    pub fn first(&self, unit: f64) -> Next {
        self.next(Duration::ZERO, None, unit)
    }

    /// The next poll for an order of `age` (since placement) whose previous
    /// nominal delay was `previous`. `unit` is a random number in `[0, 1)`
    /// that picks the jitter.
    pub fn next(&self, age: Duration, previous: Option<Duration>, unit: f64) -> Next {
        if age >= self.horizon {
            return Next::Abandon;
        }
        let nominal = if age < self.fast_until {
            self.fast_interval
        } else if age < self.stall_after {
            self.grow(previous, self.steady_cap)
        } else {
            self.grow(previous, self.slow_cap.min(MAX_DELAY))
        };
        let spread = self.jitter.clamp(0.0, 0.9) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let jittered = nominal.mul_f64(1.0 + spread);
        // Never sleep far past the horizon, never less than a second.
        let until_horizon = self.horizon - age + Duration::from_secs(1);
        let delay = jittered
            .min(until_horizon)
            .min(MAX_DELAY)
            .max(Duration::from_secs(1));
        Next::Poll { nominal, delay }
    }

    fn grow(&self, previous: Option<Duration>, cap: Duration) -> Duration {
        match previous {
            Some(p) if p >= self.steady_start => p.mul_f64(self.growth.max(1.0)).min(cap),
            _ => self.steady_start.min(cap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MID: f64 = 0.5;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn nominal(next: Next) -> Duration {
        match next {
            Next::Poll { nominal, .. } => nominal,
            Next::Abandon => panic!("abandoned"),
        }
    }

    /// Polls an order finishing at `done` (age) makes, without jitter.
    fn polls_until(schedule: &Schedule, done: Duration) -> u32 {
        let mut polls = 0;
        let Next::Poll { mut nominal, delay } = schedule.first(MID) else {
            unreachable!()
        };
        let mut age = delay;
        loop {
            polls += 1;
            if age >= done {
                return polls;
            }
            match schedule.next(age, Some(nominal), MID) {
                Next::Poll { nominal: n, delay } => {
                    nominal = n;
                    age += delay;
                }
                Next::Abandon => return polls,
            }
        }
    }

    #[test]
    fn the_default_polls_every_ten_seconds_then_grows_five_percent_to_25_s() {
        let s = Schedule::default();
        assert_eq!(s.first_delay(), secs(10.0));
        assert_eq!(
            nominal(s.next(secs(39.0), Some(secs(10.0)), MID)),
            secs(10.0)
        );
        let mut previous = secs(10.0);
        let mut seen = Vec::new();
        for _ in 0..20 {
            previous = nominal(s.next(secs(120.0), Some(previous), MID));
            seen.push(previous.as_secs_f64());
        }
        assert_eq!(seen[..3], [12.0, 12.6, 13.23]);
        assert!(seen.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(seen[19], 25.0);
    }

    #[test]
    fn the_guide_preset_is_five_seconds_times_one_and_a_half_capped_at_30_forever() {
        let s = Schedule::guide();
        assert_eq!(s.first_delay(), secs(5.0));
        let mut previous = s.first_delay();
        let mut seen = vec![previous.as_secs_f64()];
        for age in [5.0, 12.5, 23.75, 40.6, 700.0, 50_000.0] {
            previous = nominal(s.next(secs(age), Some(previous), MID));
            seen.push(previous.as_secs_f64());
        }
        assert_eq!(seen, vec![5.0, 7.5, 11.25, 16.875, 25.3125, 30.0, 30.0]);
        assert_eq!(
            s.next(secs(700.0), Some(secs(30.0)), 0.99),
            Next::Poll {
                nominal: secs(30.0),
                delay: secs(30.0)
            }
        );
    }

    #[test]
    fn presets_are_chosen_by_name() {
        assert_eq!(
            Preset::parse("Guide").unwrap().schedule(),
            Schedule::guide()
        );
        assert_eq!(
            Preset::parse("foxrelay").unwrap().schedule(),
            Schedule::default()
        );
        assert_eq!(
            Preset::parse("practical").unwrap().schedule(),
            Schedule::practical()
        );
        assert_eq!(Preset::parse("fast"), None);
    }

    #[test]
    fn young_orders_are_polled_every_five_seconds_on_the_practical_schedule() {
        let s = Schedule::practical();
        assert_eq!(nominal(s.first(MID)), secs(5.0));
        assert_eq!(nominal(s.next(secs(59.0), Some(secs(5.0)), MID)), secs(5.0));
    }

    #[test]
    fn after_a_minute_delays_start_at_fifteen_and_grow_to_the_thirty_second_cap() {
        let s = Schedule::practical();
        let mut previous = secs(5.0);
        let mut seen = Vec::new();
        for _ in 0..4 {
            previous = nominal(s.next(secs(120.0), Some(previous), MID));
            seen.push(previous.as_secs_f64());
        }
        assert_eq!(seen, vec![15.0, 22.5, 30.0, 30.0]);
    }

    #[test]
    fn stalled_orders_slow_down_to_the_sqs_maximum() {
        let s = Schedule::practical();
        let mut previous = secs(30.0);
        for _ in 0..20 {
            previous = nominal(s.next(secs(3_600.0), Some(previous), MID));
        }
        assert_eq!(previous, MAX_DELAY);
        assert_eq!(
            nominal(s.next(secs(700.0), Some(secs(30.0)), MID)),
            secs(45.0)
        );
    }

    #[test]
    fn past_the_horizon_the_order_is_abandoned() {
        let s = Schedule::default();
        assert_eq!(s.next(secs(86_400.0), Some(MAX_DELAY), MID), Next::Abandon);
        let Next::Poll { delay, .. } = s.next(secs(86_300.0), Some(MAX_DELAY), MID) else {
            panic!("still polling before the horizon");
        };
        assert!(
            delay <= secs(101.0),
            "no sleep far past the horizon: {delay:?}"
        );
    }

    #[test]
    fn polls_for_an_order_finishing_at_t() {
        let s = Schedule {
            jitter: 0.0,
            ..Schedule::practical()
        };
        // 5, 10, …, 30.
        assert_eq!(polls_until(&s, secs(30.0)), 6);
        // 5 … 60 (12 polls), then 75 and 97.5.
        assert_eq!(polls_until(&s, secs(90.0)), 14);
        // Ten minutes: 12 fast polls, then 15, 22.5 and 30 s steps to 600 s.
        assert_eq!(polls_until(&s, secs(600.0)), 12 + 2 + 17);
        // A day: the slow phase is a few dozen more polls, not thousands.
        let day = polls_until(&s, secs(86_399.0));
        assert!((100..200).contains(&day), "{day}");
    }

    proptest! {
        #[test]
        fn every_delay_is_within_its_jitter_and_the_sqs_bounds(
            age in 0.0f64..90_000.0,
            previous in proptest::option::of(1.0f64..900.0),
            unit in 0.0f64..1.0,
        ) {
            let s = Schedule::default();
            match s.next(secs(age), previous.map(secs), unit) {
                Next::Abandon => prop_assert!(age >= 86_400.0),
                Next::Poll { nominal, delay } => {
                    prop_assert!(age < 86_400.0);
                    prop_assert!(delay >= secs(1.0) && delay <= MAX_DELAY);
                    prop_assert!(nominal >= secs(10.0) && nominal <= MAX_DELAY);
                    let low = nominal.mul_f64(0.8).max(secs(1.0));
                    let high = nominal.mul_f64(1.2) + Duration::from_nanos(1);
                    let near_horizon = age + delay.as_secs_f64() >= 86_400.0;
                    prop_assert!(near_horizon || (delay >= low - Duration::from_nanos(1) && delay <= high));
                }
            }
        }

        #[test]
        fn nominal_delays_never_shrink_as_the_order_ages(
            steps in proptest::collection::vec(1.0f64..600.0, 1..80),
        ) {
            let s = Schedule::default();
            let mut age = 0.0;
            let mut previous: Option<Duration> = None;
            for step in steps {
                age += step;
                match s.next(secs(age), previous, MID) {
                    Next::Poll { nominal, .. } => {
                        if let Some(p) = previous {
                            prop_assert!(nominal >= p.min(s.fast_interval));
                            if secs(age) >= s.fast_until { prop_assert!(nominal >= p || p == s.fast_interval); }
                        }
                        previous = Some(nominal);
                    }
                    Next::Abandon => break,
                }
            }
        }
    }
}
