//! The blob lowered to the operators of the standard formats, once, for both
//! writers: one [`PlanStage`] per policy-core stage, with the weights in the
//! layouts TFLite wants (OHWI convs, OI dense layers) and the f32 scales
//! chosen by [`crate::mapping`]. The integer weights and biases are the
//! blob's, only reordered.

use crate::mapping::{self, Channel, ChannelMatch};
use anyhow::{anyhow, ensure, Context, Result};
use policy_core::blob::{Layer, LayerKind, Model, Shape, Stage};

/// Zero point of every hidden activation tensor (int8): u8 `q` is int8 `q - 128`.
pub const ACT_ZERO_POINT: i32 = -128;
/// Zero point of the network input (int8 0/1 pixels at scale 1).
pub const INPUT_ZERO_POINT: i32 = 0;
/// Scale of the network input.
pub const INPUT_SCALE: f32 = 1.0;

/// The kind of a compute stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A square convolution with zero padding `pad` on all four sides.
    Conv {
        /// Kernel side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        pad: usize,
    },
    /// A fully connected layer (its input flattened first if it is a map).
    Dense,
}

/// One compute stage: a conv or dense layer, its ReLU, and a max-pool that follows it.
#[derive(Clone, Debug)]
pub struct PlanStage {
    /// The blob's layer index of the conv or dense layer.
    pub layer: usize,
    /// Conv or dense.
    pub kind: Kind,
    /// Input shape (channels, height, width).
    pub input: Shape,
    /// Output shape before the pool.
    pub pre_pool: Shape,
    /// Pool window (1: none).
    pub pool: usize,
    /// Output shape.
    pub output: Shape,
    /// int8 weights: OHWI for a conv, `[out][in]` for a dense layer, its
    /// inputs in the producer's HWC order (as the blob, and as TFLite's
    /// flatten of an NHWC map).
    pub weights: Vec<i8>,
    /// int32 biases, one per output channel, at scale `in_scale * filter_scale`.
    pub biases: Vec<i32>,
    /// f32 filter scales: one per output channel (one on the last stage).
    pub filter_scales: Vec<f32>,
    /// Scale of the input tensor.
    pub in_scale: f32,
    /// Scale of the output tensor (the Q-value step on the last stage).
    pub out_scale: f32,
    /// The output layer: no ReLU, int16 output equal to the int32 Q-values.
    pub last: bool,
    /// The multiplier search of every hidden channel (empty on the last stage).
    pub channels: Vec<ChannelMatch>,
}

impl PlanStage {
    /// Output channels.
    pub fn out_c(&self) -> usize {
        self.pre_pool.c
    }

    /// Inputs per output channel.
    pub fn fan_in(&self) -> usize {
        self.weights.len() / self.out_c().max(1)
    }
}

/// The whole network.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The stages, input to output.
    pub stages: Vec<PlanStage>,
    /// The policy's Q range in play, against the int16 output (None until
    /// measured: [`crate::lower_blob`] measures it).
    pub q_fit: Option<crate::q_offset::QFit>,
}

impl Plan {
    /// The exact flavour's int16 outputs are the Q-values less this
    /// constant ([`crate::q_offset`]; 0 when they fit as they are, or
    /// before the range is measured).
    pub fn q_offset(&self) -> i32 {
        self.q_fit.map_or(0, |f| f.offset)
    }
}

/// Lowers a validated blob (`Model::from_bytes`).
pub fn lower(model: &Model, stages: &[Stage]) -> Result<Plan> {
    let mut s_in = INPUT_SCALE;
    let mut out = Vec::with_capacity(stages.len());
    for (si, st) in stages.iter().enumerate() {
        let layer = model
            .layers
            .get(st.layer)
            .ok_or_else(|| anyhow!("stage {si}: no layer {}", st.layer))?;
        let stage =
            lower_stage(layer, st, si, s_in).with_context(|| format!("layer {}", st.layer))?;
        s_in = stage.out_scale;
        out.push(stage);
    }
    Ok(Plan {
        stages: out,
        q_fit: None,
    })
}

fn lower_stage(layer: &Layer, st: &Stage, si: usize, s_in: f32) -> Result<PlanStage> {
    let (kind, weights) = match layer.kind {
        LayerKind::Conv2d {
            in_c,
            out_c,
            k,
            stride,
            pad,
        } => (
            Kind::Conv {
                k: k as usize,
                stride: stride as usize,
                pad: pad as usize,
            },
            hwio_to_ohwi(layer.weights.0, k as usize, in_c as usize, out_c as usize),
        ),
        LayerKind::Dense { inp, out } => (
            Kind::Dense,
            io_to_oi(layer.weights.0, inp as usize, out as usize),
        ),
        LayerKind::MaxPool { .. } => return Err(anyhow!("a max-pool is not a compute stage")),
    };
    let n = st.pre_pool.c;
    let biases = le_words(layer.biases.0).map(i32::from_le_bytes).collect();
    let w_scales: Vec<f32> = le_words(layer.w_scales.0).map(f32::from_le_bytes).collect();
    let blob_out = f32::from_bits(layer.out_scale);
    ensure!(
        blob_out.is_normal()
            && blob_out > 0.0
            && w_scales.iter().all(|s| s.is_normal() && *s > 0.0),
        "its scales are not positive normal floats (this blob carries no usable float scales)"
    );
    let mut stage = PlanStage {
        layer: st.layer,
        kind,
        input: st.input,
        pre_pool: st.pre_pool,
        pool: st.pool,
        output: st.output,
        weights,
        biases,
        filter_scales: Vec::new(),
        in_scale: s_in,
        out_scale: blob_out,
        last: st.last,
        channels: Vec::new(),
    };
    if st.last {
        let (w, o) = mapping::identity_scales(s_in, w_scales[0]).ok_or_else(|| {
            anyhow!("its scales give no f32 output scale with a multiplier of exactly 1")
        })?;
        stage.filter_scales = vec![w];
        stage.out_scale = o;
    } else {
        let bound_in = if si == 0 { 1 } else { 255 };
        let mults: Vec<i32> = le_words(layer.multipliers.0)
            .map(i32::from_le_bytes)
            .collect();
        let channels: Vec<Channel> = (0..n)
            .map(|o| Channel::new(mults[o], layer.shifts.0[o], acc_bound(&stage, o, bound_in)))
            .collect();
        let (s_out, matched) = mapping::match_layer(s_in, blob_out, &channels);
        stage.out_scale = s_out;
        stage.channels = matched;
        stage.filter_scales = stage.channels.iter().map(|c| c.filter_scale).collect();
    }
    Ok(stage)
}

