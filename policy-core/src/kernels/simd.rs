//! The vector multiply-add of the SIMD hosts, for the pair kernels
//! ([`super::pairs`]): `acc[o] += x0 * w0[o] + x1 * w1[o]` for a vector of
//! output channels at once, from a pair of u8 inputs and the i16 weight
//! pairs `(w0[o], w1[o])`, in one instruction: x86-64 `pmaddwd` (SSE2, 4
//! channels; AVX2 `vpmaddwd`, 8 channels, when the build enables `avx2`)
//! and wasm32 `i32x4.dot_i16x8_s` (`simd128`, 4 channels).
//!
//! Why `unsafe` here (the crate's second allowed module, after the
//! Cortex-M4 kernel in `super::dsp`): on x86-64 an intrinsic may only be
//! called from a function that enables its target feature, and calling such
//! a function is `unsafe` even when the whole build enables the feature; and
//! a vector load or store takes a raw pointer. Each `unsafe` block below is
//! one of these two, with its argument: the features are compiled in (the
//! `cfg` that selects the code), and every load or store reads or writes a
//! fixed-size array through a reference, exactly as many bytes as the
//! array holds.
//!
//! The integers are those of the scalar kernels: `pmaddwd` and
//! `i32x4.dot_i16x8_s` multiply i16 by i16 exactly and add two products in
//! i32 (`2 * 255 * 128` fits), and the i32 sums are the same exact sums in
//! another order (no partial sum can overflow: see `docs/quantization.md`).

use super::conv_u8::taps;
use super::ConvGeom;

#[cfg(target_arch = "x86_64")]
mod isa {
    #[cfg(not(target_feature = "avx2"))]
    use core::arch::x86_64::{
        __m128i as V, _mm_add_epi32 as add, _mm_loadu_si128 as loadu, _mm_madd_epi16 as madd,
        _mm_set1_epi32 as splat, _mm_storeu_si128 as storeu,
    };
    #[cfg(target_feature = "avx2")]
    use core::arch::x86_64::{
        __m256i as V, _mm256_add_epi32 as add, _mm256_loadu_si256 as loadu,
        _mm256_madd_epi16 as madd, _mm256_set1_epi32 as splat, _mm256_storeu_si256 as storeu,
    };

    /// 32-bit lanes per vector.
    pub const LANES: usize = core::mem::size_of::<V>() / 4;

    /// Accumulators of one output position: `NV` vectors of [`LANES`] channels.
    pub struct Acc<const NV: usize>([V; NV]);

    impl<const NV: usize> Acc<NV> {
        /// Loads `a[..NV * LANES]`.
        #[inline(always)]
        pub fn load(a: &[i32]) -> Self {
            let a = &a[..NV * LANES];
            // SAFETY: an unaligned vector load of LANES i32 from a slice of
            // exactly LANES elements; the build enables the load's feature.
            Acc(core::array::from_fn(|v| unsafe {
                loadu(a[v * LANES..][..LANES].as_ptr().cast())
            }))
        }

        /// Stores into `a[..NV * LANES]`.
        #[inline(always)]
        pub fn store(&self, a: &mut [i32]) {
            let a = &mut a[..NV * LANES];
            for (v, x) in self.0.iter().enumerate() {
                let dst = &mut a[v * LANES..][..LANES];
                // SAFETY: an unaligned vector store of LANES i32 into a
                // slice of exactly LANES elements; the feature is compiled in.
                unsafe { storeu(dst.as_mut_ptr().cast(), *x) }
            }
        }

        /// All zero.
        #[inline(always)]
        pub fn zero() -> Self {
            // SAFETY: a register broadcast; the feature is compiled in.
            Acc([unsafe { splat(0) }; NV])
        }

        /// Adds `other` lane by lane.
        #[inline(always)]
        pub fn merge(&mut self, other: &Self) {
            for (a, b) in self.0.iter_mut().zip(&other.0) {
                // SAFETY: register-only arithmetic; the feature is compiled in.
                *a = unsafe { add(*a, *b) };
            }
        }

