//! Opaque-pixel masks of the sprites (spec "Screen and sprites").

/// Pipe sprite width.
pub const PIPE_W: i32 = 52;
/// Pipe sprite height.
pub const PIPE_H: i32 = 320;
/// Rows of the pipe's cap (full width).
pub const PIPE_CAP_ROWS: i32 = 24;
/// Columns left out on each side of the pipe body (body is columns 2..=49).
pub const PIPE_BODY_INSET: i32 = 2;

/// A run of identical bird-mask rows: rows `y0..=y1`, opaque columns `x0..=x1`
/// (sprite coordinates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First row.
    pub y0: u8,
    /// Last row (inclusive).
    pub y1: u8,
    /// First opaque column.
    pub x0: u8,
    /// Last opaque column (inclusive).
    pub x1: u8,
}

const fn run(y0: u8, y1: u8, x0: u8, x1: u8) -> Run {
    Run { y0, y1, x0, x1 }
}

/// Bird frame 0 (up-flap).
#[rustfmt::skip]
pub const BIRD0: &[Run] = &[
    run(0, 1, 12, 23), run(2, 3, 8, 25), run(4, 5, 6, 27), run(6, 7, 2, 29), run(8, 11, 0, 29),
    run(12, 13, 0, 31), run(14, 15, 2, 33), run(16, 19, 4, 31), run(20, 21, 6, 29),
    run(22, 23, 10, 19),
];
/// Bird frame 1 (mid).
#[rustfmt::skip]
pub const BIRD1: &[Run] = &[
    run(0, 1, 12, 23), run(2, 3, 8, 25), run(4, 5, 6, 27), run(6, 7, 4, 29), run(8, 11, 2, 29),
    run(12, 13, 0, 31), run(14, 15, 0, 33), run(16, 17, 2, 31), run(18, 19, 4, 31),
    run(20, 21, 6, 29), run(22, 23, 10, 19),
];
/// Bird frame 2 (down-flap).
#[rustfmt::skip]
pub const BIRD2: &[Run] = &[
    run(0, 1, 12, 23), run(2, 3, 8, 25), run(4, 5, 6, 27), run(6, 7, 4, 29), run(8, 11, 2, 29),
    run(12, 13, 2, 31), run(14, 15, 0, 33), run(16, 19, 0, 31), run(20, 21, 2, 29),
    run(22, 23, 10, 19),
];
/// The three bird frames, by animation index.
pub const BIRD_RUNS: [&[Run]; 3] = [BIRD0, BIRD1, BIRD2];

/// Whether bird frame `frame` is opaque at sprite pixel (`x`, `y`) (0..34, 0..24).
pub fn bird_opaque(frame: usize, x: i32, y: i32) -> bool {
    BIRD_RUNS[frame % 3].iter().any(|r| {
        (r.y0 as i32..=r.y1 as i32).contains(&y) && (r.x0 as i32..=r.x1 as i32).contains(&x)
    })
}

/// Whether the lower-pipe sprite is opaque at (`x`, `y`) (0..52, 0..320).
pub fn lower_pipe_opaque(x: i32, y: i32) -> bool {
    if !(0..PIPE_W).contains(&x) || !(0..PIPE_H).contains(&y) {
        return false;
    }
    y < PIPE_CAP_ROWS || (PIPE_BODY_INSET..PIPE_W - PIPE_BODY_INSET).contains(&x)
}

/// Whether the upper-pipe sprite (the lower one turned 180°) is opaque at (`x`, `y`).
pub fn upper_pipe_opaque(x: i32, y: i32) -> bool {
    lower_pipe_opaque(PIPE_W - 1 - x, PIPE_H - 1 - y)
}
