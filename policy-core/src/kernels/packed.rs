//! Convolution over u8 activations on SIMD hosts (x86-64, always with SSE2,
//! wider with AVX2 / AVX-512 when the build enables them; wasm32 with
//! `simd128`), from weights re-laid at load time ([`pack`]) in groups of
//! [`GROUP`] input channels, one 32-bit word per group and output channel:
//! `[tap][group][oc]`. A word holds
//!
//! * a pair `(w[tap][2p][oc], w[tap][2p + 1][oc])` in i16 (`GROUP` = 2),
//!   so that one step adds `x0 * w0 + x1 * w1` for a vector of output
//!   channels: SSE2 `pmaddwd`, AVX2 `vpmaddwd`, wasm `i32x4.dot_i16x8_s`;
//! * or, where the build has the VNNI dot product (`avxvnni` or
//!   `avx512vnni`), a quad of int8 weights (`GROUP` = 4): `vpdpbusd` adds
//!   four u8 x int8 products per channel (exact: no saturation).
//!
//! The window is walked densely: on these targets a branch on each input
//! would cost more (mispredicted about half the time) than the
//! multiply-adds it skips. Requantization is branch-free too
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

/// Input channels per packed word: 4 (int8 quads) where the build has the
/// VNNI dot product, else 2 (i16 pairs).
pub const GROUP: usize = if cfg!(all(
    target_arch = "x86_64",
    any(target_feature = "avxvnni", target_feature = "avx512vnni")
)) {
    4
} else {
    2
};

/// Words [`pack`] writes for a conv of geometry `g`; `None` if it has no
/// packed layout (input channels not a multiple of [`GROUP`]).
pub fn packed_len(g: &ConvGeom) -> Option<usize> {
    g.in_c
        .is_multiple_of(GROUP)
        .then_some(g.k * g.k * (g.in_c / GROUP) * g.out_c)
}

/// Writes the packed layout of HWIO int8 `weights` (geometry `g`) into
/// `out[..n]`, `n = packed_len(g)`, and returns `n`; `None` (nothing
/// written) if the conv has no packed layout or `out` is shorter.
pub fn pack(g: &ConvGeom, weights: &[u8], out: &mut [u32]) -> Option<usize> {
    let n = packed_len(g)?;
    let out = out.get_mut(..n)?;
    let (ic, oc, ng) = (g.in_c, g.out_c, g.in_c / GROUP);
    let w = |t: usize, c: usize, o: usize| weights[(t * ic + c) * oc + o];
    for (i, slot) in out.iter_mut().enumerate() {
        let (t, q, o) = (i / (ng * oc), i / oc % ng, i % oc);
        let c = GROUP * q;
        *slot = if GROUP == 4 {
            u32::from_le_bytes([w(t, c, o), w(t, c + 1, o), w(t, c + 2, o), w(t, c + 3, o)])
        } else {
            let half = |c| w(t, c, o) as i8 as i16 as u16 as u32;
            half(c) | half(c + 1) << 16
        };
    }
    Some(n)
}

/// `acc[o] += sum over the group of x[j] * w[o][j]`: one group of inputs
/// into every output channel (the portable form of the vector kernels).
#[inline(always)]
fn mac_group(acc: &mut [i32], x: &[u8], w: &[u32]) {
    for (a, &word) in acc.iter_mut().zip(w) {
        *a += if GROUP == 4 {
            let b = word.to_le_bytes();
            (0..4).map(|j| x[j] as i32 * b[j] as i8 as i32).sum::<i32>()
        } else {
            x[0] as i32 * word as u16 as i16 as i32
                + x[1] as i32 * (word >> 16) as u16 as i16 as i32
        };
    }
}

