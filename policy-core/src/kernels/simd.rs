//! The vector multiply-adds of the SIMD hosts: for the packed convs
//! ([`super::packed`]), `acc[o] += sum over a group of inputs x[j] *
//! w[o][j]` for a vector of output channels in one instruction, from a
//! group of u8 inputs and each channel's packed weight word: x86-64
//! `pmaddwd` on i16 pairs (SSE2, 4 channels; AVX2 `vpmaddwd`, 8 channels),
//! `vpdpbusd` on int8 quads where the build has VNNI (`avxvnni`: 8
//! channels; `avx512vnni`: 16), wasm32 `i32x4.dot_i16x8_s` (`simd128`, 4
//! channels); for the dense layers, pairs of gathered rows
//! ([`mac_blocks16`]). On an x86-64 build without AVX2 (the default
//! target), [`avx2`] runs the packed convs 8 channels wide when the CPU
//! has AVX2 (CPUID, once): the same i16-pair layout, so one packing serves
//! both widths.
//!
//! Why `unsafe` here (the crate's second allowed module, after the
//! Cortex-M4 kernel in `super::dsp`): on x86-64 an intrinsic may only be
//! called from a function that enables its target feature, and calling such
//! a function is `unsafe` even when the whole build enables the feature; and
//! a vector load or store takes a raw pointer. Each `unsafe` block below is
//! one of these two, with its argument: the features are compiled in (the
//! `cfg` that selects the code) or, in [`avx2`], checked at run time before
//! the only entry point is called, and every load or store reads or writes
//! a fixed-size array through a reference, exactly as many bytes as the
//! array holds.
//!
//! The integers are those of the scalar kernels: `pmaddwd` and
//! `i32x4.dot_i16x8_s` multiply i16 by i16 exactly and add two products in
//! i32 (`2 * 255 * 128` fits), `vpdpbusd` adds four u8 x int8 products to
//! i32 without saturating, and the i32 sums are the same exact sums in
//! another order (no partial sum can overflow: see `docs/quantization.md`).

use super::conv_u8::taps;
use super::packed::GROUP;
use super::ConvGeom;

/// The accumulators of one output position in vector registers, `NV`
/// vectors of one width: what [`window`] needs of a vector ISA.
pub trait Vectors: Sized {
    /// Loads `a[..NV * LANES]`.
    fn load(a: &[i32]) -> Self;
    /// All zero.
    fn zero() -> Self;
    /// Adds `other` lane by lane.
    fn merge(&mut self, other: &Self);
    /// Stores into `a[..NV * LANES]`.
    fn store(&self, a: &mut [i32]);
    /// `a[o] += sum over j < GROUP of x[j] * w[o][j]` for the `NV * LANES`
    /// channels of `w` (one packed word each).
    fn mac(&mut self, x: &[u8], w: &[u32]);
}

#[cfg(target_arch = "x86_64")]
mod isa {
    use core::arch::x86_64::*;

    /// The widest vector the build has: AVX-512 (with VNNI), AVX2, or SSE2.
    #[cfg(target_feature = "avx512vnni")]
    type V = __m512i;
    #[cfg(all(not(target_feature = "avx512vnni"), target_feature = "avx2"))]
    type V = __m256i;
    #[cfg(all(not(target_feature = "avx512vnni"), not(target_feature = "avx2")))]
    type V = __m128i;

    /// 32-bit lanes per vector.
    pub const LANES: usize = core::mem::size_of::<V>() / 4;

