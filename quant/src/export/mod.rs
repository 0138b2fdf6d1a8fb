//! Post-training quantization of a [`FloatModel`] to a `policy-core` blob
//! (the math is specified in `docs/quantization.md`).

use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use flappy::FrameStack;
use policy_core::blob::{BlobError, Bytes, InputDesc, Layer, LayerKind, Model};

use crate::float_model::{FloatLayer, FloatModel};

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
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            percentile: 100.0,
            headroom: 1.1,
            max_calib_stacks: 4096,
            refit_last: true,
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
        Ok(())
    }
}

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

/// The result of [`export`].
#[derive(Clone, Debug)]
pub struct Export {
    /// The encoded blob (load with `policy_core::Policy::from_blob`).
    pub blob: Vec<u8>,
    /// One row per compute stage.
    pub table: Vec<LayerReport>,
    /// What the output-layer refit did (`None` when it was off).
    pub refit: Option<crate::refit::RefitReport>,
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
        let mut s = String::from(
            "| layer | weights [min, max] | w scale [min, max] | in scale | out scale | clipped | worst acc | of i32::MAX | err bound | err rms (pred.) |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.table {
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
        if let Some(r) = &self.refit {
            s += &format!(
                "\noutput layer refit: {} weights moved to their other grid neighbour; Q mean squared error on the calibration stacks {:.3e} -> {:.3e}\n",
                r.flipped, r.mse_before, r.mse_after
            );
        }
        s += &format!("\nblob: {} bytes\n", self.blob.len());
        s
    }
}

/// Requantization multiplier `m` in `[0, 1)` as a Q31 mantissa and right shift:
/// `m ≈ m0 * 2^-31 * 2^-shift`, `m0` in `[2^30, 2^31)` unless the shift saturates at 31.
pub fn quantize_multiplier(m: f64) -> Result<(i32, u8)> {
    ensure!(
        m.is_finite() && (0.0..1.0).contains(&m),
        "requantization multiplier {m} outside [0, 1)"
    );
    if m == 0.0 {
        return Ok((0, 0));
    }
    let (mut mm, mut shift) = (m, 0u8);
    while mm < 0.5 && shift < 31 {
        mm *= 2.0;
        shift += 1;
    }
    let mut m0 = (mm * 2f64.powi(31)).round() as i64;
    if m0 == 1i64 << 31 {
        ensure!(shift > 0, "multiplier {m} rounds to 1");
        m0 >>= 1;
        shift -= 1;
    }
    Ok((m0 as i32, shift))
}

/// The real value of a quantized multiplier.
pub fn multiplier_value(m0: i32, shift: u8) -> f64 {
    m0 as f64 * 2f64.powi(-31 - shift as i32)
}

struct QLayer {
    kind: LayerKind,
    relu: bool,
    out_scale: f32,
    w_scales: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
    weights: Vec<u8>,
    biases: Vec<u8>,
}

