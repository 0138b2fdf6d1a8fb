//! The first layer's nibble table: a speed-up of the binary first convolution
//! for targets with flash to spare (73 KiB for the classic network, 9.3 KiB
//! for `compact`, 4.6 KiB for `tiny`), kept out of the blob and derived from
//! it.
//!
//! The first conv's input is binary, so the contribution of a kernel row (`k`
//! pixels of input frame `c`, kernel row `ky`; `r = c * k + ky`) depends only
//! on which of its pixels are set. Kernel sides 8 and 4 have a table: a row
//! is `n = k / 4` nibbles (2 or 1). The table holds, per output channel:
//!
//! ```text
//! nibble entry (r, h, p), h < n, p in 0..16, for kernel columns 4h..4h+3:
//!     512 + sum over i < 4 with bit (3 - i) of p set of w[ky][4h + i][c][oc]
//! run entry (c, a, len), kernel rows a..a+len of frame c all set (1 <= len <= k - a):
//!     512 * n * len + sum over ky in a..a+len, kx < k of w[ky][kx][c][oc]
//! ```
//!
//! two channels per `u32` word, the even channel in the low half. Entries
//! are `out_c / 2` words each: nibble entries first (entry `(n r + h) * 16 +
//! p`), then run entries (entry `R * n * 16 + c * k (k + 1) / 2 +
//! run_base(a) + len - 1`, `R = in_c * k` rows; the `k (k + 1) / 2` runs of
//! a frame ordered by start, then length: 36 for `k = 8`, 10 for `k = 4`).
//! A nibble entry lies in `512 + [-512, 508] = [0, 1020]`, a run entry (`n *
//! len` nibbles' worth) in `[0, 1020 * n * len]`; a window adds at most 64
//! nibbles' worth, so a 16-bit lane stays below `64 * 1020 = 65280 < 2^16`:
//! two channels are summed per 32-bit add without carries, and the offsets
//! are removed once (512 per nibble's worth). Words, not bytes, so that a
//! flash image holds it aligned (a `static [u32; N]`) and the sum loads
//! whole words.
//!
//! A window's kernel rows are cut from the padded frame rows at any bit
//! offset (stride a multiple of 4). One output position costs one table
//! entry per run of all-set kernel rows of a frame (the ground band and
//! pipe bodies: 8 full rows in 1.2 runs per position on average in play),
//! and one per non-zero nibble of the other rows; all-zero rows are skipped.
//! The result is the same integer as `kernels::conv1_binary` (exact sums),
//! which the tests check.
//!
//! [`check`] recomputes every word from the blob's weights, so an attached
//! table can never change what the policy computes.

use crate::kernels::{init_bias, ConvGeom, Gather, Requant};
use flappy::obs::ROW_BYTES;
use flappy::{Frame, FRAME_SIDE};

/// Kernel sides the table serves.
pub const KERNELS: [usize; 2] = [8, 4];
/// Pixels per nibble.
const NIBBLE: usize = 4;
/// On/off patterns of one nibble.
pub const PATTERNS: usize = 1 << NIBBLE;
/// Added to every nibble entry so that it is non-negative: `4 * 128`.
pub const OFFSET: u32 = (NIBBLE * 128) as u32;
/// Largest nibble entry: `OFFSET + 4 * 127`.
const MAX_ENTRY: u32 = OFFSET + (NIBBLE * 127) as u32;
/// Most nibbles under one window (`in_c * k * k / 4`): their entries must
/// sum below `2^16` in a 16-bit lane.
pub const MAX_NIBBLES: usize = 64;
const _: () = assert!(MAX_NIBBLES as u32 * MAX_ENTRY < 1 << 16);
/// Most kernel rows under one window (`in_c * k`).
const MAX_ROWS: usize = MAX_NIBBLES / 2;
/// Capacity of the window buffer: kernel rows times output columns (a
/// padded row has at most 128 columns, so at most `(128 - 8) / 4 + 1 = 31`).
/// With `caps-m0` ([`crate::SMALL_RAM`]): 20 output columns (an 8x8/4 pad 2
/// first conv on 80 columns); a wider one has no table there.
pub const WINDOW_CAP: usize = MAX_ROWS * if crate::SMALL_RAM { 20 } else { 32 };

/// Why a table cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The first layer's geometry has no table: the kernel side is not 8 or
    /// 4, the stride not a multiple of 4, the output channels are odd, there
    /// are more than 4 input frames, or (with `caps-m0`) the output row is
    /// wider than the window buffer.
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
        match *self {
            TableError::Unsupported => f.write_str(
                "the first conv has no nibble table (it needs an 8x8 or 4x4 kernel, a stride that is a multiple of 4, an even channel count and at most 4 frames)",
            ),
            TableError::BadLength { expected, actual } => write!(
                f,
                "the nibble table has {actual} words, the first conv needs {expected}"
            ),
            TableError::Mismatch { word } => write!(
                f,
                "the nibble table does not match the first conv's weights (word {word} differs)"
            ),
        }
    }
}

