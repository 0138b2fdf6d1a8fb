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
    pub(crate) fn apply(&self, acc: &[i32], out: &mut [u8]) {
        for (o, (q, &a)) in out.iter_mut().zip(acc).enumerate() {
            let shift = self.shifts.get(o).copied().unwrap_or(0);
            *q = requantize_u8(a, le_i32(self.multipliers, o), shift);
        }
    }
}

#[inline(always)]
pub(crate) fn init_bias(acc: &mut [i32], biases: &[u8]) {
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

/// Capacity of a [`Gather`] list: non-zero inputs collected per pass.
pub const GATHER_CAP: usize = 256;
// The binary kernel sums up to GATHER_CAP int8 weights in i16, and up to
// GATHER_CAP offset weights (0..=255) in 16-bit SWAR lanes.
const _: () = assert!(GATHER_CAP * 128 <= 1 << 15);
const _: () = assert!(GATHER_CAP * 255 < 1 << 16);
// The u8 kernel sums up to GATHER_CAP products |x * w| <= 255 * 128 in i32.
const _: () = assert!(GATHER_CAP * 255 * 128 < i32::MAX as usize);
/// Capacity of the all-ones row list of the first conv (`in_c * k <= 4 * MAX_K1`).
const ROWS_CAP: usize = 4 * crate::MAX_K1;
/// Output channels per register block of the multiply-accumulate.
const BLOCK: usize = 16;

/// Working memory of the blocked multiply-accumulate: the non-zero inputs of
/// one output position (or of a chunk of a dense input), as weight-row offsets
/// and values, so that each block of [`BLOCK`] accumulators stays in registers
/// while it walks the list (zero inputs cost nothing but the gather).
#[derive(Clone)]
pub struct Gather {
    pub(crate) offs: [u32; GATHER_CAP],
    vals: [u8; GATHER_CAP],
    row_offs: [u32; ROWS_CAP],
}

impl Gather {
    /// An empty list.
    pub const fn new() -> Self {
        Gather {
            offs: [0; GATHER_CAP],
            vals: [0; GATHER_CAP],
            row_offs: [0; ROWS_CAP],
        }
    }
}

impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}

/// `w[o + ob..][..N]`, with one bounds check: `o` and `ob` both fit in 32
/// bits (`ob` is an output channel, `< ACC_CAP`), so the compiler knows
/// `o + ob + N` does not overflow and only checks the end.
#[inline(always)]
fn row<const N: usize>(w: &[u8], o: u32, ob: usize) -> &[u8] {
    let a = o as usize + (ob as u32) as usize;
    &w[a..a + N]
}

/// `acc[l] += sum_j vals[j] * w[offs[j] + ob + l]` for `l < N`. Inputs are
/// taken in pairs, `x0 * w0 + x1 * w1` with 16-bit operands summed into i32:
/// the shape of SSE2 `pmaddwd` and Cortex-M4 `SMLAD`. Kept out of line so the
/// compiler vectorises it on its own.
#[inline(never)]
fn mac_block<const N: usize>(acc: &mut [i32], w: &[u8], offs: &[u32], vals: &[u8], ob: usize) {
    debug_assert!(ob < crate::ACC_CAP);
    let mut a = [0i32; N];
    let quads = offs.len() / 4;
    for (o, v) in offs[..4 * quads]
        .chunks_exact(4)
        .zip(vals[..4 * quads].chunks_exact(4))
    {
        let s = [o[0], o[1], o[2], o[3]].map(|o| o as usize + (ob as u32) as usize);
        // One bounds check for the four rows (the compiler derives the others).
        let top = s[0].max(s[1]).max(s[2]).max(s[3]);
        let w = &w[..top + N];
        let (w0, w1, w2, w3) = (
            &w[s[0]..s[0] + N],
            &w[s[1]..s[1] + N],
            &w[s[2]..s[2] + N],
            &w[s[3]..s[3] + N],
        );
        let x = [v[0], v[1], v[2], v[3]].map(|x| x as i16 as i32);
        for l in 0..N {
            a[l] += x[0] * (w0[l] as i8 as i16 as i32)
                + x[1] * (w1[l] as i8 as i16 as i32)
                + x[2] * (w2[l] as i8 as i16 as i32)
                + x[3] * (w3[l] as i8 as i16 as i32);
        }
    }
    for j in 4 * quads..offs.len() {
        let w0 = row::<N>(w, offs[j], ob);
        let x0 = vals[j] as i32;
        for l in 0..N {
            a[l] += x0 * (w0[l] as i8 as i32);
        }
    }
    // |a| <= GATHER_CAP * 255 * 128 < 2^31.
    for (d, &v) in acc[ob..ob + N].iter_mut().zip(&a) {
        *d += v;
    }
}

