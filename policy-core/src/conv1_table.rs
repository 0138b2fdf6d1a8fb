//! The first layer's nibble table: a speed-up of the binary first convolution
//! for targets with flash to spare (66 KiB for the classic network), kept out
//! of the blob and derived from it.
//!
//! The first conv's input is binary, so the contribution of a kernel row (8
//! pixels of input frame `c`, kernel row `ky`; `r = c * 8 + ky`) depends only
//! on which of its pixels are set. The table holds, per output channel:
//!
//! ```text
//! nibble entry (r, h, p), h in {0, 1}, p in 0..16, for kernel columns 4h..4h+3:
//!     512 + sum over i < 4 with bit (3 - i) of p set of w[ky][4h + i][c][oc]
//! row entry r (all 8 pixels set):
//!     1024 + sum over kx < 8 of w[ky][kx][c][oc]
//! ```
//!
//! two channels per `u32` word, the even channel in the low half; nibble
//! entries first (word `((2r + h) * 16 + p) * out_c / 2 + oc / 2`), then row
//! entries (word `(R * 32 + r) * out_c / 2 + oc / 2`, `R = in_c * 8` rows).
//! A nibble entry lies in `512 + [-512, 508] = [0, 1020]`, a row entry (two
//! nibbles' worth) in `[0, 2040]`; a window adds at most 64 nibbles' worth, so
//! a 16-bit lane stays below `64 * 1020 = 65280 < 2^16`: two channels are
//! summed per 32-bit add without carries, and the offsets are removed once
//! (512 per nibble's worth). Words, not bytes, so that a flash image holds it
//! aligned (a `static [u32; N]`) and the sum loads whole words.
//!
//! With kernel side 8 and a stride that is a multiple of 4, every window is
//! made of whole nibbles of the padded rows. One output position costs one
//! table entry per kernel row that is all set, and one per non-zero nibble of
//! the others; all-zero rows are skipped. The result is the same integer as
//! [`crate::kernels::conv1_binary`] (exact sums), which the tests check.
//!
//! [`check`] recomputes every word from the blob's weights, so an attached
//! table can never change what the policy computes.

use crate::kernels::{init_bias, ConvGeom, Gather, Requant};
use flappy::obs::ROW_BYTES;
use flappy::{Frame, FRAME_SIDE};

/// Kernel side the table serves.
pub const K: usize = 8;
/// Pixels per nibble.
const NIBBLE: usize = 4;
/// On/off patterns of one nibble.
pub const PATTERNS: usize = 1 << NIBBLE;
/// Added to every nibble entry so that it is non-negative: `4 * 128`.
pub const OFFSET: u32 = (NIBBLE * 128) as u32;
/// Largest nibble entry: `OFFSET + 4 * 127`.
const MAX_ENTRY: u32 = OFFSET + (NIBBLE * 127) as u32;
/// Most nibbles under one window (`in_c * 8 * 2`): their entries must sum
/// below `2^16` in a 16-bit lane.
pub const MAX_NIBBLES: usize = 64;
const _: () = assert!(MAX_NIBBLES as u32 * MAX_ENTRY < 1 << 16);
/// Most kernel rows under one window (`in_c * 8`).
const MAX_ROWS: usize = MAX_NIBBLES / 2;
/// Capacity of the window buffer: kernel rows times output columns (a
/// padded row has at most 128 columns, so at most `(128 - 8) / 4 + 1 = 31`).
pub const WINDOW_CAP: usize = MAX_ROWS * 32;

