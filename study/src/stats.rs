//! Statistics across runs, as rliable reports them (Agarwal et al., "Deep
//! RL at the edge of the statistical precipice", NeurIPS 2021): the
//! interquartile mean (IQM) and the mean of the runs' scores, each with a
//! 95 % percentile-bootstrap interval. rliable's *stratified* bootstrap
//! resamples runs within each task; this project has one task (the game),
//! so it is the plain bootstrap over runs, implemented here (the `rliable`
//! Python package is not needed to read or reproduce the figures).

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples per interval.
pub const BOOTSTRAP_REPS: usize = 10_000;
/// Seed of the bootstrap's generator (fixed: the intervals are reproducible).
pub const BOOTSTRAP_SEED: u64 = 2021;

/// A statistic with its 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the runs themselves.
    #[serde(deserialize_with = "parity::f64_or_nan")]
    pub point: f64,
    /// 2.5th percentile of the bootstrap distribution.
    #[serde(deserialize_with = "parity::f64_or_nan")]
    pub lo: f64,
    /// 97.5th percentile.
    #[serde(deserialize_with = "parity::f64_or_nan")]
    pub hi: f64,
}

impl Interval {
    /// `point [lo, hi]` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            self.point,
            self.lo,
            self.hi,
            d = digits
        )
    }
}

/// The arithmetic mean (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The median (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    flappy::scores::median(&s)
}

/// The interquartile mean: the mean of the values left after dropping
/// `floor(n / 4)` from each end of the sorted list (scipy's
/// `trim_mean(v, 0.25)`, which rliable's IQM calls). Of 5 runs it is the
/// mean of the middle 3.
pub fn iqm(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let cut = s.len() / 4;
    mean(&s[cut..s.len() - cut])
}

/// `stat` of `runs` with its 95 % percentile-bootstrap interval: `reps`
/// resamples of the runs, drawn with replacement.
pub fn bootstrap<T: Copy>(runs: &[T], stat: impl Fn(&[T]) -> f64, reps: usize) -> Interval {
    let point = stat(runs);
    if runs.len() < 2 || reps == 0 {
        return Interval {
            point,
            lo: point,
            hi: point,
        };
    }
    let mut rng = Pcg32::seed_from_u64(BOOTSTRAP_SEED);
    let mut sample = runs.to_vec();
    let mut stats: Vec<f64> = (0..reps)
        .map(|_| {
            for s in sample.iter_mut() {
                *s = runs[uniform(&mut rng, runs.len())];
            }
            stat(&sample)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    Interval {
        point,
        lo: percentile(&stats, 2.5),
        hi: percentile(&stats, 97.5),
    }
}

/// The `p`th percentile of sorted `s` (linear between order statistics,
/// numpy's default).
pub fn percentile(s: &[f64], p: f64) -> f64 {
    let pos = (p / 100.0) * (s.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < s.len() {
        s[i] + f * (s[i + 1] - s[i])
    } else {
        s[i]
    }
}

/// A uniform index below `n` (rejection sampling, no modulo bias).
fn uniform(rng: &mut Pcg32, n: usize) -> usize {
    let n = n as u32;
    let zone = u32::MAX - u32::MAX % n;
    loop {
        let x = rng.next_u32();
        if x < zone {
            return (x % n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqm_drops_a_quarter_from_each_end() {
        assert_eq!(iqm(&[1.0, 100.0, 2.0, 3.0, 4.0]), 3.0);
        assert_eq!(iqm(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(iqm(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 100.0]), 4.5);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn the_bootstrap_interval_brackets_the_point_and_narrows_with_runs() {
        let few = [700.0, 900.0, 1000.0, 850.0, 600.0];
        let ci = bootstrap(&few, mean, BOOTSTRAP_REPS);
        assert!(ci.lo <= ci.point && ci.point <= ci.hi, "{ci:?}");
        assert!(ci.lo >= 600.0 && ci.hi <= 1000.0, "{ci:?}");
        let many: Vec<f64> = (0..50).map(|i| few[i % 5]).collect();
        let ci2 = bootstrap(&many, mean, BOOTSTRAP_REPS);
        assert!(ci2.hi - ci2.lo < (ci.hi - ci.lo) / 2.0, "{ci:?} {ci2:?}");
        // Reproducible, and one run has no spread.
        assert_eq!(bootstrap(&few, iqm, 500), bootstrap(&few, iqm, 500));
        let one = bootstrap(&[5.0], mean, 100);
        assert_eq!((one.lo, one.hi), (5.0, 5.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 50.0), 3.0);
        assert_eq!(percentile(&[1.0, 2.0], 25.0), 1.25);
    }
}
