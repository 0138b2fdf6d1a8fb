//! Convolution over u8 activations on SIMD hosts (x86-64, always with SSE2,
//! wider with AVX2 / AVX-512 when the build enables them; wasm32 with
//! `simd128`): the weights are re-laid at load time ([`pack`]) as pairs of
//! input channels, `[tap][pair][oc] = (w[tap][2p][oc], w[tap][2p + 1][oc])`
//! in i16, so that one step adds `x0 * w0 + x1 * w1` for every output
//! channel at once, the shape of SSE2 `pmaddwd`, AVX2 `vpmaddwd` and wasm
//! `i32x4.dot_i16x8_s`, which the compiler picks on its own for the plain
//! loop in [`mac_pair`]. The window is walked densely: on these targets a
//! branch on each input would cost more (mispredicted about half the time)
//! than the multiply-adds it skips. Requantization is branch-free too
//! ([`requant_nonneg`]), so it vectorises as well.
//!
//! The integers are those of the portable [`super::conv_u8`] (exact i32
//! sums in another order; tested on random geometries and data).

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
use super::simd;
use super::{ConvGeom, Requant};

/// Pairs of input channels of a conv with `in_c` channels.
const fn pairs(in_c: usize) -> usize {
    in_c / 2
}

/// Weight pairs [`pack`] writes for a conv of geometry `g`; `None` if it
/// has no pair layout (an odd input channel count).
pub fn packed_len(g: &ConvGeom) -> Option<usize> {
    g.in_c
        .is_multiple_of(2)
        .then_some(g.k * g.k * pairs(g.in_c) * g.out_c)
}

/// Writes the pair layout of HWIO int8 `weights` (geometry `g`) into
/// `out[..n]`, `n = packed_len(g)`, and returns `n`; `None` (nothing
/// written) if the conv has no pair layout or `out` is shorter.
pub fn pack(g: &ConvGeom, weights: &[u8], out: &mut [[i16; 2]]) -> Option<usize> {
    let n = packed_len(g)?;
    let out = out.get_mut(..n)?;
    let (ic, oc, np) = (g.in_c, g.out_c, pairs(g.in_c));
    let w = |t: usize, c: usize, o: usize| weights[(t * ic + c) * oc + o] as i8 as i16;
    for (i, slot) in out.iter_mut().enumerate() {
        let (t, p, o) = (i / (np * oc), i / oc % np, i % oc);
        *slot = [w(t, 2 * p, o), w(t, 2 * p + 1, o)];
    }
    Some(n)
}

/// `acc[o] += x0 * w[o][0] + x1 * w[o][1]`: one pair of inputs into every
/// output channel (`pmaddwd` and an add per vector of channels).
#[inline(always)]
fn mac_pair(acc: &mut [i32], x0: u8, x1: u8, w: &[[i16; 2]]) {
    let (x0, x1) = (x0 as i16 as i32, x1 as i16 as i32);
    for (a, p) in acc.iter_mut().zip(w) {
        *a += x0 * p[0] as i32 + x1 * p[1] as i32;
    }
}

/// Adds every tap of output `(oy, ox)`'s window that lies inside the
/// input to `a` (one accumulator per output channel, `N` of them, or
/// `out_c` when `N` is 0).
#[inline(always)]
fn window<const N: usize>(
    a: &mut [i32],
    input: &[u8],
    g: &ConvGeom,
    packed: &[[i16; 2]],
    (oy, ox): (usize, usize),
) {
    let (ic, oc) = (g.in_c, g.out_c);
    let (ky0, ky1) = super::conv_u8::taps(oy, g, g.in_h);
    let (kx0, kx1) = super::conv_u8::taps(ox, g, g.in_w);
    for ky in ky0..ky1 {
        let iy = oy * g.stride + ky - g.pad;
        for kx in kx0..kx1 {
            let ix = ox * g.stride + kx - g.pad;
            let px = input[(iy * g.in_w + ix) * ic..][..ic].as_chunks::<2>().0;
            let taps = &packed[(ky * g.k + kx) * pairs(ic) * oc..][..pairs(ic) * oc];
            if N > 0 {
                for (x, w) in px.iter().zip(taps.as_chunks::<N>().0) {
                    mac_pair(a, x[0], x[1], w);
                }
            } else {
                for (x, w) in px.iter().zip(taps.chunks_exact(oc)) {
                    mac_pair(a, x[0], x[1], w);
                }
            }
        }
    }
}