/// The blob's overflow bound of output channel `o`: `sum |w| * x_max + |b|`
/// (at most `i32::MAX`, checked by the blob's validation).
fn acc_bound(stage: &PlanStage, o: usize, x_max: i64) -> i32 {
    let fan = stage.fan_in();
    let s: i64 = stage.weights[o * fan..(o + 1) * fan]
        .iter()
        .map(|&w| (w as i64).abs())
        .sum();
    let b = (stage.biases[o] as i64).abs();
    (s * x_max + b).min(i32::MAX as i64) as i32
}

/// 4-byte little-endian words.
fn le_words(b: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    b.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]])
}

/// Conv weights from the blob's HWIO to OHWI.
fn hwio_to_ohwi(w: &[u8], k: usize, in_c: usize, out_c: usize) -> Vec<i8> {
    let mut out = vec![0i8; w.len()];
    for pos in 0..k * k {
        for ic in 0..in_c {
            for oc in 0..out_c {
                out[(oc * k * k + pos) * in_c + ic] = w[(pos * in_c + ic) * out_c + oc] as i8;
            }
        }
    }
    out
}

/// Dense weights from the blob's input-major `[in][out]` to `[out][in]`.
fn io_to_oi(w: &[u8], inp: usize, out: usize) -> Vec<i8> {
    let mut t = vec![0i8; w.len()];
    for i in 0..inp {
        for o in 0..out {
            t[o * inp + i] = w[i * out + o] as i8;
        }
    }
    t
}

/// Reorders the `[out][in]` weights of a dense layer fed by a `c x h x w`
/// map from HWC input order to CHW (PyTorch's and ONNX's NCHW flatten).
pub fn dense_hwc_to_chw(w: &[i8], input: Shape) -> Vec<i8> {
    let n = input.len();
    let mut t = vec![0i8; w.len()];
    for (row_out, row_in) in t.chunks_exact_mut(n).zip(w.chunks_exact(n)) {
        for c in 0..input.c {
            for y in 0..input.h {
                for x in 0..input.w {
                    row_out[(c * input.h + y) * input.w + x] =
                        row_in[(y * input.w + x) * input.c + c];
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::test_support;

    #[test]
    fn lowering_keeps_every_integer_weight_and_bias() {
        for arch in netspec_archs() {
            let blob = test_support::random_blob(&arch, 3);
            let (model, stages) = Model::from_bytes(&blob).expect("valid");
            let plan = lower(&model, &stages).expect("lowers");
            assert_eq!(plan.stages.len(), stages.len());
            for (ps, st) in plan.stages.iter().zip(&stages) {
                let layer = &model.layers[st.layer];
                let mut a: Vec<i8> = layer.weights.0.iter().map(|&b| b as i8).collect();
                let mut b = ps.weights.clone();
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "{}: the same multiset of weights", arch.name);
                assert_eq!(ps.biases.len(), ps.out_c());
            }
        }
    }

    fn netspec_archs() -> Vec<netspec::Arch> {
        ["compact", "classic", "small", "strided", "tiny"]
            .iter()
            .map(|n| netspec::by_name(n).expect("known"))
            .collect()
    }

    #[test]
    fn conv_transpose_puts_one_weight_where_expected() {
        // k 2, in 3, out 2: the HWIO index of (ky 1, kx 0, ic 2, oc 1).
        let (k, ic_n, oc_n) = (2, 3, 2);
        let mut w = vec![0u8; k * k * ic_n * oc_n];
        w[((k) * ic_n + 2) * oc_n + 1] = 7;
        let t = hwio_to_ohwi(&w, k, ic_n, oc_n);
        // OHWI: ((oc * k + ky) * k + kx) * in_c + ic
        assert_eq!(t[((k) * k + k) * ic_n + 2], 7);
        assert_eq!(t.iter().filter(|&&v| v != 0).count(), 1);
    }

    #[test]
    fn hwc_to_chw_moves_a_pixel_to_the_torch_index() {
        let sh = Shape { c: 2, h: 3, w: 4 };
        let mut w = vec![0i8; 2 * sh.len()];
        // Output row 1, input (y 2, x 1, c 1) in HWC order.
        w[sh.len() + (2 * 4 + 1) * 2 + 1] = 5;
        let t = dense_hwc_to_chw(&w, sh);
        assert_eq!(t[sh.len() + (3 + 2) * 4 + 1], 5);
    }
}
