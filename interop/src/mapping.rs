//! How policy-core's requantization maps onto TFLite's per-channel int8
//! (`docs/interop.md`).
//!
//! policy-core stores each channel's multiplier as a Q31 mantissa `m0` and a
//! right shift (`M = m0 * 2^-31 * 2^-shift`, computed by the exporter from
//! f64 scales). TFLite stores only f32 scales and derives the pair when it
//! prepares the model: `QuantizeMultiplier((double)s_in * (double)s_w /
//! (double)s_out)` (frexp, then `round(q * 2^31)`). An f32 filter scale moves
//! that product in steps of about 2^-23 of its value, so the blob's exact
//! `m0` is out of reach in general; what matters is the output, and that is
//! a step function of the accumulator. [`match_channel`] searches the f32
//! filter scales next to the ideal one for the one whose TFLite multiplier
//! gives the same u8 output as the blob's for *every* accumulator the
//! channel can produce (`0..=B`, the blob's overflow bound), and reports how
//! many accumulator values round differently when no such scale exists.

use policy_core::requant::requantize_u8;

/// How far (in f32 steps, each side) the filter-scale search looks.
const SEARCH_ULPS: i64 = 2;

/// How far (in f32 steps, each side) the hidden layers' output-scale
/// search looks (a relative change of the scale below 1.3e-4; the unit
/// tests, on random blobs whose layers rarely all match, look less far).
const OUT_SEARCH_ULPS: i64 = if cfg!(test) { 16 } else { 1024 };

/// TFLite's `QuantizeMultiplier`: `d ≈ q * 2^(shift - 31)` with `q` in
/// `[2^30, 2^31)` and `shift` a left shift (negative: right shift); `(0, 0)`
/// for zero, for a non-finite or negative `d`, and where the shift would be
/// below -31.
pub fn quantize_multiplier(d: f64) -> (i32, i32) {
    if !(d.is_finite() && d > 0.0) {
        return (0, 0);
    }
    let (frac, mut shift) = frexp(d);
    let mut q = (frac * 2f64.powi(31)).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    (q as i32, shift)
}

/// `d = frac * 2^exp` with `frac` in `[0.5, 1)`, for a positive finite `d`.
fn frexp(d: f64) -> (f64, i32) {
    let mut exp = 0;
    let mut x = d;
    // Subnormals: scale into the normal range first.
    if x < f64::MIN_POSITIVE {
        x *= 2f64.powi(64);
        exp -= 64;
    }
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (frac, exp + e)
}

/// The multiplier TFLite derives for a channel from its f32 scales.
pub fn tflite_multiplier(s_in: f32, s_w: f32, s_out: f32) -> (i32, i32) {
    quantize_multiplier(s_in as f64 * s_w as f64 / s_out as f64)
}

/// TFLite's int8 output (zero point -128, ReLU range -128..=127) moved to the
/// blob's u8 domain (+128): `clamp(MultiplyByQuantizedMultiplier(acc), 0, 255)`.
/// Only multipliers below 1 (right shifts 0..=31) occur in hidden layers;
/// `None` for any other.
fn tflite_u8(acc: i32, m: (i32, i32)) -> Option<u8> {
    let right = u8::try_from(-m.1).ok().filter(|&r| r <= 31)?;
    Some(requantize_u8(acc, m.0, right))
}

/// What the search found for one output channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelMatch {
    /// The f32 filter scale written to the file.
    pub filter_scale: f32,
    /// TFLite's multiplier from it (mantissa, left shift).
    pub tflite: (i32, i32),
    /// The blob's (mantissa, right shift).
    pub blob: (i32, u8),
    /// Whether TFLite's output equals the blob's for every accumulator in `0..=B`.
    pub equivalent: bool,
    /// Accumulator values in `0..=B` whose u8 output differs, each counted
    /// once per output step of difference (0 when `equivalent`).
    pub differing: u64,
}

