//! Post-training quantization of a [`FloatModel`] to a `policy-core` blob
//! (the math is specified in `docs/quantization.md`).
//!
//! A pipeline of named stages, run once per compute stage of the network:
//! `stages` (1 grouping the layers into stages, 2 calibration, 3 the
//! parameters, 4 weight scales, 5 the output scale, 6 int8 weights and int32
//! biases, 7 requantization multipliers) → `errors` (8 the overflow check
//! and the error estimates) → `layout` (9 the blob's layer kinds and
//! weight layouts) → `report` (10 the table's row); then `layout` (11)
//! encodes the blob. With `refit_last`, the output layer's rounding is then
//! refit to the float Q-values ([`crate::refit`]) and only that stage is
//! done again (the calibration runs once).

mod errors;
mod layout;
mod report;
mod stages;

use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use flappy::FrameStack;

use crate::float_model::FloatModel;
use crate::refit::{OutputLayer, RefitReport};
use layout::QLayer;
pub use policy_core::{multiplier_value, quantize_multiplier};
pub use report::LayerReport;
use stages::{QuantStage, StageInput};

/// Export settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportOptions {
    /// Activation range: this percentile (in `(0, 100]`) of all calibration
    /// values of a stage's output (zeros included) becomes u8 255. 100 = the
    /// maximum (no clipping on the calibration set), the default: see
    /// `docs/quantization.md`.
    pub percentile: f64,
    /// Hidden layers' u8 range reaches this multiple of the calibrated value
    /// (`percentile`), so that frames busier than every calibration frame do
    /// not clip. Default 1.1: the reference model's parity frames reached
    /// up to 6 % past its calibration maxima (docs/quantization.md).
    pub headroom: f64,
    /// Calibrate on at most this many frame stacks, evenly spaced over the
    /// given ones (0 = all of them). Default 4096.
    pub max_calib_stacks: usize,
    /// Refit the output layer's weight rounding and biases to the float
    /// Q-values on the calibration stacks ([`crate::refit`]). Default on.
    pub refit_last: bool,
    /// Threads of the calibration's float forward passes (0, the default:
    /// one per core). The blob does not depend on it.
    pub threads: usize,
    /// Hidden stages' u8 steps given instead of calibrated, by the stage's
    /// layer index as [`LayerReport::layer`] names it (the output layer's
    /// entry is not used): the steps a network was trained through
    /// (`trainer distil --int8-frac`). A step finer than the accumulator's
    /// is raised to it, as a calibrated one is. `None`, the default:
    /// calibrate (`percentile`, `headroom`).
    pub act_steps: Option<Vec<f64>>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            percentile: 100.0,
            headroom: 1.1,
            max_calib_stacks: 4096,
            refit_last: true,
            threads: 0,
            act_steps: None,
        }
    }
}

impl ExportOptions {
    /// Rejects settings the export cannot use.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.percentile.is_finite() && self.percentile > 0.0 && self.percentile <= 100.0,
            "calibration percentile {} outside (0, 100]",
            self.percentile
        );
        ensure!(
            self.headroom.is_finite() && (1.0..=4.0).contains(&self.headroom),
            "calibration headroom {} outside [1, 4]",
            self.headroom
        );
        if let Some(steps) = &self.act_steps {
            ensure!(
                steps.iter().all(|s| s.is_finite() && *s >= 0.0),
                "activation steps must be finite and 0 or more: {steps:?}"
            );
        }
        Ok(())
    }
}

/// The result of [`export`].
#[derive(Clone, Debug)]
pub struct Export {
    /// The encoded blob (load with `policy_core::Policy::from_blob`).
    pub blob: Vec<u8>,
    /// One row per compute stage.
    pub table: Vec<LayerReport>,
    /// What the output-layer refit did (`None` when it was off).
    pub refit: Option<RefitReport>,
}

impl Export {
    /// Bound on `|q_int * output_scale - q_float|` for inputs that clip no activation.
    pub fn q_error_bound(&self) -> f64 {
        self.table.last().map(|r| r.err_bound).unwrap_or(0.0)
    }

    /// Predicted RMS of `q_int * output_scale - q_float` (see [`LayerReport::err_rms`]).
    pub fn q_error_rms(&self) -> f64 {
        self.table.last().map(|r| r.err_rms).unwrap_or(0.0)
    }

    /// The report as a Markdown table (also readable in a terminal).
    pub fn render_table(&self) -> String {
        report::render_table(self)
    }
}

/// [`export`], then writes the blob to `out` atomically (a temporary file in
/// the same directory, then a rename), creating the parent directory.
pub fn export_to_file(
    model: &FloatModel,
    calib: &[FrameStack],
    opts: &ExportOptions,
    out: &Path,
) -> Result<Export> {
    let ex = export(model, calib, opts)?;
    crate::atomic::write_atomic(out, &ex.blob)?;
    Ok(ex)
}

/// Quantizes `model` with activation ranges calibrated on `calib` and encodes
/// the blob. Refuses models that do not fit the blob rules (architecture,
/// capacities) or that could overflow an int32 accumulator.
pub fn export(model: &FloatModel, calib: &[FrameStack], opts: &ExportOptions) -> Result<Export> {
    opts.validate()?;
    ensure!(!calib.is_empty(), "no calibration frame stacks");
    model.validate().context("the float model")?;
    let stages = stages::group_stages(model)?;
    let picked = pick(calib, opts);
    let mut acts = stages::calibrate(model, &picked, stages.len(), opts.threads);
    let mut net = Quantized::new(model, &stages, &picked, &mut acts, opts)?;
    let blob = layout::assemble_blob(&net.qlayers)?;
    if !opts.refit_last {
        return Ok(Export {
            blob,
            table: net.table,
            refit: None,
        });
    }
    let refit = net.refit_last(&picked, &blob)?;
    Ok(Export {
        blob: layout::assemble_blob(&net.qlayers)?,
        table: net.table,
        refit: Some(refit),
    })
}

