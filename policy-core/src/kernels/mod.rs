//! Integer layer kernels, one module per operator. Activations are u8 in
//! HWC order (`(y * W + x) * C + c`), weights int8 in the blob layouts (see
//! [`crate::blob`]), accumulators i32.
//!
//! * [`conv1_binary`](fn@conv1_binary): the first conv, over the 4 binary frames (bit rows, no
//!   multiplies), with its max-pool and requantization fused; the table form
//!   of the same layer is [`crate::conv1_table`].
//! * [`conv_u8`](fn@conv_u8): conv over u8 activations; [`conv_packed`]
//!   the same on SIMD hosts, from weights re-laid in groups of input
//!   channels (`packed`).
//! * [`dense_acc`] / [`dense_u8`]: dense layers (the last one stops at the
//!   accumulators: the Q-values).
//! * `gather` and `mac`: the list of non-zero inputs and the shared
//!   multiply-accumulate every kernel ends in; `dsp`: its Cortex-M4 form
//!   (`target_feature = "dsp"`); `simd`: the vector multiply-add of the
//!   SIMD hosts (x86-64, wasm32 `simd128`) for `packed` and the dense
//!   layers, and AVX2 chosen at run time by an x86-64 build without it
//!   ([`conv_lanes`]). Those two are the crate's only `unsafe` code.
//!
//! All kernels put the output channel in the innermost loop, over contiguous
//! weights, so the compiler vectorises the multiply-accumulate; zero activations
//! (ReLU outputs are sparse) and zero input bits are skipped.

mod conv1_binary;
mod conv_u8;
mod dense;
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
mod dsp;
mod gather;
mod mac;
mod packed;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
#[allow(unsafe_code)]
mod simd;

pub(crate) use conv1_binary::pooled_rows;
pub use conv1_binary::{conv1_binary, conv1_row_sums, Conv1Scratch};
pub use conv_u8::{conv_u8, ConvScratch};
pub use dense::{dense_acc, dense_u8};
pub use gather::Gather;
#[cfg(feature = "test-support")]
pub use gather::GATHER_CAP;
#[cfg(feature = "test-support")]
pub use mac::{mac_gathered, mac_gathered_ref};
pub use packed::{conv_packed, nonneg_multipliers, pack, requant_nonneg};
#[cfg(feature = "test-support")]
pub use packed::{conv_packed_build, packed_len, GROUP};

/// 32-bit lanes per vector of the packed convs (`kernels::conv_packed`) on this
/// CPU: the build's SIMD width (4 for SSE2 or wasm `simd128`, 8 for AVX2,
/// 16 for AVX-512 VNNI), 8 where an x86-64 build without AVX2 finds it at
/// run time, 1 on targets without vectors.
///
/// ```
/// let lanes = policy_core::conv_lanes();
/// assert!([1, 4, 8, 16].contains(&lanes));
/// ```
pub fn conv_lanes() -> usize {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
    if simd::avx2::Cpu::detect().is_some() {
        return 8;
    }
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    return simd::LANES;
    #[allow(unreachable_code)]
    1
}

use crate::requant::requantize_relu;

/// Geometry of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
}

impl ConvGeom {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad - self.k) / self.stride + 1
    }
}

/// Requantization parameters of one layer, borrowed from the blob.
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    /// i32 LE Q31 mantissas per output channel.
    pub multipliers: &'a [u8],
    /// Right shifts per output channel.
    pub shifts: &'a [u8],
}

impl Requant<'_> {
    /// `out[o] = requantize_u8(acc[o], m0[o], shift[o])` for the channels
    /// that have all three (a validated layer has them for every output), by
    /// [`requantize_relu`]: an accumulator `<= 0` costs a test.
    #[inline(always)]
    pub(crate) fn apply(&self, acc: &[i32], out: &mut [u8]) {
        let params = self.multipliers.as_chunks::<4>().0.iter().zip(self.shifts);
        for ((q, &a), (m, &shift)) in out.iter_mut().zip(acc).zip(params) {
            // The zero test first: a ReLU zero reads only the multiplier's sign.
            *q = if a <= 0 && m[3] < 0x80 {
                0
            } else {
                requantize_relu(a, i32::from_le_bytes(*m), shift)
            };
        }
    }
}

/// Sets every accumulator to its int32 bias (little-endian bytes).
#[inline(always)]
pub(crate) fn init_bias(acc: &mut [i32], biases: &[u8]) {
    for (a, b) in acc.iter_mut().zip(biases.chunks_exact(4)) {
        *a = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}
