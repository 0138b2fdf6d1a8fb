//! From game state to the 80x80 observation, without a 288x512 buffer.
//!
//! The original resizes the 288x512 screen to 80x80 with OpenCV's bilinear
//! `INTER_LINEAR` (source coordinate `(dst + 0.5) * scale - 0.5`), then
//! thresholds at > 1. Output row `r` (scale 512/80 = 6.4) reads source rows
//! `y0 = floor(6.4 r + 2.7)` and `y0 + 1`; output column `c` (scale 288/80 =
//! 3.6) reads source columns `x0 = floor(3.6 c + 1.3)` and `x0 + 1`. The
//! fractional parts (`0.4 r + 0.7`, `0.6 c + 0.3` mod 1) are never 0, so all
//! four taps have non-zero weight, and a cell is 1 iff any of them is non-black.
//! In integers: `y0 = (64 r + 27) / 10`, `x0 = (36 c + 13) / 10`; the last
//! taps are rows 508/509 and columns 285/286, so no clamping is ever needed.
//!
//! The scene is a union of rectangles (ground, pipe caps and bodies, bird
//! mask runs). A source interval `[a, b]` touches the contiguous output range
//! `LO[a]..=HI[b]`, found in precomputed tables, and each rectangle ORs a bit
//! run into the rows it touches.

use crate::game::{State, GROUND_ROW, PLAYER_X, SCREEN_H, SCREEN_W};
use crate::obs::{Frame, FRAME_SIDE, ROW_BYTES};
use crate::sprites::BIRD_RUNS;

/// First source row read by output row `r`.
pub const fn tap_row(r: usize) -> usize {
    (64 * r + 27) / 10
}

/// First source column read by output column `c`.
pub const fn tap_col(c: usize) -> usize {
    (36 * c + 13) / 10
}

/// `lo[a]`: first output index whose taps `(t, t+1)` reach source index `a`
/// or beyond (`FRAME_SIDE` if none); `hi[b]`: last output index whose first tap
/// is at most `b` (-1 if none).
const fn tables<const N: usize>(rows: bool) -> ([i8; N], [i8; N]) {
    let mut lo = [FRAME_SIDE as i8; N];
    let mut hi = [-1i8; N];
    let mut a = 0;
    while a < N {
        let mut r = FRAME_SIDE;
        while r > 0 {
            r -= 1;
            let t = if rows { tap_row(r) } else { tap_col(r) };
            let t1 = if t + 1 < N { t + 1 } else { N - 1 };
            if t1 >= a {
                lo[a] = r as i8;
            }
        }
        let mut r = 0;
        while r < FRAME_SIDE {
            if (if rows { tap_row(r) } else { tap_col(r) }) <= a {
                hi[a] = r as i8;
            }
            r += 1;
        }
        a += 1;
    }
    (lo, hi)
}

const ROWS: ([i8; SCREEN_H as usize], [i8; SCREEN_H as usize]) = tables(true);
const COLS: ([i8; SCREEN_W as usize], [i8; SCREEN_W as usize]) = tables(false);

/// Output rows touched by source rows `a..=b` (both already on screen).
#[inline]
fn row_range(a: i32, b: i32) -> (i32, i32) {
    (ROWS.0[a as usize] as i32, ROWS.1[b as usize] as i32)
}

/// Output columns touched by source columns `a..=b` (both already on screen).
#[inline]
fn col_range(a: i32, b: i32) -> (i32, i32) {
    (COLS.0[a as usize] as i32, COLS.1[b as usize] as i32)
}

/// ORs the screen rectangle `x0..=x1` × `y0..=y1` (clipped) into `rows`.
/// Row bits: column `c` is bit `127 - c`.
#[inline]
fn fill(rows: &mut [u128; FRAME_SIDE], x0: i32, x1: i32, y0: i32, y1: i32) {
    let (x0, x1) = (x0.max(0), x1.min(SCREEN_W - 1));
    let (y0, y1) = (y0.max(0), y1.min(SCREEN_H - 1));
    if x0 > x1 || y0 > y1 {
        return;
    }
    let (c0, c1) = col_range(x0, x1);
    let (r0, r1) = row_range(y0, y1);
    if c0 > c1 || r0 > r1 {
        return;
    }
    let mask = (!0u128 >> c0) & (!0u128 << (127 - c1));
    for row in &mut rows[r0 as usize..=r1 as usize] {
        *row |= mask;
    }
}

