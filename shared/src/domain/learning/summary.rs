//! A product's completion-time summary: bounded, decaying, written with
//! additions only.
//!
//! Every finished order adds one *observation*: its order ended after
//! `after` (the last poll that saw it running, or the start) and by `by`
//! (the poll that saw it end), both measured from the start of its clock
//! (payment, or placement when we never paid). The observation's unit of
//! mass is spread over the bins `(after, by]` covers ([`bins::spread`]).
//!
//! Recent orders must dominate, and a product that changes must be followed
//! within tens of orders, without reading and rewriting the summary (two
//! containers finishing orders of one product at once would lose one of
//! the writes). So the observations are numbered, and observation `n` adds
//! its mass with weight `2^(n/H)` relative to its *epoch* (`E` observations
//! each): weights only grow, and a reader scales each epoch back by the
//! count it sees, which is exponential forgetting with a half-life of `H`
//! observations. Only the last `K` epochs (the current one included) are
//! read; a writer removes the bins of older epochs it read, in the same
//! write. A write is one addition to the count and to a few bins of one
//! epoch: no conflict with another, and the item holds at most `K × BINS`
//! numbers (far fewer: only bins with mass are written).
//!
//! Forgetting alone follows a change slowly (40 orders after it, a fifth
//! of the weight is still on the old behaviour), so epochs are small (8
//! observations) and a reader tests whether the recent ones differ from
//! the older ones beyond chance ([`Summary::masses`]); if so, only the
//! recent ones count.
//!
//! The number `n` a writer uses is the count it read just before writing
//! (poll-order reads the summary when an order ends): under concurrency a
//! little stale, which only shifts a weight by a few percent.

use super::bins::{self, BINS};
use std::collections::BTreeMap;
use std::time::Duration;

/// How fast a summary forgets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decay {
    /// Observations after which an observation weighs half.
    pub half_life: f64,
    /// Observations per epoch.
    pub epoch: u64,
    /// Epochs kept, the current one included; older ones are forgotten
    /// (they weigh at most `2^(-E·(K-1)/H)`, 4 % by default).
    pub kept: u64,
}

impl Default for Decay {
    fn default() -> Self {
        Self {
            half_life: 16.0,
            epoch: 8,
            kept: 10,
        }
    }
}

/// A change is taken as real when the recent epochs' distribution is this
/// far from the older ones', in units of the two-sample Kolmogorov–Smirnov
/// statistic's scale `√((n+m)/(n·m))`: 2.3 is about its 0.01 % level, so
/// a product that has not changed is almost never cut off from its
/// history (the test is made at every reading, over several splits).
const CHANGE_LEVEL: f64 = 2.3;

/// The share of an observation spread evenly over its interval, whatever
/// the prior says.
pub const EVEN_SHARE: f64 = 0.002;

/// When a finished order ended, as its polls saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// It was still running at this age (the last poll before the end, or
    /// zero).
    pub after: Duration,
    /// It had ended by this age (the poll that saw it end).
    pub by: Duration,
}

/// What one observation adds to a summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// The epoch whose bins it adds to.
    pub epoch: u64,
    /// `(bin, weight)`: the weight to add to each bin (positive).
    pub bins: Vec<(usize, f64)>,
    /// Bins of epochs older than the kept ones, as the writer read them: removed by the same write (removing one already gone
    /// is harmless), so the summary never holds more than a few epochs.
    pub forget: Vec<(u64, Vec<usize>)>,
}

/// Weights below this are not written: they would only grow the item.
const NEGLIGIBLE: f64 = 1e-9;

/// The most bins one observation adds to: its write (one `ADD` per bin)
/// stays within DynamoDB's 4 KB expression limit, whatever the epoch's
/// number (150 terms of at most 22 characters).
pub const MOST_BINS: usize = 150;