impl QLayer {
    /// A conv or dense stage: per-channel weight scales (one on the last
    /// layer), multipliers and shifts (none on the last layer), int32 biases.
    #[allow(clippy::too_many_arguments)]
    fn compute(
        kind: LayerKind,
        relu: bool,
        s_out: f64,
        s_w: &[f64],
        mq: &[(i32, u8)],
        weights: Vec<u8>,
        bq: &[i32],
        last: bool,
    ) -> QLayer {
        let w_scales = if last { &s_w[..1] } else { s_w };
        QLayer {
            kind,
            relu,
            out_scale: s_out as f32,
            w_scales: w_scales
                .iter()
                .flat_map(|&s| (s as f32).to_bits().to_le_bytes())
                .collect(),
            multipliers: mq.iter().flat_map(|m| m.0.to_le_bytes()).collect(),
            shifts: mq.iter().map(|m| m.1).collect(),
            weights,
            biases: bq.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// A max-pool (no parameters).
    fn max_pool(k: usize) -> Result<QLayer> {
        Ok(QLayer {
            kind: LayerKind::MaxPool {
                k: u8::try_from(k)?,
            },
            relu: false,
            out_scale: 0.0,
            w_scales: vec![],
            multipliers: vec![],
            shifts: vec![],
            weights: vec![],
            biases: vec![],
        })
    }

    fn view(&self) -> Layer<'_> {
        Layer {
            kind: self.kind,
            relu: self.relu,
            out_scale: self.out_scale.to_bits(),
            w_scales: Bytes(&self.w_scales),
            multipliers: Bytes(&self.multipliers),
            shifts: Bytes(&self.shifts),
            weights: Bytes(&self.weights),
            biases: Bytes(&self.biases),
        }
    }
}

/// The `p`-th percentile (nearest rank on `0..len-1`) of `v`; reorders `v`.
fn percentile(v: &mut [f32], p: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let idx = (((p / 100.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1);
    let (_, x, _) = v.select_nth_unstable_by(idx, |a, b| a.total_cmp(b));
    *x
}

/// Every stage's float outputs over `calib` (concatenated per stage), computed
/// on all cores.
fn calibrate(model: &FloatModel, calib: &[&FrameStack], n_stages: usize) -> Vec<Vec<f32>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(calib.len())
        .max(1);
    let chunk = calib.len().div_ceil(threads);
    let parts: Vec<Vec<Vec<f32>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = calib
            .chunks(chunk)
            .map(|part| {
                sc.spawn(move || {
                    let mut acts = vec![Vec::new(); n_stages];
                    for s in part {
                        for (a, t) in acts.iter_mut().zip(model.forward_trace(s)) {
                            a.extend(t);
                        }
                    }
                    acts
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("calibration thread panicked"))
            .collect()
    });
    let mut acts = vec![Vec::new(); n_stages];
    for part in parts {
        for (a, p) in acts.iter_mut().zip(part) {
            a.extend(p);
        }
    }
    acts
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
    let (ex, last) = export_with(model, calib, opts, None)?;
    if !opts.refit_last {
        return Ok(ex);
    }
    let picked = pick(calib, opts);
    let mut policy = policy_core::Policy::from_blob(&ex.blob)
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
            (feats, model.forward(s))
        })
        .unzip();
    let (mut w, mut b) = (last.weights, last.biases);
    let rep = crate::refit::refit(
        crate::refit::OutputLayer {
            weights: &mut w,
            biases: &mut b,
            float_over_scale: &last.float_over_scale,
            scale: last.scale,
        },
        &features,
        &targets,
        8,
    );
    let (mut ex, _) = export_with(model, calib, opts, Some((w, b)))?;
    ex.refit = Some(rep);
    Ok(ex)
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

/// The output layer as exported: int8 weights and int32 biases (row-major
/// `[out][inp]`, PyTorch order), the float weights over the weight scale, and
/// the real value of one accumulator step.
struct LastLayer {
    weights: Vec<i8>,
    biases: Vec<i32>,
    float_over_scale: Vec<f64>,
    scale: f64,
}

/// [`export`] without the refit; `last` replaces the output layer's integer
/// weights and biases (each weight within one step of its float value).
///
/// A pipeline of named stages, run once per compute stage of the network:
/// [`group_stages`] → [`calibrate`] → [`stage_params`] → [`weight_scales`] →
/// [`output_scale`] → [`quantize_params`] → [`requant_multipliers`] →
/// [`error_estimate`] → [`blob_layout`] → [`report_row`], then
/// [`assemble_blob`] once.
fn export_with(
    model: &FloatModel,
    calib: &[FrameStack],
    opts: &ExportOptions,
    last_override: Option<(Vec<i8>, Vec<i32>)>,
) -> Result<(Export, LastLayer)> {
    opts.validate()?;
    ensure!(!calib.is_empty(), "no calibration frame stacks");
    model.validate().context("the float model")?;
    let stages = group_stages(model)?;
    let picked = pick(calib, opts);
    let mut acts = calibrate(model, &picked, stages.len());

    let mut qlayers: Vec<QLayer> = Vec::new();
    let mut table = Vec::new();
    let mut last_layer = None;
    let mut input = StageInput::pixels(&picked);
    // Shape of the current activation (c, h, w), for the dense permutation.
    let mut shape = (4usize, 80usize, 80usize);
    for (si, stage) in stages.iter().enumerate() {
        let last = si + 1 == stages.len();
        let li = stage.layer;
        let p = stage_params(&model.layers[li], li, last)?;
        let s_w = weight_scales(&p, last, input.scale);
        let mut values = std::mem::take(&mut acts[si]);
        let (s_out, clip_rate) = output_scale(&mut values, &s_w, input.scale, last, opts);
        let (mut wq, mut bq) = quantize_params(&p, &s_w, input.scale, li)?;
        if last {
            if let Some((w_over, b_over)) = &last_override {
                ensure!(
                    w_over.len() == wq.len() && b_over.len() == bq.len(),
                    "output layer override of the wrong size"
                );
                wq.clone_from(w_over);
                bq.clone_from(b_over);
            }
            last_layer = Some(LastLayer {
                weights: wq.clone(),
                biases: bq.clone(),
                float_over_scale: p.w.iter().map(|&v| v as f64 / s_w[0]).collect(),
                scale: input.scale * s_w[0],
            });
        }
        let mq = if last {
            Vec::new()
        } else {
            requant_multipliers(input.scale, &s_w, s_out, li)?
        };
        let est = error_estimate(&p, &wq, &bq, &s_w, &mq, s_out, &input, si == 0);
        if est.acc_bound > i32::MAX as i64 {
            bail!(
                "layer {li}: worst-case accumulator {} exceeds i32::MAX; refusing to export a model that can overflow",
                est.acc_bound
            );
        }
        let (kind, weights) = blob_layout(&model.layers[li], &wq, &mut shape, stage.pool, li)?;
        table.push(report_row(
            li,
            kind,
            stage.pool,
            p.w,
            &s_w,
            (input.scale, s_out),
            clip_rate,
            &est,
        ));
        qlayers.push(QLayer::compute(
            kind, p.relu, s_out, &s_w, &mq, weights, &bq, last,
        ));
        if stage.pool > 1 {
            qlayers.push(QLayer::max_pool(stage.pool)?);
        }
        input = StageInput {
            scale: s_out,
            err: est.err_bound,
            xmax: 255.0 * s_out,
            var: est.var_sum / p.out_n as f64,
            mean_square: mean_square_clipped(&values, s_out),
        };
    }
    let blob = assemble_blob(&qlayers)?;
    let last = last_layer.ok_or_else(|| anyhow!("the model has no layers"))?;
    Ok((
        Export {
            blob,
            table,
            refit: None,
        },
        last,
    ))
}

/// One compute stage of the integer network: a conv or dense layer, with
/// the max-pool that follows it (`pool` > 1) fused in.
#[derive(Clone, Copy, Debug)]
struct Stage {
    layer: usize,
    pool: usize,
}

/// Stage 1: groups the layers into compute stages (a max-pool must follow a
/// conv and is fused into it).
fn group_stages(model: &FloatModel) -> Result<Vec<Stage>> {
    let mut stages: Vec<Stage> = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        match l.shape.layer {
            netspec::Layer::MaxPool { k } => {
                let Some(last) = stages.last_mut().filter(|s| s.layer + 1 == i) else {
                    bail!("layer {i}: a MaxPool must follow a Conv");
                };
                last.pool = k;
            }
            _ => stages.push(Stage { layer: i, pool: 1 }),
        }
    }
    let n = model.layers.len();
    ensure!(
        n <= policy_core::MAX_LAYERS,
        "{n} layers; policy-core runs at most {}",
        policy_core::MAX_LAYERS
    );
    Ok(stages)
}

/// What the quantization of a stage knows about its input: the scale, the
/// error bound and largest value carried in, and (for the RMS prediction)
/// the error variance and mean square of the input.
struct StageInput {
    scale: f64,
    err: f64,
    xmax: f64,
    var: f64,
    mean_square: f64,
}

impl StageInput {
    /// The network's input: exact 0/1 pixels at scale 1.
    fn pixels(picked: &[&FrameStack]) -> StageInput {
        let bits: u64 = picked
            .iter()
            .map(|s| (0..4).map(|i| s.frame(i).count_ones() as u64).sum::<u64>())
            .sum();
        StageInput {
            scale: 1.0,
            err: 0.0,
            xmax: 1.0,
            var: 0.0,
            mean_square: bits as f64 / (picked.len() * 4 * 6400) as f64,
        }
    }
}

/// A compute layer's float parameters as a matrix `[out_n][fan_in]`
/// (PyTorch order) and a bias per output.
struct StageParams<'a> {
    out_n: usize,
    fan_in: usize,
    relu: bool,
    w: &'a [f32],
    b: &'a [f32],
}

