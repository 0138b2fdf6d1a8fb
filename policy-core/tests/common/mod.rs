//! Shared test helpers: a random integer model of any supported architecture,
//! a deterministic RNG, random frame stacks, and a naive integer reference.
#![allow(dead_code, unused_imports, clippy::needless_range_loop)]

use policy_core::blob::LayerKind;
use policy_core::requant::requantize_u8;
use policy_core::{Frame, FrameStack};

pub use policy_core::test_support::{encode, model_of, pool_layer, rand_layer, OwnedLayer, Rng};

/// The classic architecture with random integer parameters.
pub fn classic(seed: u64) -> Vec<OwnedLayer> {
    policy_core::test_support::random_model(&netspec::CLASSIC, seed)
}

/// A random frame: mostly sparse noise plus full rows and solid blocks (like
/// the ground band and pipes), so every conv1 path (zero, all-ones, mixed) runs.
pub fn rand_frame(rng: &mut Rng) -> Frame {
    let mut f = Frame::empty();
    let density = rng.below(40);
    for r in 0..80 {
        for c in 0..80 {
            if rng.below(100) < density {
                f.set(r, c, true);
            }
        }
    }
    let ground = 60 + rng.below(20) as usize;
    for r in ground..80 {
        for c in 0..80 {
            f.set(r, c, true);
        }
    }
    let x0 = rng.below(70) as usize;
    let w = 1 + rng.below(12) as usize;
    for r in 0..80 {
        for c in x0..(x0 + w).min(80) {
            f.set(r, c, true);
        }
    }
    f
}

pub fn rand_stack(rng: &mut Rng) -> FrameStack {
    let mut s = FrameStack::new(&rand_frame(rng));
    for _ in 0..rng.below(4) {
        s.push(&rand_frame(rng));
    }
    s
}

fn le_i32(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap())
}

/// Naive reference, NCHW activations, straight from the definitions: conv ->
/// requant (ReLU clamp) -> max-pool -> ... -> dense; returns every stage's
/// output (NCHW, as i32) and the Q-values.
pub fn reference(layers: &[OwnedLayer], stack: &FrameStack) -> (Vec<Vec<i32>>, [i32; 2]) {
    let (mut c, mut h, mut w) = (4usize, 80usize, 80usize);
    let mut x: Vec<i64> = Vec::with_capacity(4 * 6400);
    for ch in 0..4 {
        for y in 0..80 {
            for xx in 0..80 {
                x.push(stack.frame(ch).get(y, xx) as i64);
            }
        }
    }
    let mut stages: Vec<Vec<i32>> = vec![];
    let mut q = [0i32; 2];
    for (li, l) in layers.iter().enumerate() {
        match l.kind.to_netspec() {
            netspec::Layer::Conv {
                in_c: ic,
                out_c: oc,
                k,
                stride: s,
                pad: p,
            } => {
                let oh = (h + 2 * p - k) / s + 1;
                let ow = (w + 2 * p - k) / s + 1;
                let mut y = vec![0i64; oc * oh * ow];
                for o in 0..oc {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = le_i32(&l.biases, o) as i64;
                            for ci in 0..ic {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let iy = (oy * s + ky) as isize - p as isize;
                                        let ix = (ox * s + kx) as isize - p as isize;
                                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w
                                        {
                                            continue;
                                        }
                                        let wv = l.weights[((ky * k + kx) * ic + ci) * oc + o] as i8
                                            as i64;
                                        acc += wv * x[(ci * h + iy as usize) * w + ix as usize];
                                    }
                                }
                            }
                            let acc = i32::try_from(acc).expect("reference acc overflow");
                            y[(o * oh + oy) * ow + ox] =
                                requantize_u8(acc, le_i32(&l.mult, o), l.shifts[o]) as i64;
                        }
                    }
                }
                (c, h, w) = (oc, oh, ow);
                x = y;
                if !matches!(
                    layers.get(li + 1).map(|l| l.kind),
                    Some(LayerKind::MaxPool { .. })
                ) {
                    stages.push(x.iter().map(|&v| v as i32).collect());
                }
            }
            netspec::Layer::MaxPool { k } => {
                let (ph, pw) = (h / k, w / k);
                let mut y = vec![0i64; c * ph * pw];
                for ch in 0..c {
                    for py in 0..ph {
                        for px in 0..pw {
                            let mut m = i64::MIN;
                            for dy in 0..k {
                                for dx in 0..k {
                                    m = m.max(x[(ch * h + py * k + dy) * w + px * k + dx]);
                                }
                            }
                            y[(ch * ph + py) * pw + px] = m;
                        }
                    }
                }
                (h, w) = (ph, pw);
                x = y;
                stages.push(x.iter().map(|&v| v as i32).collect());
            }
            netspec::Layer::Dense { inp, out } => {
                let mut y = vec![0i64; out];
                for o in 0..out {
                    let mut acc = le_i32(&l.biases, o) as i64;
                    for ch in 0..c {
                        for yy in 0..h {
                            for xx in 0..w {
                                let i_hwc = (yy * w + xx) * c + ch;
                                assert!(i_hwc < inp);
                                acc += l.weights[i_hwc * out + o] as i8 as i64
                                    * x[(ch * h + yy) * w + xx];
                            }
                        }
                    }
                    let acc = i32::try_from(acc).expect("reference acc overflow");
                    y[o] = if l.relu {
                        requantize_u8(acc, le_i32(&l.mult, o), l.shifts[o]) as i64
                    } else {
                        acc as i64
                    };
                }
                (c, h, w) = (out, 1, 1);
                x = y;
                stages.push(x.iter().map(|&v| v as i32).collect());
                if !l.relu {
                    q = [x[0] as i32, x[1] as i32];
                }
            }
        }
    }
    (stages, q)
}

