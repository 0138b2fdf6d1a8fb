//! The agent's observation: 80x80 binary frames, bit-packed, and a stack of 4.
//!
//! Layout (the one every crate relies on): row `r` is a band of screen y
//! (0 = top), column `c` a band of screen x (0 = left). Bit (r, c) lives in
//! byte `r * 10 + c / 8`, at bit `7 - c % 8` (most significant bit first).

/// Side of an observation frame, in cells.
pub const FRAME_SIDE: usize = 80;
/// Bytes in one bit-packed frame.
pub const FRAME_BYTES: usize = FRAME_SIDE * FRAME_SIDE / 8;
/// Bytes in one bit-packed row.
pub const ROW_BYTES: usize = FRAME_SIDE / 8;
/// Frames in a stack (the network's input channels).
pub const STACK_LEN: usize = 4;

/// One 80x80 binary frame, bit-packed (see the module docs for the layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame(pub [u8; FRAME_BYTES]);

impl Default for Frame {
    fn default() -> Self {
        Frame([0; FRAME_BYTES])
    }
}

impl core::fmt::Debug for Frame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Frame({} cells set)", self.count_ones())
    }
}

impl Frame {
    /// An all-zero (black) frame.
    pub const fn empty() -> Self {
        Frame([0; FRAME_BYTES])
    }

    /// Whether cell (`row`, `col`) is set. Panics if out of range (a bug, not input).
    #[inline]
    pub fn get(&self, row: usize, col: usize) -> bool {
        self.0[row * ROW_BYTES + col / 8] & (0x80 >> (col % 8)) != 0
    }

    /// Sets cell (`row`, `col`) to `on`.
    #[inline]
    pub fn set(&mut self, row: usize, col: usize, on: bool) {
        let mask = 0x80 >> (col % 8);
        let byte = &mut self.0[row * ROW_BYTES + col / 8];
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }

    /// The bytes of row `row` (10 bytes, 80 cells).
    #[inline]
    pub fn row(&self, row: usize) -> &[u8] {
        &self.0[row * ROW_BYTES..(row + 1) * ROW_BYTES]
    }

    /// Number of set cells.
    pub fn count_ones(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; FRAME_BYTES] {
        &self.0
    }
}

/// The last [`STACK_LEN`] frames, oldest first: network input channel `i` is
/// [`FrameStack::frame`]`(i)`, so channel 3 is the newest frame.
///
/// Equality compares the frames in channel order, not the ring's layout.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameStack {
    frames: [Frame; STACK_LEN],
    /// Index in `frames` of the oldest frame (a ring, so a push copies one frame).
    oldest: usize,
}

impl PartialEq for FrameStack {
    fn eq(&self, other: &Self) -> bool {
        (0..STACK_LEN).all(|i| self.frame(i) == other.frame(i))
    }
}

impl Eq for FrameStack {}

impl FrameStack {
    /// A stack holding `first` four times, as at the start of an episode.
    pub const fn new(first: &Frame) -> Self {
        FrameStack {
            frames: [*first; STACK_LEN],
            oldest: 0,
        }
    }

    /// Restarts the stack with `first` four times (episode start). In place:
    /// `*self = Self::new(first)` builds the 3.2 KB stack as a temporary
    /// first, which a 16 KiB Cortex-M0 cannot spare.
    pub fn reset(&mut self, first: &Frame) {
        for f in &mut self.frames {
            *f = *first;
        }
        self.oldest = 0;
    }

    /// Pushes the newest frame, dropping the oldest.
    pub fn push(&mut self, newest: &Frame) {
        self.frames[self.oldest] = *newest;
        self.oldest = (self.oldest + 1) % STACK_LEN;
    }

    /// Channel `i` (0 = oldest, 3 = newest). Panics if `i >= STACK_LEN`.
    #[inline]
    pub fn frame(&self, i: usize) -> &Frame {
        &self.frames[(self.oldest + i) % STACK_LEN]
    }

    /// The newest frame.
    pub fn newest(&self) -> &Frame {
        self.frame(STACK_LEN - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_layout_is_msb_first_row_major() {
        let mut f = Frame::empty();
        f.set(1, 9, true);
        assert_eq!(f.0[11], 0b0100_0000);
        assert!(f.get(1, 9));
        assert_eq!(f.count_ones(), 1);
        f.set(1, 9, false);
        assert_eq!(f, Frame::empty());
    }

    #[test]
    fn stack_orders_oldest_first() {
        let mk = |n: usize| {
            let mut f = Frame::empty();
            f.set(0, n, true);
            f
        };
        let mut s = FrameStack::new(&mk(0));
        assert!((0..4).all(|i| s.frame(i).get(0, 0)));
        for n in 1..=5 {
            s.push(&mk(n));
        }
        for i in 0..4 {
            assert!(s.frame(i).get(0, i + 2), "channel {i}");
        }
        assert!(s.newest().get(0, 5));
    }
}
