//! Each kernel against a naive reference on random data and geometries (exact
//! integer equality), and the RAM budget of one decision.
#![allow(clippy::needless_range_loop)]
mod common;
use common::*;
use policy_core::blob::LayerKind;
use policy_core::kernels::{self, Conv1Scratch, ConvGeom, ConvScratch, Gather, Requant};
use policy_core::requant::requantize_u8;
use policy_core::{FrameStack, Policy, Scratch, PEAK_RAM_BYTES};

fn le(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap())
}

/// Naive conv over HWC input (i64), returns raw accumulators HWC.
fn naive_conv(
    input: &dyn Fn(usize, usize, usize) -> i64,
    g: &ConvGeom,
    w: &[u8],
    b: &[u8],
) -> Vec<i64> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut out = vec![0i64; oh * ow * g.out_c];
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..g.out_c {
                let mut acc = le(b, o) as i64;
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                        let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                        if iy < 0 || ix < 0 || iy as usize >= g.in_h || ix as usize >= g.in_w {
                            continue;
                        }
                        for c in 0..g.in_c {
                            acc += w[((ky * g.k + kx) * g.in_c + c) * g.out_c + o] as i8 as i64
                                * input(iy as usize, ix as usize, c);
                        }
                    }
                }
                out[(oy * ow + ox) * g.out_c + o] = acc;
            }
        }
    }
    out
}

/// A random kernel side in `1..=max_k`, padding below it and stride in `1..=max_stride`.
fn rand_kernel(rng: &mut Rng, max_k: u64, max_stride: u64) -> (usize, usize, usize) {
    let k = 1 + rng.below(max_k) as usize;
    let pad = rng.below(k as u64) as usize;
    let stride = 1 + rng.below(max_stride) as usize;
    (k, pad, stride)
}

/// A conv with kernel `(k, pad, stride)` from `in_c` to `out_c` channels
/// over a random input of `k + 0..spread` rows by `k + 0..spread` columns.
fn rand_geom(
    rng: &mut Rng,
    (k, pad, stride): (usize, usize, usize),
    (in_c, out_c): (usize, usize),
    spread: u64,
) -> ConvGeom {
    let (in_h, in_w) = (
        k + rng.below(spread) as usize,
        k + rng.below(spread) as usize,
    );
    ConvGeom {
        in_c,
        in_h,
        in_w,
        out_c,
        k,
        stride,
        pad,
    }
}

/// `n` random int8 weights in -127..=127.
fn rand_weights(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.i8_in(127) as u8).collect()
}

/// `n` int8 weights at the extremes: 127 with probability `1 / one_in`, else -128.
fn extreme_weights(rng: &mut Rng, n: usize, one_in: u64) -> Vec<u8> {
    (0..n)
        .map(|_| if rng.below(one_in) == 0 { 127u8 } else { 0x80 })
        .collect()
}

/// `n` random int32 biases in `-lim..=lim`.
fn rand_biases(rng: &mut Rng, n: usize, lim: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|_| (rng.below(2 * lim + 1) as i32 - lim as i32).to_le_bytes())
        .collect()
}

/// `n` random u8 inputs, zero where `rng.below(range) < zeros`.
fn sparse_input(rng: &mut Rng, n: usize, range: u64, zeros: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            if rng.below(range) < zeros {
                0
            } else {
                rng.next_u64() as u8
            }
        })
        .collect()
}

/// Multipliers of 0.5 (`1 << 30`) and shift `shift` for `n` channels.
fn half_rq(n: usize, shift: u8) -> (Vec<u8>, Vec<u8>) {
    let m = (0..n).flat_map(|_| (1i32 << 30).to_le_bytes()).collect();
    (m, vec![shift; n])
}

fn rq<'a>(multipliers: &'a [u8], shifts: &'a [u8]) -> Requant<'a> {
    Requant {
        multipliers,
        shifts,
    }
}

/// `kernels::conv_u8` with a fresh gather list.
fn conv_u8(
    input: &[u8],
    g: &ConvGeom,
    (w, b): (&[u8], &[u8]),
    rq: Requant,
    acc: &mut [i32],
    out: &mut [u8],
) {
    let s = ConvScratch {
        acc,
        bias: &mut vec![0; g.out_c],
        gather: &mut Gather::new(),
    };
    kernels::conv_u8(input, g, w, b, rq, s, out);
}