    // SAFETY (for the four helpers): callers pass pointers to LANES
    // readable (writable) i32 or words; the features are compiled in.
    #[inline(always)]
    unsafe fn loadu(p: *const u32) -> V {
        #[cfg(target_feature = "avx512vnni")]
        return _mm512_loadu_si512(p.cast());
        #[cfg(all(not(target_feature = "avx512vnni"), target_feature = "avx2"))]
        return _mm256_loadu_si256(p.cast());
        #[cfg(all(not(target_feature = "avx512vnni"), not(target_feature = "avx2")))]
        return _mm_loadu_si128(p.cast());
    }
    #[inline(always)]
    unsafe fn storeu(p: *mut i32, v: V) {
        #[cfg(target_feature = "avx512vnni")]
        return _mm512_storeu_si512(p.cast(), v);
        #[cfg(all(not(target_feature = "avx512vnni"), target_feature = "avx2"))]
        return _mm256_storeu_si256(p.cast(), v);
        #[cfg(all(not(target_feature = "avx512vnni"), not(target_feature = "avx2")))]
        return _mm_storeu_si128(p.cast(), v);
    }
    #[inline(always)]
    unsafe fn splat(x: i32) -> V {
        #[cfg(target_feature = "avx512vnni")]
        return _mm512_set1_epi32(x);
        #[cfg(all(not(target_feature = "avx512vnni"), target_feature = "avx2"))]
        return _mm256_set1_epi32(x);
        #[cfg(all(not(target_feature = "avx512vnni"), not(target_feature = "avx2")))]
        return _mm_set1_epi32(x);
    }
    #[inline(always)]
    unsafe fn add(a: V, b: V) -> V {
        #[cfg(target_feature = "avx512vnni")]
        return _mm512_add_epi32(a, b);
        #[cfg(all(not(target_feature = "avx512vnni"), target_feature = "avx2"))]
        return _mm256_add_epi32(a, b);
        #[cfg(all(not(target_feature = "avx512vnni"), not(target_feature = "avx2")))]
        return _mm_add_epi32(a, b);
    }
    /// `acc` plus, per 32-bit lane, the dot product of the group `xx`
    /// (u8 quad or i16 pair, the same in every lane) with the lane's word
    /// of `w`: `vpdpbusd` (VNNI: u8 x int8, four products, no saturation)
    /// or `pmaddwd` and an add (i16 x i16, two products).
    #[inline(always)]
    unsafe fn dot(acc: V, xx: V, w: V) -> V {
        #[cfg(target_feature = "avx512vnni")]
        return _mm512_dpbusd_epi32(acc, xx, w);
        #[cfg(all(not(target_feature = "avx512vnni"), target_feature = "avxvnni"))]
        return _mm256_dpbusd_avx_epi32(acc, xx, w);
        #[cfg(all(not(target_feature = "avx512vnni"), not(target_feature = "avxvnni")))]
        {
            #[cfg(target_feature = "avx2")]
            return _mm256_add_epi32(acc, _mm256_madd_epi16(xx, w));
            #[cfg(not(target_feature = "avx2"))]
            return _mm_add_epi32(acc, _mm_madd_epi16(xx, w));
        }
    }

    /// Accumulators of one output position: `NV` vectors of [`LANES`] channels.
    pub struct Acc<const NV: usize>([V; NV]);

    impl<const NV: usize> super::Vectors for Acc<NV> {
        /// Loads `a[..NV * LANES]`.
        #[inline(always)]
        fn load(a: &[i32]) -> Self {
            let a = &a[..NV * LANES];
            // SAFETY: LANES i32 from a slice of exactly LANES elements.
            Acc(core::array::from_fn(|v| unsafe {
                loadu(a[v * LANES..][..LANES].as_ptr().cast())
            }))
        }

        /// All zero.
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: a register broadcast.
            Acc([unsafe { splat(0) }; NV])
        }

        /// Adds `other` lane by lane.
        #[inline(always)]
        fn merge(&mut self, other: &Self) {
            for (a, b) in self.0.iter_mut().zip(&other.0) {
                // SAFETY: register arithmetic.
                *a = unsafe { add(*a, *b) };
            }
        }

        /// Stores into `a[..NV * LANES]`.
        #[inline(always)]
        fn store(&self, a: &mut [i32]) {
            let a = &mut a[..NV * LANES];
            for (v, x) in self.0.iter().enumerate() {
                let dst = &mut a[v * LANES..][..LANES];
                // SAFETY: LANES i32 into a slice of exactly LANES elements.
                unsafe { storeu(dst.as_mut_ptr(), *x) }
            }
        }

