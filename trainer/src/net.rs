//! The Q-network: the architectures of `netspec` as plain `nn::Module`
//! compositions, the host-side batch builder (bit-packed frames to a float
//! `[N, 4, 80, 80]` tensor) and the conversion to the quantizer's
//! [`FloatModel`].

use crate::quant::{FloatModel, LayerShape};
use anyhow::{bail, Result};
use flappy::{Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, STACK_LEN};
use tch::{nn, Device, Kind, Tensor};

/// Floats in one network input (4 x 80 x 80).
pub const INPUT_LEN: usize = STACK_LEN * FRAME_SIDE * FRAME_SIDE;

pub use netspec::{Arch, Layer};

/// The libtorch shapes of layer `l`'s weight (dims, of which the first
/// `rank` count) and bias (none for a pool).
pub(crate) fn param_shapes(l: &Layer) -> Option<([i64; 4], usize, i64)> {
    match *l {
        Layer::Conv { in_c, out_c, k, .. } => Some((
            [out_c as i64, in_c as i64, k as i64, k as i64],
            4,
            out_c as i64,
        )),
        Layer::Dense { inp, out } => Some(([out as i64, inp as i64, 0, 0], 2, out as i64)),
        Layer::MaxPool { .. } => None,
    }
}

/// Max over `k` x `k` patches, stride `k`, of `[N, C, H, W]`. On a batch,
/// through the channels-last layout: libtorch's CPU kernel for the default
/// layout is scalar, about four times slower there on a training batch
/// (about 13 % of a default run's time before). The values and gradients
/// are the same bit for bit (a max is exact, both kernels send a patch's
/// gradient to its first largest value, and the patches do not overlap;
/// `tests/net.rs` checks it on ties), and the result is back in the default
/// layout, so the layers after it compute as before. A single input (one
/// decision) keeps the default kernel, faster at that size.
pub fn max_pool(x: &Tensor, k: i64) -> Tensor {
    if x.size().first().is_some_and(|&n| n > 1) {
        x.permute([0, 2, 3, 1])
            .contiguous()
            .permute([0, 3, 1, 2])
            .max_pool2d_default(k)
            .contiguous()
    } else {
        x.max_pool2d_default(k)
    }
}

enum Op {
    /// A convolution and its stride and padding.
    Conv(nn::Conv2D, i64, i64),
    Pool(i64),
    Dense(nn::Linear, bool),
}

/// A Q-network living in its own [`nn::VarStore`] (variables `l<i>.weight`, `l<i>.bias`).
pub struct QNetwork {
    /// The variables (weights and biases).
    pub vs: nn::VarStore,
    /// The architecture.
    pub arch: Arch,
    ops: Vec<Op>,
}