/// Stage 2: a compute layer's parameters, checked for size and for ReLU on
/// every hidden layer and not on the last.
fn stage_params(layer: &FloatLayer, li: usize, last: bool) -> Result<StageParams<'_>> {
    ensure!(
        layer.shape.has_params(),
        "layer {li}: a MaxPool is not a compute stage"
    );
    let p = StageParams {
        out_n: layer.shape.layer.outputs(),
        fan_in: layer.shape.layer.fan_in(),
        relu: layer.shape.relu,
        w: &layer.weight,
        b: &layer.bias,
    };
    ensure!(
        p.w.len() == p.out_n * p.fan_in && p.b.len() == p.out_n,
        "layer {li}: parameter sizes do not match the shape"
    );
    ensure!(
        p.relu != last,
        "layer {li}: hidden layers need ReLU, the last must not have it"
    );
    Ok(p)
}

/// Stage 3: weight scales, symmetric int8 (`absmax / 127`): per output
/// channel, per tensor on the last layer (so the Q-values share one scale).
fn weight_scales(p: &StageParams, last: bool, s_in: f64) -> Vec<f64> {
    let absmax = |o: usize| {
        p.w[o * p.fan_in..][..p.fan_in]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs())) as f64
    };
    let tensor_max = (0..p.out_n).map(absmax).fold(0f64, f64::max);
    (0..p.out_n)
        .map(|o| {
            let m = if last { tensor_max } else { absmax(o) };
            if m > 0.0 {
                m / 127.0
            } else {
                // All-zero weights: any scale works for them; pick one the
                // bias (the largest bias on the per-tensor last layer) fits.
                let bmax = if last {
                    p.b.iter().fold(0f32, |m, v| m.max(v.abs()))
                } else {
                    p.b[o].abs()
                };
                (bmax as f64).max(1e-6) / s_in / 2f64.powi(24)
            }
        })
        .collect()
}