/// Why a table cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The first layer's geometry has no table: the kernel side is not 8, the
    /// stride not a multiple of 4, the output channels are odd, or there are
    /// more than 4 input frames.
    Unsupported,
    /// The table is not [`table_len`] words long.
    BadLength {
        /// Words the geometry needs.
        expected: usize,
        /// Words given.
        actual: usize,
    },
    /// A word differs from the one computed from the weights.
    Mismatch {
        /// Index of the first wrong word.
        word: usize,
    },
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// Kernel rows under one window, if the geometry has a table.
fn rows(g: &ConvGeom) -> Option<usize> {
    let supported = g.k == K
        && g.stride.is_multiple_of(NIBBLE)
        && g.out_c.is_multiple_of(2)
        && g.in_c * K <= MAX_ROWS
        && g.in_c * K * g.out_w() <= WINDOW_CAP;
    supported.then_some(g.in_c * K)
}

/// Entries of the table (nibble entries, then row entries).
fn entries(rows: usize) -> usize {
    rows * 2 * PATTERNS + rows
}

/// Words of the table of a first conv of geometry `g` (4 bytes each), `None`
/// if it has none.
pub fn table_len(g: &ConvGeom) -> Option<usize> {
    rows(g).map(|r| entries(r) * g.out_c / 2)
}

/// Entry `e` (see the module docs) for output channel `oc`, from HWIO int8 weights.
fn entry(g: &ConvGeom, weights: &[u8], rows: usize, e: usize, oc: usize) -> u16 {
    let w = |r: usize, kx: usize| {
        let (c, ky) = (r / K, r % K);
        weights[((ky * K + kx) * g.in_c + c) * g.out_c + oc] as i8 as i32
    };
    let s = if e < rows * 2 * PATTERNS {
        let (group, p) = (e / PATTERNS, e % PATTERNS);
        let (r, h) = (group / 2, group % 2);
        (0..NIBBLE)
            .filter(|i| (p >> (NIBBLE - 1 - i)) & 1 == 1)
            .map(|i| w(r, NIBBLE * h + i))
            .sum::<i32>()
            + OFFSET as i32
    } else {
        let r = e - rows * 2 * PATTERNS;
        (0..K).map(|kx| w(r, kx)).sum::<i32>() + 2 * OFFSET as i32
    };
    // 0 <= s <= 2 * MAX_ENTRY < 2^16.
    s as u16
}

/// Every word in table order.
fn words<'w>(g: &'w ConvGeom, weights: &'w [u8]) -> impl Iterator<Item = u32> + 'w {
    let rows = rows(g).unwrap_or(0);
    (0..entries(rows)).flat_map(move |e| {
        (0..g.out_c / 2).map(move |pair| {
            let v = |oc| entry(g, weights, rows, e, oc) as u32;
            v(2 * pair) | (v(2 * pair + 1) << 16)
        })
    })
}

/// Writes the table of the first conv (geometry `g`, HWIO int8 `weights` of
/// a validated blob) into `out`, which must be [`table_len`] words.
pub fn write(g: &ConvGeom, weights: &[u8], out: &mut [u32]) -> Result<(), TableError> {
    let expected = table_len(g).ok_or(TableError::Unsupported)?;
    if out.len() != expected {
        return Err(TableError::BadLength {
            expected,
            actual: out.len(),
        });
    }
    for (o, w) in out.iter_mut().zip(words(g, weights)) {
        *o = w;
    }
    Ok(())
}

/// Checks that `table` is exactly the table [`write`] makes for `g` and `weights`.
pub fn check(g: &ConvGeom, weights: &[u8], table: &[u32]) -> Result<(), TableError> {
    let expected = table_len(g).ok_or(TableError::Unsupported)?;
    if table.len() != expected {
        return Err(TableError::BadLength {
            expected,
            actual: table.len(),
        });
    }
    match table
        .iter()
        .zip(words(g, weights))
        .position(|(&t, w)| t != w)
    {
        Some(word) => Err(TableError::Mismatch { word }),
        None => Ok(()),
    }
}

/// Working memory of [`conv1_table`].
pub struct TableScratch<'s> {
    /// Accumulators of one output position, `>= out_c`.
    pub acc: &'s mut [i32],
    /// Running max of one pooled output row, `>= pooled_w * out_c`.
    pub pool_row: &'s mut [i32],
    /// The 8-pixel windows of one output row, `>= WINDOW_CAP`.
    pub windows: &'s mut [u8],
    /// The table offsets of one output position.
    pub gather: &'s mut Gather,
}

