//! The poll times a completion-time distribution calls for.
//!
//! The objective: the fewest FoxReload reads on average, while the orders
//! seen more than `target_lag` after they ended stay within `late_share`
//! (4 %: the lag target is a 95th percentile, and the other 1 % is the
//! margin for an estimate made from a few dozen orders). Each order's
//! polls come a few whole seconds earlier than planned (its jitter, the
//! same shift for all its polls): the plan is made for the survival
//! averaged over those shifts, so the jitter costs no lateness. A read at `b` after one at
//! `a` happens when the order had not ended by `a` (probability `S(a)`),
//! and it sees late the orders that ended in `(a, b - target_lag)`.
//!
//! Both costs add up over the gaps between polls, so for a price `μ` on a
//! late order the best poll times are a shortest path over a one-second
//! grid (dynamic programming, `O(T²)` for a plan reaching `T` seconds);
//! `μ` is then bisected to the cheapest plan that keeps the late share
//! within bounds (the Lagrangian relaxation of the constrained problem).
//! Times are whole seconds, as SQS delays are.
//!
//! The plan covers the learned mass only: it ends where all but
//! `1 - mass_covered` of the completions have happened (or at the stall
//! threshold, whichever is first). Past it the default schedule's rails
//! apply: polls at least every steady cap, the stall alert, the horizon.

use std::time::Duration;

/// The longest gap between planned polls: SQS's longest delay.
const MAX_GAP: usize = crate::domain::schedule::MAX_DELAY.as_secs() as usize;

/// The figures a plan is made with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planner {
    /// Lag, in seconds, that all but `late_share` of the orders stay within.
    pub target_lag: f64,
    /// The share of orders allowed to be seen later than `target_lag`.
    pub late_share: f64,
    /// The share of the completions the plan covers before it hands over
    /// to the default schedule.
    pub mass_covered: f64,
    /// No plan reaches past this age (the stall threshold), in seconds.
    pub until: u32,
    /// The price of a second of lag, in reads: small, so it only chooses
    /// between plans of (nearly) the same reads, the one that notifies
    /// sooner.
    pub lag_weight: f64,
    /// Lateness within a bin of the summary, up to this share of the
    /// target, is not counted (the summary cannot tell such times apart).
    /// None by default: with plans made from a smoothed estimate, any
    /// tolerance cost more in lag than it saved in reads.
    pub blur_tolerance: f64,
    /// Each order's polls come a whole-second shift earlier, from none up
    /// to this share of the lag target (and of the poll's own time), the
    /// same for all of an order's polls ([`Plan::shifted`]); the plan is
    /// made for it.
    pub jitter: f64,
}

impl Default for Planner {
    fn default() -> Self {
        Self {
            target_lag: 10.0,
            late_share: 0.04,
            mass_covered: 0.995,
            until: 600,
            lag_weight: 0.05,
            blur_tolerance: 0.0,
            jitter: 0.2,
        }
    }
}

/// Poll times, in whole seconds after the start of the order's clock;
/// strictly increasing, the first at least 1 s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub polls: Vec<u32>,
}

impl Plan {
    /// The delay from `age` to planned poll `i`, `None` past the plan. The
    /// time is absolute (from the order's start), so a poll that came
    /// early, or a message delivered late, does not move the ones after it.
    pub fn delay_to(&self, i: usize, age: Duration) -> Option<Duration> {
        let at = *self.polls.get(i)?;
        Some(Duration::from_secs_f64(
            (f64::from(at) - age.as_secs_f64()).round().max(1.0),
        ))
    }