impl Decay {
    /// What `observation` adds to `stored`, the summary as just read: it
    /// is observation number `stored.observations`, and spread by what
    /// `stored` estimates.
    pub fn learn(&self, observation: &Observation, stored: &Summary) -> Contribution {
        let prior = stored.masses(self);
        self.contribution(observation, stored.observations, prior.as_ref(), stored)
    }

    /// What observation number `index` adds, given what the summary said
    /// when it was read (`prior`), and which epochs `stored` holds that may
    /// be forgotten.
    ///
    /// The mass goes where the prior puts it within the interval (one step
    /// of the self-consistency, or EM, estimator of interval-censored data,
    /// taken online), with a fifth of a percent spread evenly so that nothing the prior
    /// rules out stays ruled out; evenly when the prior puts nothing there.
    /// Without that, the wide intervals of a sparse plan ("ended in the
    /// first 10 s") would keep blurring what its narrow ones showed.
    pub fn contribution(
        &self,
        observation: &Observation,
        index: u64,
        prior: Option<&Masses>,
        stored: &Summary,
    ) -> Contribution {
        let epoch = index / self.epoch;
        let weight = 2f64.powf((index - epoch * self.epoch) as f64 / self.half_life);
        let even = bins::spread(
            observation.after.as_secs_f64(),
            observation.by.as_secs_f64(),
        );
        let believed: Vec<f64> = even
            .iter()
            .map(|(k, share)| prior.map_or(0.0, |p| p.bins[*k] * share))
            .collect();
        let total: f64 = believed.iter().sum();
        let mut shares: Vec<(usize, f64)> = if total > 0.0 && total.is_finite() {
            even.iter()
                .zip(&believed)
                .map(|((k, share), b)| (*k, EVEN_SHARE * share + (1.0 - EVEN_SHARE) * b / total))
                .collect()
        } else {
            even
        };
        if shares.len() > MOST_BINS {
            // An interval of hours from the start: neighbouring bins are
            // merged, each group's share going to the bin of the group the
            // prior favours (its middle when none stands out), so the mass
            // stays where it was to within a group's width.
            let group = shares.len().div_ceil(MOST_BINS);
            shares = shares
                .chunks(group)
                .map(|chunk| {
                    let total: f64 = chunk.iter().map(|(_, w)| w).sum();
                    let most = chunk.iter().map(|(_, w)| *w).fold(0.0, f64::max);
                    let favoured: Vec<usize> = chunk
                        .iter()
                        .filter(|(_, w)| *w >= most * (1.0 - 1e-9))
                        .map(|(k, _)| *k)
                        .collect();
                    (favoured[favoured.len() / 2], total)
                })
                .collect();
        }
        let keep_from = epoch.saturating_sub(self.kept.max(1) - 1);
        Contribution {
            epoch,
            bins: shares
                .into_iter()
                .map(|(k, share)| (k, share * weight))
                .filter(|(_, w)| *w > NEGLIGIBLE && w.is_finite())
                .collect(),
            forget: stored
                .epochs
                .range(..keep_from)
                .map(|(old, bins)| {
                    let held = bins
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| **w != 0.0)
                        .map(|(k, _)| k)
                        .collect();
                    (*old, held)
                })
                .collect(),
        }
    }
}

/// A product's summary as stored: the observations counted, and the bins
/// of the epochs kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub observations: u64,
    /// Epoch → weight per bin (`BINS` long).
    pub epochs: BTreeMap<u64, Vec<f64>>,
}

/// The estimated distribution of a product's completion time.
#[derive(Clone, Debug, PartialEq)]
pub struct Masses {
    /// Share of the completions in each bin; sums to 1.
    pub bins: Vec<f64>,
    /// The weight behind it, in observations (recent ones count fully,
    /// older ones by their decayed weight).
    pub effective: f64,
    /// The observations made since the product last changed (all of them
    /// when it never did, as far as the summary can tell).
    pub observations: u64,
    /// Whether the summary found the product changed, and the estimate
    /// rests on the observations since only.
    pub changed: bool,
}