/// First layer through the table (checked with [`check`]): the same output
/// as [`crate::kernels::conv1_binary`], convolution, max-pool (window and
/// stride `pool`) and requantization with ReLU fused.
#[allow(clippy::too_many_arguments)]
pub fn conv1_table(
    frames: [&Frame; 4],
    g: &ConvGeom,
    pool: usize,
    table: &[u32],
    biases: &[u8],
    rq: Requant,
    s: TableScratch,
    out: &mut [u8],
) {
    let oc_n = g.out_c;
    let (ph, pw) = (g.out_h() / pool, g.out_w() / pool);
    let rows_n = g.in_c * K;
    // The biases, once, as i32: each position's sums go straight into the
    // pooled row's running max.
    let bias = &mut s.acc[..oc_n];
    init_bias(bias, biases);
    for py in 0..ph {
        let prow = &mut s.pool_row[..pw * oc_n];
        prow.fill(i32::MIN);
        for dy in 0..pool {
            let oy = py * pool + dy;
            let y0 = (oy * g.stride) as isize - g.pad as isize;
            for (c, frame) in frames.iter().enumerate().take(g.in_c) {
                for ky in 0..K {
                    let bytes = padded_bytes(frame, y0 + ky as isize, g.pad);
                    windows_of(&bytes, g.stride, pw * pool, rows_n, c * K + ky, s.windows);
                }
            }
            for ox in 0..pw * pool {
                let win = &s.windows[ox * rows_n..][..rows_n];
                let (n, units) = gather_rows(win, oc_n, &mut s.gather.offs);
                let dst = &mut prow[(ox / pool) * oc_n..][..oc_n];
                sum_max(dst, bias, table, &s.gather.offs[..n], units);
            }
        }
        let orow = &mut out[py * pw * oc_n..][..pw * oc_n];
        for px in 0..pw {
            rq.apply(&prow[px * oc_n..][..oc_n], &mut orow[px * oc_n..][..oc_n]);
        }
    }
}

/// Padded row `y` of `frame` as bytes, column 0 at the top bit of byte 0;
/// zero outside the frame. 17 bytes: the 16 of a 128-column row and a zero,
/// so that a window's second byte can always be read.
#[inline(always)]
fn padded_bytes(frame: &Frame, y: isize, pad: usize) -> [u8; 17] {
    let mut out = [0u8; 17];
    if y < 0 || y as usize >= FRAME_SIDE {
        return out;
    }
    // pad <= 24 (the padded row has at most 128 columns): q + ROW_BYTES < 17.
    let (q, bit) = (pad / 8, pad % 8);
    for (i, &v) in frame.row(y as usize).iter().enumerate().take(ROW_BYTES) {
        let t = ((v as u16) << 8) >> bit;
        out[q + i] |= (t >> 8) as u8;
        out[q + i + 1] |= t as u8;
    }
    out
}

/// `windows[ox * rows_n + r]` = the 8 pixels (first at bit 7) of the padded
/// row `bytes` under output column `ox`, which starts at nibble `ox * stride / 4`.
#[inline(always)]
fn windows_of(
    bytes: &[u8; 17],
    stride: usize,
    out_w: usize,
    rows_n: usize,
    r: usize,
    windows: &mut [u8],
) {
    let step = stride / NIBBLE;
    for ox in 0..out_w {
        let j = ox * step;
        // j + 1 < 32 (the window lies inside the padded row, validated at
        // load): j / 2 + 1 <= 16.
        let pair = u16::from_be_bytes([bytes[j / 2], bytes[j / 2 + 1]]);
        windows[ox * rows_n + r] = (pair >> (8 - 4 * (j & 1))) as u8;
    }
}

