//! The shared multiply-accumulate: the non-zero inputs of one output are
//! gathered ([`Gather`]: values and weight-row offsets), then walked once per
//! register block of output channels. u8 inputs multiply ([`mac_gathered`]);
//! binary inputs only add weight rows ([`add_gathered`]).
//!
//! [`mac_gathered_ref`] is the portable reference; [`mac_gathered`] hands
//! the blocks a target has a faster kernel for to it (the Cortex-M4's DSP
//! multiply-accumulates, `super::dsp`; the SIMD hosts' pairs of rows,
//! `super::simd`) and gives the same integers.

use super::gather::{Gather, GATHER_CAP};

/// `acc[o] += w[o]` (int8 weights).
#[inline(always)]
pub(super) fn add_i8(acc: &mut [i32], w: &[u8]) {
    for (a, &wv) in acc.iter_mut().zip(w) {
        *a += wv as i8 as i32;
    }
}

/// Output channels per register block of the multiply-accumulate.
const BLOCK: usize = 16;

/// `w[o + ob..][..N]`, with one bounds check: `o` and `ob` both fit in 32
/// bits (`ob` is an output channel, `< ACC_CAP`), so the compiler knows
/// `o + ob + N` does not overflow and only checks the end.
#[inline(always)]
fn row<const N: usize>(w: &[u8], o: u32, ob: usize) -> &[u8] {
    let a = o as usize + (ob as u32) as usize;
    &w[a..a + N]
}

/// `acc[ob + l] += sum_j x_j * w[off_j + ob + l]` for `l < N` over the
/// entries `[x_j, off_j]`. Inputs are taken in pairs, `x0 * w0 + x1 * w1`
/// with 16-bit operands summed into i32: the shape of SSE2 `pmaddwd`. Kept
/// out of line so the compiler vectorises it on its own.
#[inline(never)]
fn mac_block<const N: usize>(acc: &mut [i32], w: &[u8], ents: &[[u32; 2]], ob: usize) {
    debug_assert!(ob < crate::ACC_CAP);
    let mut a = [0i32; N];
    let (quads, rest) = ents.as_chunks::<4>();
    for q in quads {
        let s = q.map(|e| e[1] as usize + (ob as u32) as usize);
        // One bounds check for the four rows (the compiler derives the others).
        let top = s[0].max(s[1]).max(s[2]).max(s[3]);
        let w = &w[..top + N];
        let (w0, w1, w2, w3) = (
            &w[s[0]..s[0] + N],
            &w[s[1]..s[1] + N],
            &w[s[2]..s[2] + N],
            &w[s[3]..s[3] + N],
        );
        let x = q.map(|e| e[0] as u8 as i16 as i32);
        for l in 0..N {
            a[l] += x[0] * (w0[l] as i8 as i16 as i32)
                + x[1] * (w1[l] as i8 as i16 as i32)
                + x[2] * (w2[l] as i8 as i16 as i32)
                + x[3] * (w3[l] as i8 as i16 as i32);
        }
    }
    for e in rest {
        let w0 = row::<N>(w, e[1], ob);
        let x0 = e[0] as u8 as i32;
        for l in 0..N {
            a[l] += x0 * (w0[l] as i8 as i32);
        }
    }
    // |a| <= GATHER_CAP * 255 * 128 < 2^31.
    for (d, &v) in acc[ob..ob + N].iter_mut().zip(&a) {
        *d += v;
    }
}

/// [`mac_block`] over the channels of `acc` from `ob` on (blocks of 16,
/// then 8, 4, 1).
#[inline(always)]
fn mac_from(acc: &mut [i32], w: &[u8], ents: &[[u32; 2]], mut ob: usize) {
    let n = acc.len();
    while ob + BLOCK <= n {
        mac_block::<BLOCK>(acc, w, ents, ob);
        ob += BLOCK;
    }
    if ob + 8 <= n {
        mac_block::<8>(acc, w, ents, ob);
        ob += 8;
    }
    if ob + 4 <= n {
        mac_block::<4>(acc, w, ents, ob);
        ob += 4;
    }
    while ob < n {
        mac_block::<1>(acc, w, ents, ob);
        ob += 1;
    }
}

/// `acc[o] += sum over the entries [x, off] of x * w[off + o]` (int8
/// weights), portable: the reference of every fast kernel.
#[cfg_attr(not(feature = "test-support"), allow(dead_code))]
pub fn mac_gathered_ref(acc: &mut [i32], w: &[u8], g: &Gather) {
    if !g.is_empty() {
        mac_from(acc, w, g.entries(), 0);
    }
}

/// [`mac_gathered_ref`]'s result, through the target's fast kernel for the
/// channel blocks it has one for.
#[inline(always)]
pub fn mac_gathered(acc: &mut [i32], w: &[u8], g: &mut Gather) {
    if g.is_empty() {
        return;
    }
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let done = super::dsp::mac(acc, w, g);
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    let done = super::simd::mac_blocks16(acc, w, g.entries());
    #[cfg(not(any(
        all(target_arch = "arm", target_feature = "dsp"),
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    let done = 0;
    mac_from(acc, w, g.entries(), done);
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
    // At most GATHER_CAP (<= 256) int8 weights are summed per lane: the sum lies in
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
pub(super) fn add_gathered(
    acc: &mut [i32],
    w: &[u8],
    offs: &[u32],
    rowsum: &[i32],
    row_offs: &[u32],
) {
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

/// Appends the non-zero values of `x` to the gather list, with weight-row
/// offsets `off0 + i * stride`, multiplying the list into `acc` and
/// emptying it whenever it is full.
#[inline(always)]
pub(super) fn gather_nonzero(
    acc: &mut [i32],
    w: &[u8],
    g: &mut Gather,
    mut x: &[u8],
    mut off: usize,
    stride: usize,
) {
    while !x.is_empty() {
        if g.room() == 0 {
            mac_gathered(acc, w, g);
            g.clear();
        }
        let (part, rest) = x.split_at(x.len().min(g.room()));
        g.push_nonzero(part, off, stride);
        off += part.len() * stride;
        x = rest;
    }
}

/// `acc += sum_i x[i] * w[i * n ..][..n]` over the non-zero `x[i]`, gathered
/// in chunks of [`GATHER_CAP`].
#[inline(always)]
pub(super) fn mac_rows(acc: &mut [i32], x: &[u8], w: &[u8], n: usize, g: &mut Gather) {
    g.clear();
    gather_nonzero(acc, w, g, x, 0, n);
    mac_gathered(acc, w, g);
    g.clear();
}