/// The calibration stacks used: at most `opts.max_calib_stacks`, evenly spaced.
fn pick<'a>(calib: &'a [FrameStack], opts: &ExportOptions) -> Vec<&'a FrameStack> {
    let take = if opts.max_calib_stacks == 0 {
        calib.len()
    } else {
        opts.max_calib_stacks.min(calib.len())
    };
    (0..take).map(|i| &calib[i * calib.len() / take]).collect()
}

/// The network quantized stage by stage: the blob's layers, the report's
/// rows, and the last stage as quantized (what a refit of the output layer
/// does again).
struct Quantized<'a> {
    model: &'a FloatModel,
    qlayers: Vec<QLayer>,
    table: Vec<LayerReport>,
    last: Option<LastStage<'a>>,
}

/// The output stage, its input, the activation shape before it and where
/// its layers start in the blob.
struct LastStage<'a> {
    q: QuantStage<'a>,
    input: StageInput,
    shape: (usize, usize, usize),
    at: usize,
}

impl<'a> Quantized<'a> {
    /// Every stage of `model`, calibrated on `picked` (whose stage outputs
    /// are `acts`, reordered here).
    fn new(
        model: &'a FloatModel,
        stages: &[stages::Stage],
        picked: &[&FrameStack],
        acts: &mut [Vec<f32>],
        opts: &ExportOptions,
    ) -> Result<Quantized<'a>> {
        let mut net = Quantized {
            model,
            qlayers: Vec::new(),
            table: Vec::new(),
            last: None,
        };
        let mut input = StageInput::pixels(picked);
        // Shape of the current activation (c, h, w), for the dense permutation.
        let netspec::Shape { c, h, w } = netspec::INPUT;
        let mut shape = (c, h, w);
        for (si, (&stage, values)) in stages.iter().zip(acts.iter_mut()).enumerate() {
            let place = (si == 0, si + 1 == stages.len());
            let q = stages::quantize(model, stage, place, values, &input, opts)?;
            let (before, at) = (shape, net.qlayers.len());
            let est = net.push_stage(&q, &input, &mut shape)?;
            let next = StageInput {
                scale: q.s_out,
                err: est.err_bound,
                xmax: 255.0 * q.s_out,
                var: est.var_sum / q.p.out_n as f64,
                mean_square: errors::mean_square_clipped(values, q.s_out),
            };
            if q.last {
                net.last = Some(LastStage {
                    q,
                    input,
                    shape: before,
                    at,
                });
            }
            input = next;
        }
        ensure!(net.last.is_some(), "the model has no layers");
        Ok(net)
    }

    /// Stages 8 to 10 of `q` fed `input`: the estimates and the overflow
    /// check, the blob's layers (advancing `shape`) and the report's row.
    fn push_stage(
        &mut self,
        q: &QuantStage,
        input: &StageInput,
        shape: &mut (usize, usize, usize),
    ) -> Result<errors::ErrorEstimate> {
        let est = errors::estimate(q, input);
        if est.acc_bound > i32::MAX as i64 {
            bail!(
                "layer {}: worst-case accumulator {} exceeds i32::MAX; refusing to export a model that can overflow",
                q.li,
                est.acc_bound
            );
        }
        let layer = &self.model.layers[q.li];
        let (kind, weights) = layout::blob_layout(layer, &q.wq, shape, q.pool, q.li)?;
        self.table.push(report::row(q, kind, &est));
        self.qlayers.push(QLayer::compute(q, kind, weights));
        if q.pool > 1 {
            self.qlayers.push(QLayer::max_pool(q.pool)?);
        }
        Ok(est)
    }

    /// Refits the output layer's rounding and biases ([`crate::refit`]) to
    /// the float Q-values on `picked`, given the integer features that
    /// `blob` (this network, encoded) computes there, then does the output
    /// stage again.
    fn refit_last(&mut self, picked: &[&FrameStack], blob: &[u8]) -> Result<RefitReport> {
        let mut policy = policy_core::Policy::from_blob(blob)
            .map_err(|e| anyhow!("the quantized model is not a valid blob: {e}"))?;
        let (features, targets): (Vec<Vec<i32>>, Vec<Vec<f32>>) = picked
            .iter()
            .map(|s| {
                let mut t = policy.q_values_trace(s);
                let n = t.stages.len();
                let feats = if n >= 2 {
                    std::mem::take(&mut t.stages[n - 2].values)
                } else {
                    // A single layer reads the 0/1 pixels.
                    (0..4)
                        .flat_map(|c| {
                            let f = s.frame(c);
                            (0..80 * 80).map(move |i| i32::from(f.get(i / 80, i % 80)))
                        })
                        .collect()
                };
                (feats, self.model.forward(s))
            })
            .unzip();
        let mut last = self
            .last
            .take()
            .ok_or_else(|| anyhow!("the model has no layers"))?;
        let q = &mut last.q;
        let float_over_scale: Vec<f64> = q.p.w.iter().map(|&v| v as f64 / q.s_w[0]).collect();
        let rep = crate::refit::refit(
            OutputLayer {
                weights: &mut q.wq,
                biases: &mut q.bq,
                float_over_scale: &float_over_scale,
                scale: last.input.scale * q.s_w[0],
            },
            &features,
            &targets,
            8,
        );
        self.qlayers.truncate(last.at);
        self.table.pop();
        self.push_stage(&last.q, &last.input, &mut last.shape)?;
        Ok(rep)
    }
}
