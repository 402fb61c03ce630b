//! Which poll times an order gets, and its next poll.
//!
//! An order of products that each have enough observations gets a plan
//! made for the slowest of them ([`PlanKind::Learned`]). An order of a
//! product still warming up gets the default schedule's times with one more
//! poll inside the first gap ([`PlanKind::WarmUp`]): the default's first
//! poll (10 s) says nothing of where in those 10 s an order ends, and a
//! product that ends in 2 s is learned only from polls before it. An order
//! whose summaries could not be read, or with learning off, gets the
//! default schedule itself. An order on a plan is
//! polled at the plan's times (each order's shifted earlier by a few
//! whole seconds, see [`Learning::for_order`]) and, past the plan,
//! on the default schedule's rails: at least every steady cap until the
//! stall threshold, then slower towards the horizon, where an unpaid
//! order is abandoned. Stall alerts do not depend on the plan at all.

use super::plan::{Plan, Planner, slowest};
use super::summary::{Decay, Masses, Observation, Summary};
use crate::domain::schedule::{Next, Schedule};
use std::time::Duration;

/// No plan reaches past this age (15 minutes), whatever the stall
/// threshold: a plan costs `O(T²)` per step of its bisection, so a day-long
/// threshold would make create-order plan for seconds. Past it, the
/// schedule's rails poll the order.
pub const MAX_PLAN_SECS: u64 = 900;

/// Which kind of plan an order follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanKind {
    /// The default schedule's times and one probe in its first gap, while
    /// the product has too few observations.
    WarmUp,
    /// Made from the products' summaries.
    Learned,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WarmUp => "warm-up",
            Self::Learned => "learned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "warm-up" => Some(Self::WarmUp),
            "learned" => Some(Self::Learned),
            _ => None,
        }
    }
}

/// The plan an order follows, and its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderPlan {
    pub kind: PlanKind,
    pub plan: Plan,
}

/// How orders learn their poll times.
#[derive(Clone, Debug, PartialEq)]
pub struct Learning {
    /// Off: every order is polled on the default schedule (summaries are
    /// still kept).
    pub enabled: bool,
    pub planner: Planner,
    pub decay: Decay,
    /// Observations a product needs before its orders get a plan.
    pub min_observations: u64,
    /// The share of planned orders given one more poll inside a gap, to
    /// learn where in it orders end.
    pub probe_share: f64,
    /// Before planning, each bin's mass is shared with its neighbours
    /// until they hold this many observations' worth ([`Masses::smoothed`])…
    pub smoothing: f64,
    /// …but never with bins further than this either side.
    pub widest_smoothing: usize,
    /// The default schedule's nominal poll times up to its stall
    /// threshold, in whole seconds: a warming-up order's plan.
    pub default_times: Vec<u32>,
}

impl Learning {
    /// Learning with a lag target, for orders otherwise polled on
    /// `schedule`: no plan reaches past its stall threshold.
    pub fn new(schedule: &Schedule, target_lag: Duration, min_observations: u64) -> Self {
        Self {
            enabled: true,
            planner: Planner {
                target_lag: target_lag.as_secs_f64(),
                until: schedule.stall_after.as_secs().clamp(1, MAX_PLAN_SECS) as u32,
                jitter: schedule.jitter,
                ..Planner::default()
            },
            decay: Decay::default(),
            min_observations: min_observations.max(1),
            probe_share: 0.1,
            smoothing: 4.0,
            widest_smoothing: 8,
            default_times: default_times(schedule),
        }
    }

