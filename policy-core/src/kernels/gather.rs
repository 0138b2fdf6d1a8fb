//! The gather list: the non-zero inputs of one output position (or of a
//! chunk of a dense layer's input) with the offsets of their weight rows.
//! Every u8 multiply-accumulate walks it once per block of output channels,
//! so a zero input costs one test, not a row of multiplies.

/// Capacity of a [`Gather`] list: non-zero inputs collected per pass.
/// `caps-m0`: 128 (`tiny`'s convs gather at most 72 per position; its dense
/// layer is walked in chunks).
pub const GATHER_CAP: usize = if crate::SMALL_RAM { 128 } else { 256 };
// A power of two: an index masked with GATHER_CAP - 1 needs no bounds check.
const _: () = assert!(GATHER_CAP.is_power_of_two());
// The binary kernel sums up to GATHER_CAP int8 weights in i16, and up to
// GATHER_CAP offset weights (0..=255) in 16-bit SWAR lanes.
const _: () = assert!(GATHER_CAP * 128 <= 1 << 15);
const _: () = assert!(GATHER_CAP * 255 < 1 << 16);
// The u8 kernels sum up to GATHER_CAP products |x * w| <= 255 * 128 in i32.
const _: () = assert!(GATHER_CAP * 255 * 128 < i32::MAX as usize);
/// Whether [`Gather::push_nonzero`] branches on each value: on the
/// microcontrollers, where a branch costs an instruction or two and a
/// skipped zero saves three; not on hosts, where a branch on data this
/// irregular is mispredicted about half the time.
const BRANCHY: bool = cfg!(target_arch = "arm");
/// Capacity of the all-ones row list of the first conv (`in_c * k <= 4 * MAX_K1`).
const ROWS_CAP: usize = 4 * crate::MAX_K1;

/// Working memory of the multiply-accumulate: up to [`GATHER_CAP`] entries
/// `[x, off]` (a non-zero u8 input and the offset of its int8 weight row),
/// in the order they were pushed.
///
/// Invariant (the Cortex-M4 kernel's memory safety rests on it): every
/// offset in the list is at most `max_off`. Entries are only written by
/// [`Gather::push_nonzero`], which raises `max_off` first.
#[derive(Clone)]
pub struct Gather {
    /// The entries; one slot more than [`GATHER_CAP`] for an end marker.
    ents: [[u32; 2]; GATHER_CAP + 1],
    /// Entries in use.
    n: usize,
    /// Upper bound of every offset in `ents[..n]`.
    max_off: usize,
    /// All-ones kernel rows of the binary first conv.
    row_offs: [u32; ROWS_CAP],
}

impl Gather {
    /// An empty list.
    pub const fn new() -> Self {
        Gather {
            ents: [[0; 2]; GATHER_CAP + 1],
            n: 0,
            max_off: 0,
            row_offs: [0; ROWS_CAP],
        }
    }

    /// Entries in use.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the list is empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Entries that fit before the list is full.
    #[inline(always)]
    pub fn room(&self) -> usize {
        GATHER_CAP - self.n
    }

    /// Empties the list.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.n = 0;
        self.max_off = 0;
    }

    /// The entries in use, `[x, off]`.
    #[inline(always)]
    pub fn entries(&self) -> &[[u32; 2]] {
        &self.ents[..self.n]
    }

    /// Upper bound of every offset in [`Gather::entries`].
    #[inline(always)]
    pub fn max_off(&self) -> usize {
        self.max_off
    }

    /// The entries followed by an end marker `[0, 0]` (no entry has `x = 0`),
    /// for kernels that stop at the marker instead of counting.
    #[cfg_attr(
        not(all(target_arch = "arm", target_feature = "dsp")),
        allow(dead_code)
    )]
    #[inline(always)]
    pub(crate) fn terminated(&mut self) -> &[[u32; 2]] {
        self.ents[self.n] = [0, 0];
        &self.ents[..=self.n]
    }

    /// Appends the non-zero values of `x` with weight-row offsets `off0 +
    /// i * stride`; `x.len()` must not exceed [`Gather::room`] (the rest is
    /// dropped).
    #[inline(always)]
    pub fn push_nonzero(&mut self, x: &[u8], off0: usize, stride: usize) {
        let x = &x[..x.len().min(self.room())];
        if x.is_empty() {
            return;
        }
        // Raised before any entry is written: the invariant holds throughout.
        self.max_off = self.max_off.max(off0 + (x.len() - 1) * stride);
        // m < n + x.len() <= GATHER_CAP at every write: the mask changes
        // nothing but the bounds check.
        let (mut m, mut off) = (self.n, off0);
        for &v in x {
            if BRANCHY {
                if v != 0 {
                    self.ents[m & (GATHER_CAP - 1)] = [v as u32, off as u32];
                    m += 1;
                }
            } else {
                // Every value is written, only the non-zero ones advance.
                self.ents[m & (GATHER_CAP - 1)] = [v as u32, off as u32];
                m += (v != 0) as usize;
            }
            off += stride;
        }
        self.n = m;
    }

    /// The list's storage as plain words (at least [`GATHER_CAP`]) and the
    /// all-ones row list, for the first conv's offset lists; empties the list.
    #[inline(always)]
    pub(crate) fn words(&mut self) -> (&mut [u32], &mut [u32; ROWS_CAP]) {
        self.clear();
        (self.ents.as_flattened_mut(), &mut self.row_offs)
    }
}

impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}