/// The smallest accumulator in `0..=bound` whose output reaches each level
/// `1..=255` (`bound + 1` where none does), for a monotone `f`.
fn thresholds(bound: i32, f: impl Fn(i32) -> u8) -> Vec<i64> {
    (1..=255u8)
        .map(|k| {
            let (mut lo, mut hi) = (0i64, bound as i64 + 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if f(mid as i32) >= k {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        })
        .collect()
}

/// f32 `x` moved by `steps` representable values (same sign).
fn ulps(x: f32, steps: i64) -> f32 {
    f32::from_bits((x.to_bits() as i64 + steps).clamp(1, 0x7f7f_ffff) as u32)
}

/// The search around `x`, nearest first: `0, +1, -1, +2, ...` steps.
fn around(x: f32, reach: i64) -> impl Iterator<Item = f32> {
    (0..=2 * reach).map(move |i| ulps(x, if i % 2 == 1 { i / 2 + 1 } else { -(i / 2) }))
}

/// One hidden channel of the blob: its requantization as a step function of
/// the accumulator on `0..=bound`.
#[derive(Clone, Debug)]
pub struct Channel {
    m0: i32,
    shift: u8,
    bound: i32,
    /// The accumulator where the blob's output first reaches `1..=255`.
    steps: Vec<i64>,
}

impl Channel {
    /// A channel with the blob's multiplier `(m0, shift)` whose accumulator
    /// is at most `bound` in magnitude (the blob's overflow bound).
    pub fn new(m0: i32, shift: u8, bound: i32) -> Channel {
        let bound = bound.max(0);
        let steps = thresholds(bound, |acc| requantize_u8(acc, m0, shift));
        Channel {
            m0,
            shift,
            bound,
            steps,
        }
    }

    /// Whether TFLite's multiplier `m` gives this channel's outputs for every
    /// accumulator (both are monotone: checking each step's edge suffices;
    /// the top steps first, where a wrong multiplier shows soonest).
    fn same_steps(&self, m: (i32, i32)) -> bool {
        self.steps.iter().zip(1..=255u8).rev().all(|(&edge, k)| {
            let below_ok = edge == 0 || tflite_u8((edge - 1) as i32, m).is_some_and(|v| v < k);
            let at_ok =
                edge > self.bound as i64 || tflite_u8(edge as i32, m).is_some_and(|v| v >= k);
            below_ok && at_ok
        })
    }

    /// The ideal real filter scale for scales `s_in`, `s_out`.
    fn ideal(&self, s_in: f32, s_out: f32) -> f32 {
        let real = self.m0 as f64 * 2f64.powi(-31 - self.shift as i32);
        let ideal = (real * s_out as f64 / s_in as f64) as f32;
        if ideal.is_finite() && ideal > 0.0 {
            ideal
        } else {
            f32::MIN_POSITIVE
        }
    }

    /// Accumulator values in `0..=bound` whose output under TFLite's
    /// multiplier `m` differs from the blob's, each counted once per output
    /// step of difference: `sum_k |T_k - T'_k|` over the step edges, each
    /// found by walking from the blob's edge (they rarely move far). Stops
    /// counting once the sum passes `limit`.
    fn differing(&self, m: (i32, i32), limit: u64) -> u64 {
        let f = |acc: i64| tflite_u8(acc as i32, m).unwrap_or(0);
        let end = self.bound as i64 + 1;
        let mut sum = 0u64;
        for (&edge, k) in self.steps.iter().zip(1..=255u8).rev() {
            let mut e = edge;
            while e > 0 && f(e - 1) >= k && edge.abs_diff(e) <= limit {
                e -= 1;
            }
            while e < end && f(e) < k && edge.abs_diff(e) <= limit {
                e += 1;
            }
            sum += e.abs_diff(edge);
            if sum > limit {
                break;
            }
        }
        sum
    }

    /// The filter scale (within [`SEARCH_ULPS`] f32 steps of the ideal one,
    /// nearest first) whose TFLite multiplier differs from the blob's on the
    /// fewest accumulator values, and that number (0: equivalent; counting
    /// stops past `limit`).
    fn best_scale(&self, s_in: f32, s_out: f32, limit: u64) -> (f32, u64) {
        let mut best = (self.ideal(s_in, s_out), u64::MAX);
        for s in around(best.0, SEARCH_ULPS) {
            let m = tflite_multiplier(s_in, s, s_out);
            if self.same_steps(m) {
                return (s, 0);
            }
            let d = self.differing(m, limit.min(best.1));
            if d < best.1 {
                best = (s, d);
            }
        }
        best
    }

    /// The search's result for this channel with scales `s_in`, `s_out`.
    pub fn matched(&self, s_in: f32, s_out: f32) -> ChannelMatch {
        let (filter_scale, differing) = self.best_scale(s_in, s_out, u64::MAX);
        ChannelMatch {
            filter_scale,
            tflite: tflite_multiplier(s_in, filter_scale, s_out),
            blob: (self.m0, self.shift),
            equivalent: differing == 0,
            differing,
        }
    }
}

/// The f32 filter scale for one hidden channel with input scale `s_in` and
/// output scale `s_out` (both as written to the file), whose blob multiplier
/// is `(m0, shift)` and whose accumulator is at most `bound` in magnitude.
pub fn match_channel(s_in: f32, s_out: f32, m0: i32, shift: u8, bound: i32) -> ChannelMatch {
    Channel::new(m0, shift, bound).matched(s_in, s_out)
}

/// The output scale of a hidden layer and its channels' filter scales: the
/// f32 within `OUT_SEARCH_ULPS` steps of the blob's output scale (nearest
/// first) for which the fewest accumulator values requantize differently
/// from the blob, over all channels (none: every channel is equivalent).
pub fn match_layer(s_in: f32, blob_out: f32, channels: &[Channel]) -> (f32, Vec<ChannelMatch>) {
    // The channels with the most accumulator values first: the likeliest to differ.
    let mut order: Vec<&Channel> = channels.iter().collect();
    order.sort_by_key(|c| std::cmp::Reverse(c.steps[254].min(c.bound as i64)));
    let mut best = (u64::MAX, blob_out);
    for s_out in around(blob_out, OUT_SEARCH_ULPS) {
        let mut total = 0u64;
        for c in &order {
            total = total.saturating_add(c.best_scale(s_in, s_out, best.0 - total).1);
            if total >= best.0 {
                break;
            }
        }
        if total < best.0 {
            best = (total, s_out);
        }
        if total == 0 {
            break;
        }
    }
    let s_out = best.1;
    (
        s_out,
        channels.iter().map(|c| c.matched(s_in, s_out)).collect(),
    )
}

/// Scales for the output layer, whose TFLite multiplier must be 1 so that
/// its int16 outputs are policy-core's int32 Q-values: the blob's filter
/// scale `s_w` and the largest f32 `s_out <= s_in * s_w`, so that
/// `D = s_in * s_w / s_out` is in `[1, 1 + 2^-23]`. Then every TFLite
/// requantization returns the accumulator itself for `|acc| < 2^15`: the
/// 32-bit one (`q <= 2^30 + 2^7`, one left shift), the 64-bit one of its
/// 16x8 kernels (`q` rounded to 15 bits: exactly `2^14`) and the float one.
/// Returns `(s_w, s_out)`.
pub fn identity_scales(s_in: f32, s_w: f32) -> Option<(f32, f32)> {
    let p = s_in as f64 * s_w as f64;
    let mut s_out = p as f32;
    if s_out as f64 > p {
        s_out = ulps(s_out, -1);
    }
    let d = p / s_out as f64;
    let ok = s_out.is_normal() && (1.0..=1.0 + 2f64.powi(-23)).contains(&d);
    ok.then_some((s_w, s_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_multiplier_matches_tflite_on_known_values() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.75), (3 << 29, 0));
        // 2^-33 is below TFLite's range: zero.
        assert_eq!(quantize_multiplier(2f64.powi(-33)), (0, 0));
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        // A value that rounds up to 2^31 moves to the next power of two.
        assert_eq!(quantize_multiplier(1.0 - 2f64.powi(-40)), (1 << 30, 1));
        // The quant crate's Q31 pair for the same real value (right shift).
        for m in [0.3, 0.001234, 0.9999, 1.5e-7] {
            let (q, s) = quantize_multiplier(m);
            let (m0, shift) = quant::export::quantize_multiplier(m).expect("in range");
            assert_eq!((q, -s), (m0, shift as i32), "m = {m}");
        }
    }

    #[test]
    fn frexp_handles_subnormals() {
        let d = f64::MIN_POSITIVE / 8.0;
        let (f, e) = frexp(d);
        assert!((0.5..1.0).contains(&f));
        assert_eq!(f * 2f64.powi(e), d);
    }

    #[test]
    fn a_reachable_multiplier_is_matched_exactly() {
        // Scales whose f64 product the blob's exporter would quantize the
        // same way as TFLite: the search must find the very filter scale.
        let (s_in, s_w, s_out) = (0.0173f32, 0.00042f32, 0.031f32);
        let (m0, shift) = tflite_multiplier(s_in, s_w, s_out);
        let m = match_channel(s_in, s_out, m0, (-shift) as u8, 2_000_000);
        assert!(m.equivalent);
        assert_eq!(m.tflite, (m0, shift));
        assert_eq!(m.differing, 0);
    }

    #[test]
    fn equivalence_is_checked_over_the_whole_accumulator_range() {
        let (s_in, s_out) = (0.02f32, 0.05f32);
        // An odd mantissa no f32 filter scale reproduces exactly.
        let (m0, shift) = (1_234_567_891, 9u8);
        let small = match_channel(s_in, s_out, m0, shift, 2_000);
        assert!(
            small.equivalent,
            "a short range is easy to match: {small:?}"
        );
        // Brute force: every accumulator of the range gives the blob's output.
        for acc in -50..=2_000 {
            assert_eq!(
                tflite_u8(acc, small.tflite),
                Some(requantize_u8(acc, m0, shift)),
                "acc {acc}"
            );
        }
        let big = match_channel(s_in, s_out, m0, shift, i32::MAX);
        if !big.equivalent {
            assert!(big.differing > 0);
        }
    }

    #[test]
    fn layer_search_makes_easy_channels_equivalent_and_counts_the_rest() {
        // Short accumulator ranges are easy to match for every channel at once.
        let ch: Vec<Channel> = (0..8)
            .map(|i| Channel::new(1_100_000_000 + 97_531 * i, 8, 5_000))
            .collect();
        let (s_out, m) = match_layer(0.03, 0.02, &ch);
        assert!(((s_out - 0.02) / 0.02).abs() < 2e-4);
        assert!(m.iter().all(|c| c.equivalent && c.differing == 0), "{m:?}");
        for (c, mm) in ch.iter().zip(&m) {
            for acc in (0..=5_000).step_by(7) {
                assert_eq!(
                    tflite_u8(acc, mm.tflite),
                    Some(requantize_u8(acc, c.m0, c.shift))
                );
            }
        }
        // A differing count is exact: brute force over a short range.
        let c = Channel::new(1_234_567_891, 2, 3_000);
        let m = (1_234_567_891 + 40_000, -2);
        let brute: u64 = (0..=3_000)
            .map(|a| {
                tflite_u8(a, m)
                    .unwrap_or(0)
                    .abs_diff(requantize_u8(a, c.m0, c.shift)) as u64
            })
            .sum();
        assert_eq!(c.differing(m, u64::MAX), brute);
        assert!(brute > 0);
    }

    #[test]
    fn identity_scales_give_a_multiplier_of_exactly_one() {
        use policy_core::requant::srdhm;
        for (s_in, s_w) in [(0.0123f32, 0.0031f32), (1.0, 0.01), (0.2718, 3.3e-5)] {
            let (w, o) = identity_scales(s_in, s_w).expect("found");
            assert_eq!(w, s_w);
            let (q, shift) = tflite_multiplier(s_in, w, o);
            assert_eq!(shift, 1);
            assert!((1 << 30..=(1 << 30) + (1 << 7)).contains(&q), "{q}");
            // The 32-bit path (one left shift, then SRDHM), the 64-bit one
            // (15-bit multiplier) and the float one all give the accumulator back.
            let reduced = (q as i64 + (1 << 15)) >> 16;
            let d = s_in as f64 * w as f64 / o as f64;
            for acc in (-32_768..32_768).step_by(13) {
                assert_eq!(srdhm(acc * 2, q), acc);
                assert_eq!((acc as i64 * reduced + (1 << 13)) >> 14, acc as i64);
                assert_eq!((acc as f64 * d).round() as i32, acc);
            }
        }
    }
}