    /// A warming-up order's plan: the default schedule's times and one
    /// probe. With nothing observed yet (`estimates` empty), the probe is
    /// at a whole second inside the first gap, evenly on a log scale
    /// (`place` in `[0, 1)`): the gap nothing else looks into. Once the
    /// products have some mass, it goes where their orders end, as a
    /// learned plan's probes do. `None` when there is no room for a probe,
    /// or learning is off.
    pub fn warm_up(&self, estimates: &[Masses], pick: f64, place: f64) -> Option<Plan> {
        let first = *self.default_times.first()?;
        if !self.enabled {
            return None;
        }
        let default = Plan {
            polls: self.default_times.clone(),
        };
        let probe = if estimates.is_empty() {
            if first < 2 {
                return None;
            }
            let high = f64::from(first - 1).ln();
            let at = (high * place.clamp(0.0, 1.0)).exp().round() as u32;
            at.clamp(1, first - 1)
        } else {
            self.planner
                .probe(&default, |t| survival(estimates, t), pick, place)?
        };
        let mut polls = default.polls;
        if let Err(at) = polls.binary_search(&probe) {
            polls.insert(at, probe);
        }
        Some(Plan { polls })
    }

    /// What the summaries of an order's products estimate so far, whatever
    /// their number of observations; empty unless every one has some.
    pub fn so_far(&self, summaries: &[Summary]) -> Vec<Masses> {
        summaries
            .iter()
            .map(|summary| summary.masses(&self.decay))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    }

    /// The first poll's delay on `plan`, for an order whose clock started
    /// `since_start` ago.
    pub fn first_delay(&self, plan: &Plan, since_start: Duration) -> Option<Duration> {
        plan.delay_to(0, since_start)
    }

    /// The plan one order follows: `plan` with all its polls shifted
    /// earlier by the same whole seconds, up to a fifth of the lag target
    /// (`unit` in `[0, 1)` picks how many), so orders placed together are
    /// not all read in the same second. Never later: no order is seen later
    /// than planned, and the planner made the plan for these shifts.
    pub fn for_order(&self, plan: &Plan, unit: f64) -> Plan {
        let most = self.planner.most_shift();
        let shift = ((f64::from(most) + 1.0) * unit.clamp(0.0, 1.0)).floor() as u32;
        plan.shifted(shift.min(most), self.planner.jitter)
    }

    /// What the summaries of an order's products estimate, when learning is
    /// on and every one has enough observations since its product last
    /// changed; `None`: the default schedule applies (a warm-up plan).
    pub fn estimates(&self, summaries: &[Summary]) -> Option<Vec<Masses>> {
        if !self.enabled || summaries.is_empty() {
            return None;
        }
        summaries
            .iter()
            .map(|summary| {
                summary
                    .masses(&self.decay)
                    .filter(|masses| masses.observations >= self.needed(masses))
                    .map(|masses| masses.smoothed(self.smoothing, self.widest_smoothing))
            })
            .collect()
    }

    /// The observations an estimate needs before a plan is made from it:
    /// `min_observations`; for a product found changed, one epoch's worth
    /// (8) if that is fewer. Its history has been set aside as no longer
    /// describing it, on evidence beyond the 0.01 % level; a plan from the
    /// few orders since is smoothed wide ([`Masses::smoothed`] widens where
    /// an estimate rests on few), and each order polled on the default
    /// schedule meanwhile costs reads a plan saves. (On the benchmark,
    /// asking two epochs made a changed product's plans 30 orders later
    /// and its p95 lag 1 s worse.)
    fn needed(&self, masses: &Masses) -> u64 {
        if masses.changed {
            self.min_observations.min(self.decay.epoch)
        } else {
            self.min_observations
        }
    }

    /// The plan for an order whose products' completion times are
    /// `estimates`: it ends when the slowest does.
    pub fn plan(&self, estimates: &[Masses]) -> Plan {
        self.planner.plan(|t| survival(estimates, t))
    }

    /// `plan`, or for a `probe_share` of orders (`roll` in `[0, 1)`) the
    /// plan with one probe poll added (`pick`, `place`: where, see
    /// [`Planner::probe`]).
    pub fn with_probe(
        &self,
        plan: &Plan,
        estimates: &[Masses],
        roll: f64,
        pick: f64,
        place: f64,
    ) -> Plan {
        if roll >= self.probe_share {
            return plan.clone();
        }
        let Some(probe) = self
            .planner
            .probe(plan, |t| survival(estimates, t), pick, place)
        else {
            return plan.clone();
        };
        let mut polls = plan.polls.clone();
        if let Err(at) = polls.binary_search(&probe) {
            polls.insert(at, probe);
        }
        Plan { polls }
    }
}

