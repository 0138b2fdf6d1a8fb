//! Stage 8: the worst-case accumulator (the overflow check), the worst-case
//! output error carried through from the input, and the predicted error
//! variance of a quantized stage.

use super::stages::{QuantStage, StageInput};

/// What [`estimate`] finds for one stage.
pub(super) struct ErrorEstimate {
    /// Worst-case |accumulator| over all inputs.
    pub acc_bound: i64,
    /// Worst-case error of the dequantized outputs (unclipped inputs).
    pub err_bound: f64,
    /// Predicted error variance of the worst channel.
    pub var_max: f64,
    /// Predicted error variance summed over the channels.
    pub var_sum: f64,
}

/// The estimates of stage `q` fed `input` (rounding errors as independent,
/// zero-mean; output rounding uniform, variance step² / 12).
pub(super) fn estimate(q: &QuantStage, input: &StageInput) -> ErrorEstimate {
    let p = &q.p;
    let (wq, bq, s_w, mq, s_out) = (&q.wq, &q.bq, &q.s_w, &q.mq, q.s_out);
    let s_in = input.scale;
    let max_in = if q.first { 1i64 } else { 255 };
    let mut est = ErrorEstimate {
        acc_bound: 0,
        err_bound: 0.0,
        var_max: 0.0,
        var_sum: 0.0,
    };
    for o in 0..p.out_n {
        let row = &wq[o * p.fan_in..][..p.fan_in];
        let w = &p.w[o * p.fan_in..][..p.fan_in];
        let sum_q: i64 = row.iter().map(|&v| (v as i64).abs()).sum();
        let acc_o = sum_q * max_in + (bq[o] as i64).abs();
        est.acc_bound = est.acc_bound.max(acc_o);
        let (mut dw, mut sq_wq, mut sq_dw) = (0f64, 0f64, 0f64);
        for (&q, &f) in row.iter().zip(w) {
            let wq_real = q as f64 * s_w[o];
            let d = f as f64 - wq_real;
            dw += d.abs();
            sq_wq += wq_real * wq_real;
            sq_dw += d * d;
        }
        let db = p.b[o] as f64 - bq[o] as f64 * s_in * s_w[o];
        let mut e = sum_q as f64 * s_w[o] * input.err + dw * input.xmax + db.abs();
        let mut v = sq_wq * input.var + sq_dw * input.mean_square + db * db;
        if !q.last {
            let real = policy_core::multiplier_value(mq[o].0, mq[o].1);
            let dm = (s_in * s_w[o] / s_out - real).abs();
            e += s_out * (1.0 + dm * acc_o as f64);
            v += s_out * s_out / 12.0;
        }
        est.err_bound = est.err_bound.max(e);
        est.var_max = est.var_max.max(v);
        est.var_sum += v;
    }
    est
}

/// The mean square of a stage's calibration outputs after clipping at the
/// u8 range (the next stage's input, for the RMS prediction).
pub(super) fn mean_square_clipped(values: &[f32], s_out: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let top = 255.0 * s_out;
    values
        .iter()
        .map(|&v| (v as f64).min(top).powi(2))
        .sum::<f64>()
        / values.len() as f64
}
