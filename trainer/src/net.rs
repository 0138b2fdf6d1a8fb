//! The Q-network: named architectures (`classic`, `small`) as plain `nn::Module`
//! compositions, the host-side batch builder (bit-packed frames to a float
//! `[N, 4, 80, 80]` tensor) and the conversion to the quantizer's
//! [`FloatModel`].

use crate::quant::{FloatLayer, FloatModel};
use anyhow::{bail, Result};
use flappy::{Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, STACK_LEN};
use tch::{nn, nn::Module, Device, Kind, Tensor};

/// Floats in one network input (4 x 80 x 80).
pub const INPUT_LEN: usize = STACK_LEN * FRAME_SIDE * FRAME_SIDE;

/// One layer of a named architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `Conv2d(in, out, k, stride, pad)` followed by ReLU.
    Conv {
        /// Input channels.
        in_c: i64,
        /// Output channels.
        out_c: i64,
        /// Kernel side.
        k: i64,
        /// Stride.
        stride: i64,
        /// Zero padding.
        pad: i64,
    },
    /// `MaxPool2d(k)`.
    MaxPool(i64),
    /// `Linear(inp, out)`, followed by ReLU unless it is the last layer.
    Dense {
        /// Inputs (the NCHW-flattened previous output for the first dense layer).
        inp: i64,
        /// Outputs.
        out: i64,
    },
}

/// A named network architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// The default: conv 8x8/4 p2 -> 32, ReLU, maxpool 2; conv 4x4/2 p1 -> 64,
    /// ReLU; conv 3x3/1 p1 -> 64, ReLU; fc 1600 -> 512, ReLU; fc 512 -> 2.
    Classic,
    /// For small MCUs: conv 8x8/4 p2 -> 16, ReLU, maxpool 2; conv 4x4/2 p1 -> 32,
    /// ReLU; fc 800 -> 128, ReLU; fc 128 -> 2.
    Small,
    /// Shaped for the binary 80x80 input, about a quarter of `classic`'s
    /// multiply-adds: conv 4x4/4 -> 16 (non-overlapping 4x4 patches), ReLU,
    /// maxpool 2; conv 3x3/1 p1 -> 32, ReLU; conv 3x3/2 p1 -> 32, ReLU;
    /// fc 800 -> 256, ReLU; fc 256 -> 2.
    Compact,
}

impl Arch {
    /// Parses `classic` / `small`.
    pub fn parse(name: &str) -> Result<Arch> {
        match name {
            "classic" => Ok(Arch::Classic),
            "small" => Ok(Arch::Small),
            "compact" => Ok(Arch::Compact),
            other => bail!("unknown network `{other}` (expected `classic`, `small` or `compact`)"),
        }
    }

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Classic => "classic",
            Arch::Small => "small",
            Arch::Compact => "compact",
        }
    }

    /// The layers, input to output.
    pub fn layers(self) -> Vec<Layer> {
        use Layer::*;
        match self {
            Arch::Classic => vec![
                Conv {
                    in_c: 4,
                    out_c: 32,
                    k: 8,
                    stride: 4,
                    pad: 2,
                },
                MaxPool(2),
                Conv {
                    in_c: 32,
                    out_c: 64,
                    k: 4,
                    stride: 2,
                    pad: 1,
                },
                Conv {
                    in_c: 64,
                    out_c: 64,
                    k: 3,
                    stride: 1,
                    pad: 1,
                },
                Dense {
                    inp: 1600,
                    out: 512,
                },
                Dense { inp: 512, out: 2 },
            ],
            Arch::Small => vec![
                Conv {
                    in_c: 4,
                    out_c: 16,
                    k: 8,
                    stride: 4,
                    pad: 2,
                },
                MaxPool(2),
                Conv {
                    in_c: 16,
                    out_c: 32,
                    k: 4,
                    stride: 2,
                    pad: 1,
                },
                Dense { inp: 800, out: 128 },
                Dense { inp: 128, out: 2 },
            ],
            Arch::Compact => vec![
                Conv {
                    in_c: 4,
                    out_c: 16,
                    k: 4,
                    stride: 4,
                    pad: 0,
                },
                MaxPool(2),
                Conv {
                    in_c: 16,
                    out_c: 32,
                    k: 3,
                    stride: 1,
                    pad: 1,
                },
                Conv {
                    in_c: 32,
                    out_c: 32,
                    k: 3,
                    stride: 2,
                    pad: 1,
                },
                Dense { inp: 800, out: 256 },
                Dense { inp: 256, out: 2 },
            ],
        }
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
        let layers = arch.layers();
        let n = layers.len();
        let ops = layers
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
                        stride,
                        padding: pad,
                        ..Default::default()
                    };
                    Op::Conv(nn::conv2d(&root / format!("l{i}"), in_c, out_c, k, cfg))
                }
                Layer::MaxPool(k) => Op::Pool(k),
                Layer::Dense { inp, out } => Op::Dense(
                    nn::linear(&root / format!("l{i}"), inp, out, Default::default()),
                    i + 1 < n,
                ),
            })
            .collect();
        QNetwork { vs, arch, ops }
    }

    /// Infers the architecture from a checkpoint's variable names and shapes.
    pub fn arch_of(tensors: &[(String, Tensor)]) -> Result<Arch> {
        let first = tensors.iter().find(|(n, _)| n == "l0.weight");
        match first.map(|(_, t)| t.size()) {
            Some(s) if s == [32, 4, 8, 8] => Ok(Arch::Classic),
            Some(s) if s == [16, 4, 8, 8] => Ok(Arch::Small),
            Some(s) if s == [16, 4, 4, 4] => Ok(Arch::Compact),
            Some(s) => {
                bail!("unrecognised first layer shape {s:?} (not classic, small or compact)")
            }
            None => bail!("not a Q-network checkpoint: no tensor `l0.weight`"),
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
        let q: Vec<f32> =
            Vec::try_from(q.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default();
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
        let layers = self.arch.layers();
        let n = layers.len();
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, l)| match *l {
                Layer::Conv {
                    in_c,
                    out_c,
                    k,
                    stride,
                    pad,
                } => FloatLayer::Conv {
                    in_c: in_c as usize,
                    out_c: out_c as usize,
                    k: k as usize,
                    stride: stride as usize,
                    pad: pad as usize,
                    relu: true,
                    weight: get(format!("l{i}.weight")),
                    bias: get(format!("l{i}.bias")),
                },
                Layer::MaxPool(k) => FloatLayer::MaxPool { k: k as usize },
                Layer::Dense { inp, out } => FloatLayer::Dense {
                    inp: inp as usize,
                    out: out as usize,
                    relu: i + 1 < n,
                    weight: get(format!("l{i}.weight")),
                    bias: get(format!("l{i}.bias")),
                },
            })
            .collect();
        FloatModel { layers }
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