/// Stage 4: the output scale and the fraction of calibration values it
/// clips. Hidden layers map the `percentile` of their calibration outputs to
/// u8 255 (never finer than the accumulator step, so every multiplier stays
/// below 1); the last layer keeps the accumulator's own scale.
fn output_scale(
    values: &mut [f32],
    s_w: &[f64],
    s_in: f64,
    last: bool,
    opts: &ExportOptions,
) -> (f64, f64) {
    if last {
        return (s_in * s_w[0], 0.0);
    }
    let top = percentile(values, opts.percentile) as f64 * opts.headroom;
    let s_min = s_w.iter().map(|&sw| s_in * sw).fold(0f64, f64::max) * (1.0 + 1e-6);
    let s = (top / 255.0).max(s_min);
    let clip = values.iter().filter(|&&v| v as f64 > 255.0 * s).count() as f64
        / values.len().max(1) as f64;
    (s, clip)
}

/// Stage 5: int8 weights (rounded, clamped to ±127; PyTorch order) and int32
/// biases at the accumulator's scale `s_in * s_w`.
fn quantize_params(
    p: &StageParams,
    s_w: &[f64],
    s_in: f64,
    li: usize,
) -> Result<(Vec<i8>, Vec<i32>)> {
    let mut wq = vec![0i8; p.w.len()];
    for o in 0..p.out_n {
        for j in 0..p.fan_in {
            wq[o * p.fan_in + j] = (p.w[o * p.fan_in + j] as f64 / s_w[o])
                .round()
                .clamp(-127.0, 127.0) as i8;
        }
    }
    let mut bq = vec![0i32; p.out_n];
    for o in 0..p.out_n {
        let v = (p.b[o] as f64 / (s_in * s_w[o])).round();
        ensure!(
            v.abs() <= i32::MAX as f64,
            "layer {li} channel {o}: bias {} does not fit int32 at scale {:e}",
            p.b[o],
            s_in * s_w[o]
        );
        bq[o] = v as i32;
    }
    Ok((wq, bq))
}

/// Stage 6: each hidden channel's requantization multiplier
/// `s_in * s_w / s_out` as a Q31 mantissa and shift ([`quantize_multiplier`]).
fn requant_multipliers(s_in: f64, s_w: &[f64], s_out: f64, li: usize) -> Result<Vec<(i32, u8)>> {
    s_w.iter()
        .enumerate()
        .map(|(o, &sw)| {
            quantize_multiplier(s_in * sw / s_out)
                .with_context(|| format!("layer {li} channel {o}"))
        })
        .collect()
}

/// What [`error_estimate`] finds for one stage.
struct ErrorEstimate {
    /// Worst-case |accumulator| over all inputs.
    acc_bound: i64,
    /// Worst-case error of the dequantized outputs (unclipped inputs).
    err_bound: f64,
    /// Predicted error variance of the worst channel.
    var_max: f64,
    /// Predicted error variance summed over the channels.
    var_sum: f64,
}