/// The same output as [`super::conv_u8`] from the pair layout `packed`
/// ([`pack`] of the same weights).
pub fn conv_pairs(
    input: &[u8],
    g: &ConvGeom,
    packed: &[[i16; 2]],
    biases: &[u8],
    rq: Requant,
    s: super::ConvScratch,
    out: &mut [u8],
) {
    let (oh, ow, oc_n) = (g.out_h(), g.out_w(), g.out_c);
    let (acc, bias) = (&mut s.acc[..oc_n], &mut s.bias[..oc_n]);
    super::init_bias(bias, biases);
    let nonneg = nonneg_multipliers(&rq);
    let packed = &packed[..packed_len(g).unwrap_or(0)];
    for oy in 0..oh {
        for ox in 0..ow {
            let at = (oy, ox);
            acc.copy_from_slice(bias);
            #[cfg(any(
                target_arch = "x86_64",
                all(target_arch = "wasm32", target_feature = "simd128")
            ))]
            match oc_n / simd::LANES {
                _ if !oc_n.is_multiple_of(simd::LANES) => window::<0>(acc, input, g, packed, at),
                1 => simd::window::<1>(acc, input, g, packed, at),
                2 => simd::window::<2>(acc, input, g, packed, at),
                4 => simd::window::<4>(acc, input, g, packed, at),
                8 => simd::window::<8>(acc, input, g, packed, at),
                16 => simd::window::<16>(acc, input, g, packed, at),
                _ => window::<0>(acc, input, g, packed, at),
            }
            #[cfg(not(any(
                target_arch = "x86_64",
                all(target_arch = "wasm32", target_feature = "simd128")
            )))]
            window::<0>(acc, input, g, packed, at);
            let q = &mut out[(oy * ow + ox) * oc_n..][..oc_n];
            if nonneg {
                requant_nonneg(&rq, acc, q);
            } else {
                rq.apply(acc, q);
            }
        }
    }
}

/// Whether every multiplier of `rq` is `>= 0` (every validated blob's).
#[inline(always)]
pub fn nonneg_multipliers(rq: &Requant) -> bool {
    rq.multipliers
        .as_chunks::<4>()
        .0
        .iter()
        .all(|m| m[3] < 0x80)
}

/// [`Requant::apply`] without branches, for multipliers `>= 0`
/// ([`nonneg_multipliers`]; the caller checks, once per layer): with `a =
/// max(acc, 0)`, `v = (a * m0 + 2^30) >> 31` and `(v + 2^(shift - 1)) >>
/// shift` clamped to 255 are `requantize_relu` for `acc > 0` and 0 for `acc
/// <= 0`, in 64-bit lanes the compiler vectorises. (A negative multiplier
/// would give garbage here, never undefined behaviour.)
#[inline(always)]
pub fn requant_nonneg(rq: &Requant, acc: &[i32], out: &mut [u8]) {
    let mults = rq.multipliers.as_chunks::<4>().0;
    for (((q, &a), m), &s) in out.iter_mut().zip(acc).zip(mults).zip(rq.shifts) {
        let a = a.max(0) as u64;
        let v = (a * u32::from_le_bytes(*m) as u64 + (1 << 30)) >> 31;
        let e = s.min(crate::requant::MAX_SHIFT);
        let r = (v + ((1u64 << e) >> 1)) >> e;
        *q = r.min(255) as u8;
    }
}