/// [`mac_block`] over all of `acc` (blocks of 16, then 8, 4, 1 channels).
#[inline(always)]
fn mac_gathered(acc: &mut [i32], w: &[u8], offs: &[u32], vals: &[u8]) {
    let n = acc.len();
    let mut ob = 0;
    while ob + BLOCK <= n {
        mac_block::<BLOCK>(acc, w, offs, vals, ob);
        ob += BLOCK;
    }
    if ob + 8 <= n {
        mac_block::<8>(acc, w, offs, vals, ob);
        ob += 8;
    }
    if ob + 4 <= n {
        mac_block::<4>(acc, w, offs, vals, ob);
        ob += 4;
    }
    while ob < n {
        mac_block::<1>(acc, w, offs, vals, ob);
        ob += 1;
    }
}

/// `acc[l] += sum_j w[offs[j] + ob + l]` (binary inputs) plus
/// `sum_j rowsum[row_offs[j] + ob + l]` (all-ones kernel rows), `l < N`.
/// Kept out of line so the compiler vectorises it on its own.
#[inline(never)]
fn add_block<const N: usize>(
    acc: &mut [i32],
    w: &[u8],
    offs: &[u32],
    rowsum: &[i32],
    row_offs: &[u32],
    ob: usize,
) {
    let mut a = [0i32; N];
    a.copy_from_slice(&acc[ob..ob + N]);
    for &o in row_offs {
        let r = &rowsum[o as usize + ob..][..N];
        for l in 0..N {
            a[l] += r[l];
        }
    }
    // At most GATHER_CAP = 256 int8 weights are summed per lane: the sum lies in
    // [-256 * 128, 256 * 127], inside i16, so it is accumulated in i16 (twice
    // the lanes per vector) and widened once.
    debug_assert!(offs.len() <= GATHER_CAP);
    if N == 16 {
        let s = sum_rows_16(w, offs, ob);
        for l in 0..N {
            a[l] += s[l];
        }
    } else {
        let s16 = sum_rows_i16::<N>(w, offs, ob);
        for l in 0..N {
            a[l] += s16[l] as i32;
        }
    }
    acc[ob..ob + N].copy_from_slice(&a);
}

/// `sum_j w[offs[j] + ob + l]` for `l < N`, in i16 (exact for at most
/// [`GATHER_CAP`] rows). Out of line: vectorised 8 lanes per 128-bit register.
#[inline(never)]
fn sum_rows_i16<const N: usize>(w: &[u8], offs: &[u32], ob: usize) -> [i16; N] {
    let mut s16 = [0i16; N];
    for &o in offs {
        let w0 = &w[o as usize + ob..][..N];
        for l in 0..N {
            s16[l] = s16[l].wrapping_add(w0[l] as i8 as i16);
        }
    }
    s16
}

/// `sum_j w[offs[j] + ob + l]` for `l < 16`, SIMD within a register: each
/// weight is offset to `w + 128` in `0..=255` (`xor 0x80`), and the bytes of a
/// 32-bit word are summed as two 16-bit lanes per word (even and odd bytes),
/// which cannot carry into each other for at most 256 rows (`256 * 255 <
/// 2^16`). Plain 32-bit loads, ands, shifts and adds: half the instructions
/// of byte-wise sums on a Cortex-M, and vectorised on hosts.
#[inline(never)]
fn sum_rows_16(w: &[u8], offs: &[u32], ob: usize) -> [i32; 16] {
    const LO: u32 = 0x00FF_00FF;
    let (mut even, mut odd) = ([0u32; 4], [0u32; 4]);
    for &o in offs {
        let row = &w[o as usize + ob..][..16];
        for c in 0..4 {
            let v =
                u32::from_le_bytes([row[4 * c], row[4 * c + 1], row[4 * c + 2], row[4 * c + 3]])
                    ^ 0x8080_8080;
            even[c] = even[c].wrapping_add(v & LO);
            odd[c] = odd[c].wrapping_add((v >> 8) & LO);
        }
    }
    let bias = 128 * offs.len() as i32;
    let mut out = [0i32; 16];
    for c in 0..4 {
        out[4 * c] = (even[c] & 0xFFFF) as i32 - bias;
        out[4 * c + 1] = (odd[c] & 0xFFFF) as i32 - bias;
        out[4 * c + 2] = (even[c] >> 16) as i32 - bias;
        out[4 * c + 3] = (odd[c] >> 16) as i32 - bias;
    }
    out
}

