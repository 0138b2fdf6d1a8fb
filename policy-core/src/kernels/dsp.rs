//! The multiply-accumulate on the Cortex-M4's DSP extension (ARMv7E-M,
//! `target_feature = "dsp"`): for a block of 8 output channels, each gather
//! entry `[x, off]` loads the 8 int8 weights of its row as two words,
//! `SXTB16` splits each word into two pairs of sign-extended 16-bit halves
//! (channels 0 and 2, then 1 and 3), and `SMLABB` / `SMLATB` multiply one
//! half by `x` and add to an accumulator: 17 instructions for 8
//! multiply-adds, every accumulator in a register, where the compiled Rust
//! takes two to three times that (it spills the block's accumulators and
//! sign-extends byte by byte). The integers are those of
//! [`super::mac::mac_gathered_ref`] (the same exact i32 sums, in another
//! order; no partial sum can overflow: see `docs/quantization.md`).
//!
//! The kernel is a naked function in assembly (it needs 14 registers, more
//! than `asm!` may name), so this is the crate's only `unsafe` code. What
//! makes it sound: the entries end in a marker with `x = 0` (pushed values
//! are never 0), and every entry's offset is at most [`Gather::max_off`]
//! (the list's invariant), which [`mac`] checks against the weights before
//! the call; so every load stays inside the weight slice and the 8
//! accumulators.

use super::gather::Gather;

/// Output channels per call of the assembly kernel.
const LANES: usize = 8;

/// Adds the gathered products to every whole block of [`LANES`] channels
/// of `acc` (as [`super::mac::mac_gathered_ref`] would) and returns how many
/// channels it did (a multiple of [`LANES`]; fewer only if the list's
/// offsets do not fit `w`, which a validated blob never causes: the
/// portable kernel then does the rest and reports the error by its bounds
/// checks).
#[inline(always)]
pub(super) fn mac(acc: &mut [i32], w: &[u8], g: &mut Gather) -> usize {
    let max_off = g.max_off();
    let ents = g.terminated();
    let mut done = 0;
    for block in acc.chunks_exact_mut(LANES) {
        // The rows this block reads: w[off + done ..][..LANES] for every off <= max_off.
        let Some(wb) = w.get(done..) else { break };
        if max_off + LANES > wb.len() {
            break;
        }
        // SAFETY: `block` is 8 writable i32; `ents` is a live slice ending
        // in an entry with x = 0, the only one (`Gather::terminated`); every
        // other entry's offset is <= max_off (the `Gather` invariant), so
        // each of its two word loads at wb + off and wb + off + 4 lies in
        // wb[..max_off + 8], inside `wb` (checked above). The assembly
        // saves and restores the callee-saved registers and touches no
        // other memory.
        unsafe { mac8(block.as_mut_ptr(), ents.as_ptr(), wb.as_ptr()) };
        done += LANES;
    }
    done
}

/// `acc[l] += sum over entries [x, off] of x * (wb[off + l] as i8)`, `l <
/// 8`, up to the first entry with `x = 0`.
///
/// Registers: r0 = x (`acc` on entry), r1 = entry pointer, r2 = `wb`,
/// r3..r10 = the 8 accumulators, r11 = the row (then a weight pair), r12
/// and lr = the row's two weight words. Loads are `LDR` (unaligned rows are
/// allowed; `LDRD` would fault on them), the entries' `LDRD` reads an
/// aligned `[u32; 2]`. Per entry: 17 instructions for 8 multiply-adds.
///
/// # Safety
///
/// `acc` must point to 8 writable `i32`; `ents` to a readable sequence of
/// `[u32; 2]` that ends with an entry whose first word is 0; for every
/// entry before it, `wb + off .. wb + off + 8` must be readable.
#[unsafe(naked)]
unsafe extern "C" fn mac8(acc: *mut i32, ents: *const [u32; 2], wb: *const u8) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "push {{r0}}",
        "ldm r0, {{r3-r10}}",
        "2:",
        "ldrd r0, r11, [r1], #8",
        "cbz r0, 3f",
        "add r11, r2",
        "ldr r12, [r11]",
        "ldr lr, [r11, #4]",
        // Channels 0 and 2 (low and high half), then 1 and 3.
        "sxtb16 r11, r12",
        "smlabb r3, r11, r0, r3",
        "smlatb r5, r11, r0, r5",
        "sxtb16 r12, r12, ror #8",
        "smlabb r4, r12, r0, r4",
        "smlatb r6, r12, r0, r6",
        // Channels 4 and 6, then 5 and 7.
        "sxtb16 r11, lr",
        "smlabb r7, r11, r0, r7",
        "smlatb r9, r11, r0, r9",
        "sxtb16 lr, lr, ror #8",
        "smlabb r8, lr, r0, r8",
        "smlatb r10, lr, r0, r10",
        "b 2b",
        "3:",
        "pop {{r0}}",
        "stm r0, {{r3-r10}}",
        "pop {{r4-r11, pc}}",
    )
}