/// Runs `conv1_binary` with fresh scratch (but the caller's accumulators).
#[allow(clippy::too_many_arguments)]
fn run_conv1(
    frames: [&flappy::Frame; 4],
    g: &ConvGeom,
    pool: usize,
    (w, b): (&[u8], &[u8]),
    rq: Requant,
    acc: &mut [i32],
    out: &mut [u8],
) {
    let mut rowsum = vec![0i32; 1024];
    kernels::conv1_row_sums(g, w, &mut rowsum);
    let (mut pool_row, mut rows) = (vec![0i32; 1024], vec![0u128; 64]);
    let scr = Conv1Scratch {
        acc,
        pool_row: &mut pool_row,
        rows: &mut rows,
        rowsum: &rowsum,
        gather: &mut Gather::new(),
    };
    kernels::conv1_binary(frames, g, pool, w, b, rq, scr, out);
}

fn rand_rq(rng: &mut Rng, n: usize, shift: u8) -> (Vec<u8>, Vec<u8>) {
    (
        (0..n)
            .flat_map(|_| ((rng.next_u64() >> 33) as i32).to_le_bytes())
            .collect(),
        (0..n).map(|_| shift + rng.below(3) as u8).collect(),
    )
}

#[test]
fn conv1_binary_matches_naive_for_many_geometries() {
    let mut rng = Rng(77);
    for case in 0..40 {
        let (k, pad, stride) = rand_kernel(&mut rng, 16, 5);
        let out_c = 1 + rng.below(20) as usize;
        let g = ConvGeom {
            in_c: 4,
            in_h: 80,
            in_w: 80,
            out_c,
            k,
            stride,
            pad,
        };
        let (oh, ow) = (g.out_h(), g.out_w());
        let pool = 1 + rng.below(3) as usize;
        if ow / pool * out_c > 1024 || 4 * k * out_c > 1024 || oh / pool == 0 {
            continue;
        }
        let w = rand_weights(&mut rng, k * k * 4 * out_c);
        let b = rand_biases(&mut rng, out_c, 1000);
        let (m, s) = rand_rq(&mut rng, out_c, 4);
        let stack: FrameStack = rand_stack(&mut rng);
        let frames = [
            stack.frame(0),
            stack.frame(1),
            stack.frame(2),
            stack.frame(3),
        ];
        let (ph, pw) = (oh / pool, ow / pool);
        let mut out = vec![0u8; ph * pw * out_c];
        let acc = &mut vec![0i32; 512];
        run_conv1(frames, &g, pool, (&w, &b), rq(&m, &s), acc, &mut out);
        let accs = naive_conv(&|y, x, c| stack.frame(c).get(y, x) as i64, &g, &w, &b);
        for py in 0..ph {
            for px in 0..pw {
                for o in 0..out_c {
                    let mut best = 0u8;
                    for dy in 0..pool {
                        for dx in 0..pool {
                            let a = accs[((py * pool + dy) * ow + px * pool + dx) * out_c + o];
                            best = best.max(requantize_u8(a as i32, le(&m, o), s[o]));
                        }
                    }
                    assert_eq!(
                        out[(py * pw + px) * out_c + o],
                        best,
                        "case {case} k{k} s{stride} p{pad} pool{pool}"
                    );
                }
            }
        }
    }
}

#[test]
fn conv_u8_matches_naive_for_many_geometries() {
    let mut rng = Rng(99);
    for case in 0..40 {
        let kernel = rand_kernel(&mut rng, 5, 3);
        let (in_c, out_c) = (1 + rng.below(40) as usize, 1 + rng.below(70) as usize);
        let g = rand_geom(&mut rng, kernel, (in_c, out_c), 10);
        let (k, in_h, in_w) = (g.k, g.in_h, g.in_w);
        let sparsity = rng.below(100);
        let input = sparse_input(&mut rng, in_h * in_w * in_c, 100, sparsity);
        let w = rand_weights(&mut rng, k * k * in_c * out_c);
        let b = rand_biases(&mut rng, out_c, 100_000);
        let (m, s) = rand_rq(&mut rng, out_c, 8);
        let mut acc = vec![0i32; 512];
        let mut out = vec![0u8; g.out_h() * g.out_w() * out_c];
        let rq = rq(&m, &s);
        conv_u8(&input, &g, (&w, &b), rq, &mut acc, &mut out);
        let accs = naive_conv(
            &|y, x, c| input[(y * in_w + x) * in_c + c] as i64,
            &g,
            &w,
            &b,
        );
        for (i, &a) in accs.iter().enumerate() {
            let o = i % out_c;
            assert_eq!(
                out[i],
                requantize_u8(i32::try_from(a).unwrap(), le(&m, o), s[o]),
                "case {case} at {i}"
            );
        }
    }
}

