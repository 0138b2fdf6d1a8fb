//! A policy blob of the `classic` architecture with random integer parameters
//! (host only): stands in for a trained blob in tests and in `make mcu` when no
//! exported model exists. Deterministic in its seed.

use policy_core::blob::{Bytes, InputDesc, Layer, LayerKind, Model};
use std::vec::Vec;

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn int(&mut self, lim: i64) -> i64 {
        (self.next() % (2 * lim as u64 + 1)) as i64 - lim
    }
}

struct Owned {
    kind: LayerKind,
    relu: bool,
    weights: Vec<u8>,
    biases: Vec<u8>,
    mult: Vec<u8>,
    shifts: Vec<u8>,
    w_scales: Vec<u8>,
}

fn layer(rng: &mut Rng, kind: LayerKind, last: bool, wlim: i64, blim: i64, shift: u8) -> Owned {
    let (wn, out) = match kind {
        LayerKind::Conv2d { in_c, out_c, k, .. } => (
            k as usize * k as usize * in_c as usize * out_c as usize,
            out_c as usize,
        ),
        LayerKind::Dense { inp, out } => (inp as usize * out as usize, out as usize),
        LayerKind::MaxPool { .. } => (0, 0),
    };
    let weights = (0..wn).map(|_| rng.int(wlim) as i8 as u8).collect();
    let biases = (0..out)
        .flat_map(|_| (rng.int(blim) as i32).to_le_bytes())
        .collect();
    let scale = 0.01f32.to_bits().to_le_bytes();
    let (mult, shifts, w_scales) = if last {
        (Vec::new(), Vec::new(), scale.to_vec())
    } else {
        (
            (0..out)
                .flat_map(|_| ((1u32 << 30) + (rng.next() as u32 >> 2)).to_le_bytes())
                .collect(),
            (0..out).map(|_| shift + (rng.next() % 2) as u8).collect(),
            (0..out).flat_map(|_| scale).collect(),
        )
    };
    Owned {
        kind,
        relu: !last,
        weights,
        biases,
        mult,
        shifts,
        w_scales,
    }
}

fn conv(in_c: u16, out_c: u16, k: u8, stride: u8, pad: u8) -> LayerKind {
    LayerKind::Conv2d {
        in_c,
        out_c,
        k,
        stride,
        pad,
    }
}

/// The encoded blob of a random `classic` network (conv 8x8/4 → 32, pool 2,
/// conv 4x4/2 → 64, conv 3x3/1 → 64, fc 1600 → 512, fc 512 → 2).
pub fn classic(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let pool = Owned {
        kind: LayerKind::MaxPool { k: 2 },
        relu: false,
        weights: Vec::new(),
        biases: Vec::new(),
        mult: Vec::new(),
        shifts: Vec::new(),
        w_scales: Vec::new(),
    };
    let layers = [
        layer(&mut rng, conv(4, 32, 8, 4, 2), false, 60, 200, 3),
        pool,
        layer(&mut rng, conv(32, 64, 4, 2, 1), false, 127, 20_000, 10),
        layer(&mut rng, conv(64, 64, 3, 1, 1), false, 127, 20_000, 10),
        layer(
            &mut rng,
            LayerKind::Dense {
                inp: 1600,
                out: 512,
            },
            false,
            127,
            50_000,
            11,
        ),
        layer(
            &mut rng,
            LayerKind::Dense { inp: 512, out: 2 },
            true,
            127,
            50_000,
            0,
        ),
    ];
    let mut v = heapless::Vec::new();
    for l in &layers {
        let view = Layer {
            kind: l.kind,
            relu: l.relu,
            out_scale: 1.0f32.to_bits(),
            w_scales: Bytes(&l.w_scales),
            multipliers: Bytes(&l.mult),
            shifts: Bytes(&l.shifts),
            weights: Bytes(&l.weights),
            biases: Bytes(&l.biases),
        };
        if v.push(view).is_err() {
            unreachable!("6 layers fit MAX_LAYERS");
        }
    }
    let model = Model {
        input: InputDesc::FLAPPY,
        num_actions: 2,
        layers: v,
    };
    let mut buf = std::vec![0u8; 2 << 20];
    let n = model
        .encode_into(&mut buf)
        .expect("the classic architecture is a valid blob");
    buf.truncate(n);
    buf
}
