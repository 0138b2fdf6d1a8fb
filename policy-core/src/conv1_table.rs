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

use crate::kernels::{init_bias, pooled_rows, ConvGeom, Gather, Requant};
use crate::SIMD_HOST;
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

/// Checks that `table` is exactly the table [`write()`] makes for `g` and `weights`.
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
    /// The windows of one output row, four kernel rows a word, `>= WINDOW_CAP / 4`.
    pub windows: &'s mut [u32],
    /// Sums of one position for channel counts without their own code.
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
    let pw = g.out_w() / pool;
    // Kernel side 4 or 8 (`rows`): the window code is compiled for each.
    let four = g.k == 4;
    // Words of a window: its in_c * k kernel rows, four a word.
    let wpw = g.in_c * g.k / 4;
    // The biases, once, as i32: each position's sums go straight into the
    // pooled row's running max.
    let bias = &mut s.acc[..oc_n];
    init_bias(bias, biases);
    let (sums, _) = s.gather.words();
    pooled_rows(g, pool, &rq, s.pool_row, out, move |y0, prow| {
        if four {
            fill_windows::<4>(frames, g, y0, pw * pool, s.windows);
        } else {
            fill_windows::<8>(frames, g, y0, pw * pool, s.windows);
        }
        // Output column ox = px * pool + dx (no division: the Cortex-M0
        // has none in hardware).
        let mut wins = s.windows.chunks_exact(wpw).take(pw * pool);
        for dst in prow.chunks_exact_mut(oc_n) {
            for win in wins.by_ref().take(pool) {
                match (four, oc_n / 2) {
                    (true, 4) => position::<4, 4>(win, table, bias, dst),
                    (true, 8) => position::<4, 8>(win, table, bias, dst),
                    (true, 16) => position::<4, 16>(win, table, bias, dst),
                    (false, 4) => position::<8, 4>(win, table, bias, dst),
                    (false, 8) => position::<8, 8>(win, table, bias, dst),
                    (false, 16) => position::<8, 16>(win, table, bias, dst),
                    (true, _) => position_any::<4>(win, table, &mut sums[..oc_n / 2], bias, dst),
                    _ => position_any::<8>(win, table, &mut sums[..oc_n / 2], bias, dst),
                }
            }
        }
    });
}

/// The windows of one output row whose kernel rows start at input row `y0`:
/// kernel row `r = c * K + ky` (frame `c`, row `y0 + ky`) of window `ox` is
/// byte `r % 4` of word `ox * wpw + r / 4` (`wpw = in_c * K / 4`): its `K`
/// pixels at padded columns `ox * stride ..`, the first at bit `K - 1`.
#[inline(never)]
fn fill_windows<const K: usize>(
    frames: [&Frame; 4],
    g: &ConvGeom,
    y0: isize,
    out_w: usize,
    windows: &mut [u32],
) {
    let wpw = g.in_c * K / 4;
    let windows = &mut windows[..out_w * wpw];
    if K == NIBBLE && g.pad == 0 {
        // A 4-wide kernel without padding (the only padding below 4 that
        // keeps windows on nibble boundaries): every window row is a nibble
        // of its frame row (the stride is a multiple of 4), so a window's 4
        // rows of frame c are byte i of the 4 frame rows read side by side,
        // shifted and masked: one word, two windows a byte.
        for (c, frame) in frames.iter().enumerate().take(g.in_c) {
            let row = |ky: usize| -> &[u8; ROW_BYTES] {
                let y = y0 + ky as isize;
                let r = (0..FRAME_SIDE as isize)
                    .contains(&y)
                    .then(|| frame.row(y as usize));
                r.and_then(|r| r.try_into().ok()).unwrap_or(&[0; ROW_BYTES])
            };
            let rows = [row(0), row(1), row(2), row(3)];
            let bytes =
                |i: usize| u32::from_le_bytes([rows[0][i], rows[1][i], rows[2][i], rows[3][i]]);
            let mut slots = windows.iter_mut().skip(c).step_by(wpw);
            // Nibble j of the rows (high nibble of byte j / 2 first) is the
            // window at padded column 4 j: every (stride / 4)-th one is used.
            for j in (0..2 * ROW_BYTES).step_by(g.stride / NIBBLE) {
                let Some(w) = slots.next() else { break };
                *w = (bytes(j / 2) >> (NIBBLE * (1 - j % 2))) & 0x0F0F_0F0F;
            }
        }
        return;
    }
    windows.fill(0);
    for (c, frame) in frames.iter().enumerate().take(g.in_c) {
        for ky in 0..K {
            let y = y0 + ky as isize;
            if y < 0 || y as usize >= FRAME_SIDE {
                continue;
            }
            let r = c * K + ky;
            let slots = windows.iter_mut().skip(r / 4).step_by(wpw);
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
                let v = (pair >> (16 - K - s % 8)) as u8 & full::<K>();
                *w |= (v as u32) << (8 * (r % 4));
                s += g.stride;
            }
        }
    }
}

