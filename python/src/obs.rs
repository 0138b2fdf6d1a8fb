//! Observations as Python sees them.
//!
//! [`ObsFormat::Cells`] (the default): the trainer's network input as bytes,
//! `[4][80][80]`, cell `(c, r, x)` = bit `(r, x)` of `stack.frame(c)`, 0 or
//! 1 (channel 0 the oldest frame, 3 the newest; `trainer::net::unpack_stack`
//! makes the same layout in floats). [`ObsFormat::Packed`]: the same stack
//! as `flappy`'s bit-packed frames, `[4][80][10]` bytes, most significant
//! bit first, so `numpy.unpackbits(packed, axis=-1)` gives the cells.

use flappy::{Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, STACK_LEN};

/// Bytes of one observation in cells (4 x 80 x 80).
pub const CELLS_LEN: usize = STACK_LEN * FRAME_SIDE * FRAME_SIDE;
/// Bytes of one bit-packed observation (4 x 80 x 10).
pub const PACKED_LEN: usize = STACK_LEN * FRAME_BYTES;

/// How an observation is laid out in bytes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObsFormat {
    /// `[4][80][80]`, one byte (0 or 1) per cell.
    Cells,
    /// `[4][80][10]`, eight cells per byte, most significant bit first.
    Packed,
}

impl ObsFormat {
    /// Bytes of one observation.
    pub const fn bytes(self) -> usize {
        match self {
            ObsFormat::Cells => CELLS_LEN,
            ObsFormat::Packed => PACKED_LEN,
        }
    }

    /// The shape of one observation.
    pub const fn shape(self) -> [usize; 3] {
        match self {
            ObsFormat::Cells => [STACK_LEN, FRAME_SIDE, FRAME_SIDE],
            ObsFormat::Packed => [STACK_LEN, FRAME_SIDE, FRAME_SIDE / 8],
        }
    }

    /// Writes `stack` into `out` (exactly [`ObsFormat::bytes`] bytes).
    #[inline]
    pub fn write(self, stack: &FrameStack, out: &mut [u8]) {
        let frame_len = self.bytes() / STACK_LEN;
        for (c, dst) in out.chunks_exact_mut(frame_len).enumerate() {
            match self {
                ObsFormat::Cells => unpack_frame(stack.frame(c), dst),
                ObsFormat::Packed => dst.copy_from_slice(stack.frame(c).as_bytes()),
            }
        }
    }

    /// The stack held in `bytes` (exactly [`ObsFormat::bytes`] bytes), or
    /// the offset of the first cell that is neither 0 nor 1.
    pub fn read(self, bytes: &[u8]) -> Result<FrameStack, usize> {
        let frame_len = self.bytes() / STACK_LEN;
        let mut frames = [Frame::empty(); STACK_LEN];
        for (c, (src, f)) in bytes.chunks_exact(frame_len).zip(&mut frames).enumerate() {
            match self {
                ObsFormat::Cells => pack_frame(src, f).map_err(|i| c * frame_len + i)?,
                ObsFormat::Packed => f.0.copy_from_slice(src),
            }
        }
        let mut stack = FrameStack::new(&frames[0]);
        for f in &frames[1..] {
            stack.push(f);
        }
        Ok(stack)
    }
}

/// Byte -> its 8 bits as bytes 0/1, most significant bit first, as the
/// little-endian bytes of a `u64` (one store per source byte).
static LUT: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            if b & (0x80 >> j) != 0 {
                t[b] |= 1 << (8 * j);
            }
            j += 1;
        }
        b += 1;
    }
    t
};

/// One frame as 6400 cells, 0 or 1, row-major.
#[inline]
fn unpack_frame(f: &Frame, out: &mut [u8]) {
    for (byte, dst) in f.0.iter().zip(out.chunks_exact_mut(8)) {
        dst.copy_from_slice(&LUT[*byte as usize].to_le_bytes());
    }
}

/// 6400 cells (0 or 1) into a frame; the index of a cell that is neither.
fn pack_frame(cells: &[u8], f: &mut Frame) -> Result<(), usize> {
    for (k, (src, byte)) in cells.chunks_exact(8).zip(f.0.iter_mut()).enumerate() {
        let mut b = 0u8;
        for (j, &v) in src.iter().enumerate() {
            if v > 1 {
                return Err(8 * k + j);
            }
            b |= v << (7 - j);
        }
        *byte = b;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flappy::{Action, Game};

    #[test]
    fn cells_are_the_trainers_layout_and_round_trip() {
        let mut game = Game::new(3);
        let mut stack = FrameStack::new(&game.frame());
        for t in 0..9 {
            game.step(if t % 4 == 0 {
                Action::Flap
            } else {
                Action::Idle
            })
            .unwrap();
            stack.push(&game.frame());
        }
        let mut cells = vec![9u8; CELLS_LEN];
        ObsFormat::Cells.write(&stack, &mut cells);
        for c in 0..STACK_LEN {
            for r in 0..FRAME_SIDE {
                for x in 0..FRAME_SIDE {
                    let v = cells[(c * FRAME_SIDE + r) * FRAME_SIDE + x];
                    assert_eq!(v, u8::from(stack.frame(c).get(r, x)), "({c}, {r}, {x})");
                }
            }
        }
        assert_eq!(ObsFormat::Cells.read(&cells), Ok(stack));
        let mut packed = vec![0u8; PACKED_LEN];
        ObsFormat::Packed.write(&stack, &mut packed);
        assert_eq!(&packed[3 * FRAME_BYTES..], stack.newest().as_bytes());
        assert_eq!(ObsFormat::Packed.read(&packed), Ok(stack));
        cells[12_345] = 2;
        assert_eq!(ObsFormat::Cells.read(&cells), Err(12_345));
    }
}
