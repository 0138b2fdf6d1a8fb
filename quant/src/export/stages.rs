//! The quantization of one compute stage: grouping the layers into stages,
//! calibration, the parameters, weight and output scales, int8 weights,
//! int32 biases and the requantization multipliers.

use anyhow::{bail, ensure, Context, Result};
use flappy::FrameStack;

use super::ExportOptions;
use crate::float_model::{FloatLayer, FloatModel};

/// One compute stage of the integer network: a conv or dense layer, with
/// the max-pool that follows it (`pool` > 1) fused in.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stage {
    pub layer: usize,
    pub pool: usize,
}

/// Stage 1: groups the layers into compute stages (a max-pool must follow a
/// conv and is fused into it).
pub(super) fn group_stages(model: &FloatModel) -> Result<Vec<Stage>> {
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

/// Stage 2: every stage's float outputs over `calib` (concatenated per
/// stage, in the order of `calib`), computed on `threads` threads (0: all
/// cores); the result does not depend on the number of threads.
pub(super) fn calibrate(
    model: &FloatModel,
    calib: &[&FrameStack],
    n_stages: usize,
    threads: usize,
) -> Vec<Vec<f32>> {
    let cores = || {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    };
    let threads = if threads == 0 { cores() } else { threads }
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

/// The `p`-th percentile (nearest rank on `0..len-1`) of `v`; reorders `v`.
fn percentile(v: &mut [f32], p: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let idx = (((p / 100.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1);
    let (_, x, _) = v.select_nth_unstable_by(idx, |a, b| a.total_cmp(b));
    *x
}

/// What the quantization of a stage knows about its input: the scale, the
/// error bound and largest value carried in, and (for the RMS prediction)
/// the error variance and mean square of the input.
#[derive(Clone, Debug)]
pub(super) struct StageInput {
    pub scale: f64,
    pub err: f64,
    pub xmax: f64,
    pub var: f64,
    pub mean_square: f64,
}

impl StageInput {
    /// The network's input: exact 0/1 pixels at scale 1.
    pub fn pixels(picked: &[&FrameStack]) -> StageInput {
        let bits: u64 = picked
            .iter()
            .map(|s| (0..4).map(|i| s.frame(i).count_ones() as u64).sum::<u64>())
            .sum();
        StageInput {
            scale: 1.0,
            err: 0.0,
            xmax: 1.0,
            var: 0.0,
            mean_square: bits as f64 / (picked.len() * netspec::INPUT.len()) as f64,
        }
    }
}

/// A compute layer's float parameters as a matrix `[out_n][fan_in]`
/// (PyTorch order) and a bias per output.
pub(super) struct StageParams<'a> {
    pub out_n: usize,
    pub fan_in: usize,
    pub relu: bool,
    pub w: &'a [f32],
    pub b: &'a [f32],
}

/// Stage 3: a compute layer's parameters, checked for size and for ReLU on
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

/// Stage 4: weight scales, symmetric int8 (`absmax / 127`): per output
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

/// Stage 5: the output scale and the fraction of calibration values it
/// clips. Hidden layers map the `percentile` of their calibration outputs to
/// u8 255, or take the step `opts.act_steps` gives layer `li` (never finer
/// than the accumulator step, so every multiplier stays below 1); the last
/// layer keeps the accumulator's own scale.
fn output_scale(
    values: &mut [f32],
    s_w: &[f64],
    (s_in, li): (f64, usize),
    last: bool,
    opts: &ExportOptions,
) -> Result<(f64, f64)> {
    if last {
        return Ok((s_in * s_w[0], 0.0));
    }
    let step = match &opts.act_steps {
        Some(steps) => {
            let given = steps.get(li).copied().unwrap_or(0.0);
            ensure!(
                given > 0.0,
                "layer {li}: no activation step given ({} steps for the model's layers)",
                steps.len()
            );
            given
        }
        None => percentile(values, opts.percentile) as f64 * opts.headroom / 255.0,
    };
    let s_min = s_w.iter().map(|&sw| s_in * sw).fold(0f64, f64::max) * (1.0 + 1e-6);
    let s = step.max(s_min);
    let clip = values.iter().filter(|&&v| v as f64 > 255.0 * s).count() as f64
        / values.len().max(1) as f64;
    Ok((s, clip))
}

/// Stage 6: int8 weights (rounded, clamped to ±127; PyTorch order) and int32
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

/// Stage 7: each hidden channel's requantization multiplier
/// `s_in * s_w / s_out` as a Q31 mantissa and shift
/// ([`policy_core::quantize_multiplier`]).
fn requant_multipliers(s_in: f64, s_w: &[f64], s_out: f64, li: usize) -> Result<Vec<(i32, u8)>> {
    s_w.iter()
        .enumerate()
        .map(|(o, &sw)| {
            let m = s_in * sw / s_out;
            policy_core::quantize_multiplier(m)
                .with_context(|| {
                    format!("requantization multiplier {m} outside [0, 1) or rounding to 1")
                })
                .with_context(|| format!("layer {li} channel {o}"))
        })
        .collect()
}

/// One compute stage, quantized: what the error estimate, the blob layout
/// and the report read.
pub(super) struct QuantStage<'a> {
    /// The compute layer's index in the model.
    pub li: usize,
    /// The fused pool's window (1: none).
    pub pool: usize,
    /// The first stage (its input is the binary pixels).
    pub first: bool,
    /// The last stage (raw int32 Q-values out).
    pub last: bool,
    pub p: StageParams<'a>,
    /// Weight scales, one per output channel.
    pub s_w: Vec<f64>,
    /// Input and output scales.
    pub s_in: f64,
    pub s_out: f64,
    /// Share of the calibration outputs clipped.
    pub clip_rate: f64,
    /// int8 weights (PyTorch order) and int32 biases.
    pub wq: Vec<i8>,
    pub bq: Vec<i32>,
    /// Requantization multipliers and shifts (empty on the last stage).
    pub mq: Vec<(i32, u8)>,
}

/// Stages 3 to 7 for `stage`, whose calibration outputs are `values`
/// (reordered) and whose input is `input`.
pub(super) fn quantize<'a>(
    model: &'a FloatModel,
    stage: Stage,
    (first, last): (bool, bool),
    values: &mut [f32],
    input: &StageInput,
    opts: &ExportOptions,
) -> Result<QuantStage<'a>> {
    let li = stage.layer;
    let p = stage_params(&model.layers[li], li, last)?;
    let s_w = weight_scales(&p, last, input.scale);
    let (s_out, clip_rate) = output_scale(values, &s_w, (input.scale, li), last, opts)?;
    let (wq, bq) = quantize_params(&p, &s_w, input.scale, li)?;
    let mq = if last {
        Vec::new()
    } else {
        requant_multipliers(input.scale, &s_w, s_out, li)?
    };
    Ok(QuantStage {
        li,
        pool: stage.pool,
        first,
        last,
        p,
        s_w,
        s_in: input.scale,
        s_out,
        clip_rate,
        wq,
        bq,
        mq,
    })
}
