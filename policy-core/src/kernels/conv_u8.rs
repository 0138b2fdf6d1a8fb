//! Convolution over u8 activations.

use super::mac::{gather_nonzero, mac_gathered, Gather};
use super::{init_bias, ConvGeom, Requant};

/// Convolution over u8 HWC activations, int8 HWIO weights, then requantization
/// with ReLU to u8 HWC. The non-zero inputs under each window are gathered and
/// multiplied in register blocks of output channels.
#[allow(clippy::too_many_arguments)]
pub fn conv_u8(
    input: &[u8],
    g: &ConvGeom,
    weights: &[u8],
    biases: &[u8],
    rq: Requant,
    acc: &mut [i32],
    gather: &mut Gather,
    out: &mut [u8],
) {
    let (oh, ow, oc_n, ic_n, k) = (g.out_h(), g.out_w(), g.out_c, g.in_c, g.k);
    let acc = &mut acc[..oc_n];
    for oy in 0..oh {
        for ox in 0..ow {
            init_bias(acc, biases);
            let mut n = 0;
            for ky in 0..k {
                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                if iy < 0 || iy as usize >= g.in_h {
                    continue;
                }
                for kx in 0..k {
                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                    if ix < 0 || ix as usize >= g.in_w {
                        continue;
                    }
                    let px = &input[(iy as usize * g.in_w + ix as usize) * ic_n..][..ic_n];
                    let off = (ky * k + kx) * ic_n * oc_n;
                    gather_nonzero(acc, weights, gather, &mut n, px, off, oc_n);
                }
            }
            mac_gathered(acc, weights, &gather.offs[..n], &gather.vals[..n]);
            rq.apply(acc, &mut out[(oy * ow + ox) * oc_n..][..oc_n]);
        }
    }
}