impl QNetwork {
    /// A freshly initialised network (PyTorch default init, from tch's global seed).
    pub fn new(arch: Arch, device: Device) -> QNetwork {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let n = arch.layers.len();
        let ops = arch
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let path = &root / format!("l{i}");
                match *l {
                    Layer::MaxPool { k } => Op::Pool(k as i64),
                    Layer::Dense { inp, out } => {
                        let linear = nn::linear(path, inp as i64, out as i64, Default::default());
                        Op::Dense(linear, i + 1 < n)
                    }
                    Layer::Conv { stride, pad, .. } => {
                        let ([out_c, in_c, k, _], _, _) = param_shapes(l).unwrap_or_default();
                        let (stride, pad) = (stride as i64, pad as i64);
                        let cfg = nn::ConvConfig {
                            stride,
                            padding: pad,
                            ..Default::default()
                        };
                        Op::Conv(nn::conv2d(path, in_c, out_c, k, cfg), stride, pad)
                    }
                }
            })
            .collect();
        QNetwork { vs, arch, ops }
    }

    /// Infers the architecture from a checkpoint's variable names and shapes:
    /// the one of `netspec::ALL` whose every weight and bias has the shape found.
    pub fn arch_of(tensors: &[(String, Tensor)]) -> Result<Arch> {
        if !tensors.iter().any(|(n, _)| n == "l0.weight") {
            bail!("not a Q-network checkpoint: no tensor `l0.weight`");
        }
        let shape_of = |name: String| {
            tensors
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.size())
        };
        let fits = |arch: &Arch| {
            arch.layers
                .iter()
                .enumerate()
                .all(|(i, l)| match param_shapes(l) {
                    None => true,
                    Some((w, rank, b)) => {
                        shape_of(format!("l{i}.weight")).as_deref() == Some(&w[..rank])
                            && shape_of(format!("l{i}.bias")).as_deref() == Some(&[b][..])
                    }
                })
        };
        match netspec::ALL.iter().find(|a| fits(a)) {
            Some(a) => Ok(*a),
            None => {
                let first = shape_of("l0.weight".into()).unwrap_or_default();
                let names: Vec<&str> = netspec::ALL.iter().map(|a| a.name).collect();
                bail!(
                    "the weights (first layer {first:?}) match no known network ({})",
                    names.join(", ")
                )
            }
        }
    }

    /// The device of the variables.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Q-values `[N, 2]` of a batch `[N, 4, 80, 80]`.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.run(xs, None, None)
    }

    /// Q-values `[N, 2]` through the int8 network the export makes, in
    /// floats (fake quantization, for training through the rounding): each
    /// layer's weights rounded to the int8 grid of `quant::export` (absmax /
    /// 127 per output channel, per tensor on the last layer), each hidden
    /// layer's output to the u8 grid of step `act_steps[i]` (`i`: the
    /// layer's index, a conv's for its pool's output, as in the export's
    /// table; see [`QNetwork::activation_max`]), clipped at 255 steps.
    /// Gradients pass straight through the rounding.
    pub fn forward_int8_grid(&self, xs: &Tensor, act_steps: &[f64]) -> Tensor {
        self.run(xs, Some(act_steps), None)
    }

    /// The largest output of each hidden stage (a conv with its pool, a
    /// hidden dense) on a batch, by the stage's layer index (0 elsewhere):
    /// the calibration of
    /// [`QNetwork::forward_int8_grid`].
    pub fn activation_max(&self, xs: &Tensor) -> Vec<f64> {
        let mut seen = vec![0f64; self.ops.len()];
        let _q = tch::no_grad(|| self.run(xs, None, Some(&mut seen)));
        seen
    }

    fn run(&self, xs: &Tensor, steps: Option<&[f64]>, mut seen: Option<&mut [f64]>) -> Tensor {
        let last = self.ops.len().saturating_sub(1);
        // The step of the current layer's input (the binary frames: 1), and
        // the weight steps of the current stage, one per output channel.
        let mut s_in = 1.0;
        let mut s_w: Option<Tensor> = None;
        // Weights and bias, on the export's grid when `steps` is given: int8
        // weights, int32 biases at the accumulator's step `s_in * s_w`.
        let params = |w: &Tensor, b: Option<&Tensor>, i: usize, s_in: f64| match steps {
            Some(_) => {
                let (w, s_w) = int8_grid(w, i == last);
                let s_w = s_w.flatten(0, -1);
                let b = b.map(|b| {
                    let s_acc = &s_w * s_in;
                    b + ((b / &s_acc).round() * &s_acc - b).detach()
                });
                (w, b, Some(s_w))
            }
            None => (w.shallow_clone(), b.map(Tensor::shallow_clone), None),
        };
        let mut x = xs.shallow_clone();
        for (i, op) in self.ops.iter().enumerate() {
            x = match op {
                Op::Conv(c, stride, pad) => {
                    let (w, b, sw) = params(&c.ws, c.bs.as_ref(), i, s_in);
                    s_w = sw.map(|t| t.view([-1, 1, 1]));
                    x.conv2d(&w, b.as_ref(), [*stride; 2], [*pad; 2], [1; 2], 1)
                        .relu()
                }
                Op::Pool(k) => max_pool(&x, *k),
                Op::Dense(l, relu) => {
                    let x = if x.dim() > 2 { x.flatten(1, -1) } else { x };
                    let (w, b, sw) = params(&l.ws, l.bs.as_ref(), i, s_in);
                    s_w = sw;
                    let y = x.linear(&w, b.as_ref());
                    if *relu {
                        y.relu()
                    } else {
                        y
                    }
                }
            };
            // A hidden stage's output (after its pool, when one follows),
            // indexed by the stage's compute layer, as the export's table is.
            let pooled_next = matches!(self.ops.get(i + 1), Some(Op::Pool(_)));
            let stage = match op {
                Op::Conv(..) if !pooled_next => Some(i),
                Op::Pool(_) => i.checked_sub(1),
                Op::Dense(_, true) => Some(i),
                _ => None,
            };
            if let Some(li) = stage {
                if let Some(seen) = seen.as_deref_mut() {
                    seen[li] = seen[li].max(x.max().double_value(&[]));
                }
                if let (Some(s), Some(s_w)) = (steps, &s_w) {
                    let step = s.get(li).copied().unwrap_or(0.0).max(1e-12);
                    let q = requant_grid(&x, s_w, s_in, step);
                    x = &x + (q - &x).detach();
                    s_in = step;
                }
            }
        }
        x
    }

    /// Greedy actions (0 idle, 1 flap) and Q-values for a batch of stacks.
    pub fn act(&self, stacks: &[&FrameStack]) -> (Vec<u8>, Vec<[f32; 2]>) {
        let mut buf = vec![0f32; stacks.len() * INPUT_LEN];
        for (i, s) in stacks.iter().enumerate() {
            unpack_stack(s, &mut buf[i * INPUT_LEN..(i + 1) * INPUT_LEN]);
        }
        let q = tch::no_grad(|| self.forward(&to_input(&buf, stacks.len(), self.device())));
        // A float tensor on the CPU always converts; were it ever not to, every
        // stack would get Q = 0 (Idle) instead of a panic further on.
        let q: Vec<f32> =
            Vec::try_from(q.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
                .unwrap_or_else(|_| vec![0.0; 2 * stacks.len()]);
        let qs: Vec<[f32; 2]> = q.chunks(2).map(|c| [c[0], c[1]]).collect();
        let acts = qs.iter().map(|q| u8::from(q[1] > q[0])).collect();
        (acts, qs)
    }

    /// Copies every variable of `other` into `self` (hard target update).
    pub fn copy_from(&mut self, other: &QNetwork) -> Result<()> {
        self.vs.copy(&other.vs)?;
        Ok(())
    }

    /// Polyak update `self = tau * other + (1 - tau) * self`.
    pub fn polyak_from(&mut self, other: &QNetwork, tau: f64) {
        let src = other.vs.variables();
        tch::no_grad(|| {
            for (name, mut t) in self.vs.variables() {
                if let Some(s) = src.get(&name) {
                    let mixed = &t * (1.0 - tau) + s * tau;
                    t.copy_(&mixed);
                }
            }
        });
    }

    /// The network of `model`'s weights on `device` (the inverse of
    /// [`QNetwork::to_float_model`]): its architecture is the one of
    /// `netspec::ALL` with `model`'s layers.
    pub fn from_float_model(model: &FloatModel, device: Device) -> Result<QNetwork> {
        let shapes = model.shapes();
        let Some(arch) = netspec::ALL.iter().find(|a| LayerShape::of(a) == shapes) else {
            bail!("the float model is none of the known networks");
        };
        let net = QNetwork::new(*arch, device);
        let mut vars = net.vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (i, l) in model.layers.iter().enumerate() {
                let Some((w, rank, _)) = param_shapes(&l.shape.layer) else {
                    continue;
                };
                for (name, data, shape) in [
                    ("weight", &l.weight, &w[..rank]),
                    ("bias", &l.bias, &w[..1]),
                ] {
                    let Some(v) = vars.get_mut(&format!("l{i}.{name}")) else {
                        bail!("layer {i} has no {name}");
                    };
                    v.copy_(&Tensor::from_slice(data).reshape(shape).to_device(device));
                }
            }
            Ok(())
        })?;
        Ok(net)
    }

    /// The weights as the quantizer's plain-Rust [`FloatModel`].
    pub fn to_float_model(&self) -> FloatModel {
        let vars = self.vs.variables();
        let get = |name: String| -> Vec<f32> {
            let t = vars[&name]
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .flatten(0, -1);
            Vec::<f32>::try_from(&t).unwrap_or_default()
        };
        FloatModel::from_fn(&LayerShape::of(&self.arch), |i| {
            (get(format!("l{i}.weight")), get(format!("l{i}.bias")))
        })
    }
}

