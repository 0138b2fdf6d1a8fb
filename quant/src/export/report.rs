//! Stage 10: the export report, one row per compute stage, and its table.

use policy_core::blob::LayerKind;

use super::errors::ErrorEstimate;
use super::stages::QuantStage;
use super::Export;

/// Per-stage export report (one row of the table).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerReport {
    /// Index of the compute layer in the model.
    pub layer: usize,
    /// Human-readable name, e.g. `conv 8x8/4 p2 4->32 +pool2`.
    pub name: String,
    /// Smallest and largest float weight.
    pub weight_range: (f32, f32),
    /// Smallest and largest weight scale (per output channel; equal on the last layer).
    pub w_scale_range: (f64, f64),
    /// Scale of the input (1.0 for the binary frames).
    pub in_scale: f64,
    /// Scale of the output (u8 activations; the Q-value scale on the last layer).
    pub out_scale: f64,
    /// Fraction of calibration activations above `255 * out_scale` (clipped).
    pub clip_rate: f64,
    /// Worst-case |accumulator| over all inputs (`sum |w| * max_in + |bias|`).
    pub acc_bound: i64,
    /// Worst-case error of this stage's dequantized outputs vs the float network,
    /// in real units, for inputs whose float activations are not clipped.
    pub err_bound: f64,
    /// Predicted RMS error of this stage's outputs (worst channel), modelling
    /// the rounding errors as independent and zero-mean: far tighter than
    /// [`LayerReport::err_bound`], but a prediction, not a bound.
    pub err_rms: f64,
}

/// The row of stage `q`, of blob kind `kind`, with its estimates `est`.
pub(super) fn row(q: &QuantStage, kind: LayerKind, est: &ErrorEstimate) -> LayerReport {
    let (li, pool) = (q.li, q.pool);
    let name = match kind {
        LayerKind::Conv2d {
            in_c,
            out_c,
            k,
            stride,
            pad,
        } => {
            let p = if pool > 1 {
                format!(" +pool{pool}")
            } else {
                String::new()
            };
            format!("{li}: conv {k}x{k}/{stride} p{pad} {in_c}->{out_c}{p}")
        }
        LayerKind::Dense { inp, out } => format!("{li}: fc {inp}->{out}"),
        LayerKind::MaxPool { k } => format!("{li}: maxpool {k}"),
    };
    let (wmin, wmax) =
        q.p.w
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, z), &v| {
                (a.min(v), z.max(v))
            });
    LayerReport {
        layer: li,
        name,
        weight_range: (wmin, wmax),
        w_scale_range: (
            q.s_w.iter().cloned().fold(f64::INFINITY, f64::min),
            q.s_w.iter().cloned().fold(0.0, f64::max),
        ),
        in_scale: q.s_in,
        out_scale: q.s_out,
        clip_rate: q.clip_rate,
        acc_bound: est.acc_bound,
        err_bound: est.err_bound,
        err_rms: est.var_max.sqrt(),
    }
}

/// The report of `ex` as a Markdown table (also readable in a terminal).
pub(super) fn render_table(ex: &Export) -> String {
    let mut s = String::from(
        "| layer | weights [min, max] | w scale [min, max] | in scale | out scale | clipped | worst acc | of i32::MAX | err bound | err rms (pred.) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &ex.table {
        s += &format!(
            "| {} | [{:.4}, {:.4}] | [{:.3e}, {:.3e}] | {:.3e} | {:.3e} | {:.4}% | {} | {:.2}% | {:.3e} | {:.3e} |\n",
            r.name,
            r.weight_range.0,
            r.weight_range.1,
            r.w_scale_range.0,
            r.w_scale_range.1,
            r.in_scale,
            r.out_scale,
            100.0 * r.clip_rate,
            r.acc_bound,
            100.0 * r.acc_bound as f64 / i32::MAX as f64,
            r.err_bound,
            r.err_rms,
        );
    }
    if let Some(r) = &ex.refit {
        s += &format!(
            "\noutput layer refit: {} weights moved to their other grid neighbour; Q mean squared error on the calibration stacks {:.3e} -> {:.3e}\n",
            r.flipped, r.mse_before, r.mse_after
        );
    }
    s += &format!("\nblob: {} bytes\n", ex.blob.len());
    s
}
