//! Painting a game state as a full-size 288x512 image of palette indices,
//! without `std` or an allocator (the web page and the host renderer share it).
//!
//! Everything is drawn from the spec's geometry (no art from the original
//! game): a black background, green pipes whose opaque area is exactly
//! [`PipePair::rects`], a striped ground band from row 404 down, a yellow bird
//! whose opaque pixels are exactly the spec's masks
//! ([`crate::sprites::BIRD_RUNS`]), and the score in a built-in 5x7 digit font.
//! Colours are indices into the fixed 16-colour [`PALETTE`].

use crate::game::{PipePair, State, GROUND_ROW, PLAYER_X, SCREEN_H, SCREEN_W};
use crate::sprites::{BIRD_RUNS, PIPE_W};

/// Frame width in pixels.
pub const WIDTH: usize = SCREEN_W as usize;
/// Frame height in pixels.
pub const HEIGHT: usize = SCREEN_H as usize;
/// Pixels in one frame (`288 * 512`), one palette index each.
pub const PIXELS: usize = WIDTH * HEIGHT;

/// Palette index of the background (black).
pub const BG: u8 = 0;
const PIPE: u8 = 1;
const PIPE_LIGHT: u8 = 2;
const PIPE_DARK: u8 = 3;
const GRASS: u8 = 4;
const SAND: u8 = 5;
const SAND_DARK: u8 = 6;
const DIRT: u8 = 7;
const BIRD: u8 = 8;
const WING: u8 = 9;
const BEAK: u8 = 10;
const EYE: u8 = 11;
const PUPIL: u8 = 12;
const DIGIT: u8 = 13;
const DIGIT_SHADOW: u8 = 14;
const BIRD_EDGE: u8 = 15;

/// The 16 colours every frame is drawn with, by palette index.
pub const PALETTE: [[u8; 3]; 16] = [
    [0, 0, 0],       // background
    [88, 184, 64],   // pipe
    [156, 230, 112], // pipe highlight
    [40, 120, 40],   // pipe shade
    [120, 210, 80],  // grass
    [222, 214, 150], // sand
    [200, 186, 118], // sand stripe
    [150, 110, 60],  // dirt line
    [250, 204, 40],  // bird body
    [255, 244, 190], // bird wing
    [240, 110, 30],  // beak
    [255, 255, 255], // eye
    [60, 60, 70],    // pupil
    [255, 255, 255], // score digits
    [70, 70, 70],    // digit shadow
    [214, 150, 20],  // bird outline
];

/// A 5x7 digit font, one byte per row, bit 4 = leftmost column.
const DIGITS: [[u8; 7]; 10] = [
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
    [0x1E, 0x01, 0x01, 0x0E, 0x01, 0x01, 0x1E],
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
];
/// Screen pixels per font pixel.
const DIGIT_SCALE: i32 = 4;
/// Horizontal advance per digit (5 font columns plus one of spacing).
const DIGIT_ADVANCE: i32 = 6 * DIGIT_SCALE;
/// Top row of the score (`int(512 * 0.1)`, as in the original).
const SCORE_Y: i32 = 51;

/// An indexed-colour 288x512 canvas.
struct Canvas<'a>(&'a mut [u8]);

impl Canvas<'_> {
    /// Fills `x0..=x1` × `y0..=y1` (clipped to the screen) with `colour`.
    fn rect(&mut self, x0: i32, x1: i32, y0: i32, y1: i32, colour: u8) {
        let (x0, x1) = (x0.max(0), x1.min(SCREEN_W - 1));
        let (y0, y1) = (y0.max(0), y1.min(SCREEN_H - 1));
        if x0 > x1 || y0 > y1 {
            return;
        }
        for y in y0..=y1 {
            let row = y as usize * WIDTH;
            self.0[row + x0 as usize..=row + x1 as usize].fill(colour);
        }
    }

    /// Sets one pixel (ignored off screen).
    fn put(&mut self, x: i32, y: i32, colour: u8) {
        if (0..SCREEN_W).contains(&x) && (0..SCREEN_H).contains(&y) {
            self.0[y as usize * WIDTH + x as usize] = colour;
        }
    }
}

/// A pipe rectangle `[x0, x1, y0, y1]` with a highlight on the left and a
/// shade on the right, as a 3D-ish tube.
fn draw_tube(c: &mut Canvas<'_>, [x0, x1, y0, y1]: [i32; 4]) {
    c.rect(x0, x1, y0, y1, PIPE);
    let w = x1 - x0 + 1;
    c.rect(x0 + w / 10, x0 + w / 10 + w / 8, y0, y1, PIPE_LIGHT);
    c.rect(x1 - w / 6, x1, y0, y1, PIPE_DARK);
}