/// Stage 7: the worst-case accumulator (the overflow check), the worst-case
/// output error carried through from the input, and the predicted error
/// variance (rounding errors as independent, zero-mean; output rounding
/// uniform, variance step² / 12). `mq` is empty on the last layer.
#[allow(clippy::too_many_arguments)]
fn error_estimate(
    p: &StageParams,
    wq: &[i8],
    bq: &[i32],
    s_w: &[f64],
    mq: &[(i32, u8)],
    s_out: f64,
    input: &StageInput,
    first: bool,
) -> ErrorEstimate {
    let last = mq.is_empty();
    let s_in = input.scale;
    let max_in = if first { 1i64 } else { 255 };
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
        if !last {
            let dm = (s_in * s_w[o] / s_out - multiplier_value(mq[o].0, mq[o].1)).abs();
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
fn mean_square_clipped(values: &[f32], s_out: f64) -> f64 {
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

/// Stage 8: the blob's layer kind and weight layout. Conv weights go from
/// PyTorch's OIHW to policy-core's HWIO; dense rows from PyTorch's NCHW
/// flatten to policy-core's HWC order. Advances `shape` (c, h, w) past the
/// stage (pool included).
fn blob_layout(
    layer: &FloatLayer,
    wq: &[i8],
    shape: &mut (usize, usize, usize),
    pool: usize,
    li: usize,
) -> Result<(LayerKind, Vec<u8>)> {
    match layer.shape.layer {
        netspec::Layer::Conv {
            in_c: ic,
            out_c: oc,
            k,
            stride,
            pad,
        } => {
            let mut hwio = vec![0u8; wq.len()];
            for o in 0..oc {
                for c in 0..ic {
                    for ky in 0..k {
                        for kx in 0..k {
                            hwio[((ky * k + kx) * ic + c) * oc + o] =
                                wq[((o * ic + c) * k + ky) * k + kx] as u8;
                        }
                    }
                }
            }
            let out_len = |n: usize| {
                (n + 2 * pad)
                    .checked_sub(k)
                    .map(|v| v / stride + 1)
                    .ok_or_else(|| anyhow!("layer {li}: kernel larger than input"))
            };
            let (oh, ow) = (out_len(shape.1)?, out_len(shape.2)?);
            *shape = (oc, oh / pool, ow / pool);
            let kind = LayerKind::Conv2d {
                in_c: u16::try_from(ic)?,
                out_c: u16::try_from(oc)?,
                k: u8::try_from(k)?,
                stride: u8::try_from(stride)?,
                pad: u8::try_from(pad)?,
            };
            Ok((kind, hwio))
        }
        netspec::Layer::Dense { inp, out } => {
            let (c, h, wd) = *shape;
            ensure!(
                c * h * wd == inp,
                "layer {li}: dense input {inp} != previous output {}",
                c * h * wd
            );
            let mut im = vec![0u8; wq.len()];
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..wd {
                        let j = (ch * h + y) * wd + x; // PyTorch NCHW flatten
                        let i = (y * wd + x) * c + ch; // policy-core HWC
                        for o in 0..out {
                            im[i * out + o] = wq[o * inp + j] as u8;
                        }
                    }
                }
            }
            *shape = (out, 1, 1);
            let kind = LayerKind::Dense {
                inp: u32::try_from(inp)?,
                out: u32::try_from(out)?,
            };
            Ok((kind, im))
        }
        netspec::Layer::MaxPool { .. } => bail!("layer {li}: a MaxPool has no weights"),
    }
}

/// Stage 9: the stage's row of the export report.
#[allow(clippy::too_many_arguments)]
fn report_row(
    li: usize,
    kind: LayerKind,
    pool: usize,
    w: &[f32],
    s_w: &[f64],
    (s_in, s_out): (f64, f64),
    clip_rate: f64,
    est: &ErrorEstimate,
) -> LayerReport {
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
    let (wmin, wmax) = w
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, z), &v| {
            (a.min(v), z.max(v))
        });
    LayerReport {
        layer: li,
        name,
        weight_range: (wmin, wmax),
        w_scale_range: (
            s_w.iter().cloned().fold(f64::INFINITY, f64::min),
            s_w.iter().cloned().fold(0.0, f64::max),
        ),
        in_scale: s_in,
        out_scale: s_out,
        clip_rate,
        acc_bound: est.acc_bound,
        err_bound: est.err_bound,
        err_rms: est.var_max.sqrt(),
    }
}