    /// The next planned poll after the one planned as `done` (`None`: none
    /// made yet), for an order now `age` old: the one after `done`, or the
    /// first still ahead if the order is late (a message delivered late, a
    /// chain revived). `(index, gap before it, delay)`; `None` past the plan.
    pub fn next(&self, done: Option<usize>, age: Duration) -> Option<(usize, Duration, Duration)> {
        let after_done = done.map_or(0, |d| d + 1);
        let ahead = self
            .polls
            .iter()
            .position(|&at| f64::from(at) > age.as_secs_f64())
            .unwrap_or(self.polls.len());
        let i = after_done.max(ahead);
        let delay = self.delay_to(i, age)?;
        let previous = if i == 0 { 0 } else { self.polls[i - 1] };
        Some((
            i,
            Duration::from_secs(u64::from(self.polls[i] - previous)),
            delay,
        ))
    }

    /// The plan one order follows: every poll `shift` whole seconds
    /// earlier, but a poll at `t` by at most a `jitter` share of `t` (so
    /// the first seconds of a fast product's plan stay put), never before
    /// 1 s; polls that come together are made once. This is the jitter
    /// that spreads the reads of orders placed together; one shift for all
    /// of an order's polls is what lets the planner account for it
    /// exactly (the planner plans on the survival averaged over them).
    pub fn shifted(&self, shift: u32, jitter: f64) -> Plan {
        let mut polls: Vec<u32> = Vec::with_capacity(self.polls.len());
        for &at in &self.polls {
            let moved = at
                .saturating_sub(shift.min(Planner::shift_room(at, jitter)))
                .max(1);
            if polls.last().is_none_or(|last| moved > *last) {
                polls.push(moved);
            }
        }
        Plan { polls }
    }
}

/// What a plan is expected to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expected {
    /// Reads per order up to the plan's last poll.
    pub reads: f64,
    /// The share of orders seen later than the target lag (among those the
    /// plan covers).
    pub late: f64,
}

impl Planner {
    /// The plan for an order whose completion time survives `survival`
    /// (`S(t)`: the share not ended by `t` seconds, non-increasing).
    pub fn plan(&self, survival: impl Fn(f64) -> f64) -> Plan {
        let mut s = self.shifted(&survival, self.until.max(1));
        let end = self.end(&s);
        s.truncate(end as usize + 1);
        let at = |t: f64| between_seconds(&s, t);
        let mut best = self.shortest(&s, 0.0);
        if self.expect(&best, &s, &at).late <= self.late_share {
            return best;
        }
        let (mut cheap, mut dear) = (0.0, 1.0);
        // Grow the price until the late share holds (or stops falling).
        while dear < 1e9 {
            let plan = self.shortest(&s, dear);
            if self.expect(&plan, &s, &at).late <= self.late_share {
                best = plan;
                break;
            }
            best = plan;
            cheap = dear;
            dear *= 4.0;
        }
        for _ in 0..40 {
            let mid = (cheap + dear) / 2.0;
            let plan = self.shortest(&s, mid);
            if self.expect(&plan, &s, &at).late <= self.late_share {
                best = plan;
                dear = mid;
            } else {
                cheap = mid;
            }
        }
        best
    }

    /// What `plan` is expected to do for `survival`, over the shifts its
    /// orders are given.
    pub fn expected(&self, plan: &Plan, survival: impl Fn(f64) -> f64) -> Expected {
        let s = self.shifted(&survival, plan.polls.last().copied().unwrap_or(0));
        let at = |t: f64| between_seconds(&s, t);
        self.expect(plan, &s, &at)
    }

    /// The most an order's polls are shifted ([`Plan::shifted`]).
    pub fn most_shift(&self) -> u32 {
        (self.target_lag * self.jitter.clamp(0.0, 0.9)).floor() as u32
    }

    /// How far a poll at `at` s may be shifted.
    fn shift_room(at: u32, jitter: f64) -> u32 {
        (f64::from(at) * jitter.clamp(0.0, 0.9)).floor() as u32
    }