        /// `a[o] += sum over j < GROUP of x[j] * w[o][j]` for the `NV *
        /// LANES` channels of `w` (one packed word each).
        #[inline(always)]
        fn mac(&mut self, x: &[u8], w: &[u32]) {
            let w = &w[..NV * LANES];
            let xx = super::group(x);
            // SAFETY: a register broadcast.
            let xx = unsafe { splat(xx) };
            for (v, a) in self.0.iter_mut().enumerate() {
                let src = &w[v * LANES..][..LANES];
                // SAFETY: LANES words from a slice of exactly LANES words,
                // then register arithmetic.
                unsafe { *a = dot(*a, xx, loadu(src.as_ptr())) };
            }
        }
    }
}

/// 16 output channels' accumulators of a dense layer, in registers, and
/// the step that adds two gathered rows: `acc[l] += x0 * r0[l] + x1 *
/// r1[l]`, the rows' bytes interleaved (`r0[l], r1[l]`), sign-extended to
/// i16 pairs and multiplied pair-wise: `vpdpwssd` over 16 channels with
/// AVX-512 (VNNI, BW), `vpmaddwd` over 8 with AVX2, `pmaddwd` over 4 with
/// SSE2.
#[cfg(target_arch = "x86_64")]
mod rows {
    use core::arch::x86_64::*;

    #[cfg(all(target_feature = "avx512vnni", target_feature = "avx512bw"))]
    type V = __m512i;
    #[cfg(all(
        not(all(target_feature = "avx512vnni", target_feature = "avx512bw")),
        target_feature = "avx2"
    ))]
    type V = __m256i;
    #[cfg(all(
        not(all(target_feature = "avx512vnni", target_feature = "avx512bw")),
        not(target_feature = "avx2")
    ))]
    type V = __m128i;
    const N: usize = 64 / core::mem::size_of::<V>();

    pub struct Rows16([V; N]);

    impl Rows16 {
        /// Loads the 16 accumulators.
        #[inline(always)]
        pub fn load(a: &[i32; 16]) -> Self {
            // SAFETY: unaligned loads of the 64 bytes of `a`, one vector at
            // a time (N vectors of 64 / N bytes); the feature is compiled in.
            Rows16(core::array::from_fn(|v| unsafe {
                core::ptr::read_unaligned(a[v * 16 / N..].as_ptr().cast::<V>())
            }))
        }

        /// Stores the 16 accumulators.
        #[inline(always)]
        pub fn store(&self, a: &mut [i32; 16]) {
            for (v, x) in self.0.iter().enumerate() {
                // SAFETY: an unaligned store of 64 / N bytes inside the 64 of `a`.
                unsafe { core::ptr::write_unaligned(a[v * 16 / N..].as_mut_ptr().cast::<V>(), *x) }
            }
        }

        /// `acc[l] += x0 * r0[l] + x1 * r1[l]`, `l < 16`.
        #[inline(always)]
        pub fn mac(&mut self, x0: u8, x1: u8, r0: &[u8; 16], r1: &[u8; 16]) {
            let xx = (x0 as u32 | (x1 as u32) << 16) as i32;
            // SAFETY: unaligned 16-byte loads from two 16-byte arrays, then
            // register arithmetic; the features are compiled in.
            unsafe {
                let (a, b) = (
                    _mm_loadu_si128(r0.as_ptr().cast()),
                    _mm_loadu_si128(r1.as_ptr().cast()),
                );
                // Bytes r0[0], r1[0], r0[1], r1[1], ...: channels 0..7, then 8..15.
                let (lo, hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
                #[cfg(all(target_feature = "avx512vnni", target_feature = "avx512bw"))]
                {
                    let w = _mm512_cvtepi8_epi16(_mm256_set_m128i(hi, lo));
                    self.0[0] = _mm512_dpwssd_epi32(self.0[0], _mm512_set1_epi32(xx), w);
                }
                #[cfg(all(
                    not(all(target_feature = "avx512vnni", target_feature = "avx512bw")),
                    target_feature = "avx2"
                ))]
                {
                    let xx = _mm256_set1_epi32(xx);
                    for (acc, v) in self.0.iter_mut().zip([lo, hi]) {
                        let prod = _mm256_madd_epi16(xx, _mm256_cvtepi8_epi16(v));
                        *acc = _mm256_add_epi32(*acc, prod);
                    }
                }
                #[cfg(all(
                    not(all(target_feature = "avx512vnni", target_feature = "avx512bw")),
                    not(target_feature = "avx2")
                ))]
                {
                    let xx = _mm_set1_epi32(xx);
                    // Bytes doubled then shifted: each byte sign-extended to i16.
                    let words = [
                        _mm_srai_epi16(_mm_unpacklo_epi8(lo, lo), 8),
                        _mm_srai_epi16(_mm_unpackhi_epi8(lo, lo), 8),
                        _mm_srai_epi16(_mm_unpacklo_epi8(hi, hi), 8),
                        _mm_srai_epi16(_mm_unpackhi_epi8(hi, hi), 8),
                    ];
                    for (acc, v) in self.0.iter_mut().zip(words) {
                        *acc = _mm_add_epi32(*acc, _mm_madd_epi16(xx, v));
                    }
                }
            }
        }
    }
}