/// Table word offsets of one window's entries (`win`: its kernel rows'
/// pixels) and the nibbles' worth they add: all-zero rows add nothing, full
/// rows their row entry, others an entry per non-zero nibble.
#[inline(never)]
fn gather_rows(win: &[u8], oc_n: usize, offs: &mut [u32]) -> (usize, u32) {
    let rows_n = win.len();
    let offs = &mut offs[..2 * rows_n];
    let entry = (oc_n / 2) as u32;
    let full_base = (rows_n * 2 * PATTERNS) as u32 * entry;
    let (mut n, mut units) = (0, 0u32);
    for (r, &b) in win.iter().enumerate() {
        if b == 0 {
            continue;
        }
        // n <= 2 * (rows so far) <= 2 * rows_n - 2: both writes in bounds.
        if b == 0xFF {
            offs[n] = full_base + r as u32 * entry;
            n += 1;
            units += 2;
            continue;
        }
        let group = (2 * r * PATTERNS) as u32 * entry;
        let (hi, lo) = ((b >> 4) as u32, (b & 0xF) as u32);
        offs[n] = group + hi * entry;
        n += (hi != 0) as usize;
        offs[n] = group + (PATTERNS as u32 + lo) * entry;
        n += (lo != 0) as usize;
        units += (hi != 0) as u32 + (lo != 0) as u32;
    }
    (n, units)
}

/// `dst[oc] = max(dst[oc], bias[oc] + sum over offs of entry[oc] - OFFSET *
/// units)`: 8 channels (4 words) per pass when they divide the entry, else
/// 2; two 16-bit lanes per add.
#[inline(always)]
fn sum_max(dst: &mut [i32], bias: &[i32], table: &[u32], offs: &[u32], units: u32) {
    let off = (OFFSET * units) as i32;
    let words = dst.len() / 2;
    if words.is_multiple_of(4) {
        let (chunks, _) = table.as_chunks::<4>();
        for b in 0..words / 4 {
            let s = sum_chunks(&chunks[b.min(chunks.len())..], offs);
            unpack_max(&mut dst[8 * b..8 * b + 8], &bias[8 * b..8 * b + 8], &s, off);
        }
    } else {
        for w in 0..words {
            let s = sum_words(table, offs, w);
            unpack_max(
                &mut dst[2 * w..2 * w + 2],
                &bias[2 * w..2 * w + 2],
                &[s],
                off,
            );
        }
    }
}

/// Sums the chunk (4 words, 8 channels) at every listed offset (multiples of
/// 4). Four accumulators: with eight, the Cortex-M4 build spilled them.
#[inline(never)]
fn sum_chunks(chunks: &[[u32; 4]], offs: &[u32]) -> [u32; 4] {
    let (mut s0, mut s1, mut s2, mut s3) = (0u32, 0u32, 0u32, 0u32);
    // Lanes cannot carry: at most MAX_NIBBLES nibbles' worth of <= MAX_ENTRY.
    for &o in offs {
        let [e0, e1, e2, e3] = chunks[o as usize >> 2];
        s0 = s0.wrapping_add(e0);
        s1 = s1.wrapping_add(e1);
        s2 = s2.wrapping_add(e2);
        s3 = s3.wrapping_add(e3);
    }
    [s0, s1, s2, s3]
}

/// Sums word `w` of every listed entry.
#[inline(never)]
fn sum_words(table: &[u32], offs: &[u32], w: usize) -> u32 {
    offs.iter()
        .fold(0u32, |s, &o| s.wrapping_add(table[o as usize + w]))
}

#[inline(always)]
fn unpack_max(dst: &mut [i32], bias: &[i32], s: &[u32], off: i32) {
    for ((d, b), &w) in dst.chunks_exact_mut(2).zip(bias.chunks_exact(2)).zip(s) {
        d[0] = d[0].max(b[0] + (w & 0xFFFF) as i32 - off);
        d[1] = d[1].max(b[1] + (w >> 16) as i32 - off);
    }
}