    /// For each whole second `t` up to `until`, the share of orders a poll
    /// planned at `t` finds still open, over the shifts orders are given
    /// (each whole second up to [`Self::most_shift`] equally likely): a
    /// poll shifted by `d` is made at `t - d`, so it is `S(t - d)`
    /// averaged. Non-increasing, as a survival is. `S` is read once per
    /// second, whatever the shifts.
    fn shifted(&self, survival: &impl Fn(f64) -> f64, until: u32) -> Vec<f64> {
        let raw: Vec<f64> = (0..=until).map(|t| survival(f64::from(t))).collect();
        let most = self.most_shift();
        (0..=until)
            .map(|t| {
                let room = Self::shift_room(t, self.jitter);
                let total: f64 = (0..=most).map(|d| raw[(t - d.min(room)) as usize]).sum();
                total / f64::from(most + 1)
            })
            .collect()
    }

    /// Where the plan ends: the first whole second by which `mass_covered`
    /// of the completions have happened, within `[1, until]` (`s` reaching
    /// `until`).
    fn end(&self, s: &[f64]) -> u32 {
        let tail = 1.0 - self.mass_covered;
        let until = self.until.max(1);
        (1..=until)
            .find(|t| s[*t as usize] <= tail)
            .unwrap_or(until)
    }

    /// The share of orders a read at `b` after one at `a` sees late: those
    /// that ended before `b - target_lag` (by more than the summary can
    /// tell times apart, a bin or 4.4 %, up to `blur_tolerance` of the
    /// target, when one is given).
    fn late_between(&self, a: u32, b: u32, at: &impl Fn(f64) -> f64) -> f64 {
        let due = f64::from(b) - self.target_lag;
        let blur = due * (1.0 - 2f64.powf(-1.0 / super::bins::PER_OCTAVE));
        let seen_late_before = due - blur.min(self.target_lag * self.blur_tolerance);
        if seen_late_before <= f64::from(a) {
            0.0
        } else {
            (at(f64::from(a)) - at(seen_late_before)).max(0.0)
        }
    }

    /// The cheapest plan from 0 to the end for price `price` per late
    /// order: `value[a]` is the least cost from a poll at `a` to the end.
    fn shortest(&self, s: &[f64], price: f64) -> Plan {
        let end = s.len() - 1;
        // area[t]: ∫₀ᵗ S, by trapezoids; the expected lag of the orders a
        // read at b sees after one at a, E[(b - T); a < T ≤ b], is
        // (b - a)·S(a) - ∫ₐᵇ S (by parts).
        let mut area = vec![0.0; end + 1];
        for t in 1..=end {
            area[t] = area[t - 1] + (s[t - 1] + s[t]) / 2.0;
        }
        let lag = |a: usize, b: usize| ((b - a) as f64 * s[a] - (area[b] - area[a])).max(0.0);
        // The expected lag beyond the target: the orders ending in
        // (a, b - target), each by how much it is late. A price on it
        // (not on the count of late orders alone) spreads lateness thinly
        // instead of putting it all in one wide gap, where an estimate a
        // little off would make the 95th percentile jump.
        let whole = self.target_lag.floor() as usize;
        let excess = |a: usize, b: usize| {
            if b <= a + whole {
                0.0
            } else {
                lag(a, b - whole)
            }
        };
        let mut value = vec![f64::INFINITY; end + 1];
        let mut next = vec![end; end + 1];
        value[end] = 0.0;
        for a in (0..end).rev() {
            // No gap is longer than SQS can delay a message.
            for b in a + 1..=end.min(a + MAX_GAP) {
                let cost = s[a] + price * excess(a, b) + self.lag_weight * lag(a, b) + value[b];
                if cost < value[a] {
                    value[a] = cost;
                    next[a] = b;
                }
            }
        }
        let mut polls = Vec::new();
        let mut t = 0;
        while t < end {
            t = next[t];
            polls.push(t as u32);
        }
        Plan { polls }
    }

    fn expect(&self, plan: &Plan, s: &[f64], at: &impl Fn(f64) -> f64) -> Expected {
        let mut previous = 0u32;
        let (mut reads, mut late) = (0.0, 0.0);
        for &poll in &plan.polls {
            reads += s[previous as usize];
            late += self.late_between(previous, poll, at);
            previous = poll;
        }
        let covered = 1.0 - s[previous as usize];
        Expected {
            reads,
            late: if covered > 0.0 { late / covered } else { 0.0 },
        }
    }
}

