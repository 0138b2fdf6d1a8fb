//! Integer layer kernels, one module per operator. Activations are u8 in
//! HWC order (`(y * W + x) * C + c`), weights int8 in the blob layouts (see
//! [`crate::blob`]), accumulators i32.
//!
//! * [`conv1_binary`](fn@conv1_binary): the first conv, over the 4 binary frames (bit rows, no
//!   multiplies), with its max-pool and requantization fused; the table form
//!   of the same layer is [`crate::conv1_table`].
//! * [`conv_u8`](fn@conv_u8): conv over u8 activations.
//! * [`dense_acc`] / [`dense_u8`]: dense layers (the last one stops at the
//!   accumulators: the Q-values).
//! * `mac`: the shared multiply-accumulate every kernel ends in.
//!
//! All kernels put the output channel in the innermost loop, over contiguous
//! weights, so the compiler vectorises the multiply-accumulate; zero activations
//! (ReLU outputs are sparse) and zero input bits are skipped.

mod conv1_binary;
mod conv_u8;
mod dense;
mod mac;

pub use conv1_binary::{conv1_binary, conv1_row_sums, Conv1Scratch};
pub use conv_u8::conv_u8;
pub use dense::{dense_acc, dense_u8};
pub use mac::Gather;

use crate::blob::le_i32;
use crate::requant::requantize_u8;

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
    #[inline(always)]
    pub(crate) fn apply(&self, acc: &[i32], out: &mut [u8]) {
        for (o, (q, &a)) in out.iter_mut().zip(acc).enumerate() {
            let shift = self.shifts.get(o).copied().unwrap_or(0);
            *q = requantize_u8(a, le_i32(self.multipliers, o), shift);
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
