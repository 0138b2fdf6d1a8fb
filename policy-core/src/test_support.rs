//! Random integer models for tests, benchmarks and the firmware's stand-in
//! blob (feature `test-support`, host only): any `netspec` architecture with
//! random int8 weights, biases and requantization parameters, deterministic in
//! a seed, small enough that no accumulator can overflow.
//!
//! ```
//! use policy_core::{test_support, FrameStack, Policy};
//! let blob = test_support::random_blob(&netspec::COMPACT, 7);
//! assert_eq!(blob, test_support::random_blob(&netspec::COMPACT, 7));
//! let mut policy = Policy::from_blob(&blob).expect("a valid blob");
//! let _q = policy.q_values(&FrameStack::default());
//! ```

use crate::blob::{Bytes, InputDesc, Layer, LayerKind, Model};
use std::vec;
use std::vec::Vec;

/// xorshift64*: a tiny deterministic generator (tests only).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `-lim..=lim` (`0 <= lim <= 127`).
    pub fn i8_in(&mut self, lim: i64) -> i8 {
        (self.below(2 * lim as u64 + 1) as i64 - lim) as i8
    }
}

/// The tensors of one layer, owned (a [`Model`] borrows them through [`OwnedLayer::view`]).
#[derive(Clone, Debug)]
pub struct OwnedLayer {
    /// Kind and shape.
    pub kind: LayerKind,
    /// ReLU after the layer.
    pub relu: bool,
    /// int8 weights (as bytes), blob layout.
    pub weights: Vec<u8>,
    /// int32 biases, little-endian.
    pub biases: Vec<u8>,
    /// Requantization multipliers, little-endian i32.
    pub mult: Vec<u8>,
    /// Requantization right shifts.
    pub shifts: Vec<u8>,
    /// Weight scales, little-endian f32 bits.
    pub w_scales: Vec<u8>,
}

impl OwnedLayer {
    /// The blob's view of this layer.
    pub fn view(&self) -> Layer<'_> {
        Layer {
            kind: self.kind,
            relu: self.relu,
            out_scale: 1.0f32.to_bits(),
            w_scales: Bytes(&self.w_scales),
            multipliers: Bytes(&self.mult),
            shifts: Bytes(&self.shifts),
            weights: Bytes(&self.weights),
            biases: Bytes(&self.biases),
        }
    }
}

/// A model borrowing `layers` (at most `MAX_LAYERS`; more are dropped).
pub fn model_of(layers: &[OwnedLayer]) -> Model<'_> {
    let mut v = heapless::Vec::new();
    for l in layers {
        if v.push(l.view()).is_err() {
            break;
        }
    }
    Model {
        input: InputDesc::FLAPPY,
        num_actions: 2,
        layers: v,
    }
}

/// The validated blob of `layers`. Panics if they do not form a valid model
/// (this is for tests).
pub fn encode(layers: &[OwnedLayer]) -> Vec<u8> {
    let m = model_of(layers);
    let mut buf = vec![0u8; 4 << 20];
    let n = match m.encode_into(&mut buf) {
        Ok(n) => n,
        Err(e) => panic!("not a valid model: {e}"),
    };
    buf.truncate(n);
    buf
}

/// A compute layer with random weights in `-wlim..=wlim`, biases in
/// `-blim..=blim`, and requantization multipliers in `[2^30, 2^31)` with
/// right shift `shift` or `shift + 1`; the last layer has none (raw int32 out).
pub fn rand_layer(
    rng: &mut Rng,
    kind: LayerKind,
    last: bool,
    wlim: i64,
    blim: i64,
    shift: u8,
) -> OwnedLayer {
    let (wn, out) = match kind {
        LayerKind::Conv2d { in_c, out_c, k, .. } => (
            k as usize * k as usize * in_c as usize * out_c as usize,
            out_c as usize,
        ),
        LayerKind::Dense { inp, out } => (inp as usize * out as usize, out as usize),
        LayerKind::MaxPool { .. } => (0, 0),
    };
    let weights = (0..wn).map(|_| rng.i8_in(wlim) as u8).collect();
    let biases = (0..out)
        .flat_map(|_| ((rng.below(2 * blim as u64 + 1) as i64 - blim) as i32).to_le_bytes())
        .collect();
    let scale = 0.01f32.to_bits().to_le_bytes();
    let (mult, shifts, w_scales) = if last {
        (Vec::new(), Vec::new(), scale.to_vec())
    } else {
        (
            (0..out)
                .flat_map(|_| ((1u32 << 30) + (rng.next_u64() as u32 >> 2)).to_le_bytes())
                .collect(),
            (0..out).map(|_| shift + (rng.below(2) as u8)).collect(),
            (0..out).flat_map(|_| scale).collect(),
        )
    };
    OwnedLayer {
        kind,
        relu: !last,
        weights,
        biases,
        mult,
        shifts,
        w_scales,
    }
}

/// A max-pool layer (no tensors).
pub fn pool_layer(k: u8) -> OwnedLayer {
    OwnedLayer {
        kind: LayerKind::MaxPool { k },
        relu: false,
        weights: Vec::new(),
        biases: Vec::new(),
        mult: Vec::new(),
        shifts: Vec::new(),
        w_scales: Vec::new(),
    }
}

/// The blob's kind for a `netspec` layer. Panics on a size the blob cannot
/// hold (no `netspec` architecture has one).
pub fn layer_kind(l: &netspec::Layer) -> LayerKind {
    fn n<T: TryFrom<usize>>(v: usize) -> T {
        match T::try_from(v) {
            Ok(t) => t,
            Err(_) => panic!("a netspec size does not fit the blob's field: {v}"),
        }
    }
    match *l {
        netspec::Layer::Conv {
            in_c,
            out_c,
            k,
            stride,
            pad,
        } => LayerKind::Conv2d {
            in_c: n(in_c),
            out_c: n(out_c),
            k: n(k),
            stride: n(stride),
            pad: n(pad),
        },
        netspec::Layer::MaxPool { k } => LayerKind::MaxPool { k: n(k) },
        netspec::Layer::Dense { inp, out } => LayerKind::Dense {
            inp: n(inp),
            out: n(out),
        },
    }
}

/// `arch` with random parameters from `seed`: the first (binary) conv has
/// weights in ±60, biases in ±200 and shift 3; later convs ±127, ±20 000,
/// shift 10; hidden dense layers ±127, ±50 000, shift 11; the output layer
/// ±127, ±50 000. Activations stay in range for any input.
pub fn random_model(arch: &netspec::Arch, seed: u64) -> Vec<OwnedLayer> {
    let mut rng = Rng(seed | 1);
    let n = arch.layers.len();
    arch.layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let last = i + 1 == n;
            match *l {
                netspec::Layer::MaxPool { .. } => OwnedLayer {
                    kind: layer_kind(l),
                    ..pool_layer(0)
                },
                netspec::Layer::Conv { .. } if i == 0 => {
                    rand_layer(&mut rng, layer_kind(l), last, 60, 200, 3)
                }
                netspec::Layer::Conv { .. } => {
                    rand_layer(&mut rng, layer_kind(l), last, 127, 20_000, 10)
                }
                netspec::Layer::Dense { .. } => {
                    rand_layer(&mut rng, layer_kind(l), last, 127, 50_000, 11)
                }
            }
        })
        .collect()
}

/// The encoded blob of [`random_model`].
pub fn random_blob(arch: &netspec::Arch, seed: u64) -> Vec<u8> {
    encode(&random_model(arch, seed))
}