/// The default schedule's nominal poll times from the start up to its stall
/// threshold (at most [`MAX_PLAN_SECS`]), in whole seconds, strictly
/// increasing.
pub fn default_times(schedule: &Schedule) -> Vec<u32> {
    let mut times: Vec<u32> = Vec::new();
    let (mut age, mut previous) = (Duration::ZERO, None);
    while let Next::Poll { nominal, .. } = schedule.next(age, previous, 0.5) {
        age += nominal.max(Duration::from_secs(1));
        if age > schedule.stall_after.min(Duration::from_secs(MAX_PLAN_SECS)) {
            break;
        }
        let at = age.as_secs_f64().round() as u32;
        if times.last().is_none_or(|last| at > *last) {
            times.push(at);
        }
        previous = Some(nominal);
    }
    times
}

/// The share of orders of these products not ended by `t` seconds.
fn survival(estimates: &[Masses], t: f64) -> f64 {
    let survivals: Vec<Box<dyn Fn(f64) -> f64 + '_>> = estimates
        .iter()
        .map(|m| Box::new(move |t| m.survival(t)) as Box<dyn Fn(f64) -> f64>)
        .collect();
    let refs: Vec<&dyn Fn(f64) -> f64> = survivals.iter().map(|b| b.as_ref()).collect();
    slowest(&refs, t)
}

/// What an order that ended tells about its product: it was still open at
/// `seen_open` (its last poll that read it open; the start when none did)
/// and had ended by `seen_ended`, both since the start of its clock.
pub fn observation(seen_open: Option<Duration>, seen_ended: Duration) -> Observation {
    Observation {
        after: seen_open.unwrap_or_default().min(seen_ended),
        by: seen_ended,
    }
}

/// The next poll of an order, and the planned poll it is (`None`: on the
/// default schedule, or past the plan).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NextPoll {
    pub next: Next,
    pub step: Option<usize>,
}