/// Stage 10: the blob: every layer in order, encoded by policy-core's own
/// writer (which re-checks every rule the reader enforces).
fn assemble_blob(qlayers: &[QLayer]) -> Result<Vec<u8>> {
    let mut layers = heapless::Vec::<Layer, { policy_core::MAX_LAYERS }>::new();
    for q in qlayers {
        layers
            .push(q.view())
            .map_err(|_| anyhow!("more than {} layers", policy_core::MAX_LAYERS))?;
    }
    let m = Model {
        input: InputDesc::FLAPPY,
        num_actions: policy_core::NUM_ACTIONS as u8,
        layers,
    };
    let cap = qlayers
        .iter()
        .map(|q| q.weights.len() + q.biases.len() + 16 * q.shifts.len() + 64)
        .sum::<usize>()
        + 256;
    let mut buf = vec![0u8; cap];
    let len = m.encode_into(&mut buf).map_err(|e| match e {
        BlobError::AccumulatorOverflow { layer, channel } => {
            anyhow!("layer {layer} channel {channel}: worst-case accumulator exceeds i32; refusing to export")
        }
        e => anyhow!("the quantized model is not a valid blob: {e}"),
    })?;
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float_model::{apply, synthetic_stacks, LayerShape, Tensor3};
    use policy_core::Policy;

    fn conv(in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> LayerShape {
        LayerShape {
            layer: netspec::Layer::conv(in_c, out_c, k, stride, pad),
            relu: true,
        }
    }

    fn pool(k: usize) -> LayerShape {
        LayerShape {
            layer: netspec::Layer::MaxPool { k },
            relu: false,
        }
    }

    fn dense(inp: usize, out: usize, relu: bool) -> LayerShape {
        LayerShape {
            layer: netspec::Layer::dense(inp, out),
            relu,
        }
    }

    fn opts_percentile(percentile: f64) -> ExportOptions {
        ExportOptions {
            percentile,
            ..Default::default()
        }
    }

    /// The error of an export with the default options, which must fail.
    fn export_err(model: &FloatModel, calib: &[FrameStack]) -> anyhow::Error {
        export(model, calib, &ExportOptions::default()).unwrap_err()
    }

    /// Every calibration stack's integer Q-values against the float ones: each
    /// error within `bound`; returns the largest error and the largest |q|.
    fn q_errors(
        model: &FloatModel,
        ex: &Export,
        calib: &[FrameStack],
        bound: f64,
        what: &str,
    ) -> (f64, f64) {
        let mut policy = Policy::from_blob(&ex.blob).unwrap();
        let s = policy.output_scale() as f64;
        let (mut max_err, mut max_q) = (0f64, 0f64);
        for stack in calib {
            let qf = model.forward(stack);
            let qi = policy.q_values(stack);
            for a in 0..2 {
                let e = (qi[a] as f64 * s - qf[a] as f64).abs();
                assert!(e <= bound, "{what}err {e} > bound {bound}");
                max_err = max_err.max(e);
                max_q = max_q.max((qf[a] as f64).abs());
            }
        }
        (max_err, max_q)
    }

    #[test]
    fn quantize_multiplier_is_accurate_and_normalised() {
        assert_eq!(quantize_multiplier(0.5).unwrap(), (1 << 30, 0));
        assert_eq!(quantize_multiplier(0.25).unwrap(), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.75).unwrap(), (3 << 29, 0));
        assert_eq!(quantize_multiplier(0.0).unwrap(), (0, 0));
        assert!(quantize_multiplier(1.0).is_err());
        assert!(quantize_multiplier(-0.1).is_err());
        assert!(quantize_multiplier(f64::NAN).is_err());
        let mut m = 0.999_999;
        while m > 1e-12 {
            let (m0, shift) = quantize_multiplier(m).unwrap();
            assert!(shift <= 31);
            if shift < 31 {
                assert!(m0 >= 1 << 30, "m {m}: m0 {m0} not normalised");
            }
            let got = multiplier_value(m0, shift);
            // Rounding the mantissa to an integer: half a unit of 2^-31-shift.
            assert!(
                (got - m).abs() <= 0.5 * 2f64.powi(-31 - shift as i32) * 1.000_001,
                "m {m} got {got}"
            );
            m *= 0.618;
        }
    }

    fn dequant(st: &policy_core::StageTrace) -> Tensor3 {
        Tensor3 {
            c: st.shape.0,
            h: st.shape.1,
            w: st.shape.2,
            data: st
                .values
                .iter()
                .map(|&v| (v as f64 * st.scale as f64) as f32)
                .collect(),
        }
    }

    /// Each stage, fed the integer network's own (dequantized) input, matches
    /// the float layer within its rounding bound: weight rounding
    /// (`s_w / 2 * sum |x|`), bias rounding (`s_in * s_w / 2`), requantization
    /// (one output step plus the multiplier's rounding), f32 slack.
    #[test]
    fn random_classic_export_matches_float_layer_by_layer() {
        let model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 11);
        let stacks = synthetic_stacks(24, 5);
        let ex = export(&model, &stacks, &opts_percentile(100.0)).unwrap();
        let mut policy = Policy::from_blob(&ex.blob).unwrap();
        let stage_layers: Vec<&[FloatLayer]> = vec![
            &model.layers[0..2],
            &model.layers[2..3],
            &model.layers[3..4],
            &model.layers[4..5],
            &model.layers[5..6],
        ];
        let mut mean_err_lsb = [0f64; 5];
        for stack in &stacks {
            let tr = policy.q_values_trace(stack);
            assert_eq!(tr.stages.len(), 5);
            let mut x = crate::float_model::input_tensor(stack);
            for (si, layers) in stage_layers.iter().enumerate() {
                let r = &ex.table[si];
                let mut y = x.clone();
                for l in *layers {
                    y = apply(l, &y);
                }
                let got = &tr.stages[si];
                assert_eq!((got.shape.0, got.shape.1, got.shape.2), (y.c, y.h, y.w));
                let fan_in = layers[0].shape.layer.fan_in();
                let sum_x: f64 = x.data.iter().map(|v| v.abs() as f64).sum();
                let max_x = x.data.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                let s_x = sum_x.min(fan_in as f64 * max_x);
                let last = si == 4;
                let requant = if last {
                    0.0
                } else {
                    r.out_scale * (1.0 + 1e-3)
                };
                let bound = r.w_scale_range.1 / 2.0 * s_x
                    + r.in_scale * r.w_scale_range.1 / 2.0
                    + requant
                    + 1e-4 * (1.0 + max_x);
                let s = got.scale as f64;
                let mut sum_err = 0.0;
                for (i, (&q, &f)) in got.values.iter().zip(&y.data).enumerate() {
                    let f = if last {
                        f as f64
                    } else {
                        (f as f64).min(255.0 * r.out_scale)
                    };
                    let e = (q as f64 * s - f).abs();
                    assert!(
                        e <= bound,
                        "stage {si} elem {i}: int {} float {f} err {e} > bound {bound}",
                        q as f64 * s
                    );
                    sum_err += e;
                }
                mean_err_lsb[si] += sum_err / got.values.len() as f64 / s / stacks.len() as f64;
                x = dequant(got);
            }
        }
        // Rounding errors are mostly well below one output step on average.
        for (si, m) in mean_err_lsb.iter().enumerate().take(4) {
            assert!(*m < 1.0, "stage {si}: mean error {m} steps");
        }
    }

    /// End to end: the integer Q-values track the float network's.
    #[test]
    fn random_classic_export_q_values_track_float() {
        let model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 12);
        let calib = synthetic_stacks(48, 6);
        let ex = export(&model, &calib, &opts_percentile(100.0)).unwrap();
        let policy = Policy::from_blob(&ex.blob).unwrap();
        let s = policy.output_scale() as f64;
        assert_eq!(s, ex.table[4].out_scale as f32 as f64);
        // The propagated worst-case bound (loose, but a real bound).
        let (max_err, max_q) = q_errors(&model, &ex, &calib, ex.q_error_bound(), "");
        assert!(max_q > 0.0);
        assert!(
            max_err <= 0.05 * max_q,
            "max error {max_err} vs max |q| {max_q}"
        );
        let rms = ex.q_error_rms();
        eprintln!("classic: max err {max_err:.3e}, predicted rms {rms:.3e}");
        assert!(
            max_err <= 5.0 * rms,
            "max error {max_err} vs predicted rms {rms}"
        );
    }

    #[test]
    fn refuses_models_that_can_overflow() {
        let calib = synthetic_stacks(4, 1);
        // conv1: bias so large (in units of s_in * s_w) that |bias| + sum|w| > i32::MAX.
        let mut model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 14);
        let conv1 = &mut model.layers[0];
        let wmax = conv1.weight[..256].iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        conv1.bias[0] = ((i32::MAX as f64 - 1000.0) * wmax / 127.0) as f32;
        let err = export_err(&model, &calib).to_string();
        assert!(err.contains("accumulator"), "{err}");
        // fc1: a bias that does not even fit int32 at its scale.
        let mut model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 15);
        let fc1 = &mut model.layers[4];
        fc1.weight[..1600].iter_mut().for_each(|w| *w = 1e-7);
        fc1.bias[0] = 1e3;
        let err = export_err(&model, &calib).to_string();
        assert!(err.contains("does not fit int32"), "{err}");
        export_err(
            &FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 15),
            &[],
        );
    }

    #[test]
    fn percentile_calibration_clips_little() {
        let model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 16);
        let calib = synthetic_stacks(32, 7);
        // The default (100) maps the largest calibration value to 255: no clipping.
        let ex100 = export(&model, &calib, &ExportOptions::default()).unwrap();
        assert!(ex100.table[..4].iter().all(|r| r.clip_rate == 0.0));
        // 99.9 clips at most the values above that percentile (0.1 %, plus
        // one value of rounding in the rank), and only ever narrows a scale.
        let ex = export(&model, &calib, &opts_percentile(99.9)).unwrap();
        for (r, r100) in ex.table[..4].iter().zip(&ex100.table) {
            assert!(
                r.clip_rate <= 1.0e-3 + 1e-6,
                "{}: clip {}",
                r.name,
                r.clip_rate
            );
            assert!(
                r.out_scale <= r100.out_scale,
                "{}: {} > {}",
                r.name,
                r.out_scale,
                r100.out_scale
            );
        }
        assert!(
            ex.table[..4]
                .iter()
                .zip(&ex100.table)
                .any(|(r, r100)| r.clip_rate > 0.0 && r.out_scale < r100.out_scale),
            "the percentile changed nothing"
        );
        assert_ne!(ex.blob, ex100.blob);
        let t = ex.render_table();
        assert!(t.contains("| 0: conv 8x8/4 p2 4->32 +pool2 |") && t.contains("fc 512->2"));
    }

    fn shapes_small() -> Vec<LayerShape> {
        vec![
            conv(4, 16, 8, 4, 2),
            pool(2),
            conv(16, 32, 4, 2, 1),
            dense(800, 128, true),
            dense(128, 2, false),
        ]
    }

    /// Random small networks of several shapes: the integer Q-values agree with
    /// the float ones within the export's worst-case bound on every stack of
    /// the calibration set (percentile 100, so nothing clips there), and within
    /// a few predicted RMS errors.
    #[test]
    fn random_small_nets_agree_within_predicted_error() {
        let archs: Vec<Vec<LayerShape>> = vec![
            shapes_small(),
            vec![
                conv(4, 8, 8, 4, 0),
                dense(8 * 19 * 19, 32, true),
                dense(32, 2, false),
            ],
            vec![
                conv(4, 8, 4, 4, 0),
                pool(2),
                conv(8, 8, 3, 1, 1),
                conv(8, 12, 2, 2, 0),
                dense(12 * 5 * 5, 16, true),
                dense(16, 16, true),
                dense(16, 2, false),
            ],
        ];
        for (ai, arch) in archs.iter().enumerate() {
            for seed in 0..3u64 {
                let model = FloatModel::random(arch, 100 * ai as u64 + seed);
                let calib = synthetic_stacks(16, seed + 40);
                let ex = export(&model, &calib, &opts_percentile(100.0)).unwrap();
                let bound = ex.q_error_bound();
                assert!(bound.is_finite() && bound > 0.0);
                let what = format!("arch {ai} seed {seed}: ");
                let (max_err, max_q) = q_errors(&model, &ex, &calib, bound, &what);
                // The worst-case bound is loose; the actual error is small
                // against the Q-values' magnitude.
                let rms = ex.q_error_rms();
                eprintln!("arch {ai} seed {seed}: max err {max_err:.3e}, max |q| {max_q:.3e}, bound {bound:.3e}, predicted rms {rms:.3e}");
                // The RMS prediction is tight: the largest of the 32 errors is
                // within a few predicted standard deviations.
                assert!(
                    max_err <= 5.0 * rms,
                    "arch {ai} seed {seed}: err {max_err} vs predicted rms {rms}"
                );
                assert!(
                    max_err <= 0.05 * max_q,
                    "arch {ai} seed {seed}: err {max_err} vs |q| {max_q}"
                );
                assert!(ex
                    .table
                    .iter()
                    .all(|r| r.clip_rate == 0.0 && r.acc_bound <= i32::MAX as i64));
                assert_eq!(
                    ex.table.len(),
                    arch.iter().filter(|l| l.has_params()).count()
                );
                assert!(max_err <= bound);
            }
        }
    }

    #[test]
    fn bad_options_and_models_are_rejected() {
        let model = FloatModel::random(&shapes_small(), 1);
        let calib = synthetic_stacks(2, 1);
        for p in [0.0, -1.0, 100.5, f64::NAN, f64::INFINITY] {
            let e = export(&model, &calib, &opts_percentile(p))
                .unwrap_err()
                .to_string();
            assert!(e.contains("percentile"), "{p}: {e}");
        }
        assert!(export_err(&model, &[]).to_string().contains("calibration"));
        // Wrong parameter size.
        let mut bad = model.clone();
        bad.layers[3].weight.pop();
        assert!(format!("{:#}", export_err(&bad, &calib)).contains("weight"));
        // Non-finite parameter.
        let mut bad = model.clone();
        bad.layers[0].bias[3] = f32::NAN;
        assert!(format!("{:#}", export_err(&bad, &calib)).contains("non-finite"));
        // Shapes that do not chain, and a wrong number of outputs.
        for (i, layer, what) in [
            (3, dense(801, 128, true), "801"),
            (4, dense(128, 3, false), "per action"),
        ] {
            let mut arch = shapes_small();
            arch[i] = layer;
            let m = FloatModel::random(&arch, 2);
            assert!(format!("{:#}", export_err(&m, &calib)).contains(what));
        }
        // ReLU on the last layer; a pool that does not follow a conv.
        let mut arch = shapes_small();
        arch[4] = dense(128, 2, true);
        export_err(&FloatModel::random(&arch, 2), &calib);
        let arch = vec![
            conv(4, 8, 4, 4, 0),
            pool(2),
            pool(2),
            dense(8 * 5 * 5, 2, false),
        ];
        let e = export_err(&FloatModel::random(&arch, 2), &calib);
        assert!(e.to_string().contains("MaxPool"), "{e}");
        // A conv after the capacity of policy-core's buffers is a clean error too.
        let arch = vec![conv(4, 8, 2, 1, 0), dense(8 * 79 * 79, 2, false)];
        export_err(&FloatModel::random(&arch, 3), &calib);
    }

    #[test]
    fn export_to_file_writes_the_blob_atomically() {
        let dir = std::env::temp_dir().join(format!("quant-export-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.join("sub").join("policy.bin");
        let model = FloatModel::random(&shapes_small(), 3);
        let calib = synthetic_stacks(4, 3);
        let ex = export_to_file(&model, &calib, &ExportOptions::default(), &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), ex.blob);
        // Overwrites, and leaves no temporary file behind.
        let ex2 = export_to_file(
            &FloatModel::random(&shapes_small(), 4),
            &calib,
            &ExportOptions::default(),
            &out,
        )
        .unwrap();
        assert_ne!(ex.blob, ex2.blob);
        assert_eq!(std::fs::read(&out).unwrap(), ex2.blob);
        let names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("policy.bin")]);
        // A failed export writes nothing.
        let out2 = dir.join("none.bin");
        assert!(export_to_file(&model, &[], &ExportOptions::default(), &out2).is_err());
        assert!(!out2.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn calibration_subsample_and_threads_are_deterministic() {
        let model = FloatModel::random(&shapes_small(), 5);
        let calib = synthetic_stacks(40, 5);
        let subsampled = |calib: &[FrameStack], max_calib_stacks| {
            let opts = ExportOptions {
                max_calib_stacks,
                ..Default::default()
            };
            export(&model, calib, &opts).unwrap()
        };
        let a = subsampled(&calib, 10);
        let b = subsampled(&calib, 10);
        assert_eq!(a.blob, b.blob);
        let picked: Vec<_> = (0..10).map(|i| calib[i * 4]).collect();
        let c = subsampled(&picked, 0);
        assert_eq!(a.blob, c.blob);
    }
}