/// The packed convs' vector width is the CPU's: an x86-64 build without
/// AVX2 runs them 8 channels wide exactly when the CPU has AVX2 (as the
/// standard library detects it).
#[test]
#[cfg(target_arch = "x86_64")]
fn conv_lanes_follow_the_cpu() {
    let lanes = policy_core::conv_lanes();
    if cfg!(target_feature = "avx512vnni") {
        assert_eq!(lanes, 16);
    } else if cfg!(target_feature = "avx2") || std::is_x86_feature_detected!("avx2") {
        assert_eq!(lanes, 8);
    } else {
        assert_eq!(lanes, 4);
    }
}

/// The SIMD hosts' packed kernel (`conv_packed`, from `pack`) against the
/// portable `conv_u8`, on random geometries (input channels a multiple of
/// the group), output
/// widths on and off the vector width, sparse and dense inputs, and
/// multipliers of both signs (a negative one takes the general
/// requantization).
#[test]
fn conv_packed_matches_conv_u8() {
    let mut rng = Rng(2718);
    let mut checked = 0;
    for case in 0..120 {
        let (k, pad, stride) = rand_kernel(&mut rng, 5, 3);
        let in_c = kernels::GROUP * (1 + rng.below(12) as usize);
        let out_c = match case % 4 {
            0 => 8 * (1 + rng.below(8) as usize),
            1 => 32,
            2 => 16,
            _ => 1 + rng.below(70) as usize,
        };
        let g = rand_geom(&mut rng, (k, pad, stride), (in_c, out_c), 9);
        let (in_h, in_w) = (g.in_h, g.in_w);
        let n = kernels::packed_len(&g).unwrap();
        let zeros = rng.below(100);
        let input = sparse_input(&mut rng, in_h * in_w * in_c, 100, zeros);
        let w = if case % 7 == 0 {
            extreme_weights(&mut rng, k * k * in_c * out_c, 2)
        } else {
            rand_weights(&mut rng, k * k * in_c * out_c)
        };
        let b = rand_biases(&mut rng, out_c, 300_000);
        let (mut m, s) = rand_rq(&mut rng, out_c, 8);
        if case % 11 == 5 {
            m[3] |= 0x80; // channel 0's multiplier negative
        }
        let mut packed = vec![0u32; n];
        assert_eq!(kernels::pack(&g, &w, &mut packed), Some(n));
        assert_eq!(kernels::pack(&g, &w, &mut packed[..n - 1]), None);
        let (mut want, mut got) = (vec![0u8; g.out_h() * g.out_w() * out_c], vec![1u8; 0]);
        got.resize(want.len(), 1);
        conv_u8(
            &input,
            &g,
            (&w, &b),
            rq(&m, &s),
            &mut vec![0; 512],
            &mut want,
        );
        let s2 = ConvScratch {
            acc: &mut vec![0; 512],
            bias: &mut vec![0; 512],
            gather: &mut Gather::new(),
        };
        kernels::conv_packed(&input, &g, &packed, &b, rq(&m, &s), s2, &mut got);
        assert_eq!(got, want, "case {case}: {g:?}");
        // The build's own width too, where the CPU's run-time AVX2 took the call above.
        got.fill(1);
        let s3 = ConvScratch {
            acc: &mut vec![0; 512],
            bias: &mut vec![0; 512],
            gather: &mut Gather::new(),
        };
        kernels::conv_packed_build(&input, &g, &packed, &b, rq(&m, &s), s3, &mut got);
        assert_eq!(got, want, "case {case}, build's width: {g:?}");
        checked += want.iter().filter(|&&q| q > 0 && q < 255).count();
    }
    assert!(
        checked > 10_000,
        "outputs strictly inside 0..255: {checked}"
    );
    // A channel count off the group has no packed layout.
    let g = ConvGeom {
        in_c: kernels::GROUP + 1,
        in_h: 4,
        in_w: 4,
        out_c: 8,
        k: 3,
        stride: 1,
        pad: 1,
    };
    assert_eq!(kernels::packed_len(&g), None);
    assert_eq!(kernels::pack(&g, &[0; 360], &mut [0; 360]), None);
}