impl Summary {
    /// Adds `contribution` as the store does (in-memory stores, the bench):
    /// one more observation, its weights added, the forgotten bins removed
    /// (an epoch left with none is gone).
    pub fn add(&mut self, contribution: &Contribution) {
        self.observations += 1;
        for (old, held) in &contribution.forget {
            if let Some(bins) = self.epochs.get_mut(old) {
                for k in held {
                    if let Some(w) = bins.get_mut(*k) {
                        *w = 0.0;
                    }
                }
            }
        }
        if !contribution.bins.is_empty() {
            let bins = self
                .epochs
                .entry(contribution.epoch)
                .or_insert_with(|| vec![0.0; BINS]);
            for (k, weight) in &contribution.bins {
                if let Some(w) = bins.get_mut(*k) {
                    *w += weight;
                }
            }
        }
        self.epochs.retain(|_, bins| bins.iter().any(|w| *w != 0.0));
    }

    /// The distribution the summary estimates, weighting each epoch kept
    /// by its age; `None` without any mass. When the recent epochs differ
    /// from the older ones by more than chance explains
    /// ([`Self::changed_at`]), only the recent ones count: the product has
    /// changed, and its history no longer describes it.
    pub fn masses(&self, decay: &Decay) -> Option<Masses> {
        let count = self.observations;
        let current = count / decay.epoch;
        let oldest = current.saturating_sub(decay.kept.max(1) - 1);
        let held: Vec<(u64, &Vec<f64>)> = self
            .epochs
            .range(oldest..=current)
            .map(|(epoch, bins)| (*epoch, bins))
            .collect();
        let changed = self.changed_at(decay, &held);
        let from = changed.unwrap_or(oldest);
        let observations = changed.map_or(count, |epoch| {
            count.saturating_sub(epoch.saturating_mul(decay.epoch))
        });
        let mut bins = vec![0.0; BINS];
        for (epoch, stored) in held.iter().filter(|(epoch, _)| *epoch >= from) {
            let age = count.saturating_sub(epoch * decay.epoch) as f64;
            let scale = 2f64.powf(-age / decay.half_life);
            for (total, weight) in bins.iter_mut().zip(*stored) {
                *total += weight.max(0.0) * scale;
            }
        }
        let effective: f64 = bins.iter().sum();
        if !(effective > 0.0 && effective.is_finite()) {
            return None;
        }
        bins.iter_mut().for_each(|m| *m /= effective);
        Some(Masses {
            bins,
            effective,
            observations,
            changed: changed.is_some(),
        })
    }

    /// The first epoch of the product as it is now, if it changed within
    /// the epochs `held`: of the splits into older and recent epochs (the
    /// recent ones at least an epoch's observations) whose two sides differ
    /// beyond [`CHANGE_LEVEL`], the latest, so that the epoch the change
    /// happened in, half old and half new, does not count. Each epoch
    /// counts as its observations (the current one as those made so far),
    /// its bins as their share of it.
    fn changed_at(&self, decay: &Decay, held: &[(u64, &Vec<f64>)]) -> Option<u64> {
        let current = self.observations / decay.epoch;
        let sides: Vec<(u64, f64, Vec<f64>)> = held
            .iter()
            .filter_map(|(epoch, bins)| {
                let total: f64 = bins.iter().map(|w| w.max(0.0)).sum();
                let n = if *epoch == current {
                    (self.observations - current * decay.epoch) as f64
                } else {
                    decay.epoch as f64
                };
                (total > 0.0 && total.is_finite() && n > 0.0).then(|| {
                    let mut cumulative = 0.0;
                    let cdf = bins
                        .iter()
                        .map(|w| {
                            cumulative += w.max(0.0) / total * n;
                            cumulative
                        })
                        .collect();
                    (*epoch, n, cdf)
                })
            })
            .collect();
        // The older side of each split, summed as the splits go: one pass
        // over the bins per split.
        let n_all: f64 = sides.iter().map(|(_, n, _)| n).sum();
        let mut all = vec![0.0; BINS];
        for (_, _, cdf) in &sides {
            all.iter_mut().zip(cdf).for_each(|(a, c)| *a += c);
        }
        let (mut older, mut n_old) = (vec![0.0; BINS], 0.0);
        let mut latest = None;
        for split in 1..sides.len() {
            let (_, n, cdf) = &sides[split - 1];
            older.iter_mut().zip(cdf).for_each(|(o, c)| *o += c);
            n_old += n;
            let n_new = n_all - n_old;
            if n_new < decay.epoch as f64 {
                continue;
            }
            let distance = older
                .iter()
                .zip(&all)
                .map(|(old, all)| (old / n_old - (all - old) / n_new).abs())
                .fold(0.0, f64::max);
            let level = distance / ((n_old + n_new) / (n_old * n_new)).sqrt();
            if level > CHANGE_LEVEL {
                latest = Some(sides[split].0);
            }
        }
        latest
    }
}

