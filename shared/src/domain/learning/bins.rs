//! Log-spaced bins of completion time.
//!
//! Bin 0 holds `[0, 0.5 s)`; bin `k ≥ 1` holds `[0.5·2^((k-1)/16),
//! 0.5·2^(k/16))` seconds: sixteen bins per doubling, so a bin is about
//! 4.4 % wide wherever it is, as fine for a 2 s product as for a 5 minute
//! one (2.6 s at 60 s: narrow enough for a plan to poll right at a
//! product's end).
//! Times past the last edge count in the last bin.

/// Bins per doubling of time.
pub const PER_OCTAVE: f64 = 16.0;
/// The first edge above zero, in seconds.
pub const FIRST_EDGE: f64 = 0.5;
/// How many bins: the last edge is `0.5·2^(296/16)` s, about 2.1 days.
pub const BINS: usize = 298;

/// The lower edge of bin `k`, in seconds.
pub fn lower_edge(k: usize) -> f64 {
    if k == 0 {
        0.0
    } else {
        FIRST_EDGE * 2f64.powf((k as f64 - 1.0) / PER_OCTAVE)
    }
}

/// The upper edge of bin `k`, in seconds (of the last bin: infinity).
pub fn upper_edge(k: usize) -> f64 {
    if k + 1 >= BINS {
        f64::INFINITY
    } else {
        lower_edge(k + 1)
    }
}

/// Where `seconds` falls on the bins' scale: bin `k` is `[k, k + 1)`,
/// linear in time in bin 0, logarithmic above.
pub fn position(seconds: f64) -> f64 {
    let seconds = seconds.max(0.0);
    let p = if seconds < FIRST_EDGE {
        seconds / FIRST_EDGE
    } else {
        1.0 + PER_OCTAVE * (seconds / FIRST_EDGE).log2()
    };
    p.min(BINS as f64 - 1e-9)
}

/// The time at `position` (the inverse of [`position`]).
pub fn seconds_at(position: f64) -> f64 {
    if position < 1.0 {
        position.max(0.0) * FIRST_EDGE
    } else {
        FIRST_EDGE * 2f64.powf((position - 1.0) / PER_OCTAVE)
    }
}

/// How one unit of mass for a time known to lie in `(after, by]` spreads
/// over the bins: evenly on the bins' scale (log-uniform), so a wide
/// interval gives each bin it covers a share.
pub fn spread(after: f64, by: f64) -> Vec<(usize, f64)> {
    let (low, high) = (position(after.min(by)), position(by.max(after)));
    if high - low < 1e-9 {
        return vec![(low.floor() as usize, 1.0)];
    }
    let (first, last) = (low.floor() as usize, high.floor() as usize);
    (first..=last.min(BINS - 1))
        .filter_map(|k| {
            let overlap = (high.min(k as f64 + 1.0) - low.max(k as f64)).max(0.0);
            (overlap > 0.0).then_some((k, overlap / (high - low)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges_are_a_sixteenth_of_an_octave_apart_from_half_a_second() {
        assert_eq!(lower_edge(0), 0.0);
        assert_eq!(lower_edge(1), 0.5);
        assert!((lower_edge(17) - 1.0).abs() < 1e-12);
        assert!((lower_edge(33) - 2.0).abs() < 1e-12);
        assert!(upper_edge(BINS - 1).is_infinite());
        assert!(lower_edge(BINS - 1) > 2.0 * 86_400.0);
    }

    proptest! {
        #[test]
        fn a_time_lies_in_the_bin_its_position_names(seconds in 0.0f64..150_000.0) {
            let k = position(seconds).floor() as usize;
            prop_assert!(lower_edge(k) <= seconds + 1e-9 && seconds < upper_edge(k) + 1e-9);
            prop_assert!((seconds_at(position(seconds)) - seconds).abs() < 1e-6 * seconds.max(1.0));
        }

        #[test]
        fn an_interval_spreads_exactly_one_unit_over_the_bins_it_covers(
            after in 0.0f64..10_000.0, width in 0.0f64..10_000.0,
        ) {
            let by = after + width;
            let shares = spread(after, by);
            let total: f64 = shares.iter().map(|(_, w)| w).sum();
            prop_assert!((total - 1.0).abs() < 1e-9);
            for (k, w) in shares {
                prop_assert!(w > 0.0);
                prop_assert!(upper_edge(k) >= after - 1e-9 && lower_edge(k) <= by + 1e-9);
            }
        }
    }
}