/// The same for wasm32 `simd128`: `i8x16.shuffle` interleaves the rows,
/// `i16x8.extend_*_i8x16` sign-extends, `i32x4.dot_i16x8_s` multiplies.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod rows {
    use core::arch::wasm32::*;

    pub struct Rows16([v128; 4]);

    impl Rows16 {
        /// Loads the 16 accumulators.
        #[inline(always)]
        pub fn load(a: &[i32; 16]) -> Self {
            // SAFETY: unaligned 16-byte loads inside the 64 bytes of `a`.
            Rows16(core::array::from_fn(|v| unsafe {
                v128_load(a[4 * v..].as_ptr().cast())
            }))
        }

        /// Stores the 16 accumulators.
        #[inline(always)]
        pub fn store(&self, a: &mut [i32; 16]) {
            for (v, x) in self.0.iter().enumerate() {
                // SAFETY: an unaligned 16-byte store inside the 64 bytes of `a`.
                unsafe { v128_store(a[4 * v..].as_mut_ptr().cast(), *x) }
            }
        }

        /// `acc[l] += x0 * r0[l] + x1 * r1[l]`, `l < 16`.
        #[inline(always)]
        pub fn mac(&mut self, x0: u8, x1: u8, r0: &[u8; 16], r1: &[u8; 16]) {
            let xx = i32x4_splat((x0 as u32 | (x1 as u32) << 16) as i32);
            // SAFETY: unaligned 16-byte loads from two 16-byte arrays.
            let (a, b) = unsafe { (v128_load(r0.as_ptr().cast()), v128_load(r1.as_ptr().cast())) };
            let lo = i8x16_shuffle::<0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23>(a, b);
            let hi =
                i8x16_shuffle::<8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31>(a, b);
            let words = [
                i16x8_extend_low_i8x16(lo),
                i16x8_extend_high_i8x16(lo),
                i16x8_extend_low_i8x16(hi),
                i16x8_extend_high_i8x16(hi),
            ];
            for (acc, v) in self.0.iter_mut().zip(words) {
                *acc = i32x4_add(*acc, i32x4_dot_i16x8(xx, v));
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

    impl<const NV: usize> super::Vectors for Acc<NV> {
        /// Loads `a[..NV * LANES]`.
        #[inline(always)]
        fn load(a: &[i32]) -> Self {
            let a = &a[..NV * LANES];
            // SAFETY: an unaligned 16-byte load from a slice of exactly 4 i32.
            Acc(core::array::from_fn(|v| unsafe {
                v128_load(a[v * LANES..][..LANES].as_ptr().cast())
            }))
        }

        /// Stores into `a[..NV * LANES]`.
        #[inline(always)]
        fn store(&self, a: &mut [i32]) {
            let a = &mut a[..NV * LANES];
            for (v, x) in self.0.iter().enumerate() {
                let dst = &mut a[v * LANES..][..LANES];
                // SAFETY: an unaligned 16-byte store into a slice of exactly 4 i32.
                unsafe { v128_store(dst.as_mut_ptr().cast(), *x) }
            }
        }

        /// All zero.
        #[inline(always)]
        fn zero() -> Self {
            Acc([i32x4_splat(0); NV])
        }

        /// Adds `other` lane by lane.
        #[inline(always)]
        fn merge(&mut self, other: &Self) {
            for (a, b) in self.0.iter_mut().zip(&other.0) {
                *a = i32x4_add(*a, *b);
            }
        }

        /// `a[o] += x[0] * w[o][0] + x[1] * w[o][1]` for the `NV * LANES`
        /// channels of `w` (one i16 pair each).
        #[inline(always)]
        fn mac(&mut self, x: &[u8], w: &[u32]) {
            let w = &w[..NV * LANES];
            let xx = i32x4_splat(super::group(x));
            for (v, a) in self.0.iter_mut().enumerate() {
                let src = &w[v * LANES..][..LANES];
                // SAFETY: an unaligned 16-byte load from a slice of exactly 4 words.
                let wv = unsafe { v128_load(src.as_ptr().cast()) };
                *a = i32x4_add(*a, i32x4_dot_i16x8(xx, wv));
            }
        }
    }
}

pub use isa::LANES;

/// A vector width's accumulators, for every vector count `NV` a conv's
/// output channels may need.
pub trait Family {
    /// 32-bit lanes per vector.
    const LANES: usize;
    /// `NV` vectors of accumulators.
    type Acc<const NV: usize>: Vectors;
}

/// The widest vectors the build compiles in ([`isa`]).
pub struct Build;

impl Family for Build {
    const LANES: usize = isa::LANES;
    type Acc<const NV: usize> = isa::Acc<NV>;
}

/// [`window`] with `F`'s vectors when the output channels fill 1, 2, 4, 8
/// or 16 of them; `false` (nothing done) otherwise.
#[inline(always)]
pub fn window_in<F: Family>(
    acc: &mut [i32],
    input: &[u8],
    g: &ConvGeom,
    packed: &[u32],
    at: (usize, usize),
) -> bool {
    if !g.out_c.is_multiple_of(F::LANES) {
        return false;
    }
    match g.out_c / F::LANES {
        1 => window::<F::Acc<1>>(acc, input, g, packed, at),
        2 => window::<F::Acc<2>>(acc, input, g, packed, at),
        4 => window::<F::Acc<4>>(acc, input, g, packed, at),
        8 => window::<F::Acc<8>>(acc, input, g, packed, at),
        16 => window::<F::Acc<16>>(acc, input, g, packed, at),
        _ => return false,
    }
    true
}

/// The group `x` (GROUP u8 inputs) as the word a vector lane multiplies:
/// a u8 quad as is, or a pair widened to two i16.
#[inline(always)]
fn group(x: &[u8]) -> i32 {
    if GROUP == 4 {
        i32::from_le_bytes([x[0], x[1], x[2], x[3]])
    } else {
        (x[0] as u32 | (x[1] as u32) << 16) as i32
    }
}

/// Accumulates output `(oy, ox)`'s window (every tap inside the input) into
/// `acc[..NV * LANES]` (`A`'s channels), which holds the biases on entry:
/// the packed layout of [`super::packed::pack`] with `g.out_c == NV *
/// LANES`.
#[inline(always)]
pub fn window<A: Vectors>(
    acc: &mut [i32],
    input: &[u8],
    g: &ConvGeom,
    packed: &[u32],
    (oy, ox): (usize, usize),
) {
    let (ic, oc) = (g.in_c, g.out_c);
    let ng = ic / GROUP;
    // Two sets of accumulators, for even and odd groups: each vector's
    // chain of dependent adds is half as long (with few vectors, the
    // latency of the multiply-add, not its throughput, would bound it).
    let (mut a, mut b) = (A::load(acc), A::zero());
    let (ky0, ky1) = taps(oy, g, g.in_h);
    let (kx0, kx1) = taps(ox, g, g.in_w);
    let run = kx1.saturating_sub(kx0);
    let ix0 = (ox * g.stride + kx0).saturating_sub(g.pad);
    let rows_y = if run > 0 { ky0..ky1 } else { 0..0 };
    for ky in rows_y {
        let iy = oy * g.stride + ky - g.pad;
        // The row's taps kx0..kx1: consecutive pixels, whose groups of
        // inputs and packed weight rows follow each other in memory.
        let px = &input[(iy * g.in_w + ix0) * ic..][..run * ic];
        let taps = &packed[(ky * g.k + kx0) * ng * oc..][..run * ng * oc];
        let xs = px.chunks_exact(2 * GROUP);
        let rows = taps.chunks_exact(2 * oc);
        let (x_last, w_last) = (xs.remainder(), rows.remainder());
        for (x, w) in xs.zip(rows) {
            let (x0, x1) = x.split_at(GROUP);
            let (w0, w1) = w.split_at(oc);
            a.mac(x0, w0);
            b.mac(x1, w1);
        }
        if !x_last.is_empty() {
            a.mac(x_last, w_last);
        }
    }
    a.merge(&b);
    a.store(acc);
}

/// Adds the gathered products (`[x, off]` entries, int8 rows `w[off..]`)
/// to every whole block of 16 channels of `acc`, two entries at a time
/// (`rows::Rows16`, accumulators in registers), as
/// `super::mac::mac_gathered_ref` would; returns the channels done (a
/// multiple of 16).
#[inline(always)]
pub fn mac_blocks16(acc: &mut [i32], w: &[u8], ents: &[[u32; 2]]) -> usize {
    let mut done = 0;
    for block in acc.as_chunks_mut::<16>().0 {
        let mut a = rows::Rows16::load(block);
        let (pairs, last) = ents.as_chunks::<2>();
        for [e0, e1] in pairs {
            a.mac(e0[0] as u8, e1[0] as u8, row(w, e0, done), row(w, e1, done));
        }
        if let Some(e) = last.first() {
            let r = row(w, e, done);
            a.mac(e[0] as u8, 0, r, r);
        }
        a.store(block);
        done += 16;
    }
    done
}

/// The 16 weights of entry `e`'s row from channel `ob` on.
#[inline(always)]
fn row<'w>(w: &'w [u8], e: &[u32; 2], ob: usize) -> &'w [u8; 16] {
    match w[e[1] as usize + ob..].first_chunk::<16>() {
        Some(r) => r,
        None => panic!("a gathered row ends past the weights"),
    }
}