impl Planner {
    /// A poll to add to `plan` now and then, to learn where in a gap the
    /// orders end: a gap picked by the share of orders ending in it
    /// (`pick` in `[0, 1)`), and inside it, for `place` under a half, the
    /// whole second by which a `2·place` share of those orders have ended
    /// (so probes fall where the orders do, and sharpen what is known);
    /// above a half, evenly over the gap's last three lag targets, where
    /// orders would be seen late (so a belief that none end there is put
    /// to the test: the summary cannot otherwise tell an order that ended
    /// just after the poll before from one that ended just before the
    /// poll after). `None` when no gap is wider than 2 s.
    pub fn probe(
        &self,
        plan: &Plan,
        survival: impl Fn(f64) -> f64,
        pick: f64,
        place: f64,
    ) -> Option<u32> {
        let mut gaps = Vec::new();
        let mut previous = 0u32;
        for &poll in &plan.polls {
            if poll - previous > 2 {
                let mass = survival(f64::from(previous)) - survival(f64::from(poll));
                gaps.push((previous, poll, mass.max(0.0)));
            }
            previous = poll;
        }
        let total: f64 = gaps.iter().map(|g| g.2).sum();
        let mut left = pick.clamp(0.0, 1.0) * total;
        let &(a, b, _) = gaps
            .iter()
            .find(|g| {
                left -= g.2;
                left < 0.0
            })
            .or(gaps.last())?;
        let place = place.clamp(0.0, 1.0);
        if place >= 0.5 {
            let low = f64::from(a).max(f64::from(b) - 3.0 * self.target_lag);
            let at = low + (f64::from(b) - low) * (place - 0.5) * 2.0;
            return Some((at.round() as u32).clamp(a + 1, b - 1));
        }
        // Bisect for the time by which that share of the gap's orders
        // ended: survival falls from S(a) to S(b) across it.
        let (from, to) = (survival(f64::from(a)), survival(f64::from(b)));
        let target = from - (from - to) * place * 2.0;
        let (mut low, mut high) = (f64::from(a), f64::from(b));
        for _ in 0..40 {
            let mid = (low + high) / 2.0;
            if survival(mid) > target {
                low = mid;
            } else {
                high = mid;
            }
        }
        Some((high.round() as u32).clamp(a + 1, b - 1))
    }
}

/// `s` (a value per whole second) at `t`, linear between whole seconds.
fn between_seconds(s: &[f64], t: f64) -> f64 {
    let end = s.len() - 1;
    let t = t.clamp(0.0, end as f64);
    let low = t.floor() as usize;
    let high = (low + 1).min(end);
    s[low] + (s[high] - s[low]) * (t - low as f64)
}