/// Kernel rows under one window, if the geometry has a table.
fn rows(g: &ConvGeom) -> Option<usize> {
    let supported = KERNELS.contains(&g.k)
        && g.stride.is_multiple_of(NIBBLE)
        && g.out_c.is_multiple_of(2)
        && g.in_c * g.k <= MAX_ROWS
        && g.in_c * g.k * nibbles(g.k) <= MAX_NIBBLES
        && g.in_c * g.k * g.out_w() <= WINDOW_CAP;
    supported.then_some(g.in_c * g.k)
}

/// Nibbles in a kernel row of side `k`.
const fn nibbles(k: usize) -> usize {
    k / NIBBLE
}

/// Runs of all-set rows in one frame's `k` kernel rows: `(a, len)`, `len >= 1`.
const fn runs(k: usize) -> usize {
    k * (k + 1) / 2
}

/// Index of the first run starting at row `a` among a frame's runs (runs of
/// one start by length): `sum over i < a of (k - i)`.
const fn run_base(k: usize, a: usize) -> usize {
    a * (2 * k + 1 - a) / 2
}

/// Entries of the table (nibble entries, then run entries).
fn entries(rows: usize, k: usize) -> usize {
    rows * nibbles(k) * PATTERNS + rows / k * runs(k)
}

/// Words of the table of a first conv of geometry `g` (4 bytes each), `None`
/// if it has none.
pub fn table_len(g: &ConvGeom) -> Option<usize> {
    rows(g).map(|r| entries(r, g.k) * g.out_c / 2)
}

/// Entry `e` (see the module docs) for output channel `oc`, from HWIO int8 weights.
fn entry(g: &ConvGeom, weights: &[u8], rows: usize, e: usize, oc: usize) -> u16 {
    let (k, n) = (g.k, nibbles(g.k));
    let w = |r: usize, kx: usize| {
        let (c, ky) = (r / k, r % k);
        weights[((ky * k + kx) * g.in_c + c) * g.out_c + oc] as i8 as i32
    };
    let s = if e < rows * n * PATTERNS {
        let (group, p) = (e / PATTERNS, e % PATTERNS);
        let (r, h) = (group / n, group % n);
        (0..NIBBLE)
            .filter(|i| (p >> (NIBBLE - 1 - i)) & 1 == 1)
            .map(|i| w(r, NIBBLE * h + i))
            .sum::<i32>()
            + OFFSET as i32
    } else {
        let (c, run) = (
            (e - rows * n * PATTERNS) / runs(k),
            (e - rows * n * PATTERNS) % runs(k),
        );
        let a = (0..k).rev().find(|&a| run_base(k, a) <= run).unwrap_or(0);
        let len = run - run_base(k, a) + 1;
        (a..a + len)
            .flat_map(|ky| (0..k).map(move |kx| (c * k + ky, kx)))
            .map(|(r, kx)| w(r, kx))
            .sum::<i32>()
            + (n * len) as i32 * OFFSET as i32
    };
    // 0 <= s <= k * n * MAX_ENTRY <= 8 * 2 * MAX_ENTRY < 2^16.
    s as u16
}

/// Every word in table order.
fn words<'w>(g: &'w ConvGeom, weights: &'w [u8]) -> impl Iterator<Item = u32> + 'w {
    let rows = rows(g).unwrap_or(0);
    (0..entries(rows, g.k)).flat_map(move |e| {
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
/// as `kernels::conv1_binary`, convolution, max-pool (window and
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
    // Kernel side 4 or 8 (`rows`): the window code is compiled for each.
    let four = g.k == 4;
    let rows_n = g.in_c * g.k;
    // Table entries are summed 4 words (8 channels) at a time when 8 divides
    // the channels, else one word: offsets are counted in those units.
    let entry = if oc_n.is_multiple_of(8) {
        oc_n / 8
    } else {
        oc_n / 2
    } as u32;
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
            if four {
                fill_windows::<4>(frames, g, y0, pw * pool, s.windows);
            } else {
                fill_windows::<8>(frames, g, y0, pw * pool, s.windows);
            }
            // Output column ox = px * pool + dx (no division: the Cortex-M0
            // has none in hardware).
            let (wins, dsts) = (s.windows.chunks_exact(rows_n), prow.chunks_exact_mut(oc_n));
            let mut wins = wins.take(pw * pool);
            let (offs, _) = s.gather.words();
            for dst in dsts {
                for win in wins.by_ref().take(pool) {
                    if four {
                        position::<4>(win, entry, table, bias, dst, offs);
                    } else {
                        position::<8>(win, entry, table, bias, dst, offs);
                    }
                }
            }
        }
        let orow = &mut out[py * pw * oc_n..][..pw * oc_n];
        for px in 0..pw {
            rq.apply(&prow[px * oc_n..][..oc_n], &mut orow[px * oc_n..][..oc_n]);
        }
    }
}