/// AVX2 at run time on an x86-64 build that does not compile it in (the
/// default target is SSE2 only): 8 channels a vector with `vpmaddwd`, on
/// the same i16-pair layout as the build's SSE2 kernel (`GROUP` is 2
/// without VNNI), so the weights packed at load serve both. [`Cpu::detect`]
/// asks the CPU once (CPUID, and XGETBV for the OS's YMM state, as
/// `is_x86_feature_detected!` does; `core` has no detection of its own).
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
pub mod avx2 {
    use super::super::packed::{conv_loop, Vector};
    use super::super::{ConvGeom, ConvScratch, Requant};
    use super::{Family, Vectors};
    use core::arch::x86_64::*;
    use core::sync::atomic::{AtomicU8, Ordering};

    // AVX2's `vpmaddwd` takes i16 pairs: the build's layout without VNNI.
    const _: () = assert!(super::GROUP == 2);

    /// 0: not asked yet, 1: no AVX2, 2: AVX2.
    static STATE: AtomicU8 = AtomicU8::new(0);

    /// Proof that this CPU (and its OS) runs AVX2 code: made only by
    /// [`Cpu::detect`], and what [`conv`] asks for.
    #[derive(Clone, Copy, Debug)]
    pub struct Cpu(());

    impl Cpu {
        /// `Some` where the CPU has AVX2 (asked once, then remembered).
        pub fn detect() -> Option<Cpu> {
            let yes = match STATE.load(Ordering::Relaxed) {
                0 => {
                    let yes = detect();
                    STATE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                    yes
                }
                s => s == 2,
            };
            yes.then_some(Cpu(()))
        }
    }