fn draw_pipe(c: &mut Canvas<'_>, p: &PipePair) {
    let [upper_body, upper_cap, lower_cap, lower_body] = p.rects();
    for r in [upper_body, lower_body, upper_cap, lower_cap] {
        draw_tube(c, r);
    }
    // A dark line where each cap meets its body, and at the cap's mouth.
    let (x0, x1) = (p.x, p.x + PIPE_W - 1);
    c.rect(x0, x1, upper_cap[2], upper_cap[2], PIPE_DARK);
    c.rect(x0, x1, upper_cap[3], upper_cap[3], PIPE_DARK);
    c.rect(x0, x1, lower_cap[2], lower_cap[2], PIPE_DARK);
    c.rect(x0, x1, lower_cap[3], lower_cap[3], PIPE_DARK);
}

/// The ground band: grass on top, diagonal sand stripes that scroll with the
/// frame counter, a dirt line under the grass.
fn draw_ground(c: &mut Canvas<'_>, loop_iter: u8) {
    c.rect(0, SCREEN_W - 1, GROUND_ROW, SCREEN_H - 1, SAND);
    let shift = 4 * loop_iter as i32; // pipes' speed; 120 is a multiple of 12
    for y in GROUND_ROW + 6..GROUND_ROW + 20 {
        for x in 0..SCREEN_W {
            if (x + shift + (y - GROUND_ROW)).rem_euclid(12) < 6 {
                c.put(x, y, SAND_DARK);
            }
        }
    }
    c.rect(0, SCREEN_W - 1, GROUND_ROW, GROUND_ROW + 4, GRASS);
    c.rect(0, SCREEN_W - 1, GROUND_ROW + 5, GROUND_ROW + 5, DIRT);
    c.rect(0, SCREEN_W - 1, GROUND_ROW + 20, GROUND_ROW + 21, SAND_DARK);
}

/// The bird: exactly the spec mask of `frame` at (57, `y`), coloured with
/// an outline, a wing that follows the animation, an eye and a beak.
fn draw_bird(c: &mut Canvas<'_>, frame: u8, y: i32) {
    let runs = BIRD_RUNS[(frame % 3) as usize];
    let opaque = |sx: i32, sy: i32| {
        runs.iter().any(|r| {
            (r.y0 as i32..=r.y1 as i32).contains(&sy) && (r.x0 as i32..=r.x1 as i32).contains(&sx)
        })
    };
    // Wing rectangle (sprite coordinates) per animation frame.
    let wing = match frame % 3 {
        0 => (2, 12, 6, 11),
        1 => (0, 12, 12, 15),
        _ => (0, 12, 14, 19),
    };
    for sy in 0..24 {
        for sx in 0..34 {
            if !opaque(sx, sy) {
                continue;
            }
            let edge = !opaque(sx - 1, sy)
                || !opaque(sx + 1, sy)
                || !opaque(sx, sy - 1)
                || !opaque(sx, sy + 1);
            let colour = if (26..=33).contains(&sx) && (12..=17).contains(&sy) {
                BEAK
            } else if (22..=23).contains(&sx) && (6..=7).contains(&sy) {
                PUPIL
            } else if (18..=25).contains(&sx) && (4..=9).contains(&sy) {
                EYE
            } else if edge {
                BIRD_EDGE
            } else if (wing.0..=wing.1).contains(&sx) && (wing.2..=wing.3).contains(&sy) {
                WING
            } else {
                BIRD
            };
            c.put(PLAYER_X + sx, y + sy, colour);
        }
    }
}

/// The score, centred at the top, white digits with a drop shadow.
fn draw_score(c: &mut Canvas<'_>, score: u32) {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut s = score;
    loop {
        digits[n] = (s % 10) as u8;
        n += 1;
        s /= 10;
        if s == 0 {
            break;
        }
    }
    let width = n as i32 * DIGIT_ADVANCE - DIGIT_SCALE;
    let left = (SCREEN_W - width) / 2;
    for (i, &d) in digits[..n].iter().rev().enumerate() {
        let gx = left + i as i32 * DIGIT_ADVANCE;
        for (colour, off) in [(DIGIT_SHADOW, 2), (DIGIT, 0)] {
            for (fy, bits) in DIGITS[d as usize].iter().enumerate() {
                for fx in 0..5 {
                    if bits & (0x10 >> fx) != 0 {
                        let x = gx + fx * DIGIT_SCALE + off;
                        let y = SCORE_Y + fy as i32 * DIGIT_SCALE + off;
                        c.rect(x, x + DIGIT_SCALE - 1, y, y + DIGIT_SCALE - 1, colour);
                    }
                }
            }
        }
    }
}

/// Paints `state` into `out` as 288x512 palette indices (row-major, one byte
/// per pixel).
///
/// ```
/// use flappy::paint::{paint_indexed, BG, PIXELS};
/// let mut img = [0u8; PIXELS];
/// paint_indexed(&flappy::Game::new(0).state(), &mut img);
/// assert_eq!(img[0], BG); // the sky's top-left corner
/// ```
pub fn paint_indexed(state: &State, out: &mut [u8; PIXELS]) {
    out.fill(BG);
    let mut c = Canvas(out);
    for p in state.pipes() {
        draw_pipe(&mut c, p);
    }
    draw_ground(&mut c, state.loop_iter);
    draw_bird(&mut c, state.anim_index, state.player_y);
    draw_score(&mut c, state.score);
}
