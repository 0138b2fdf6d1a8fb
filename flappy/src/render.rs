//! Human rendering: full 288x512 RGB frames, PNG snapshots and animated GIFs.
//!
//! The pixels come from [`crate::paint`] (indices into the fixed 16-colour
//! [`PALETTE`], so GIFs need no colour quantisation). Errors are [`std::io::Error`]s; nothing here
//! panics on bad input.

use crate::game::State;
pub use crate::paint::{BG, HEIGHT, PALETTE, PIXELS, WIDTH};
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::vec::Vec;

/// Bytes in one RGB frame (`288 * 512 * 3`).
pub const RGB_LEN: usize = WIDTH * HEIGHT * 3;

/// The palette flattened as `r, g, b, r, g, b, ...` (GIF's global colour table).
fn palette_bytes() -> Vec<u8> {
    PALETTE.iter().flatten().copied().collect()
}

/// Draws `state` into `out` as 288x512 palette indices (row-major, one byte
/// per pixel; `out` is resized as needed). See [`crate::paint::paint_indexed`].
pub fn render_indexed_into(state: &State, out: &mut Vec<u8>) {
    out.clear();
    out.resize(PIXELS, BG);
    let img: &mut [u8; PIXELS] = out
        .as_mut_slice()
        .try_into()
        .expect("resized to PIXELS just above");
    crate::paint::paint_indexed(state, img);
}

/// `state` as 288x512 palette indices (see [`render_indexed_into`]).
pub fn render_indexed(state: &State) -> Vec<u8> {
    let mut v = Vec::new();
    render_indexed_into(state, &mut v);
    v
}

/// `state` as a 288x512 RGB image, row-major, 3 bytes per pixel ([`RGB_LEN`] bytes).
pub fn render_rgb(state: &State) -> Vec<u8> {
    indexed_to_rgb(&render_indexed(state))
}

/// Palette indices to RGB bytes (indices above 15 are drawn black).
pub fn indexed_to_rgb(indexed: &[u8]) -> Vec<u8> {
    indexed
        .iter()
        .flat_map(|&i| PALETTE.get(i as usize).copied().unwrap_or([0; 3]))
        .collect()
}

/// Halves an indexed 288x512 image to 144x256 by keeping the top-left pixel
/// of every 2x2 block (exact palette colours, no blending).
pub fn downscale2(indexed: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(WIDTH * HEIGHT / 4);
    for row in indexed.chunks_exact(WIDTH).step_by(2) {
        v.extend(row.iter().step_by(2));
    }
    v
}

/// Writes `state` as an RGB PNG (288x512) to `w`.
pub fn write_png<W: Write>(w: W, state: &State) -> io::Result<()> {
    let mut enc = png::Encoder::new(w, WIDTH as u32, HEIGHT as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&render_rgb(state))?;
    writer.finish()?;
    Ok(())
}

/// Saves `state` as an RGB PNG (288x512) at `path`.
pub fn save_png(path: impl AsRef<Path>, state: &State) -> io::Result<()> {
    let mut f = BufWriter::new(File::create(path)?);
    write_png(&mut f, state)?;
    f.flush()
}

fn gif_err(e: gif::EncodingError) -> io::Error {
    match e {
        gif::EncodingError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// How a [`GifRecorder`] samples and sizes frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GifOptions {
    /// Record every `stride`-th state pushed (1 = all; 0 is treated as 1).
    pub stride: u32,
    /// Halve the image to 144x256 (much smaller files).
    pub half: bool,
    /// Stop recording after this many frames (further pushes are ignored).
    pub max_frames: u32,
    /// Delay per recorded frame in hundredths of a second; 0 = derived from
    /// the stride at the original 30 steps per second.
    pub delay_cs: u16,
}

impl Default for GifOptions {
    fn default() -> Self {
        GifOptions {
            stride: 2,
            half: true,
            max_frames: 900,
            delay_cs: 0,
        }
    }
}

/// Writes states as an endlessly looping animated GIF.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use flappy::{render::{GifOptions, GifRecorder}, Action, Game};
/// let mut game = Game::new(0);
/// let mut gif = GifRecorder::create("episode.gif", GifOptions::default())?;
/// gif.push(&game.state())?;
/// for _ in 0..100 {
///     game.step(flappy::agent::heuristic_action(&game)).ok();
///     gif.push(&game.state())?;
/// }
/// gif.finish()?;
/// # Ok(()) }
/// ```
pub struct GifRecorder<W: Write = BufWriter<File>> {
    enc: gif::Encoder<W>,
    opts: GifOptions,
    pushed: u64,
    frames: u32,
    scratch: Vec<u8>,
}

impl GifRecorder<BufWriter<File>> {
    /// A recorder writing to a new file at `path`.
    pub fn create(path: impl AsRef<Path>, opts: GifOptions) -> io::Result<Self> {
        Self::new(BufWriter::new(File::create(path)?), opts)
    }
}

impl<W: Write> GifRecorder<W> {
    /// A recorder writing to `w`.
    pub fn new(w: W, opts: GifOptions) -> io::Result<Self> {
        let (width, height) = Self::dims(opts.half);
        let mut enc = gif::Encoder::new(w, width, height, &palette_bytes()).map_err(gif_err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
        Ok(GifRecorder {
            enc,
            opts: GifOptions {
                stride: opts.stride.max(1),
                ..opts
            },
            pushed: 0,
            frames: 0,
            scratch: Vec::new(),
        })
    }

    fn dims(half: bool) -> (u16, u16) {
        if half {
            (WIDTH as u16 / 2, HEIGHT as u16 / 2)
        } else {
            (WIDTH as u16, HEIGHT as u16)
        }
    }

    /// Offers one state; it is recorded if it falls on the stride and the
    /// frame limit is not reached. Returns whether it was recorded.
    pub fn push(&mut self, state: &State) -> io::Result<bool> {
        let take = self.pushed.is_multiple_of(u64::from(self.opts.stride));
        self.pushed += 1;
        if !take || self.frames >= self.opts.max_frames {
            return Ok(false);
        }
        render_indexed_into(state, &mut self.scratch);
        let buffer = if self.opts.half {
            Cow::Owned(downscale2(&self.scratch))
        } else {
            Cow::Borrowed(&self.scratch[..])
        };
        let (width, height) = Self::dims(self.opts.half);
        let delay = if self.opts.delay_cs > 0 {
            self.opts.delay_cs
        } else {
            // 30 steps per second: stride * 100 / 30 hundredths, at least 2.
            ((self.opts.stride * 10).div_ceil(3)).clamp(2, u16::MAX as u32) as u16
        };
        let frame = gif::Frame {
            width,
            height,
            buffer,
            delay,
            ..gif::Frame::default()
        };
        self.enc.write_frame(&frame).map_err(gif_err)?;
        self.frames += 1;
        Ok(true)
    }

    /// Frames recorded so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Whether the frame limit has been reached.
    pub fn is_full(&self) -> bool {
        self.frames >= self.opts.max_frames
    }

    /// Writes the GIF trailer and flushes; returns the number of frames.
    pub fn finish(self) -> io::Result<u32> {
        let frames = self.frames;
        let mut w = self.enc.into_inner().map_err(gif_err)?;
        w.flush()?;
        Ok(frames)
    }
}