/// `x` (>= 0, after ReLU) on the u8 grid of step `step` as policy-core's
/// requantization rounds it: the multiplier `m = s_in s_w / step` of each
/// channel is a Q31 mantissa and a right shift `sh` (`m in [2^-sh-1,
/// 2^-sh)`), and the value `v = x / step` is rounded twice, to `1 / 2^sh`
/// (halves up) and then to an integer (halves away from zero), then clamped
/// to 255 (`requant.rs`).
fn requant_grid(x: &Tensor, s_w: &Tensor, s_in: f64, step: f64) -> Tensor {
    let m = (s_w * (s_in / step)).clamp_min(1e-30);
    let sh = ((-m.log2()).ceil() - 1.0).clamp_min(0.0);
    let p = Tensor::from(2.0f32).pow(&sh).to_device(x.device());
    let v = x / step;
    let r = (&v * &p + 0.5).floor();
    (r / &p + 0.5).floor().clamp(0.0, 255.0) * step
}

/// `w` rounded to the export's symmetric int8 grid (absmax / 127 per output
/// channel, or per tensor), with the gradient of the identity, and the
/// grid's step (one per output channel, broadcastable against `w`).
fn int8_grid(w: &Tensor, per_tensor: bool) -> (Tensor, Tensor) {
    let absmax = if per_tensor {
        w.abs().max()
    } else {
        let dims: Vec<i64> = (1..w.dim() as i64).collect();
        w.abs().amax(dims.as_slice(), true)
    };
    let step = absmax.clamp_min(1e-12) / 127.0;
    let q = (w / &step).round().clamp(-127.0, 127.0) * &step;
    let step = if per_tensor {
        step.expand([w.size()[0]], false)
    } else {
        step
    };
    (w + (q - w).detach(), step.detach())
}