/// The next poll of an order on `plan` (or on the default schedule
/// without one), after the planned poll `done` (if any was made).
///
/// `since_start` is the age on the plan's clock (from payment, or from
/// placement when we never paid); `since_created` the age the schedule's
/// rails use (stall threshold, horizon); `previous` the last nominal
/// delay. Past the plan, the rails: from the steady cap, as the default
/// schedule would poll an order that old.
pub fn next_poll(
    plan: Option<&Plan>,
    done: Option<usize>,
    schedule: &Schedule,
    since_start: Duration,
    since_created: Duration,
    previous: Option<Duration>,
    unit: f64,
) -> NextPoll {
    let Some(plan) = plan else {
        return NextPoll {
            next: schedule.next(since_created, previous, unit),
            step: None,
        };
    };
    if since_created < schedule.horizon
        && let Some((step, gap, delay)) = plan.next(done, since_start)
    {
        return NextPoll {
            next: Next::Poll {
                nominal: gap,
                delay,
            },
            step: Some(step),
        };
    }
    // Past the plan, the rails go on from the steady cap: never from the
    // plan's own last gap, which may be minutes long.
    let last_gap = match plan.polls.as_slice() {
        [.., before, last] => Duration::from_secs(u64::from(last - before)),
        [only] => Duration::from_secs(u64::from(*only)),
        [] => Duration::ZERO,
    };
    let previous = match previous {
        Some(p) if p != last_gap => p.max(schedule.steady_cap),
        _ => schedule.steady_cap,
    };
    NextPoll {
        next: schedule.next(since_created, Some(previous), unit),
        step: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::learning::summary::Observation;
    use proptest::prelude::*;

    fn summary_of(decay: &Decay, ends: &[(f64, f64)]) -> Summary {
        let mut summary = Summary::default();
        for (after, by) in ends {
            let observation = Observation {
                after: Duration::from_secs_f64(*after),
                by: Duration::from_secs_f64(*by),
            };
            let contribution = decay.learn(&observation, &summary);
            summary.add(&contribution);
        }
        summary
    }

    #[test]
    fn a_product_with_too_few_observations_falls_back_to_the_default() {
        let learning = Learning::new(&Schedule::default(), Duration::from_secs(10), 20);
        let thin = summary_of(&learning.decay, &[(1.9, 2.1); 19]);
        let enough = summary_of(&learning.decay, &[(1.9, 2.1); 20]);
        assert_eq!(learning.estimates(std::slice::from_ref(&thin)), None);
        assert!(learning.estimates(std::slice::from_ref(&enough)).is_some());
        // Every product of an order needs enough.
        assert_eq!(learning.estimates(&[enough.clone(), thin]), None);
        assert_eq!(learning.estimates(&[]), None);
        let off = Learning {
            enabled: false,
            ..learning
        };
        assert_eq!(off.estimates(&[enough]), None);
    }

    #[test]
    fn an_order_of_several_products_is_planned_for_the_slowest() {
        let learning = Learning::new(&Schedule::default(), Duration::from_secs(10), 20);
        let fast = summary_of(&learning.decay, &[(1.9, 2.1); 30]);
        let slow = summary_of(&learning.decay, &[(59.0, 61.0); 30]);
        let both = learning.estimates(&[fast, slow.clone()]).unwrap();
        let alone = learning.estimates(&[slow]).unwrap();
        let plan = learning.plan(&both);
        assert!(plan.polls[0] >= 50, "{plan:?}");
        assert_eq!(plan, learning.plan(&alone));
    }

    #[test]
    fn a_warming_up_order_keeps_the_default_times_with_one_probe_inside_the_first_gap() {
        let schedule = Schedule::default();
        let learning = Learning::new(&schedule, Duration::from_secs(10), 20);
        assert_eq!(&learning.default_times[..5], &[10, 20, 30, 40, 52]);
        assert!(learning.default_times.windows(2).all(|w| w[0] < w[1]));
        assert!(*learning.default_times.last().unwrap() <= 600);
        for i in 0..20 {
            let plan = learning.warm_up(&[], 0.5, f64::from(i) / 20.0).unwrap();
            assert!((1..=9).contains(&plan.polls[0]), "{plan:?}");
            assert_eq!(&plan.polls[1..], &learning.default_times[..]);
        }
        // Evenly on a log scale: as many probes in 1–3 s as in 3–9 s.
        let early = (0..100)
            .filter(|i| {
                learning
                    .warm_up(&[], 0.5, f64::from(*i) / 100.0)
                    .unwrap()
                    .polls[0]
                    <= 3
            })
            .count();
        assert!((35..=65).contains(&early), "{early}");
        // Once something is known, the probe goes where orders end: here
        // between 20 s and 30 s, the default's third gap.
        let some = learning.so_far(&[summary_of(&learning.decay, &[(20.0, 30.0); 3])]);
        // (to a bin: the one holding 20 s reaches down to 19 s).
        let inside = (0..20)
            .filter(|i| {
                let unit = (f64::from(*i) + 0.5) / 20.0;
                let plan = learning.warm_up(&some, unit, unit).unwrap();
                assert_eq!(plan.polls.len(), learning.default_times.len() + 1);
                plan.polls.iter().any(|t| (19..30).contains(t) && *t != 20)
            })
            .count();
        assert!(inside >= 18, "{inside}");
        let off = Learning {
            enabled: false,
            ..learning.clone()
        };
        assert_eq!(off.warm_up(&[], 0.5, 0.5), None);
        // A schedule whose first poll comes after a second has no room.
        let quick = Schedule {
            fast_interval: Duration::from_secs(1),
            ..schedule
        };
        assert_eq!(
            Learning::new(&quick, Duration::from_secs(10), 20).warm_up(&[], 0.5, 0.5),
            None
        );
    }

    #[test]
    fn past_a_plan_with_a_long_last_gap_the_rails_start_from_the_steady_cap() {
        let schedule = Schedule::default();
        let plan = Plan {
            polls: vec![100, 700],
        };
        // The poll planned at 700 s was made (past the stall threshold);
        // its gap was 600 s.
        let secs = Duration::from_secs;
        let NextPoll { next, step } = next_poll(
            Some(&plan),
            Some(1),
            &schedule,
            secs(700),
            secs(700),
            Some(secs(600)),
            0.5,
        );
        assert_eq!(step, None);
        let Next::Poll { nominal, .. } = next else {
            panic!("{next:?}")
        };
        assert!(
            nominal <= schedule.steady_cap.mul_f64(schedule.growth),
            "{nominal:?}"
        );
    }

    #[test]
    fn a_probe_is_added_to_a_share_of_plans_only() {
        let learning = Learning::new(&Schedule::default(), Duration::from_secs(10), 20);
        let estimates = learning
            .estimates(&[summary_of(&learning.decay, &[(0.0, 40.0); 30])])
            .unwrap();
        let plan = learning.plan(&estimates);
        assert_eq!(learning.with_probe(&plan, &estimates, 0.5, 0.3, 0.3), plan);
        let probed = learning.with_probe(&plan, &estimates, 0.05, 0.3, 0.3);
        assert_eq!(probed.polls.len(), plan.polls.len() + 1, "{plan:?}");
        assert!(probed.polls.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_observation_lies_between_the_last_poll_that_saw_it_open_and_the_end() {
        let secs = Duration::from_secs;
        assert_eq!(
            observation(Some(secs(5)), secs(9)),
            Observation {
                after: secs(5),
                by: secs(9)
            }
        );
        // Never polled open: from the start.
        assert_eq!(observation(None, secs(9)).after, Duration::ZERO);
        // A clock that moved (paid after the last open poll) never inverts it.
        assert_eq!(observation(Some(secs(12)), secs(9)).after, secs(9));
    }

    proptest! {
        #[test]
        fn an_order_on_a_plan_keeps_the_rails(
            polls in proptest::collection::btree_set(1u32..600, 1..20),
            offset in 0u64..30,
            units in proptest::collection::vec(0.0f64..1.0, 400),
        ) {
            // `offset`: how long after placement the plan's clock started.
            let schedule = Schedule::default();
            let plan = Plan { polls: polls.into_iter().collect() };
            let (mut age, mut done, mut previous) = (Duration::from_secs(offset), None, None);
            for unit in units {
                let since_start = age - Duration::from_secs(offset);
                let NextPoll { next, step } =
                    next_poll(Some(&plan), done, &schedule, since_start, age, previous, unit);
                let Next::Poll { nominal, delay } = next else {
                    prop_assert!(age >= schedule.horizon);
                    break;
                };
                prop_assert!(delay >= Duration::from_secs(1));
                match step {
                    Some(i) => {
                        // Planned polls go forward, never later than planned.
                        prop_assert!(done.is_none_or(|d| i > d));
                        let at = since_start + delay;
                        prop_assert!(at.as_secs() <= u64::from(plan.polls[i]));
                    }
                    None => {
                        // Past the plan: at least every steady cap before the
                        // stall threshold.
                        // Only once every planned poll was made, or its
                        // time has passed.
                        prop_assert!(
                            done == Some(plan.polls.len() - 1)
                                || since_start.as_secs() >= u64::from(*plan.polls.last().unwrap())
                        );
                        if age + delay <= schedule.stall_after {
                            prop_assert!(delay <= schedule.steady_cap.mul_f64(1.0 + schedule.jitter) + Duration::from_secs(1));
                        }
                    }
                }
                done = step.or(done);
                previous = Some(nominal);
                age += Duration::from_secs(delay.as_secs());
                if age > schedule.stall_after + Duration::from_secs(60) {
                    break;
                }
            }
        }
    }
}
