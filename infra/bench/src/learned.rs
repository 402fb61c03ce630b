//! Learned polling against fixed schedules: the real summary and planner
//! code (`domain::learning`) and the real schedule on a simulated clock,
//! over 10,000 orders of five products that behave very differently, one of
//! which changes halfway through.
//!
//! Each product's summary learns from the orders before it, as poll-order
//! would: an order's observation reaches the summary 10 orders of its
//! product later (orders in flight), and a product's plan is made again
//! every 10 of its orders (a container's cache). Until a product has 20
//! observations the default schedule applies. Lag is from completion at
//! FoxReload to the poll that sees it; reads are FoxReload GETs.

use crate::rng::Rng;
use crate::schedule_lag::poll_until;
use crate::table::{Section, fixed, ratio};
use foxrelay_shared::domain::learning::summary::Masses;
use foxrelay_shared::domain::learning::{
    Learning, NextPoll, Observation, Plan, Summary, next_poll,
};
use foxrelay_shared::domain::schedule::{Next, Schedule};
use foxrelay_shared::queue::delay_seconds;
use std::collections::VecDeque;
use std::time::Duration;

const ORDERS: usize = 10_000;
const SEED: u64 = 1515;
/// Orders of a product before its figures count as "after warm-up".
const WARM_UP: usize = 100;
/// Observations a product needs before its plan replaces the default.
pub const MIN_OBSERVATIONS: u64 = 20;
/// Orders of a product between two plans of it.
const REPLAN_EVERY: usize = 10;
/// Orders of a product an observation takes to reach its summary.
const IN_FLIGHT: usize = 10;
/// The order of the shifting product from which it behaves otherwise.
const SHIFT_AT: usize = ORDERS / 5 / 2;
/// Lag targets tried; the first is the default.
const TARGETS: [f64; 4] = [10.0, 5.0, 15.0, 20.0];

#[derive(Clone, Copy)]
enum Product {
    NarrowFast,
    NarrowSlow,
    Broad,
    Bimodal,
    Shifting,
    /// The shifting product the other way round, in a run of its own.
    SpeedingUp,
}

const PRODUCTS: [Product; 5] = [
    Product::NarrowFast,
    Product::NarrowSlow,
    Product::Broad,
    Product::Bimodal,
    Product::Shifting,
];

impl Product {
    fn name(self) -> &'static str {
        match self {
            Self::NarrowFast => "narrow fast (1.7–2.3 s)",
            Self::NarrowSlow => "narrow slow (270–330 s)",
            Self::Broad => "broad (2–600 s, log-uniform)",
            Self::Bimodal => "bimodal (2–4 s or 80–100 s)",
            Self::Shifting => "shifting (4–6 s, then 40–60 s)",
            Self::SpeedingUp => "speeding up (40–60 s, then 4–6 s)",
        }
    }

    /// Seconds from payment to the end, for order `k` of this product.
    fn draw(self, k: usize, rng: &mut Rng) -> f64 {
        match self {
            Self::NarrowFast => rng.uniform(1.7, 2.3),
            Self::NarrowSlow => rng.uniform(270.0, 330.0),
            Self::Broad => rng.log_uniform(2.0, 600.0),
            Self::Bimodal if rng.unit() < 0.5 => rng.uniform(2.0, 4.0),
            Self::Bimodal => rng.uniform(80.0, 100.0),
            Self::Shifting if k < SHIFT_AT => rng.uniform(4.0, 6.0),
            Self::Shifting => rng.uniform(40.0, 60.0),
            Self::SpeedingUp if k < SHIFT_AT => rng.uniform(40.0, 60.0),
            Self::SpeedingUp => rng.uniform(4.0, 6.0),
        }
    }
}

/// What one way of polling did to some orders.
#[derive(Clone, Debug, Default)]
struct Seen {
    lags: Vec<f64>,
    reads: u64,
}

