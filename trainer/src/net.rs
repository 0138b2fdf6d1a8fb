//! The Q-network: the architectures of `netspec` as plain `nn::Module`
//! compositions, the host-side batch builder (bit-packed frames to a float
//! `[N, 4, 80, 80]` tensor) and the conversion to the quantizer's
//! [`FloatModel`].

use crate::quant::{FloatModel, LayerShape};
use anyhow::{bail, Result};
use flappy::{Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, STACK_LEN};
use tch::{nn, nn::Module, Device, Kind, Tensor};

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

enum Op {
    Conv(nn::Conv2D),
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
            .map(|(i, l)| match *l {
                Layer::Conv {
                    in_c,
                    out_c,
                    k,
                    stride,
                    pad,
                } => {
                    let cfg = nn::ConvConfig {
                        stride: stride as i64,
                        padding: pad as i64,
                        ..Default::default()
                    };
                    let (i_c, o_c, k) = (in_c as i64, out_c as i64, k as i64);
                    Op::Conv(nn::conv2d(&root / format!("l{i}"), i_c, o_c, k, cfg))
                }
                Layer::MaxPool { k } => Op::Pool(k as i64),
                Layer::Dense { inp, out } => Op::Dense(
                    nn::linear(
                        &root / format!("l{i}"),
                        inp as i64,
                        out as i64,
                        Default::default(),
                    ),
                    i + 1 < n,
                ),
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
        let mut x = xs.shallow_clone();
        for op in &self.ops {
            x = match op {
                Op::Conv(c) => c.forward(&x).relu(),
                Op::Pool(k) => x.max_pool2d_default(*k),
                Op::Dense(l, relu) => {
                    let x = if x.dim() > 2 { x.flatten(1, -1) } else { x };
                    let y = l.forward(&x);
                    if *relu {
                        y.relu()
                    } else {
                        y
                    }
                }
            };
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

    #[test]
    fn unknown_names_and_shapes_are_clear_errors() {
        let t = vec![(
            "l0.weight".to_string(),
            Tensor::zeros([5, 4, 4, 4], (Kind::Float, Device::Cpu)),
        )];
        let e = QNetwork::arch_of(&t).unwrap_err().to_string();
        assert!(e.contains("match no known network"), "{e}");
    }
}
