//! Last-layer refit: choose the rounding of the output layer's int8 weights
//! (and its int32 biases) so that the integer network's Q-values match the
//! float network's on the calibration stacks, given the integer features that
//! the quantized hidden layers really produce.
//!
//! Why: the output layer's Q-values decide the action, and its weight
//! rounding error is the largest single source of Q error (measured on the
//! reference model: rounding the 512x2 output weights to nearest alone flips
//! the greedy action on ~1.5 % of recorded states, all near ties). Fitting it
//! to the integer features also absorbs part of the hidden layers' rounding
//! error. Each weight may only move to the other neighbour of its float value
//! on the int8 grid (floor or ceil, as in AdaRound), so the weights stay
//! within one step of the float ones and the error bound of the export still
//! holds; the scales do not change.
//!
//! Method: per output `o`, minimise `sum_i (c * (a_i . w_o + b_o) - t_io)^2`
//! (`a_i` the integer features of stack `i`, `c` the output scale, `t_io` the
//! float Q-value) by coordinate descent over the weights (a flip is kept when
//! it lowers the loss), then the bias that minimises it (the rounded mean
//! residual), repeated for a few passes.

/// The integer output layer to refit, row-major `[out][inp]`.
pub struct OutputLayer<'a> {
    /// int8 weights, `out * inp`.
    pub weights: &'a mut [i8],
    /// int32 biases, `out`.
    pub biases: &'a mut [i32],
    /// Float weights divided by the weight scale (the unrounded targets), `out * inp`.
    pub float_over_scale: &'a [f64],
    /// Real value of one accumulator step (input scale x weight scale).
    pub scale: f64,
}

/// Outcome of [`refit`]: the loss (mean squared Q error over stacks and
/// outputs) before and after, and how many weights moved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefitReport {
    /// Mean squared error before the refit.
    pub mse_before: f64,
    /// Mean squared error after the refit.
    pub mse_after: f64,
    /// Weights moved to their other grid neighbour.
    pub flipped: usize,
}