/// The windows of one output row whose kernel rows start at input row `y0`:
/// `windows[ox * rows_n + c * K + ky]` = the `K` pixels (first at bit `K -
/// 1`) of frame `c`, row `y0 + ky`, padded columns `ox * stride ..`.
#[inline(never)]
fn fill_windows<const K: usize>(
    frames: [&Frame; 4],
    g: &ConvGeom,
    y0: isize,
    out_w: usize,
    windows: &mut [u8],
) {
    let rows_n = g.in_c * K;
    for (c, frame) in frames.iter().enumerate().take(g.in_c) {
        if K == NIBBLE && g.pad == 0 {
            // A 4-wide kernel without padding (the only padding below 4
            // that keeps windows on nibble boundaries): every window row is
            // a nibble of its frame row (the stride is a multiple of 4), so
            // a window's 4 rows are 4 bytes read
            // side by side and one shift and mask, two windows a byte:
            // about 10 instructions a window row on the Cortex-M0, against
            // 38 for the bit-offset path below (its registers spill there).
            let row = |ky: usize| -> &[u8; ROW_BYTES] {
                let y = y0 + ky as isize;
                let r = (0..FRAME_SIDE as isize)
                    .contains(&y)
                    .then(|| frame.row(y as usize));
                r.and_then(|r| r.try_into().ok()).unwrap_or(&[0; ROW_BYTES])
            };
            let rows = [row(0), row(1), row(2), row(3)];
            // Byte i of the 4 rows, side by side: windows 2i (high nibbles)
            // and 2i + 1 (low nibbles) of this frame.
            let bytes =
                |i: usize| u32::from_le_bytes([rows[0][i], rows[1][i], rows[2][i], rows[3][i]]);
            let mut slots = windows[c * K..].chunks_mut(rows_n).take(out_w);
            let mut put = |plane: u32| match slots.next() {
                Some(w) => {
                    w[..NIBBLE].copy_from_slice(&(plane & 0x0F0F_0F0F).to_le_bytes());
                    true
                }
                None => false,
            };
            if g.stride == NIBBLE {
                for i in 0..ROW_BYTES {
                    let x = bytes(i);
                    if !put(x >> NIBBLE) || !put(x) {
                        break;
                    }
                }
            } else {
                // Window ox is nibble j = ox * stride / 4 of the rows.
                for j in (0..2 * ROW_BYTES).step_by(g.stride / NIBBLE) {
                    if !put(bytes(j / 2) >> (NIBBLE * (1 - j % 2))) {
                        break;
                    }
                }
            }
            continue;
        }
        for ky in 0..K {
            let y = y0 + ky as isize;
            let slots = windows[c * K + ky..].iter_mut().step_by(rows_n).take(out_w);
            if y < 0 || y as usize >= FRAME_SIDE {
                slots.for_each(|w| *w = 0);
                continue;
            }
            // The row with 24 zero columns on the left (the most padding a
            // valid blob has) and zeros on the right: `ext` column e is
            // frame column e - 24, at bit 7 - e % 8 of byte e / 8.
            let mut ext = [0u8; 32];
            ext[3..3 + ROW_BYTES].copy_from_slice(&frame.row(y as usize)[..ROW_BYTES]);
            // ext column of the window's first pixel. Windows end inside the
            // padded row (at most 128 columns, pad <= 24), so s + 8 <= 152
            // and s / 8 + 1 <= 19: the masks never bite.
            let mut s = 24 - g.pad;
            for w in slots {
                let b = s / 8;
                let pair = u16::from_be_bytes([ext[b & 31], ext[(b + 1) & 31]]);
                *w = (pair >> (16 - K - s % 8)) as u8 & full::<K>();
                s += g.stride;
            }
        }
    }
}

/// A window row of side `K` with every pixel set (its `K` low bits).
const fn full<const K: usize>() -> u8 {
    ((1u16 << K) - 1) as u8
}