impl Masses {
    /// The distribution with each bin's mass shared with its neighbours
    /// (triangular weights), as far either side as it takes for the
    /// neighbourhood to hold `support` observations' worth of the estimate,
    /// at most `widest` bins: where the estimate rests on many observations
    /// it is kept sharp (a narrow product's plan can poll right at its
    /// end), where it rests on few it is blurred (an estimate from a few
    /// orders has holes a plan should not trust).
    pub fn smoothed(&self, support: f64, widest: usize) -> Masses {
        let count = self.bins.len();
        let mut bins = vec![0.0; count];
        for (k, mass) in self.bins.iter().enumerate() {
            if *mass == 0.0 {
                continue;
            }
            let mut width = 0;
            let mut held = *mass;
            while width < widest && held * self.effective < support {
                width += 1;
                held += k.checked_sub(width).map_or(0.0, |j| self.bins[j]);
                held += self.bins.get(k + width).copied().unwrap_or(0.0);
            }
            let low = k.saturating_sub(width);
            let high = (k + width).min(count - 1);
            let weights: Vec<f64> = (low..=high)
                .map(|j| (width + 1 - j.abs_diff(k)) as f64)
                .collect();
            let total: f64 = weights.iter().sum();
            for (j, w) in (low..=high).zip(weights) {
                bins[j] += mass * w / total;
            }
        }
        Masses {
            bins,
            effective: self.effective,
            observations: self.observations,
            changed: self.changed,
        }
    }