/// Byte -> its 8 bits as 0.0 / 1.0, most significant bit first.
static LUT: [[f32; 8]; 256] = {
    let mut t = [[0f32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            if b & (0x80 >> j) != 0 {
                t[b][j] = 1.0;
            }
            j += 1;
        }
        b += 1;
    }
    t
};

/// Unpacks one bit-packed frame into 6400 floats (row-major).
#[inline]
pub fn unpack_frame(f: &Frame, out: &mut [f32]) {
    debug_assert_eq!(out.len(), FRAME_SIDE * FRAME_SIDE);
    for (byte, dst) in f.0.iter().zip(out.chunks_exact_mut(8)) {
        dst.copy_from_slice(&LUT[*byte as usize]);
    }
}

/// Unpacks a stack into 4 x 6400 floats, channel `i` = `stack.frame(i)`.
pub fn unpack_stack(s: &FrameStack, out: &mut [f32]) {
    for (i, dst) in out.chunks_exact_mut(FRAME_SIDE * FRAME_SIDE).enumerate() {
        unpack_frame(s.frame(i), dst);
    }
}

/// Unpacks four frames given as raw bytes (oldest first) into 4 x 6400 floats.
pub fn unpack_frames(frames: [&[u8; FRAME_BYTES]; STACK_LEN], out: &mut [f32]) {
    for (f, dst) in frames
        .iter()
        .zip(out.chunks_exact_mut(FRAME_SIDE * FRAME_SIDE))
    {
        for (byte, d) in f.iter().zip(dst.chunks_exact_mut(8)) {
            d.copy_from_slice(&LUT[*byte as usize]);
        }
    }
}