/// One output position: its window's table entries summed, the biases
/// added, folded into the pooled row's running max `dst`.
#[inline(never)]
fn position<const K: usize>(
    win: &[u8],
    entry: u32,
    table: &[u32],
    bias: &[i32],
    dst: &mut [i32],
    offs: &mut [u32],
) {
    let (n, units) = gather_entries::<K>(win, entry, offs);
    sum_max(dst, bias, table, &offs[..n], units);
}

/// Offsets (in units of `entry`-sized table entries' `unit`s: the caller's
/// chunk or word) of one window's entries (`win`: its kernel rows' pixels,
/// `K` rows per frame) and the nibbles' worth they add: all-zero rows add
/// nothing, each run of full rows of a frame its run entry, other rows an
/// entry per non-zero nibble.
#[inline(never)]
fn gather_entries<const K: usize>(win: &[u8], entry: u32, offs: &mut [u32]) -> (usize, u32) {
    let rows_n = win.len();
    let nib = nibbles(K) as u32;
    // At most 2 entries per row (a run takes the place of its rows).
    let offs = &mut offs[..2 * rows_n];
    let runs0 = (rows_n * nibbles(K) * PATTERNS) as u32;
    let (mut n, mut units) = (0, 0u32);
    for (c, plane) in win.chunks_exact(K).enumerate() {
        let runs = runs0 + (c * runs(K)) as u32;
        // Whole frames first: no pixel set (the sky), or all set.
        let (mut any, mut all) = (0u32, u32::MAX);
        for q in plane.chunks_exact(4) {
            let v = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
            any |= v;
            all &= v;
        }
        if any == 0 {
            continue;
        }
        if all == u32::from_le_bytes([full::<K>(); 4]) {
            // n <= 2 * (rows so far): in bounds.
            offs[n] = (runs + (run_base(K, 0) + K - 1) as u32) * entry;
            n += 1;
            units += nib * K as u32;
            continue;
        }
        // Start of the current run of full rows, K when none.
        let mut start = K;
        for (ky, &b) in plane.iter().enumerate() {
            if b == full::<K>() {
                if start == K {
                    start = ky;
                }
                continue;
            }
            // n <= 2 * (rows so far) - 1 here: every write below is in bounds.
            if start != K {
                offs[n] = (runs + (run_base(K, start) + ky - start - 1) as u32) * entry;
                n += 1;
                units += nib * (ky - start) as u32;
                start = K;
            }
            if b == 0 {
                continue;
            }
            let group = (nibbles(K) * (c * K + ky) * PATTERNS) as u32;
            if K == 4 {
                // One nibble: the whole row.
                offs[n] = (group + b as u32) * entry;
                n += 1;
                units += 1;
                continue;
            }
            let (hi, lo) = ((b >> 4) as u32, (b & 0xF) as u32);
            offs[n] = (group + hi) * entry;
            n += (hi != 0) as usize;
            offs[n] = (group + PATTERNS as u32 + lo) * entry;
            n += (lo != 0) as usize;
            units += (hi != 0) as u32 + (lo != 0) as u32;
        }
        if start != K {
            offs[n] = (runs + (run_base(K, start) + K - start - 1) as u32) * entry;
            n += 1;
            units += nib * (K - start) as u32;
        }
    }
    (n, units)
}

/// `dst[oc] = max(dst[oc], bias[oc] + sum over offs of entry[oc] - OFFSET *
/// units)`: 8 channels (4 words) per pass when they divide the entry, else
/// 2; two 16-bit lanes per add.
#[inline(always)]
fn sum_max(dst: &mut [i32], bias: &[i32], table: &[u32], offs: &[u32], units: u32) {
    if offs.is_empty() {
        // No pixel under the window (the sky): the biases alone.
        for (d, &b) in dst.iter_mut().zip(bias) {
            *d = (*d).max(b);
        }
        return;
    }
    let off = (OFFSET * units) as i32;
    let words = dst.len() / 2;
    if words.is_multiple_of(4) {
        let (chunks, _) = table.as_chunks::<4>();
        for b in 0..words / 4 {
            // Offsets count chunks: chunk b of each entry.
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

/// Sums the chunk (4 words, 8 channels) at every listed offset (in chunks).
/// Four accumulators: with eight, the Cortex-M4 build spilled them.
#[inline(never)]
fn sum_chunks(chunks: &[[u32; 4]], offs: &[u32]) -> [u32; 4] {
    let (mut s0, mut s1, mut s2, mut s3) = (0u32, 0u32, 0u32, 0u32);
    // Lanes cannot carry: at most MAX_NIBBLES nibbles' worth of <= MAX_ENTRY.
    for &o in offs {
        let [e0, e1, e2, e3] = chunks[o as usize];
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