/// Writes the observation of `state` into `out` (the fast path).
pub fn observe(state: &State, out: &mut Frame) {
    let mut rows = [0u128; FRAME_SIDE];
    fill(&mut rows, 0, SCREEN_W - 1, GROUND_ROW, SCREEN_H - 1);
    for p in state.pipes() {
        if p.x > SCREEN_W - 1 || p.x + crate::sprites::PIPE_W - 1 < 0 {
            continue;
        }
        for [x0, x1, y0, y1] in p.rects() {
            fill(&mut rows, x0, x1, y0, y1);
        }
    }
    let y = state.player_y;
    for r in BIRD_RUNS[(state.anim_index % 3) as usize] {
        fill(
            &mut rows,
            PLAYER_X + r.x0 as i32,
            PLAYER_X + r.x1 as i32,
            y + r.y0 as i32,
            y + r.y1 as i32,
        );
    }
    for (row, dst) in rows.iter().zip(out.0.chunks_exact_mut(ROW_BYTES)) {
        dst.copy_from_slice(&row.to_be_bytes()[..ROW_BYTES]);
    }
}

/// Slow references: the full 288x512 scene, pixel by pixel, and the tap rule
/// applied to it with the floating-point OpenCV formula.
#[cfg(any(test, feature = "std"))]
pub mod reference {
    use super::*;
    use crate::sprites::{bird_opaque, lower_pipe_opaque, upper_pipe_opaque, PIPE_H, PIPE_W};
    use std::vec::Vec;

    /// The scene's non-black pixels, `SCREEN_W * SCREEN_H`, index `y * 288 + x`,
    /// painted from the sprite masks pixel by pixel.
    pub fn rasterize(state: &State) -> Vec<bool> {
        let (w, h) = (SCREEN_W, SCREEN_H);
        let mut px = std::vec![false; (w * h) as usize];
        let mut put = |x: i32, y: i32| {
            if (0..w).contains(&x) && (0..h).contains(&y) {
                px[(y * w + x) as usize] = true;
            }
        };
        for p in state.pipes() {
            for sy in 0..PIPE_H {
                for sx in 0..PIPE_W {
                    if upper_pipe_opaque(sx, sy) {
                        put(p.x + sx, p.upper_y() + sy);
                    }
                    if lower_pipe_opaque(sx, sy) {
                        put(p.x + sx, p.lower_y() + sy);
                    }
                }
            }
        }
        for y in GROUND_ROW..GROUND_ROW + 112 {
            for x in 0..w {
                put(x, y);
            }
        }
        for sy in 0..24 {
            for sx in 0..34 {
                if bird_opaque(state.anim_index as usize, sx, sy) {
                    put(PLAYER_X + sx, state.player_y + sy);
                }
            }
        }
        px
    }

    /// The two source indices OpenCV's bilinear resize reads for output `dst`.
    fn taps(dst: usize, src_len: usize, dst_len: usize) -> [usize; 2] {
        let scale = src_len as f64 / dst_len as f64;
        let s = ((dst as f64 + 0.5) * scale - 0.5).floor().max(0.0) as usize;
        [s.min(src_len - 1), (s + 1).min(src_len - 1)]
    }

    /// Applies the tap rule to a rasterised screen (as from [`rasterize`]).
    pub fn downsample(px: &[bool]) -> Frame {
        let (w, h) = (SCREEN_W as usize, SCREEN_H as usize);
        let mut f = Frame::empty();
        for r in 0..FRAME_SIDE {
            for c in 0..FRAME_SIDE {
                let on = taps(r, h, FRAME_SIDE)
                    .iter()
                    .any(|&y| taps(c, w, FRAME_SIDE).iter().any(|&x| px[y * w + x]));
                f.set(r, c, on);
            }
        }
        f
    }

    /// The observation of `state`, the slow way.
    pub fn observe(state: &State) -> Frame {
        downsample(&rasterize(state))
    }
}