/// Refits `layer` to `targets` (float Q-values, `[stack][out]`) from
/// `features` (integer inputs of the layer, `[stack][inp]`), in at most
/// `passes` passes. The loss never increases.
pub fn refit(
    layer: OutputLayer<'_>,
    features: &[Vec<i32>],
    targets: &[Vec<f32>],
    passes: usize,
) -> RefitReport {
    let out = layer.biases.len();
    let n = features.len();
    let inp = layer.weights.len() / out.max(1);
    let c = layer.scale;
    let (mut before, mut after, mut flipped) = (0f64, 0f64, 0usize);
    if n == 0 || out == 0 {
        return RefitReport {
            mse_before: 0.0,
            mse_after: 0.0,
            flipped: 0,
        };
    }
    // Column sums of squares, shared by all outputs.
    let sq: Vec<f64> = (0..inp)
        .map(|j| features.iter().map(|a| (a[j] as f64).powi(2)).sum())
        .collect();
    for o in 0..out {
        let w = &mut layer.weights[o * inp..][..inp];
        let wf = &layer.float_over_scale[o * inp..][..inp];
        let b = &mut layer.biases[o];
        let mut r: Vec<f64> = features
            .iter()
            .zip(targets)
            .map(|(a, t)| {
                let acc: i64 = a
                    .iter()
                    .zip(w.iter())
                    .map(|(&x, &q)| x as i64 * q as i64)
                    .sum::<i64>()
                    + *b as i64;
                c * acc as f64 - t[o] as f64
            })
            .collect();
        let loss = |r: &[f64]| r.iter().map(|v| v * v).sum::<f64>();
        before += loss(&r);
        for _ in 0..passes {
            let mut changed = false;
            for j in 0..inp {
                // The other grid neighbour of the float weight.
                let lo = wf[j].floor().clamp(-127.0, 127.0) as i32;
                let hi = wf[j].ceil().clamp(-127.0, 127.0) as i32;
                let cur = w[j] as i32;
                let alt = if cur == lo { hi } else { lo };
                if alt == cur || sq[j] == 0.0 {
                    continue;
                }
                let d = (alt - cur) as f64;
                let g: f64 = features
                    .iter()
                    .zip(&r)
                    .map(|(a, ri)| ri * a[j] as f64)
                    .sum();
                let delta = 2.0 * c * d * g + c * c * d * d * sq[j];
                if delta < -1e-12 {
                    w[j] = alt as i8;
                    for (ri, a) in r.iter_mut().zip(features) {
                        *ri += c * d * a[j] as f64;
                    }
                    flipped += 1;
                    changed = true;
                }
            }
            // Best bias for these weights.
            let shift = (-(r.iter().sum::<f64>() / n as f64) / c).round();
            let nb = (*b as f64 + shift).clamp(i32::MIN as f64, i32::MAX as f64) as i32;
            let d = (nb as i64 - *b as i64) as f64;
            if d != 0.0 {
                let old = loss(&r);
                let moved: Vec<f64> = r.iter().map(|ri| ri + c * d).collect();
                if loss(&moved) < old {
                    *b = nb;
                    r = moved;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        after += loss(&r);
    }
    let m = (n * out) as f64;
    RefitReport {
        mse_before: before / m,
        mse_after: after / m,
        flipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{RngCore, SeedableRng};
    use rand_pcg::Pcg32;

    /// Uniform in `[lo, hi)`.
    fn uniform(rng: &mut Pcg32, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (rng.next_u32() as f64 / 4_294_967_296.0)
    }

    /// A layer whose float weights sit between grid points, and features that
    /// make nearest rounding wrong on purpose: the refit must lower the loss,
    /// keep every weight on a neighbour of its float value, and be a no-op
    /// when nearest rounding is already exact.
    #[test]
    fn refit_lowers_the_loss_and_stays_on_neighbours() {
        let mut rng = Pcg32::seed_from_u64(5);
        let (inp, out, n) = (40, 2, 300);
        let wf: Vec<f64> = (0..inp * out)
            .map(|_| uniform(&mut rng, -100.0, 100.0))
            .collect();
        let feats: Vec<Vec<i32>> = (0..n)
            .map(|_| (0..inp).map(|_| (rng.next_u32() % 256) as i32).collect())
            .collect();
        let c = 1e-3;
        // Targets: the float layer plus a structured perturbation.
        let targets: Vec<Vec<f32>> = feats
            .iter()
            .map(|a| {
                (0..out)
                    .map(|o| {
                        let s: f64 = (0..inp).map(|j| a[j] as f64 * wf[o * inp + j]).sum();
                        (c * s + 0.01 * a[0] as f64 * c) as f32
                    })
                    .collect()
            })
            .collect();
        let mut w: Vec<i8> = wf.iter().map(|v| v.round() as i8).collect();
        let mut b = vec![0i32; out];
        // 8 passes over the layer with float weights `wf` (over the scale `c`).
        let run = |weights: &mut [i8], biases: &mut [i32], wf: &[f64], targets: &[Vec<f32>]| {
            let layer = OutputLayer {
                weights,
                biases,
                float_over_scale: wf,
                scale: c,
            };
            refit(layer, &feats, targets, 8)
        };
        let rep = run(&mut w, &mut b, &wf, &targets);
        assert!(rep.mse_after < rep.mse_before, "{rep:?}");
        assert!(rep.flipped > 0);
        for (q, f) in w.iter().zip(&wf) {
            assert!((*q as f64 - f).abs() < 1.0, "{q} vs {f}");
        }

        // Exactly representable weights and targets: nothing to do.
        let wf: Vec<f64> = w.iter().map(|&q| q as f64).collect();
        let targets: Vec<Vec<f32>> = feats
            .iter()
            .map(|a| {
                (0..out)
                    .map(|o| {
                        (c * (0..inp).map(|j| a[j] as f64 * wf[o * inp + j]).sum::<f64>()) as f32
                    })
                    .collect()
            })
            .collect();
        let mut w2 = w.clone();
        let mut b2 = vec![0i32; out];
        let rep = run(&mut w2, &mut b2, &wf, &targets);
        assert_eq!((w2, b2, rep.flipped), (w, vec![0, 0], 0));
    }
}