    fn detect() -> bool {
        // CPUID exists on every x86-64 CPU (newer `core` calls it safe).
        #[allow(unused_unsafe)]
        // SAFETY: see above.
        let (max, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1).ecx) };
        // AVX, and OSXSAVE: the OS saves vector state, XGETBV exists.
        if leaf1 & (1 << 28) == 0 || leaf1 & (1 << 27) == 0 || max < 7 {
            return false;
        }
        // SAFETY: OSXSAVE says XGETBV exists.
        let xcr0 = unsafe { xcr0() };
        #[allow(unused_unsafe)]
        // SAFETY: CPUID, leaf 7 is within `max`.
        let leaf7 = unsafe { __cpuid_count(7, 0).ebx };
        // XMM and YMM state enabled by the OS, and AVX2.
        xcr0 & 0b110 == 0b110 && leaf7 & (1 << 5) != 0
    }

    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        _xgetbv(0)
    }

    /// `NV` vectors of 8 channels. Private, as is [`Avx2`]: their safe
    /// methods run AVX2 instructions, so nothing outside [`conv`] (which
    /// needs a [`Cpu`]) may reach them.
    struct Acc<const NV: usize>([__m256i; NV]);

    /// The AVX2 family: only ever used inside [`conv`] (compiled with AVX2).
    struct Avx2;

    impl Family for Avx2 {
        const LANES: usize = 8;
        type Acc<const NV: usize> = Acc<NV>;
    }

    // SAFETY (every `unsafe` block of this impl): the methods run only
    // inlined into `conv`'s AVX2 body, which needs a `Cpu` (AVX2 present); each load or store moves exactly the
    // 32 bytes of an 8-element slice.
    impl<const NV: usize> Vectors for Acc<NV> {
        #[inline(always)]
        fn load(a: &[i32]) -> Self {
            let a = &a[..NV * 8];
            Acc(core::array::from_fn(|v| unsafe {
                _mm256_loadu_si256(a[v * 8..][..8].as_ptr().cast())
            }))
        }

        #[inline(always)]
        fn zero() -> Self {
            Acc([unsafe { _mm256_setzero_si256() }; NV])
        }

        #[inline(always)]
        fn merge(&mut self, other: &Self) {
            for (a, b) in self.0.iter_mut().zip(&other.0) {
                *a = unsafe { _mm256_add_epi32(*a, *b) };
            }
        }

        #[inline(always)]
        fn store(&self, a: &mut [i32]) {
            let a = &mut a[..NV * 8];
            for (v, x) in self.0.iter().enumerate() {
                let dst = &mut a[v * 8..][..8];
                unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), *x) }
            }
        }

        #[inline(always)]
        fn mac(&mut self, x: &[u8], w: &[u32]) {
            let w = &w[..NV * 8];
            let xx = unsafe { _mm256_set1_epi32(super::group(x)) };
            for (v, a) in self.0.iter_mut().enumerate() {
                let src = &w[v * 8..][..8];
                unsafe {
                    let wv = _mm256_loadu_si256(src.as_ptr().cast());
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xx, wv));
                }
            }
        }
    }

    /// [`super::super::conv_packed`] with AVX2 vectors; `cpu` says the CPU
    /// has them.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        cpu: Cpu,
        input: &[u8],
        g: &ConvGeom,
        packed: &[u32],
        biases: &[u8],
        rq: Requant,
        s: ConvScratch,
        out: &mut [u8],
    ) {
        /// All of the conv compiled with AVX2.
        #[target_feature(enable = "avx2")]
        unsafe fn wide(
            input: &[u8],
            g: &ConvGeom,
            packed: &[u32],
            biases: &[u8],
            rq: Requant,
            s: ConvScratch,
            out: &mut [u8],
        ) {
            conv_loop::<Vector<Avx2>>(input, g, packed, biases, rq, s, out);
        }
        let Cpu(()) = cpu;
        // SAFETY: a `Cpu` exists only where the CPU has AVX2.
        unsafe { wide(input, g, packed, biases, rq, s, out) }
    }
}