/// The target's multiply-accumulate (`mac_gathered`: pairs of rows on SIMD
/// hosts; the DSP kernel on a Cortex-M4, checked there by the firmware's
/// checksum) against the portable reference, on random lists, widths and
/// weights, from random accumulators.
#[test]
fn mac_gathered_matches_reference() {
    let mut rng = Rng(99991);
    for case in 0..300 {
        let out_n = 1 + rng.below(300) as usize;
        let rows = 1 + rng.below(600) as usize;
        let w = if case % 5 == 0 {
            extreme_weights(&mut rng, rows * out_n, 2)
        } else {
            rand_weights(&mut rng, rows * out_n)
        };
        let zeros = rng.below(100);
        let x = sparse_input(&mut rng, rows, 100, zeros);
        let mut g = Gather::new();
        let take = rows.min(kernels::GATHER_CAP);
        g.push_nonzero(&x[..take], 0, out_n);
        assert_eq!(g.len(), x[..take].iter().filter(|&&v| v != 0).count());
        let start: Vec<i32> = (0..out_n).map(|_| rng.next_u64() as i32 >> 8).collect();
        let (mut want, mut got) = (start.clone(), start);
        kernels::mac_gathered_ref(&mut want, &w, &g);
        kernels::mac_gathered(&mut got, &w, &mut g);
        assert_eq!(
            got,
            want,
            "case {case}: {out_n} channels, {} entries",
            g.len()
        );
    }
}

/// The branch-free requantization of the SIMD hosts against the scalar one.
#[test]
fn requant_nonneg_matches_requantize_u8() {
    let mut rng = Rng(31337);
    for _ in 0..200 {
        let n = 1 + rng.below(80) as usize;
        let shift = rng.below(30) as u8;
        let (m, s) = rand_rq(&mut rng, n, shift);
        let acc: Vec<i32> = (0..n)
            .map(|_| (rng.next_u64() as i32) >> rng.below(31))
            .collect();
        let r = rq(&m, &s);
        assert!(kernels::nonneg_multipliers(&r));
        let mut got = vec![0u8; n];
        kernels::requant_nonneg(&r, &acc, &mut got);
        for o in 0..n {
            assert_eq!(got[o], requantize_u8(acc[o], le(&m, o), s[o]), "{o}");
        }
    }
}

#[test]
fn dense_matches_naive() {
    let mut rng = Rng(5);
    for _ in 0..30 {
        let (inp, out_n) = (1 + rng.below(2000) as usize, 1 + rng.below(512) as usize);
        let input = sparse_input(&mut rng, inp, 2, 1);
        let w = rand_weights(&mut rng, inp * out_n);
        let b: Vec<u8> = (0..out_n)
            .flat_map(|_| (rng.next_u64() as i32 >> 12).to_le_bytes())
            .collect();
        let mut acc = vec![0i32; 512];
        kernels::dense_acc(&input, out_n, &w, &b, &mut acc, &mut Gather::new());
        for o in 0..out_n {
            let want: i64 = le(&b, o) as i64
                + (0..inp)
                    .map(|i| input[i] as i64 * w[i * out_n + o] as i8 as i64)
                    .sum::<i64>();
            assert_eq!(acc[o] as i64, want);
        }
        let (m, s) = rand_rq(&mut rng, out_n, 10);
        let mut q = vec![0u8; out_n];
        let rq = rq(&m, &s);
        kernels::dense_u8(
            &input,
            out_n,
            &w,
            &b,
            rq,
            &mut acc,
            &mut Gather::new(),
            &mut q,
        );
        for o in 0..out_n {
            assert_eq!(q[o], requantize_u8(acc[o], le(&m, o), s[o]));
        }
    }
}

/// The policy and its frame stack fit the 64 KiB RAM budget, and the
/// activation buffers hold the classic net's largest map. What one decision
/// really uses is measured on the Cortex-M4 image: `make mcu` checks that its
/// stack high-water mark holds `PEAK_RAM_BYTES` (firmware-sim/mcu/check.py).
#[test]
fn the_policy_and_its_frame_stack_fit_64k() {
    let scratch = std::mem::size_of::<Scratch>();
    let stack = std::mem::size_of::<FrameStack>();
    // The weights re-laid in groups exist on SIMD hosts only (PACK_CAP is 0
    // on the microcontrollers), so they are not part of the 64 KiB budget.
    let packed = 4 * policy_core::PACK_CAP;
    let policy = std::mem::size_of::<Policy>() - packed;
    println!("RAM: scratch {scratch} B + frame stack {stack} B = {PEAK_RAM_BYTES} B (whole Policy struct incl. blob views: {policy} B, plus {packed} B of re-laid weights on this host)");
    assert!(policy + stack <= 64 * 1024, "{policy} + {stack}");
    // The buffers really are the ones the classic net uses.
    let layers = classic(1);
    let blob = encode(&layers);
    let p = Policy::from_blob(&blob).unwrap();
    let biggest = p.stages().iter().map(|s| s.output.len()).max().unwrap();
    assert!(biggest <= policy_core::ACT_CAP);
    assert!(matches!(layers[0].kind, LayerKind::Conv2d { .. }));
}

