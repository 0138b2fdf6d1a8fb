//! Integer layer kernels. Activations are u8 in HWC order (`(y * W + x) * C + c`),
//! weights int8 in the blob layouts (see [`crate::blob`]), accumulators i32.
//!
//! All kernels put the output channel in the innermost loop, over contiguous
//! weights, so the compiler vectorises the multiply-accumulate; zero activations
//! (ReLU outputs are sparse) and zero input bits are skipped.

use crate::blob::le_i32;
use crate::requant::requantize_u8;
use flappy::obs::ROW_BYTES;
use flappy::Frame;

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
    fn apply(&self, acc: &[i32], out: &mut [u8]) {
        for (o, (q, &a)) in out.iter_mut().zip(acc).enumerate() {
            let shift = self.shifts.get(o).copied().unwrap_or(0);
            *q = requantize_u8(a, le_i32(self.multipliers, o), shift);
        }
    }
}

#[inline(always)]
fn init_bias(acc: &mut [i32], biases: &[u8]) {
    for (a, b) in acc.iter_mut().zip(biases.chunks_exact(4)) {
        *a = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

#[inline(always)]
fn add_i8(acc: &mut [i32], w: &[u8]) {
    for (a, &wv) in acc.iter_mut().zip(w) {
        *a += wv as i8 as i32;
    }
}

/// `acc += x * w` (u8 times i8; the product fits in i16).
#[inline(always)]
fn mac_i8(acc: &mut [i32], w: &[u8], x: u8) {
    let x = x as i32;
    for (a, &wv) in acc.iter_mut().zip(w) {
        *a += x * (wv as i8 as i32);
    }
}

/// `acc += x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3`: four inputs per pass over
/// the accumulators (a quarter of the accumulator loads and stores).
#[inline(always)]
fn mac4_i8(acc: &mut [i32], w: [&[u8]; 4], x: [u8; 4]) {
    let [w0, w1, w2, w3] = w;
    let [x0, x1, x2, x3] = x.map(|v| v as i32);
    for ((((a, &p0), &p1), &p2), &p3) in acc.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
        *a += x0 * (p0 as i8 as i32)
            + x1 * (p1 as i8 as i32)
            + x2 * (p2 as i8 as i32)
            + x3 * (p3 as i8 as i32);
    }
}

/// `acc += sum_i x[i] * w[i * n ..][..n]`, skipping zero inputs; the non-zero
/// inputs are gathered four at a time.
#[inline(always)]
fn mac_rows(acc: &mut [i32], x: &[u8], w: &[u8], n: usize) {
    let mut idx = [0usize; 4];
    let mut cnt = 0;
    for (i, &a) in x.iter().enumerate() {
        if a != 0 {
            idx[cnt] = i;
            cnt += 1;
            if cnt == 4 {
                let rows = idx.map(|j| &w[j * n..][..n]);
                mac4_i8(acc, rows, idx.map(|j| x[j]));
                cnt = 0;
            }
        }
    }
    for &j in &idx[..cnt] {
        mac_i8(acc, &w[j * n..][..n], x[j]);
    }
}

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
    let (ph, pw) = (g.out_h() / pool, g.out_w() / pool);
    let full: u32 = if k >= 32 { u32::MAX } else { (1u32 << k) - 1 };
    let acc = &mut s.acc[..oc_n];
    for py in 0..ph {
        let prow = &mut s.pool_row[..pw * oc_n];
        prow.fill(i32::MIN);
        for dy in 0..pool {
            let oy = py * pool + dy;
            let y0 = (oy * g.stride) as isize - g.pad as isize;
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
                );
                max_into(dst, acc);
            }
        }
        let orow = &mut out[py * pw * oc_n..][..pw * oc_n];
        for px in 0..pw {
            rq.apply(&prow[px * oc_n..][..oc_n], &mut orow[px * oc_n..][..oc_n]);
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
) {
    let acc = &mut acc[..oc_n];
    init_bias(acc, biases);
    for c in 0..in_c {
        for ky in 0..k {
            let bits = ((rows[c * k + ky] << x0) >> (128 - k)) as u32;
            if bits == 0 {
                continue;
            }
            if bits == full {
                add_i8_i32(acc, &rowsum[(c * k + ky) * oc_n..][..oc_n]);
                continue;
            }
            let mut b = bits;
            while b != 0 {
                let tz = b.trailing_zeros() as usize;
                b &= b - 1;
                let kx = k - 1 - tz;
                add_i8(acc, &weights[((ky * k + kx) * in_c + c) * oc_n..][..oc_n]);
            }
        }
    }
}

#[inline(always)]
fn add_i8_i32(acc: &mut [i32], v: &[i32]) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a += x;
    }
}

/// Convolution over u8 HWC activations, int8 HWIO weights, then requantization
/// with ReLU to u8 HWC. Zero activations are skipped.
pub fn conv_u8(
    input: &[u8],
    g: &ConvGeom,
    weights: &[u8],
    biases: &[u8],
    rq: Requant,
    acc: &mut [i32],
    out: &mut [u8],
) {
    let (oh, ow, oc_n, ic_n, k) = (g.out_h(), g.out_w(), g.out_c, g.in_c, g.k);
    let acc = &mut acc[..oc_n];
    for oy in 0..oh {
        for ox in 0..ow {
            init_bias(acc, biases);
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
                    let wbase = &weights[(ky * k + kx) * ic_n * oc_n..][..ic_n * oc_n];
                    mac_rows(acc, px, wbase, oc_n);
                }
            }
            rq.apply(acc, &mut out[(oy * ow + ox) * oc_n..][..oc_n]);
        }
    }
}

/// Dense layer, int8 input-major weights (`w[i * out + o]`): accumulates into
/// `acc[..out]` (bias included), skipping zero inputs. No requantization.
pub fn dense_acc(input: &[u8], out_n: usize, weights: &[u8], biases: &[u8], acc: &mut [i32]) {
    let acc = &mut acc[..out_n];
    init_bias(acc, biases);
    mac_rows(acc, input, &weights[..input.len() * out_n], out_n);
}

/// Dense layer with requantization and ReLU to u8.
pub fn dense_u8(
    input: &[u8],
    out_n: usize,
    weights: &[u8],
    biases: &[u8],
    rq: Requant,
    acc: &mut [i32],
    out: &mut [u8],
) {
    dense_acc(input, out_n, weights, biases, acc);
    rq.apply(&acc[..out_n], &mut out[..out_n]);
}
