//! Convolution over u8 activations.

use super::gather::Gather;
use super::mac::{gather_nonzero, mac_gathered};
use super::{init_bias, ConvGeom, Requant};

/// Working memory of [`conv_u8`].
pub struct ConvScratch<'s> {
    /// Accumulators of one output position, `>= out_c`.
    pub acc: &'s mut [i32],
    /// The biases as i32, `>= out_c` (decoded once per call).
    pub bias: &'s mut [i32],
    /// The non-zero inputs of one position.
    pub gather: &'s mut Gather,
}

/// Convolution over u8 HWC activations, int8 HWIO weights, then requantization
/// with ReLU to u8 HWC. The non-zero inputs under each window are gathered and
/// multiplied in register blocks of output channels.
///
/// A window's taps that fall in the padding are cut off once per row and
/// column of outputs: what is left of a kernel row is a contiguous run of
/// input pixels, and so of HWC bytes, whose weight rows are `out_c` apart.
pub fn conv_u8(
    input: &[u8],
    g: &ConvGeom,
    weights: &[u8],
    biases: &[u8],
    rq: Requant,
    s: ConvScratch,
    out: &mut [u8],
) {
    let (oh, ow, oc_n, ic_n, k) = (g.out_h(), g.out_w(), g.out_c, g.in_c, g.k);
    let (acc, gather) = (&mut s.acc[..oc_n], s.gather);
    let bias = &mut s.bias[..oc_n];
    init_bias(bias, biases);
    for oy in 0..oh {
        let (ky0, ky1) = taps(oy, g, g.in_h);
        for ox in 0..ow {
            let (kx0, kx1) = taps(ox, g, g.in_w);
            acc.copy_from_slice(bias);
            gather.clear();
            // The run's bytes and its first input column (a tap in the
            // input, so `>= 0`, when there is one).
            let run = (kx1 - kx0) * ic_n;
            let ix0 = (ox * g.stride + kx0).saturating_sub(g.pad);
            let rows = if run > 0 { ky0..ky1 } else { 0..0 };
            for ky in rows {
                let iy = oy * g.stride + ky - g.pad;
                let px = &input[(iy * g.in_w + ix0) * ic_n..][..run];
                let off = (ky * k + kx0) * ic_n * oc_n;
                gather_nonzero(acc, weights, gather, px, off, oc_n);
            }
            mac_gathered(acc, weights, gather);
            rq.apply(acc, &mut out[(oy * ow + ox) * oc_n..][..oc_n]);
        }
    }
}

/// The kernel taps `t0..t1` of output `o` whose input index `o * stride +
/// t - pad` lies in `0..len` (an empty range if none does).
#[inline(always)]
pub(super) fn taps(o: usize, g: &ConvGeom, len: usize) -> (usize, usize) {
    let start = o * g.stride;
    let t0 = g.pad.saturating_sub(start).min(g.k);
    let t1 = (len + g.pad).saturating_sub(start).min(g.k);
    (t0, t1.max(t0))
}