/// A window row of side `K` with every pixel set (its `K` low bits).
const fn full<const K: usize>() -> u8 {
    ((1u16 << K) - 1) as u8
}

/// One output position of `2 * W` channels (two a word): its window's
/// entries summed in registers ([`sum_window`]), the biases added, folded
/// into the pooled row's running max `dst`.
#[inline(never)]
fn position<const K: usize, const W: usize>(
    win: &[u32],
    table: &[u32],
    bias: &[i32],
    dst: &mut [i32],
) {
    let mut s = [0u32; W];
    let units = sum_window::<K>(win, table, &mut s);
    unpack_max(dst, bias, &s, (OFFSET * units) as i32);
}

/// [`position`] for any even channel count, summing in `sums` (`out_c / 2` words).
fn position_any<const K: usize>(
    win: &[u32],
    table: &[u32],
    sums: &mut [u32],
    bias: &[i32],
    dst: &mut [i32],
) {
    sums.fill(0);
    let units = sum_window::<K>(win, table, sums);
    unpack_max(dst, bias, sums, (OFFSET * units) as i32);
}

/// Sums into `s` (one word per two channels, `s.len()` words an entry) the
/// table entries of one window (`win`, see [`fill_windows`]) and returns
/// the nibbles' worth they add (the offsets to take off).
///
/// On the microcontrollers, where a branch costs an instruction or two: a
/// frame with no pixel set under the window (the sky) costs a test, a frame
/// with every pixel set one run entry, and otherwise each non-zero nibble
/// its entry. On SIMD hosts every nibble adds its entry, the all-zero
/// pattern (the offset alone) included: a fixed count of vector adds and no
/// branch on the data, which a host would mispredict about every other
/// nibble. The same sum either way: a nibble entry is the offset plus its
/// set pixels' weights, a run entry that of its rows.
#[inline(always)]
fn sum_window<const K: usize>(win: &[u32], table: &[u32], s: &mut [u32]) -> u32 {
    let (n, words) = (nibbles(K), s.len());
    let mut add = |e: usize| {
        if let Some(entry) = table.get(e * words..(e + 1) * words) {
            // Lanes cannot carry: at most MAX_NIBBLES nibbles' worth of <= MAX_ENTRY.
            for (a, &v) in s.iter_mut().zip(entry) {
                *a = a.wrapping_add(v);
            }
        }
    };
    if SIMD_HOST {
        for (wi, &word) in win.iter().enumerate() {
            for (j, b) in word.to_le_bytes().into_iter().enumerate() {
                let r = 4 * wi + j;
                for h in 0..n {
                    add((n * r + h) * PATTERNS + nibble::<K>(b, h));
                }
            }
        }
        return (4 * win.len() * n) as u32;
    }
    let runs0 = 4 * win.len() * n * PATTERNS;
    let full_word = u32::from_le_bytes([full::<K>(); 4]);
    let mut units = 0;
    for (c, frame) in win.chunks_exact(K / 4).enumerate() {
        if frame.iter().all(|&w| w == 0) {
            continue;
        }
        if frame.iter().all(|&w| w == full_word) {
            add(runs0 + c * runs(K) + run_base(K, 0) + K - 1);
            units += (n * K) as u32;
            continue;
        }
        for (wi, &word) in frame.iter().enumerate() {
            if word == 0 {
                continue;
            }
            for (j, b) in word.to_le_bytes().into_iter().enumerate() {
                let r = c * K + 4 * wi + j;
                for h in 0..n {
                    let p = nibble::<K>(b, h);
                    if p != 0 {
                        add((n * r + h) * PATTERNS + p);
                        units += 1;
                    }
                }
            }
        }
    }
    units
}

/// Nibble `h` of a window row `b` of side `K`: for `K = 8` the high nibble
/// (columns 0..3) first; for `K = 4` the row itself.
#[inline(always)]
fn nibble<const K: usize>(b: u8, h: usize) -> usize {
    if K == 8 && h == 0 {
        (b >> 4) as usize
    } else {
        (b & 0xF) as usize
    }
}

#[inline(always)]
fn unpack_max(dst: &mut [i32], bias: &[i32], s: &[u32], off: i32) {
    for ((d, b), &w) in dst.chunks_exact_mut(2).zip(bias.chunks_exact(2)).zip(s) {
        d[0] = d[0].max(b[0] + (w & 0xFFFF) as i32 - off);
        d[1] = d[1].max(b[1] + (w >> 16) as i32 - off);
    }
}