impl Seen {
    fn add(&mut self, lag: f64, reads: u32) {
        self.lags.push(lag);
        self.reads += u64::from(reads);
    }
    fn extend(&mut self, other: &Seen) {
        self.lags.extend(&other.lags);
        self.reads += other.reads;
    }
    fn reads_per_order(&self) -> f64 {
        self.reads as f64 / self.lags.len().max(1) as f64
    }
    fn mean(&self) -> f64 {
        self.lags.iter().sum::<f64>() / self.lags.len().max(1) as f64
    }
    fn p95(&self) -> f64 {
        let mut lags = self.lags.clone();
        lags.sort_by(f64::total_cmp);
        lags.get((lags.len() * 95).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }
}

/// One order polled on `plan` (its own, shifted by its jitter) as
/// poll-order polls it (`next_poll`: the plan's times, then the default
/// schedule's rails): `(lag, reads, observation)`.
fn poll_planned(
    plan: &Plan,
    schedule: &Schedule,
    done: f64,
    rng: &mut Rng,
) -> (f64, u32, Observation) {
    let (mut age, mut before, mut reads) = (0.0f64, 0.0f64, 0u32);
    let (mut step, mut previous) = (None, None);
    loop {
        let at = Duration::from_secs_f64(age);
        let NextPoll {
            next,
            step: planned,
        } = next_poll(Some(plan), step, schedule, at, at, previous, rng.unit());
        let Next::Poll { nominal, delay } = next else {
            return (f64::NAN, reads, observed(before, age));
        };
        step = planned.or(step);
        previous = Some(nominal);
        age += f64::from(delay_seconds(delay).max(1));
        reads += 1;
        if age >= done {
            return (age - done, reads, observed(before, age));
        }
        before = age;
    }
}

fn observed(after: f64, by: f64) -> Observation {
    Observation {
        after: Duration::from_secs_f64(after),
        by: Duration::from_secs_f64(by),
    }
}

/// The default schedule's polls of one order, as an observation too.
fn poll_default(schedule: &Schedule, done: f64, rng: &mut Rng) -> (f64, u32, Observation) {
    let (lag, reads) = poll_until(schedule, done, rng).unwrap_or((f64::NAN, 0));
    // The default's polls are not replayed here: the poll before the one
    // that saw the end is at most the steady cap earlier.
    let by = done + lag;
    let after = (by - schedule.steady_cap.as_secs_f64()).max(0.0).min(done);
    (lag, reads, observed(after, by))
}

struct Learner {
    summary: Summary,
    in_flight: VecDeque<Observation>,
    /// What the summary estimated when last read (empty: nothing yet).
    estimates: Vec<Masses>,
    /// The learned plan made then, past warm-up.
    plan: Option<Plan>,
}

/// Every way of polling over the same orders, for one lag target.
struct Run {
    /// Per product: default, guide, learned, after warm-up.
    steady: Vec<[Seen; 3]>,
    /// Learned, per product, during warm-up.
    warm: Vec<Seen>,
    /// Orders of the shifting product after the shift until its reads are
    /// within 10 % of the new optimum's (over the next 20).
    recovered_after: Option<usize>,
    /// The new optimum's reads per order, and the learned plans' over the
    /// shifting product's last 500 orders.
    shift_reads: (f64, f64),
    /// The shifting product's lags after the shift, in order.
    shift_lags: Vec<f64>,
    /// Each product's plan at the end of the run.
    plans: Vec<Option<Plan>>,
    /// The longest a plan took to make, per product (create-order's cost
    /// on a cache miss), in milliseconds.
    plan_ms: Vec<f64>,
}

/// The run at lag target `target`, the fifth product being `shifting`.
fn run_target(target: f64, shifting: Product) -> Run {
    let schedule = Schedule::default();
    let guide = Schedule::guide();
    let learning = Learning::new(&schedule, Duration::from_secs_f64(target), MIN_OBSERVATIONS);
    let planner = learning.planner;
    let mut draws = Rng::new(SEED);
    let mut jitter = Rng::new(SEED + 1);
    let mut learners: Vec<Learner> = PRODUCTS
        .iter()
        .map(|_| Learner {
            summary: Summary::default(),
            in_flight: VecDeque::new(),
            estimates: Vec::new(),
            plan: None,
        })
        .collect();
    let mut steady = vec![<[Seen; 3]>::default(); PRODUCTS.len()];
    let mut warm = vec![Seen::default(); PRODUCTS.len()];
    let mut plan_ms = vec![0.0f64; PRODUCTS.len()];
    // The reads per order of the best plan for the new behaviour: the
    // planner's, made knowing it exactly, for orders given the same
    // shifts (the jitter every plan keeps).
    let shifted_optimum = {
        let new = |t: f64| ((60.0 - t) / 20.0).clamp(0.0, 1.0);
        planner.expected(&planner.plan(new), new).reads
    };
    let (mut shifted_reads, mut shift_lags) = (Vec::new(), Vec::new());
    for i in 0..ORDERS {
        let p = i % PRODUCTS.len();
        let k = i / PRODUCTS.len();
        let product = match PRODUCTS[p] {
            Product::Shifting => shifting,
            other => other,
        };
        let done = product.draw(k, &mut draws);
        let learner = &mut learners[p];
        if k.is_multiple_of(REPLAN_EVERY) {
            // What create-order's cache holds: plans made from the
            // summary as read now.
            let summaries = std::slice::from_ref(&learner.summary);
            learner.estimates = learning.so_far(summaries);
            let started = std::time::Instant::now();
            learner.plan = learning
                .estimates(summaries)
                .map(|estimates| learning.plan(&estimates));
            plan_ms[p] = f64::max(plan_ms[p], started.elapsed().as_secs_f64() * 1e3);
        }
        let (roll, pick, place) = (jitter.unit(), jitter.unit(), jitter.unit());
        let plan = match &learner.plan {
            Some(plan) => Some(learning.with_probe(plan, &learner.estimates, roll, pick, place)),
            None => learning.warm_up(&learner.estimates, pick, place),
        }
        .map(|plan| learning.for_order(&plan, jitter.unit()));
        let (lag, reads, observation) = match &plan {
            Some(plan) => poll_planned(plan, &schedule, done, &mut jitter),
            None => poll_default(&schedule, done, &mut jitter),
        };
        if p == PRODUCTS.len() - 1 && k >= SHIFT_AT {
            shift_lags.push(lag);
            shifted_reads.push(f64::from(reads));
        }
        learner.in_flight.push_back(observation);
        if learner.in_flight.len() > IN_FLIGHT {
            // As poll-order adds it: read the summary, learn, add.
            let observation = learner.in_flight.pop_front().expect("in flight");
            let contribution = learning.decay.learn(&observation, &learner.summary);
            learner.summary.add(&contribution);
        }
        let (default_lag, default_reads, _) = poll_default(&schedule, done, &mut jitter);
        let (guide_lag, guide_reads) = poll_until(&guide, done, &mut jitter).unwrap_or_default();
        if k < WARM_UP {
            warm[p].add(lag, reads);
        } else {
            steady[p][0].add(default_lag, default_reads);
            steady[p][1].add(guide_lag, guide_reads);
            steady[p][2].add(lag, reads);
        }
    }
    // The first order after the shift from which the next 20 read, on
    // average, within 10 % of the optimum (probes included).
    let recovered_after = (0..shifted_reads.len().saturating_sub(20)).find(|&j| {
        shifted_reads[j..j + 20].iter().sum::<f64>() / 20.0
            <= 1.1 * (shifted_optimum + learning.probe_share)
    });
    let tail = &shifted_reads[shifted_reads.len().saturating_sub(500)..];
    Run {
        plans: learners.iter().map(|l| l.plan.clone()).collect(),
        plan_ms,
        steady,
        warm,
        recovered_after,
        shift_lags,
        shift_reads: (
            shifted_optimum,
            tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        ),
    }
}

/// The cells comparing the default schedule with the learned plans.
fn compared(default: &Seen, learned: &Seen) -> Vec<String> {
    vec![
        fixed(default.reads_per_order(), 2),
        fixed(learned.reads_per_order(), 2),
        ratio(learned.reads_per_order(), default.reads_per_order()),
        fixed(default.p95(), 1),
        fixed(learned.p95(), 1),
        fixed(default.mean(), 2),
        fixed(learned.mean(), 2),
    ]
}

pub fn run() -> Section {
    let mut runs = Vec::new();
    for target in TARGETS {
        crate::progress::step(format_args!(
            "lag target {target} s: {ORDERS} orders of {} products",
            PRODUCTS.len()
        ));
        runs.push((target, run_target(target, Product::Shifting)));
    }
    crate::progress::step(format_args!(
        "lag target {} s: {ORDERS} orders, the fifth product speeding up",
        TARGETS[0]
    ));
    let speeding = run_target(TARGETS[0], Product::SpeedingUp);
    let mut section = Section::new(
        "Learned polling",
        &format!(
            "The real summary and planner (domain::learning) and schedule on a simulated clock: \
             {ORDERS} orders, five products in turn; an observation reaches its product's summary \
             {IN_FLIGHT} orders later, plans are made every {REPLAN_EVERY} orders, warm-up plans \
             (the default's times and a probe) until {MIN_OBSERVATIONS} observations. Figures after the first \
             {WARM_UP} orders of each product (warm-up) unless said. The shifting product \
             changes at its order {SHIFT_AT}. Rows per lag target: the default target first; the last \
             row is a run of its own at the default target, the fifth product speeding up instead."
        ),
        &[
            "product / lag target",
            "default reads",
            "learned reads",
            "reads vs default",
            "default p95 lag s",
            "learned p95 lag s",
            "default mean lag s",
            "learned mean lag s",
            "learned plan at the end, s",
            "longest plan ms",
        ],
    );
    let (default_target, chosen) = &runs[0];
    for (p, product) in PRODUCTS.iter().enumerate() {
        let [default, _, learned] = &chosen.steady[p];
        let mut row = vec![format!("{} @ {default_target} s", product.name())];
        row.extend(compared(default, learned));
        row.push(chosen.plans[p].as_ref().map_or_else(
            || "none".to_owned(),
            |plan| {
                let shown: Vec<String> = plan.polls.iter().take(10).map(u32::to_string).collect();
                let more = if plan.polls.len() > 10 { " …" } else { "" };
                format!("{}{more}", shown.join(", "))
            },
        ));
        row.push(fixed(chosen.plan_ms[p], 1));
        section.row(row);
    }
    for (target, run) in &runs {
        let (mut default, mut guide, mut learned, mut warm) = (
            Seen::default(),
            Seen::default(),
            Seen::default(),
            Seen::default(),
        );
        for p in 0..PRODUCTS.len() {
            default.extend(&run.steady[p][0]);
            guide.extend(&run.steady[p][1]);
            learned.extend(&run.steady[p][2]);
            warm.extend(&run.warm[p]);
        }
        let mut row = vec![format!(
            "all products @ {target} s (guide: {} reads, p95 {} s; warm-up learned: {} reads, p95 {} s; after the shift: optimum {} reads, learned {} over the last 500, within 10 % after {} orders)",
            fixed(guide.reads_per_order(), 2),
            fixed(guide.p95(), 1),
            fixed(warm.reads_per_order(), 2),
            fixed(warm.p95(), 1),
            fixed(run.shift_reads.0, 2),
            fixed(run.shift_reads.1, 2),
            run.recovered_after
                .map_or_else(|| "never".to_owned(), |n| n.to_string()),
        )];
        row.extend(compared(&default, &learned));
        row.push(String::new());
        row.push(String::new());
        section.row(row);
    }
    // A product that got faster: its orders are seen late until the plans
    // look early enough again.
    let [default, _, learned] = &speeding.steady[PRODUCTS.len() - 1];
    let lags = &speeding.shift_lags;
    let target = TARGETS[0];
    let on_target_after = (0..lags.len().saturating_sub(20))
        .find(|&j| lags[j..j + 20].iter().all(|lag| *lag <= target));
    let first = Seen {
        lags: lags.iter().take(100).copied().collect(),
        reads: 0,
    };
    let mut row = vec![format!(
        "{} @ {target} s, in a run of its own (after the change: the next 20 orders all seen within the target from order {}; p95 lag of the first 100: {} s)",
        Product::SpeedingUp.name(),
        on_target_after.map_or_else(|| "never".to_owned(), |n| n.to_string()),
        fixed(first.p95(), 1),
    )];
    row.extend(compared(default, learned));
    row.push(speeding.plans[PRODUCTS.len() - 1].as_ref().map_or_else(
        || "none".to_owned(),
        |plan| {
            let shown: Vec<String> = plan.polls.iter().map(u32::to_string).collect();
            shown.join(", ")
        },
    ));
    row.push(fixed(speeding.plan_ms[PRODUCTS.len() - 1], 1));
    section.row(row);
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_order_is_seen_no_later_than_its_plan_and_observed_between_polls() {
        let schedule = Schedule::default();
        let plan = Plan {
            polls: vec![3, 8, 20],
        };
        for seed in 0..50 {
            let (lag, reads, observation) =
                poll_planned(&plan, &schedule, 7.5, &mut Rng::new(seed));
            // The plan is polled as it is (an order's shift is made on its
            // plan before): the poll at 8 s sees the end, the second read.
            assert!((lag - 0.5).abs() < 1e-9, "{lag}");
            assert_eq!(reads, 2);
            assert!(observation.after.as_secs_f64() < 7.5);
            assert!(observation.by.as_secs_f64() >= 7.5);
        }
        // Past the plan, the default schedule's rails: at most a steady cap
        // between polls.
        let (lag, _, _) = poll_planned(&plan, &schedule, 100.0, &mut Rng::new(1));
        assert!(lag <= schedule.steady_cap.as_secs_f64());
    }
}
