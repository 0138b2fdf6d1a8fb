//! The first conv over the 4 binary frames: each kernel row's input bits
//! are read as one integer, so a window costs additions of weight rows, not
//! multiplies; max-pool and requantization are fused.

use super::gather::{Gather, GATHER_CAP};
use super::mac::{add_gathered, add_i8};
use super::{init_bias, nonneg_multipliers, requant_nonneg, ConvGeom, Requant};
use crate::SIMD_HOST;
use flappy::obs::ROW_BYTES;
use flappy::Frame;

/// Row sums of the first (binary) conv for the all-ones fast path:
/// `rowsum[(c * k + ky) * out_c + oc] = sum over kx of w[ky][kx][c][oc]`.
pub fn conv1_row_sums(g: &ConvGeom, weights: &[u8], rowsum: &mut [i32]) {
    for c in 0..g.in_c {
        for ky in 0..g.k {
            let dst = &mut rowsum[(c * g.k + ky) * g.out_c..][..g.out_c];
            dst.fill(0);
            for kx in 0..g.k {
                add_i8(
                    dst,
                    &weights[((ky * g.k + kx) * g.in_c + c) * g.out_c..][..g.out_c],
                );
            }
        }
    }
}

/// One frame row as a u128: column `x` of the padded row (`x` in `0..80 + 2 * pad`)
/// at bit `127 - x`; zero outside the frame (padding).
#[inline(always)]
fn padded_row(frame: &Frame, y: isize, pad: usize) -> u128 {
    if y < 0 || y as usize >= flappy::FRAME_SIDE {
        return 0;
    }
    let mut v = 0u128;
    for &b in frame.row(y as usize) {
        v = (v << 8) | b as u128;
    }
    (v << (128 - 8 * ROW_BYTES)) >> pad
}

/// Working memory of [`conv1_binary`].
pub struct Conv1Scratch<'s> {
    /// Accumulators of one output position, `>= out_c`.
    pub acc: &'s mut [i32],
    /// Running max of one pooled output row, `>= pooled_w * out_c`.
    pub pool_row: &'s mut [i32],
    /// Padded input rows of one output row, `>= in_c * k`.
    pub rows: &'s mut [u128],
    /// Row sums from [`conv1_row_sums`].
    pub rowsum: &'s [i32],
    /// The set bits' weight rows of one output position.
    pub gather: &'s mut Gather,
}

/// First layer: convolution over the 4 binary frames, then max-pool (window and
/// stride `pool`, 1 = none) and requantization with ReLU, fused; writes the
/// pooled u8 map (HWC) to `out`. Pooling runs on accumulators (requantization
/// is monotone for non-negative multipliers), so the pre-pool map is never stored.
///
/// For each (channel, kernel row) the `k` input bits under the window are read
/// as one integer: 0 is skipped, all ones adds the precomputed row sum, otherwise
/// the set bits' weight rows are added.
#[allow(clippy::too_many_arguments)]
pub fn conv1_binary(
    frames: [&Frame; 4],
    g: &ConvGeom,
    pool: usize,
    weights: &[u8],
    biases: &[u8],
    rq: Requant,
    s: Conv1Scratch,
    out: &mut [u8],
) {
    let (k, oc_n) = (g.k, g.out_c);
    let pw = g.out_w() / pool;
    let full: u32 = if k >= 32 { u32::MAX } else { (1u32 << k) - 1 };
    let acc = &mut s.acc[..oc_n];
    pooled_rows(g, pool, &rq, s.pool_row, out, move |y0, prow| {
        for (c, frame) in frames.iter().enumerate().take(g.in_c) {
            for ky in 0..k {
                s.rows[c * k + ky] = padded_row(frame, y0 + ky as isize, g.pad);
            }
        }
        for ox in 0..pw * pool {
            let dst = &mut prow[(ox / pool) * oc_n..][..oc_n];
            let x0 = ox * g.stride;
            conv1_position(
                acc,
                oc_n,
                &s.rows[..],
                x0,
                k,
                g.in_c,
                full,
                weights,
                biases,
                s.rowsum,
                s.gather,
            );
            max_into(dst, acc);
        }
    });
}