/// [`add_block`] over all of `acc`.
#[inline(always)]
fn add_gathered(acc: &mut [i32], w: &[u8], offs: &[u32], rowsum: &[i32], row_offs: &[u32]) {
    let n = acc.len();
    let mut ob = 0;
    while ob + BLOCK <= n {
        add_block::<BLOCK>(acc, w, offs, rowsum, row_offs, ob);
        ob += BLOCK;
    }
    if ob + 8 <= n {
        add_block::<8>(acc, w, offs, rowsum, row_offs, ob);
        ob += 8;
    }
    if ob + 4 <= n {
        add_block::<4>(acc, w, offs, rowsum, row_offs, ob);
        ob += 4;
    }
    while ob < n {
        add_block::<1>(acc, w, offs, rowsum, row_offs, ob);
        ob += 1;
    }
}

/// Appends the non-zero values of `x` to the gather list at `*n` (flushing
/// the list into `acc` first when it could overflow), with weight-row offsets
/// `off0 + i * stride`. Branch-free per value: every value is written, only
/// the non-zero ones advance the list.
#[inline(always)]
fn gather_nonzero(
    acc: &mut [i32],
    w: &[u8],
    g: &mut Gather,
    n: &mut usize,
    x: &[u8],
    off0: usize,
    stride: usize,
) {
    let mut off = off0;
    for part in x.chunks(GATHER_CAP) {
        if *n + part.len() > GATHER_CAP {
            mac_gathered(acc, w, &g.offs[..*n], &g.vals[..*n]);
            *n = 0;
        }
        let offs = &mut g.offs[*n..*n + part.len()];
        let vals = &mut g.vals[*n..*n + part.len()];
        let mut m = 0;
        for &v in part {
            // m <= index of v < part.len(): in bounds.
            offs[m] = off as u32;
            vals[m] = v;
            m += (v != 0) as usize;
            off += stride;
        }
        *n += m;
    }
}

/// `acc += sum_i x[i] * w[i * n ..][..n]` over the non-zero `x[i]`, gathered
/// in chunks of [`GATHER_CAP`].
#[inline(always)]
fn mac_rows(acc: &mut [i32], x: &[u8], w: &[u8], n: usize, g: &mut Gather) {
    let mut cnt = 0;
    gather_nonzero(acc, w, g, &mut cnt, x, 0, n);
    mac_gathered(acc, w, &g.offs[..cnt], &g.vals[..cnt]);
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
pub(crate) fn padded_row(frame: &Frame, y: isize, pad: usize) -> u128 {
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
                    s.gather,
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
pub(crate) fn max_into(dst: &mut [i32], a: &[i32]) {
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
                gather.row_offs[nr] = ((c * k + ky) * oc_n) as u32;
                nr += 1;
                continue;
            }
            if n + k > GATHER_CAP {
                add_gathered(acc, weights, &gather.offs[..n], rowsum, &[]);
                n = 0;
            }
            // Branch-free expansion of the set bits (a data-dependent loop
            // exit would be mispredicted on most rows): every column writes
            // its weight-row offset, only the set ones advance `n`.
            let (base, step) = ((ky * k * in_c + c) * oc_n, in_c * oc_n);
            let dst = &mut gather.offs[n..n + k];
            let mut m = 0;
            for kx in 0..k {
                // m <= kx < k: in bounds.
                dst[m] = (base + kx * step) as u32;
                m += ((bits >> (k - 1 - kx)) & 1) as usize;
            }
            n += m;
        }
    }
    add_gathered(
        acc,
        weights,
        &gather.offs[..n],
        rowsum,
        &gather.row_offs[..nr],
    );
}

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

/// Dense layer, int8 input-major weights (`w[i * out + o]`): accumulates into
/// `acc[..out]` (bias included), skipping zero inputs. No requantization.
pub fn dense_acc(
    input: &[u8],
    out_n: usize,
    weights: &[u8],
    biases: &[u8],
    acc: &mut [i32],
    gather: &mut Gather,
) {
    let acc = &mut acc[..out_n];
    init_bias(acc, biases);
    mac_rows(acc, input, &weights[..input.len() * out_n], out_n, gather);
}

/// Dense layer with requantization and ReLU to u8.
#[allow(clippy::too_many_arguments)]
pub fn dense_u8(
    input: &[u8],
    out_n: usize,
    weights: &[u8],
    biases: &[u8],
    rq: Requant,
    acc: &mut [i32],
    gather: &mut Gather,
    out: &mut [u8],
) {
    dense_acc(input, out_n, weights, biases, acc, gather);
    rq.apply(&acc[..out_n], &mut out[..out_n]);
}