/// Extreme values: int8 weights at -128 / 127, u8 inputs at 255, and long
/// gather lists (binary windows never all-zero or all-ones), against naive.
#[test]
fn extreme_values_match_naive() {
    let mut rng = Rng(4242);
    // conv1: k 16, every 16-column window has exactly one clear bit.
    let g = ConvGeom {
        in_c: 4,
        in_h: 80,
        in_w: 80,
        out_c: 16,
        k: 16,
        stride: 4,
        pad: 0,
    };
    let w = extreme_weights(&mut rng, 16 * 16 * 4 * 16, 4);
    let b: Vec<u8> = (0..16).flat_map(|_| 200_000i32.to_le_bytes()).collect();
    let (m, s) = half_rq(16, 10);
    let mut f = flappy::Frame::empty();
    for y in 0..80 {
        for x in 0..80 {
            f.set(y, x, (x + y) % 16 != 0);
        }
    }
    let stack = FrameStack::new(&f);
    let mut acc = vec![0i32; 512];
    let mut out = vec![0u8; g.out_h() * g.out_w() * 16];
    run_conv1([&f; 4], &g, 1, (&w, &b), rq(&m, &s), &mut acc, &mut out);
    let accs = naive_conv(&|y, x, c| stack.frame(c).get(y, x) as i64, &g, &w, &b);
    for (i, &a) in accs.iter().enumerate() {
        let want = requantize_u8(a as i32, le(&m, i % 16), 10);
        assert!(want > 0 && want < 255, "test scaling: {a} -> {want}");
        assert_eq!(out[i], want, "conv1 at {i}");
    }
    // conv_u8 and dense: inputs 255 and weights at the int8 extremes.
    let g = ConvGeom {
        in_c: 64,
        in_h: 5,
        in_w: 5,
        out_c: 40,
        k: 3,
        stride: 1,
        pad: 1,
    };
    let input = vec![255u8; 5 * 5 * 64];
    let w = extreme_weights(&mut rng, 9 * 64 * 40, 2);
    // Accumulators reach about 255 * 128 * 576 = 1.9e7; a bias per channel
    // brings the interior positions (all 9 taps) to 2 * (50 + o), so their
    // outputs (multiplier 0.5) are 50 + o, far from saturation: an
    // accumulator off by 2 would show. Border positions are checked too.
    let free = naive_conv(
        &|y, x, c| input[(y * 5 + x) * 64 + c] as i64,
        &g,
        &w,
        &[0u8; 160],
    );
    let interior = (2 * 5 + 2) * 40;
    let b: Vec<u8> = (0..40)
        .flat_map(|o| ((2 * (50 + o) as i64 - free[interior + o]) as i32).to_le_bytes())
        .collect();
    let (m, s) = half_rq(40, 0);
    let mut out = vec![0u8; 25 * 40];
    let rq = rq(&m, &s);
    conv_u8(&input, &g, (&w, &b), rq, &mut acc, &mut out);
    let accs = naive_conv(&|y, x, c| input[(y * 5 + x) * 64 + c] as i64, &g, &w, &b);
    for (i, &a) in accs.iter().enumerate() {
        assert_eq!(
            out[i],
            requantize_u8(a as i32, 1 << 30, 0),
            "conv_u8 at {i}"
        );
    }
    for o in 0..40 {
        assert_eq!(out[interior + o] as usize, 50 + o, "interior channel {o}");
    }
    let b = vec![0u8; 40 * 4];
    let (inp, out_n) = (1600, 40);
    let input = vec![255u8; inp];
    let w = extreme_weights(&mut rng, inp * out_n, 2);
    kernels::dense_acc(&input, out_n, &w, &b, &mut acc, &mut Gather::new());
    for o in 0..out_n {
        let want: i64 = (0..inp).map(|i| 255 * w[i * out_n + o] as i8 as i64).sum();
        assert_eq!(acc[o] as i64, want, "dense output {o}");
    }
}