/// The pooled-row loop of the first layer's fused kernels ([`conv1_binary`]
/// and `crate::conv1_table`): per pooled output row, the running maxima
/// (`pooled_w * out_c` of `pool_row`) start at `i32::MIN`; `conv_row(y0,
/// maxima)` folds in each of the `pool` conv rows, `y0` being the input row
/// its kernel rows start at (padding included); then the maxima are
/// requantized with ReLU into the row of `out` (branch-free on SIMD hosts
/// when every multiplier is non-negative, the same bytes).
#[inline(always)]
pub(crate) fn pooled_rows(
    g: &ConvGeom,
    pool: usize,
    rq: &Requant,
    pool_row: &mut [i32],
    out: &mut [u8],
    mut conv_row: impl FnMut(isize, &mut [i32]),
) {
    let oc_n = g.out_c;
    let (ph, pw) = (g.out_h() / pool, g.out_w() / pool);
    let nonneg = SIMD_HOST && nonneg_multipliers(rq);
    for py in 0..ph {
        let prow = &mut pool_row[..pw * oc_n];
        prow.fill(i32::MIN);
        for dy in 0..pool {
            let oy = py * pool + dy;
            conv_row((oy * g.stride) as isize - g.pad as isize, prow);
        }
        let orow = &mut out[py * pw * oc_n..][..pw * oc_n];
        for (acc, q) in prow.chunks_exact(oc_n).zip(orow.chunks_exact_mut(oc_n)) {
            if nonneg {
                requant_nonneg(rq, acc, q);
            } else {
                rq.apply(acc, q);
            }
        }
    }
}

#[inline(always)]
fn max_into(dst: &mut [i32], a: &[i32]) {
    for (m, &v) in dst.iter_mut().zip(a) {
        *m = (*m).max(v);
    }
}

/// Accumulators of one first-layer output position whose window starts at
/// padded column `x0` (rows from [`padded_row`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn conv1_position(
    acc: &mut [i32],
    oc_n: usize,
    rows: &[u128],
    x0: usize,
    k: usize,
    in_c: usize,
    full: u32,
    weights: &[u8],
    biases: &[u8],
    rowsum: &[i32],
    gather: &mut Gather,
) {
    let acc = &mut acc[..oc_n];
    init_bias(acc, biases);
    let (offs, row_offs) = gather.words();
    let (mut n, mut nr) = (0usize, 0usize);
    // Window bits: padded columns x0..x0 + k of a row are bits
    // 127 - x0 ..= 128 - k - x0; x0 + k <= padded width <= 128 (validated).
    let sh = 128 - k - x0;
    for c in 0..in_c {
        for ky in 0..k {
            let bits = (rows[c * k + ky] >> sh) as u32 & full;
            if bits == 0 {
                continue;
            }
            if bits == full {
                row_offs[nr] = ((c * k + ky) * oc_n) as u32;
                nr += 1;
                continue;
            }
            if n + k > GATHER_CAP {
                add_gathered(acc, weights, &offs[..n], rowsum, &[]);
                n = 0;
            }
            // Branch-free expansion of the set bits (a data-dependent loop
            // exit would be mispredicted on most rows): every column writes
            // its weight-row offset, only the set ones advance `n`.
            let (base, step) = ((ky * k * in_c + c) * oc_n, in_c * oc_n);
            let dst = &mut offs[n..n + k];
            let mut m = 0;
            for kx in 0..k {
                // m <= kx < k: in bounds.
                dst[m] = (base + kx * step) as u32;
                m += ((bits >> (k - 1 - kx)) & 1) as usize;
            }
            n += m;
        }
    }
    add_gathered(acc, weights, &offs[..n], rowsum, &row_offs[..nr]);
}