    /// The share of completions later than `seconds`: mass is log-uniform
    /// within a bin.
    pub fn survival(&self, seconds: f64) -> f64 {
        let p = bins::position(seconds);
        let k = p.floor() as usize;
        let within = self.bins[k] * (1.0 - (p - k as f64));
        (within + self.bins[k + 1..].iter().sum::<f64>()).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(after: f64, by: f64) -> Observation {
        Observation {
            after: Duration::from_secs_f64(after),
            by: Duration::from_secs_f64(by),
        }
    }

    fn learn(summary: &mut Summary, decay: &Decay, observation: Observation) {
        let contribution = decay.learn(&observation, summary);
        summary.add(&contribution);
    }

    #[test]
    fn a_wide_interval_goes_mostly_where_narrow_ones_have_shown_the_ends() {
        let decay = Decay::default();
        let mut summary = Summary::default();
        for _ in 0..10 {
            learn(&mut summary, &decay, at(1.9, 2.1));
        }
        for _ in 0..10 {
            learn(&mut summary, &decay, at(0.0, 10.0));
        }
        let masses = summary.masses(&decay).unwrap();
        // The bins the narrow observations fell in hold nearly all of it.
        let (low, high) = (
            bins::position(1.9).floor() as usize,
            bins::position(2.1).floor() as usize + 1,
        );
        let between =
            masses.survival(bins::lower_edge(low)) - masses.survival(bins::lower_edge(high));
        assert!(between > 0.85, "{between}");
    }

    #[test]
    fn an_interval_censored_observation_lands_between_its_polls() {
        let decay = Decay::default();
        let mut summary = Summary::default();
        learn(&mut summary, &decay, at(2.0, 4.0));
        let masses = summary.masses(&decay).unwrap();
        assert!((masses.survival(2.0) - 1.0).abs() < 1e-9);
        assert!(masses.survival(4.0) < 1e-9);
        // Log-uniform between the polls: half the mass past 2·√2 s.
        assert!((masses.survival(8f64.sqrt()) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn recent_orders_dominate_and_a_change_is_followed_within_tens_of_orders() {
        let decay = Decay::default();
        let mut summary = Summary::default();
        for _ in 0..500 {
            learn(&mut summary, &decay, at(4.0, 5.0));
        }
        // A few orders of the new behaviour: the old still weighs most.
        for _ in 0..3 {
            learn(&mut summary, &decay, at(59.0, 60.0));
        }
        let masses = summary.masses(&decay).unwrap();
        assert!(masses.survival(10.0) < 0.5, "{}", masses.survival(10.0));
        // Two epochs of it: the change is beyond chance, and the history
        // before it no longer counts.
        for _ in 0..13 {
            learn(&mut summary, &decay, at(59.0, 60.0));
        }
        let masses = summary.masses(&decay).unwrap();
        assert!(masses.survival(10.0) > 0.99, "{}", masses.survival(10.0));
        // It rests on the observations since the change only.
        assert!(masses.observations < 16, "{}", masses.observations);
        assert!(
            masses.observations >= decay.epoch,
            "{}",
            masses.observations
        );
        assert!(masses.changed);
    }

    /// A thousand draws from `ends` (seconds, from a unit in `[0, 1)`),
    /// each seen between the whole seconds around it: the share of
    /// readings of the summary that took it for a changed product.
    fn false_changes(ends: impl Fn(f64) -> f64) -> f64 {
        let decay = Decay::default();
        let mut summary = Summary::default();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let (mut readings, mut changed) = (0u32, 0u32);
        for _ in 0..1_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let end = ends((state >> 11) as f64 / (1u64 << 53) as f64);
            learn(&mut summary, &decay, at(end.floor(), end.floor() + 1.0));
            let current = summary.observations / decay.epoch;
            let held: Vec<(u64, &Vec<f64>)> = summary
                .epochs
                .range(current.saturating_sub(decay.kept - 1)..=current)
                .map(|(epoch, bins)| (*epoch, bins))
                .collect();
            readings += 1;
            if summary.changed_at(&decay, &held).is_some() {
                changed += 1;
            }
        }
        f64::from(changed) / f64::from(readings)
    }

    #[test]
    fn a_product_that_has_not_changed_is_almost_never_cut_off_from_its_history() {
        let broad = false_changes(|u| 2.0 * 300f64.powf(u));
        let bimodal = false_changes(|u| {
            if u < 0.5 {
                2.0 + 4.0 * u
            } else {
                80.0 + 40.0 * u
            }
        });
        let narrow = false_changes(|u| 270.0 + 60.0 * u);
        for share in [broad, bimodal, narrow] {
            assert!(share < 0.01, "{broad} {bimodal} {narrow}");
        }
    }

    #[test]
    fn smoothing_keeps_a_well_observed_estimate_sharp_and_blurs_a_thin_one() {
        let spike = |effective: f64| {
            let mut bins = vec![0.0; BINS];
            bins[100] = 1.0;
            Masses {
                bins,
                effective,
                observations: effective as u64,
                changed: false,
            }
        };
        // Forty observations in one bin: it holds enough on its own.
        assert_eq!(spike(40.0).smoothed(4.0, 8).bins, spike(40.0).bins);
        // One observation: shared out to the widest allowed, no further,
        // nearest bins the most, the total kept.
        let thin = spike(1.0).smoothed(4.0, 8);
        assert!(thin.bins[92] > 0.0 && thin.bins[108] > 0.0);
        assert_eq!(thin.bins[91], 0.0);
        assert_eq!(thin.bins[109], 0.0);
        assert!(thin.bins[100] > thin.bins[101] && thin.bins[101] > thin.bins[104]);
        assert!((thin.bins.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Two observations' worth: a bin either side brings it to four.
        let mut bins = vec![0.0; BINS];
        bins[99..=101].fill(1.0 / 3.0);
        let spread = Masses {
            bins,
            effective: 6.0,
            observations: 6,
            changed: false,
        }
        .smoothed(4.0, 8);
        assert_eq!(spread.bins[97], 0.0);
        assert!(spread.bins[98] > 0.0);
    }

    #[test]
    fn an_observation_of_hours_adds_to_a_bounded_number_of_bins_and_keeps_its_weight() {
        let decay = Decay::default();
        let mut summary = Summary::default();
        for _ in 0..20 {
            learn(&mut summary, &decay, at(40.0, 60.0));
        }
        let wide = decay.learn(&at(0.0, 50_000.0), &summary);
        assert!(wide.bins.len() <= MOST_BINS, "{}", wide.bins.len());
        let index = summary.observations - wide.epoch * decay.epoch;
        let weight = 2f64.powf(index as f64 / decay.half_life);
        let total: f64 = wide.bins.iter().map(|(_, w)| w).sum();
        assert!((total - weight).abs() < 1e-9, "{total} {weight}");
        // Without a prior, the mass stays spread over the whole interval
        // (to within a merged group of bins).
        let even = decay.contribution(&at(0.0, 50_000.0), 0, None, &Summary::default());
        assert!(even.bins.len() <= MOST_BINS);
        let last = even.bins.last().unwrap().0;
        assert!(
            bins::upper_edge(last) > 40_000.0,
            "{}",
            bins::upper_edge(last)
        );
        let late: f64 = even
            .bins
            .iter()
            .filter(|(k, _)| bins::lower_edge(*k) >= 300.0)
            .map(|(_, w)| w)
            .sum();
        let expected = 1.0 - bins::position(300.0) / bins::position(50_000.0);
        assert!((late - expected).abs() < 0.02, "{late} {expected}");
        // What the prior believed keeps its place: nearly all of it where
        // the narrow observations were.
        let between: f64 = wide
            .bins
            .iter()
            .filter(|(k, _)| (39.0..60.0).contains(&bins::lower_edge(*k)))
            .map(|(_, w)| w)
            .sum();
        assert!(between / total > 0.99, "{between} {total}");
    }

    #[test]
    fn an_empty_summary_has_no_distribution() {
        assert_eq!(Summary::default().masses(&Decay::default()), None);
    }

    proptest! {
        // Each case reads the summary (its change test included) at every
        // observation, in a debug build: 64 cases keep the fast tier fast.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_summary_stays_bounded_and_normalised(
            ends in proptest::collection::vec((0.0f64..5_000.0, 0.0f64..100.0), 1..400)
        ) {
            let decay = Decay::default();
            let mut summary = Summary::default();
            for (after, width) in ends {
                learn(&mut summary, &decay, at(after, after + width));
                prop_assert!(summary.epochs.len() as u64 <= decay.kept);
                for bins in summary.epochs.values() {
                    prop_assert!(bins.iter().all(|w| w.is_finite() && *w >= 0.0));
                    // Weights relative to their epoch: at most 2^(E/H).
                    let most = 2f64.powf(decay.epoch as f64 / decay.half_life);
                    prop_assert!(bins.iter().all(|w| *w <= most * decay.epoch as f64));
                }
            }
            let masses = summary.masses(&decay).unwrap();
            prop_assert!((masses.bins.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let mut last = 1.0;
            for s in [0.0, 0.5, 1.0, 3.0, 10.0, 60.0, 600.0, 6_000.0] {
                let now = masses.survival(s);
                prop_assert!(now <= last + 1e-12);
                last = now;
            }
        }
    }
}