/// A host buffer of `n` unpacked inputs as one `[n, 4, 80, 80]` tensor on `device`
/// (one copy to the device).
pub fn to_input(buf: &[f32], n: usize, device: Device) -> Tensor {
    let side = FRAME_SIDE as i64;
    Tensor::from_slice(buf)
        .view([n as i64, STACK_LEN as i64, side, side])
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `netspec` architecture builds, runs, and is recognised again
    /// from its saved weights; its float model agrees with libtorch.
    #[test]
    fn every_architecture_round_trips_through_its_weights() {
        for arch in netspec::ALL {
            tch::manual_seed(3);
            let net = QNetwork::new(*arch, Device::Cpu);
            let p = std::env::temp_dir().join(format!(
                "net-{}-{}.safetensors",
                arch.name,
                std::process::id()
            ));
            net.vs.save(&p).unwrap();
            let tensors = Tensor::read_safetensors(&p).unwrap();
            assert_eq!(QNetwork::arch_of(&tensors).unwrap(), *arch, "{}", arch.name);
            let _ = std::fs::remove_file(&p);

            let mut s = FrameStack::default();
            let mut f = Frame::empty();
            for i in (0..FRAME_BYTES).step_by(7) {
                f.0[i] = 0x5A;
            }
            s.push(&f);
            let (_, q) = net.act(&[&s]);
            let want = net.to_float_model().forward(&s);
            for (a, b) in q[0].iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{}: {a} vs {b}", arch.name);
            }
        }
    }

    /// A float model's weights in a `QNetwork` compute what the plain-Rust
    /// float model computes.
    #[test]
    fn a_float_model_runs_in_libtorch() {
        use crate::quant::float_model::{synthetic_stacks, FloatModel, LayerShape};
        let model = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 13);
        let net = QNetwork::from_float_model(&model, Device::Cpu).unwrap();
        assert_eq!(net.arch, netspec::CLASSIC);
        for stack in synthetic_stacks(4, 9) {
            let ours = model.forward(&stack);
            let (_, theirs) = net.act(&[&stack]);
            for (&o, &t) in ours.iter().zip(&theirs[0]) {
                assert!((o - t).abs() <= 1e-4 * (1.0 + t.abs()), "{o} vs {t}");
            }
        }
        let odd = FloatModel::random(&LayerShape::of(&netspec::CLASSIC)[..3], 1);
        assert!(QNetwork::from_float_model(&odd, Device::Cpu).is_err());
    }

    #[test]
    fn unknown_names_and_shapes_are_clear_errors() {
        let t = vec![(
            "l0.weight".to_string(),
            Tensor::zeros([5, 4, 4, 4], (Kind::Float, Device::Cpu)),
        )];
        let e = QNetwork::arch_of(&t).unwrap_err().to_string();
        assert!(e.contains("match no known network"), "{e}");
    }

    /// The int8 grid in floats predicts the exported int8 network: with the
    /// export's own activation steps, its Q-values lie far closer to
    /// policy-core's than the float network's do, for `tiny` and `compact`
    /// (mean absolute error; measured: 4e-8 and 1e-7 against 4e-3 and 1e-2).
    #[test]
    fn the_int8_grid_predicts_the_exported_network() {
        use crate::quant::float_model::played_stacks;
        use crate::quant::{export::export, ExportOptions};
        let _seed = crate::torch_seed_lock();
        for (arch, seed) in [(netspec::TINY, 5), (netspec::COMPACT, 6)] {
            tch::manual_seed(seed);
            let net = QNetwork::new(arch, Device::Cpu);
            let calib = played_stacks(600, seed as u64);
            let opts = ExportOptions {
                refit_last: false,
                ..ExportOptions::default()
            };
            let ex = export(&net.to_float_model(), &calib, &opts).unwrap();
            let mut steps = vec![0f64; arch.layers.len()];
            for r in &ex.table {
                steps[r.layer] = r.out_scale;
            }
            // The grid's own calibration finds the same steps.
            let mut buf = vec![0f32; calib.len() * INPUT_LEN];
            for (s, d) in calib.iter().zip(buf.chunks_exact_mut(INPUT_LEN)) {
                unpack_stack(s, d);
            }
            let seen = net.activation_max(&to_input(&buf, calib.len(), Device::Cpu));
            for (i, (&st, &m)) in steps.iter().zip(&seen).enumerate().take(steps.len() - 1) {
                if st > 0.0 {
                    let mine = m * opts.headroom / 255.0;
                    assert!(
                        (mine / st - 1.0).abs() < 1e-3,
                        "{arch} layer {i}: {mine} vs {st}"
                    );
                }
            }
            let mut policy = policy_core::Policy::from_blob(&ex.blob).unwrap();
            let scale = policy.output_scale() as f64;
            let test = played_stacks(300, 1000 + seed as u64);
            let (mut err_grid, mut err_float) = (0f64, 0f64);
            for st in &test {
                let mut x = vec![0f32; INPUT_LEN];
                unpack_stack(st, &mut x);
                let xs = to_input(&x, 1, Device::Cpu);
                let g: Vec<f32> =
                    Vec::try_from(net.forward_int8_grid(&xs, &steps).flatten(0, -1)).unwrap();
                let f: Vec<f32> = Vec::try_from(net.forward(&xs).flatten(0, -1)).unwrap();
                let q = policy.q_values(st);
                for k in 0..2 {
                    let qi = q[k] as f64 * scale;
                    err_grid += (g[k] as f64 - qi).abs();
                    err_float += (f[k] as f64 - qi).abs();
                }
            }
            assert!(err_float > 0.0, "{arch}: the float net is the int8 one?");
            eprintln!(
                "{arch}: mean |Q error| of the int8 grid {:.3e}, of the float net {:.3e}",
                err_grid / 600.0,
                err_float / 600.0
            );
            assert!(
                err_grid < 1e-3 * err_float,
                "{arch}: int8 grid error {err_grid:e}, float error {err_float:e}"
            );
        }
    }
}