/// The survival of an order of several products: it ends when its slowest
/// item does (the items taken as independent).
pub fn slowest(survivals: &[&dyn Fn(f64) -> f64], t: f64) -> f64 {
    1.0 - survivals.iter().map(|s| 1.0 - s(t)).product::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ends uniformly in `[low, high]` seconds.
    fn uniform(low: f64, high: f64) -> impl Fn(f64) -> f64 {
        move |t| ((high - t) / (high - low)).clamp(0.0, 1.0)
    }

    #[test]
    fn a_narrow_fast_product_is_read_once_just_after_it_ends() {
        let planner = Planner::default();
        let plan = planner.plan(uniform(1.8, 2.2));
        assert_eq!(plan.polls, vec![3]);
        let expected = planner.expected(&plan, uniform(1.8, 2.2));
        assert!((expected.reads - 1.0).abs() < 1e-9);
        assert_eq!(expected.late, 0.0);
    }

    #[test]
    fn a_narrow_slow_product_is_not_read_before_it_can_have_ended() {
        let planner = Planner::default();
        let plan = planner.plan(uniform(270.0, 330.0));
        assert!(plan.polls[0] >= 270, "{plan:?}");
        assert!(plan.polls.len() <= 8, "{plan:?}");
        assert!(planner.expected(&plan, uniform(270.0, 330.0)).late <= 0.05);
    }

    #[test]
    fn a_tighter_lag_target_costs_more_reads() {
        let loose = Planner::default();
        let tight = Planner {
            target_lag: 2.0,
            ..loose
        };
        let broad = uniform(5.0, 120.0);
        let reads = |p: &Planner| p.expected(&p.plan(&broad), &broad).reads;
        assert!(reads(&tight) > reads(&loose));
        assert!(tight.expected(&tight.plan(&broad), &broad).late <= 0.05);
    }

    #[test]
    fn a_planned_poll_is_at_its_time_and_one_made_early_or_late_does_not_move_the_next() {
        let plan = Plan {
            polls: vec![3, 10, 30],
        };
        let secs = Duration::from_secs;
        assert_eq!(plan.delay_to(0, secs(0)), Some(secs(3)));
        assert_eq!(plan.delay_to(2, secs(10)), Some(secs(20)));
        assert_eq!(plan.delay_to(2, secs(7)), Some(secs(23)));
        assert_eq!(plan.delay_to(2, secs(12)), Some(secs(18)));
        assert_eq!(plan.delay_to(3, secs(30)), None);
        // Never less than a second.
        assert_eq!(plan.delay_to(1, secs(11)), Some(secs(1)));
    }

    #[test]
    fn an_orders_shift_moves_its_polls_earlier_by_at_most_a_share_of_their_time() {
        let plan = Plan {
            polls: vec![3, 10, 30, 31],
        };
        // A fifth of 3 s is under a second: the first poll stays; 30 and
        // 31 both come 2 s early.
        assert_eq!(plan.shifted(2, 0.2).polls, vec![3, 8, 28, 29]);
        // A poll that would land on the one before it is made once.
        let close = Plan {
            polls: vec![10, 11, 40],
        };
        assert_eq!(close.shifted(2, 0.2).polls, vec![8, 9, 38]);
        let tight = Plan {
            polls: vec![5, 6, 7],
        };
        assert_eq!(tight.shifted(5, 0.2).polls, vec![4, 5, 6]);
        assert_eq!(plan.shifted(0, 0.2), plan);
    }

    #[test]
    fn a_plan_keeps_its_lag_target_under_the_shifts_orders_are_given() {
        // Orders ending in 40–60 s, each polled on the plan shifted by 0,
        // 1 or 2 s: count the ones seen more than 10 s after their end.
        let planner = Planner::default();
        let ends = uniform(40.0, 60.0);
        let plan = planner.plan(&ends);
        let (mut late, mut total) = (0u32, 0u32);
        for shift in 0..=planner.most_shift() {
            let polls = plan.shifted(shift, planner.jitter).polls;
            for i in 0..2000 {
                let end = 40.0 + 20.0 * (f64::from(i) + 0.5) / 2000.0;
                let seen = polls.iter().find(|&&p| f64::from(p) >= end);
                total += 1;
                if seen.is_none_or(|&p| f64::from(p) - end > 10.0) {
                    late += 1;
                }
            }
        }
        let share = f64::from(late) / f64::from(total);
        assert!(share <= planner.late_share + 1e-9, "{share} {plan:?}");
        assert!(planner.expected(&plan, &ends).reads < 1.6, "{plan:?}");
    }

    #[test]
    fn the_next_planned_poll_follows_the_one_made_or_the_first_still_ahead() {
        let plan = Plan {
            polls: vec![3, 10, 30],
        };
        let secs = Duration::from_secs;
        // The first, from the start.
        assert_eq!(plan.next(None, secs(0)), Some((0, secs(3), secs(3))));
        // After the poll planned at 3 s, made a little early or late.
        assert_eq!(plan.next(Some(0), secs(2)), Some((1, secs(7), secs(8))));
        assert_eq!(plan.next(Some(0), secs(4)), Some((1, secs(7), secs(6))));
        // A link delivered at 12 s (after 10 s): the 30 s poll is next.
        assert_eq!(plan.next(Some(0), secs(12)), Some((2, secs(20), secs(18))));
        // Past the plan: the rails take over.
        assert_eq!(plan.next(Some(2), secs(30)), None);
        assert_eq!(plan.next(Some(0), secs(31)), None);
    }

    proptest! {
        #[test]
        fn a_shifted_plan_polls_at_each_planned_time_or_before_it(
            gaps in proptest::collection::vec(1u32..200, 1..12),
            shift in 0u32..20,
        ) {
            let mut t = 0;
            let polls: Vec<u32> = gaps.iter().map(|g| { t += g; t }).collect();
            let shifted = Plan { polls: polls.clone() }.shifted(shift, 0.2).polls;
            prop_assert!(shifted[0] >= 1);
            prop_assert!(shifted.windows(2).all(|w| w[0] < w[1]), "{:?}", shifted);
            // Each planned poll has one made at its time or up to the
            // shift before it (at most a fifth of its time).
            for at in &polls {
                let room = shift.min(at / 5);
                prop_assert!(
                    shifted.iter().any(|p| *p <= *at && *p + room >= *at),
                    "{} in {:?}", at, shifted
                );
            }
            prop_assert!(*shifted.last().unwrap() <= *polls.last().unwrap());
        }
    }

    #[test]
    fn a_probe_falls_inside_a_gap_where_orders_end() {
        let planner = Planner::default();
        let plan = Plan {
            polls: vec![10, 300, 310],
        };
        let late = uniform(200.0, 305.0);
        for i in 0..50 {
            let unit = f64::from(i) / 50.0;
            let probe = planner.probe(&plan, &late, unit, unit).unwrap();
            // No order ends in the first 10 s: never probed there.
            assert!(
                (11..300).contains(&probe) || (301..310).contains(&probe),
                "{probe}"
            );
        }
        assert_eq!(
            planner.probe(&Plan { polls: vec![2, 3] }, &late, 0.5, 0.5),
            None
        );
    }

    #[test]
    fn an_order_ends_with_its_slowest_item() {
        let fast = uniform(1.0, 2.0);
        let slow = uniform(10.0, 20.0);
        let both = |t: f64| slowest(&[&fast, &slow], t);
        assert_eq!(both(5.0), 1.0);
        assert_eq!(both(25.0), 0.0);
        assert!((both(15.0) - 0.5).abs() < 1e-9);
    }

    proptest! {
        // Each case plans up to 600 one-second steps many times over, in a
        // debug build: a few dozen cases keep the fast tier fast.
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn plans_keep_the_rails_whatever_the_distribution(
            low in 0.0f64..900.0, width in 0.1f64..900.0, lag in 1.0f64..60.0,
        ) {
            let planner = Planner { target_lag: lag, until: 600, ..Planner::default() };
            let survival = uniform(low, low + width);
            let plan = planner.plan(&survival);
            prop_assert!(!plan.polls.is_empty());
            prop_assert!(plan.polls[0] >= 1);
            prop_assert!(plan.polls.windows(2).all(|w| w[0] < w[1]), "{:?}", plan);
            // No gap longer than SQS can delay a message.
            prop_assert!(plan.polls.windows(2).all(|w| w[1] - w[0] <= 900), "{:?}", plan);
            prop_assert!(plan.polls[0] <= 900);
            // It never reaches past the stall threshold, and it ends where
            // the learned mass does (or at the threshold).
            let last = *plan.polls.last().unwrap();
            prop_assert!(last <= 600);
            prop_assert!(last == 600 || survival(f64::from(last)) <= 0.005 + 1e-9);
            prop_assert!(planner.expected(&plan, &survival).late <= 0.05 + 1e-9);
        }
    }
}
