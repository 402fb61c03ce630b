//! Notification lag against polling cost: the real schedule code on a
//! simulated clock, over 10,000 orders of a fixed completion mix.
//!
//! An order finishing at FoxReload at age `t` is seen by the first poll at or
//! after `t`; its lag is that poll's age less `t`, its cost the number of
//! polls (FoxReload GETs) until then. Polls happen as in production: the
//! first after the schedule's first delay (create-order), each next one after
//! `Schedule::next` with a random jitter draw, in the whole seconds SQS's
//! `DelaySeconds` allows.

use crate::rng::Rng;
use crate::table::{Section, fixed, ratio};
use foxrelay_shared::domain::schedule::{Next, Schedule};
use foxrelay_shared::queue::delay_seconds;
use std::time::Duration;

pub const ORDERS: usize = 10_000;
const SEED: u64 = 2026;

/// The completion mix, in seconds after placement: 5 % within 1–5 s
/// (uniform), 65 % within 5–60 s, 25 % within 60–600 s, 5 % within
/// 600–7,200 s (each log-uniform).
pub const MIX: &str = "5 % in 1–5 s, 65 % in 5–60 s, 25 % in 1–10 min, 5 % in 10 min–2 h";

pub fn completion_times(count: usize, rng: &mut Rng) -> Vec<f64> {
    (0..count)
        .map(|_| {
            let pick = rng.unit();
            if pick < 0.05 {
                rng.uniform(1.0, 5.0)
            } else if pick < 0.70 {
                rng.log_uniform(5.0, 60.0)
            } else if pick < 0.95 {
                rng.log_uniform(60.0, 600.0)
            } else {
                rng.log_uniform(600.0, 7_200.0)
            }
        })
        .collect()
}

/// One order's polls: `(lag, gets)`, or `None` if it was abandoned first.
pub fn poll_until(schedule: &Schedule, done: f64, rng: &mut Rng) -> Option<(f64, u32)> {
    let mut nominal = schedule.first_delay();
    let mut age = f64::from(delay_seconds(nominal).max(1));
    let mut gets = 1;
    while age < done {
        match schedule.next(Duration::from_secs_f64(age), Some(nominal), rng.unit()) {
            Next::Poll { nominal: n, delay } => {
                nominal = n;
                age += f64::from(delay_seconds(delay).max(1));
                gets += 1;
            }
            Next::Abandon => return None,
        }
    }
    Some((age - done, gets))
}

/// What a schedule does over the mix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    pub mean_lag: f64,
    pub p95_lag: f64,
    pub gets_per_order: f64,
    /// GETs for an order that never ends, until the horizon.
    pub stuck_order_gets: u32,
}

pub fn measure(schedule: &Schedule, times: &[f64]) -> Outcome {
    let mut rng = Rng::new(SEED + 1);
    let mut lags = Vec::with_capacity(times.len());
    let mut gets = 0u64;
    for &done in times {
        if let Some((lag, n)) = poll_until(schedule, done, &mut rng) {
            lags.push(lag);
            gets += u64::from(n);
        }
    }
    lags.sort_by(f64::total_cmp);
    let stuck = poll_until(schedule, f64::MAX, &mut rng)
        .map_or_else(|| stuck_gets(schedule, &mut rng), |(_, n)| n);
    Outcome {
        mean_lag: lags.iter().sum::<f64>() / lags.len() as f64,
        p95_lag: lags[(lags.len() * 95).div_ceil(100) - 1],
        gets_per_order: gets as f64 / lags.len() as f64,
        stuck_order_gets: stuck,
    }
}

/// Polls of an order that never ends, until it is abandoned.
fn stuck_gets(schedule: &Schedule, rng: &mut Rng) -> u32 {
    let mut nominal = schedule.first_delay();
    let mut age = f64::from(delay_seconds(nominal).max(1));
    let mut gets = 1;
    while let Next::Poll { nominal: n, delay } =
        schedule.next(Duration::from_secs_f64(age), Some(nominal), rng.unit())
    {
        nominal = n;
        age += f64::from(delay_seconds(delay).max(1));
        gets += 1;
    }
    gets
}

pub fn run() -> Section {
    let times = completion_times(ORDERS, &mut Rng::new(SEED));
    let guide = measure(&Schedule::guide(), &times);
    let mut section = Section::new(
        "Notification lag against polling cost",
        &format!(
            "The real schedule code on a simulated clock over {ORDERS} orders ({MIX}); \
             lag is from completion at FoxReload to the poll that sees it. \
             Ratios are against the guide's schedule (5 s, ×1.5, 30 s cap)."
        ),
        &[
            "schedule",
            "mean lag s",
            "p95 lag s",
            "GETs/order",
            "mean lag vs guide",
            "p95 vs guide",
            "GETs vs guide",
            "GETs, order stuck 24 h",
        ],
    );
    for (name, schedule) in [
        ("foxrelay (default)", Schedule::default()),
        ("guide (POLL_SCHEDULE=guide)", Schedule::guide()),
        ("practical (POLL_SCHEDULE=practical)", Schedule::practical()),
    ] {
        crate::progress::step(format_args!(
            "{name}: {} orders on a simulated clock",
            times.len()
        ));
        let o = measure(&schedule, &times);
        section.row(vec![
            name.to_owned(),
            fixed(o.mean_lag, 2),
            fixed(o.p95_lag, 1),
            fixed(o.gets_per_order, 2),
            ratio(o.mean_lag, guide.mean_lag),
            ratio(o.p95_lag, guide.p95_lag),
            ratio(o.gets_per_order, guide.gets_per_order),
            o.stuck_order_gets.to_string(),
        ]);
    }
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_done_before_the_first_poll_is_seen_by_it() {
        let s = Schedule::guide();
        let (lag, gets) = poll_until(&s, 2.0, &mut Rng::new(1)).unwrap();
        assert_eq!((lag, gets), (3.0, 1));
        // 5, then 7 (7.5 s rounded down as SQS would), then 11.
        let (lag, gets) = poll_until(&s, 12.5, &mut Rng::new(1)).unwrap();
        assert_eq!((lag, gets), (10.5, 3));
    }

    #[test]
    fn the_default_schedule_beats_the_guide_on_lag_and_cost_at_once() {
        let times = completion_times(2_000, &mut Rng::new(SEED));
        let ours = measure(&Schedule::default(), &times);
        let guide = measure(&Schedule::guide(), &times);
        assert!(ours.mean_lag <= guide.mean_lag, "{ours:?} {guide:?}");
        assert!(ours.p95_lag <= guide.p95_lag, "{ours:?} {guide:?}");
        assert!(
            ours.gets_per_order < guide.gets_per_order,
            "{ours:?} {guide:?}"
        );
    }
}