/// Adds every tap of output `(oy, ox)`'s window that lies inside the input
/// to `a` (one accumulator per output channel), portably: for widths the
/// vector kernels do not take.
fn window(a: &mut [i32], input: &[u8], g: &ConvGeom, packed: &[u32], (oy, ox): (usize, usize)) {
    let (ic, oc) = (g.in_c, g.out_c);
    let (ky0, ky1) = super::conv_u8::taps(oy, g, g.in_h);
    let (kx0, kx1) = super::conv_u8::taps(ox, g, g.in_w);
    for ky in ky0..ky1 {
        let iy = oy * g.stride + ky - g.pad;
        for kx in kx0..kx1 {
            let ix = ox * g.stride + kx - g.pad;
            let px = &input[(iy * g.in_w + ix) * ic..][..ic];
            let tap = &packed[(ky * g.k + kx) * (ic / GROUP) * oc..][..(ic / GROUP) * oc];
            for (x, w) in px.chunks_exact(GROUP).zip(tap.chunks_exact(oc)) {
                mac_group(a, x, w);
            }
        }
    }
}

/// How one output position's window reaches its accumulators: a vector
/// family ([`Vector`]) or the portable loop ([`Portable`]).
pub(super) trait Window {
    /// Adds output `at`'s window to `acc` (the biases on entry).
    fn accumulate(acc: &mut [i32], input: &[u8], g: &ConvGeom, packed: &[u32], at: (usize, usize));
}

/// The portable window, for targets without vectors.
#[cfg_attr(
    any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ),
    allow(dead_code)
)]
pub(super) struct Portable;

impl Window for Portable {
    #[inline(always)]
    fn accumulate(acc: &mut [i32], input: &[u8], g: &ConvGeom, packed: &[u32], at: (usize, usize)) {
        window(acc, input, g, packed, at);
    }
}

/// The windows of a vector family `F`, the portable loop for channel
/// counts its vectors do not fill.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
pub(super) struct Vector<F>(core::marker::PhantomData<F>);

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
impl<F: simd::Family> Window for Vector<F> {
    #[inline(always)]
    fn accumulate(acc: &mut [i32], input: &[u8], g: &ConvGeom, packed: &[u32], at: (usize, usize)) {
        if !simd::window_in::<F>(acc, input, g, packed, at) {
            window(acc, input, g, packed, at);
        }
    }
}

/// The same output as [`super::conv_u8`] from the packed layout `packed`
/// ([`pack`] of the same weights): with the build's vectors, or with AVX2
/// where an x86-64 build without it runs on a CPU that has it
/// (`simd::avx2`).
pub fn conv_packed(
    input: &[u8],
    g: &ConvGeom,
    packed: &[u32],
    biases: &[u8],
    rq: Requant,
    s: super::ConvScratch,
    out: &mut [u8],
) {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
    if let Some(cpu) = simd::avx2::Cpu::detect() {
        return simd::avx2::conv(cpu, input, g, packed, biases, rq, s, out);
    }
    conv_packed_build(input, g, packed, biases, rq, s, out);
}

/// [`conv_packed`] with the build's own vectors only (never AVX2 chosen at
/// run time): what a CPU without AVX2 runs.
pub fn conv_packed_build(
    input: &[u8],
    g: &ConvGeom,
    packed: &[u32],
    biases: &[u8],
    rq: Requant,
    s: super::ConvScratch,
    out: &mut [u8],
) {
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    conv_loop::<Vector<simd::Build>>(input, g, packed, biases, rq, s, out);
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    conv_loop::<Portable>(input, g, packed, biases, rq, s, out);
}

/// The conv over every output position with `W`'s windows, then the
/// requantization; inlined into its caller, so that a caller compiled with
/// more target features (`simd::avx2::conv`) compiles all of it with them.
#[inline(always)]
pub(super) fn conv_loop<W: Window>(
    input: &[u8],
    g: &ConvGeom,
    packed: &[u32],
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
            acc.copy_from_slice(bias);
            W::accumulate(acc, input, g, packed, (oy, ox));
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

/// `Requant::apply` without branches, for multipliers `>= 0`
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