/// A small model of the same kinds as the classic net (~2.3 KB blob), for
/// exhaustive corruption tests and fuzzing.
pub fn tiny(seed: u64) -> Vec<OwnedLayer> {
    let mut rng = Rng(seed | 1);
    vec![
        rand_layer(
            &mut rng,
            LayerKind::Conv2d {
                in_c: 4,
                out_c: 4,
                k: 8,
                stride: 4,
                pad: 2,
            },
            false,
            60,
            200,
            3,
        ),
        pool_layer(2),
        rand_layer(
            &mut rng,
            LayerKind::Conv2d {
                in_c: 4,
                out_c: 4,
                k: 4,
                stride: 2,
                pad: 1,
            },
            false,
            127,
            2_000,
            7,
        ),
        rand_layer(
            &mut rng,
            LayerKind::Dense { inp: 100, out: 8 },
            false,
            127,
            5_000,
            8,
        ),
        rand_layer(
            &mut rng,
            LayerKind::Dense { inp: 8, out: 2 },
            true,
            127,
            5_000,
            0,
        ),
    ]
}

/// The postcard payload of a model (blob minus header), unvalidated.
pub fn payload_of(layers: &[OwnedLayer]) -> Vec<u8> {
    let mut buf = vec![0u8; 4 << 20];
    let n = postcard::to_slice(&model_of(layers), &mut buf)
        .expect("payload")
        .len();
    buf.truncate(n);
    buf
}

/// Header + payload with a correct CRC.
pub fn sealed(payload: &[u8], version: u16) -> Vec<u8> {
    let mut buf = vec![0u8; payload.len() + 16];
    let n = policy_core::blob::seal(payload, version, &mut buf).expect("seal");
    buf.truncate(n);
    buf
}

/// One fuzz case: mutates a valid payload (byte overwrites, bit flips, inserts,
/// deletes, truncation, varint-sized junk), seals it with a correct CRC (or
/// corrupts the whole blob without resealing), and parses it. A blob that
/// loads must also run. Returns whether it loaded. Panics only on a bug.
pub fn fuzz_case(rng: &mut Rng, base_payload: &[u8], stack: &FrameStack) -> bool {
    let mut p = base_payload.to_vec();
    let n_mut = 1 + rng.below(4);
    for _ in 0..n_mut {
        if p.is_empty() {
            break;
        }
        let at = rng.below(p.len() as u64) as usize;
        match rng.below(7) {
            0 => p[at] = rng.next_u64() as u8,
            1 => p[at] ^= 1 << rng.below(8),
            2 => p.insert(at, rng.next_u64() as u8),
            3 => {
                p.remove(at);
            }
            4 => p.truncate(at),
            5 => {
                // A large varint (e.g. a huge length or dimension).
                let v = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
                let k = 1 + rng.below(5) as usize;
                for (j, b) in v[..k].iter().enumerate() {
                    if at + j < p.len() {
                        p[at + j] = *b;
                    }
                }
            }
            _ => {
                // Small numbers in the descriptor region (shapes, flags).
                let lim = p.len().min(64) as u64;
                let at = rng.below(lim) as usize;
                p[at] = rng.below(5) as u8;
            }
        }
    }
    let mut blob = sealed(&p, policy_core::blob::VERSION);
    if rng.below(8) == 0 && !blob.is_empty() {
        let at = rng.below(blob.len() as u64) as usize;
        blob[at] ^= 1 << rng.below(8);
    }
    let loaded = match policy_core::Policy::from_blob(&blob) {
        Ok(mut pol) => {
            let _ = pol.q_values(stack);
            true
        }
        Err(_) => false,
    };
    loaded
}