        /// `a[o] += x0 * w[o][0] + x1 * w[o][1]` for the `NV * LANES`
        /// channels of `w`.
        #[inline(always)]
        pub fn mac_pair(&mut self, x0: u8, x1: u8, w: &[[i16; 2]]) {
            let w = &w[..NV * LANES];
            // SAFETY: a broadcast of a register (the feature is compiled in).
            let xx = unsafe { splat((x0 as u32 | (x1 as u32) << 16) as i32) };
            for (v, a) in self.0.iter_mut().enumerate() {
                let src = &w[v * LANES..][..LANES];
                // SAFETY: an unaligned load of LANES pairs (4 bytes each)
                // from a slice of exactly LANES pairs, then register-only
                // arithmetic; the features are compiled in.
                unsafe { *a = add(*a, madd(xx, loadu(src.as_ptr().cast()))) };
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod isa {
    use core::arch::wasm32::{
        i32x4_add, i32x4_dot_i16x8, i32x4_splat, v128, v128_load, v128_store,
    };

    /// 32-bit lanes per vector.
    pub const LANES: usize = 4;

    /// Accumulators of one output position: `NV` vectors of [`LANES`] channels.
    pub struct Acc<const NV: usize>([v128; NV]);

    impl<const NV: usize> Acc<NV> {
        /// Loads `a[..NV * LANES]`.
        #[inline(always)]
        pub fn load(a: &[i32]) -> Self {
            let a = &a[..NV * LANES];
            // SAFETY: an unaligned 16-byte load from a slice of exactly 4 i32.
            Acc(core::array::from_fn(|v| unsafe {
                v128_load(a[v * LANES..][..LANES].as_ptr().cast())
            }))
        }

        /// Stores into `a[..NV * LANES]`.
        #[inline(always)]
        pub fn store(&self, a: &mut [i32]) {
            let a = &mut a[..NV * LANES];
            for (v, x) in self.0.iter().enumerate() {
                let dst = &mut a[v * LANES..][..LANES];
                // SAFETY: an unaligned 16-byte store into a slice of exactly 4 i32.
                unsafe { v128_store(dst.as_mut_ptr().cast(), *x) }
            }
        }

        /// All zero.
        #[inline(always)]
        pub fn zero() -> Self {
            Acc([i32x4_splat(0); NV])
        }

        /// Adds `other` lane by lane.
        #[inline(always)]
        pub fn merge(&mut self, other: &Self) {
            for (a, b) in self.0.iter_mut().zip(&other.0) {
                *a = i32x4_add(*a, *b);
            }
        }

        /// `a[o] += x0 * w[o][0] + x1 * w[o][1]` for the `NV * LANES`
        /// channels of `w`.
        #[inline(always)]
        pub fn mac_pair(&mut self, x0: u8, x1: u8, w: &[[i16; 2]]) {
            let w = &w[..NV * LANES];
            let xx = i32x4_splat((x0 as u32 | (x1 as u32) << 16) as i32);
            for (v, a) in self.0.iter_mut().enumerate() {
                let src = &w[v * LANES..][..LANES];
                // SAFETY: an unaligned 16-byte load from a slice of exactly 4 pairs.
                let wv = unsafe { v128_load(src.as_ptr().cast()) };
                *a = i32x4_add(*a, i32x4_dot_i16x8(xx, wv));
            }
        }
    }
}

pub use isa::LANES;

/// Accumulates output `(oy, ox)`'s window (every tap inside the input) into
/// `acc[..NV * LANES]`, which holds the biases on entry: the pair layout of
/// [`super::pairs::pack`] with `g.out_c == NV * LANES`.
#[inline(always)]
pub fn window<const NV: usize>(
    acc: &mut [i32],
    input: &[u8],
    g: &ConvGeom,
    packed: &[[i16; 2]],
    (oy, ox): (usize, usize),
) {
    let (ic, oc) = (g.in_c, g.out_c);
    let np = ic / 2;
    // Two sets of accumulators, for even and odd pairs: each vector's chain
    // of dependent adds is half as long (with four vectors or fewer, the
    // latency of `pmaddwd` + add, not their throughput, would bound it).
    let (mut a, mut b) = (isa::Acc::<NV>::load(acc), isa::Acc::<NV>::zero());
    let (ky0, ky1) = taps(oy, g, g.in_h);
    let (kx0, kx1) = taps(ox, g, g.in_w);
    for ky in ky0..ky1 {
        let iy = oy * g.stride + ky - g.pad;
        for kx in kx0..kx1 {
            let ix = ox * g.stride + kx - g.pad;
            let px = &input[(iy * g.in_w + ix) * ic..][..ic];
            let tap = &packed[(ky * g.k + kx) * np * oc..][..np * oc];
            let (quads, rest) = px.as_chunks::<4>();
            let rows = tap.chunks_exact(2 * oc);
            let last = rows.remainder();
            for (x, w) in quads.iter().zip(rows) {
                let (w0, w1) = w.split_at(oc);
                a.mac_pair(x[0], x[1], w0);
                b.mac_pair(x[2], x[3], w1);
            }
            if let [x0, x1] = *rest {
                a.mac_pair(x0, x1, last);
            }
        }
    }
    a.merge(&b);
    a.store(acc);
}
