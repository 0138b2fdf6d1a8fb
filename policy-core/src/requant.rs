//! Fixed-point requantization, gemmlowp style (see `docs/quantization.md`).
//!
//! A real multiplier `M` in `[0, 1)` is stored as a Q31 mantissa `m0` (an `i32`,
//! normally in `[2^30, 2^31)`) and a right shift `shift` in `0..=31`:
//! `M ≈ m0 * 2^-31 * 2^-shift`.

/// Largest right shift a blob may carry.
pub const MAX_SHIFT: u8 = 31;

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)` with
/// halves rounded up (toward +inf; gemmlowp's nudge then truncating division), saturating the one overflowing case `a = b = i32::MIN`.
#[inline(always)]
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = mul_wide(a, b);
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    // |ab + nudge| / 2^31 < 2^31 except the case handled above.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `a * b` as an `i64`. ARMv6-M (the Cortex-M0) has no 32x32 -> 64-bit
/// multiply, and LLVM calls `__aeabi_lmul` (a 64x64 multiply, about 37
/// instructions there); there it is summed from four 16x16-bit products
/// ([`mul_wide_16`]). Elsewhere one instruction (`SMULL`, `imul`).
#[inline(always)]
pub fn mul_wide(a: i32, b: i32) -> i64 {
    #[cfg(all(target_arch = "arm", not(target_feature = "v7")))]
    return mul_wide_16(a, b);
    #[cfg(not(all(target_arch = "arm", not(target_feature = "v7"))))]
    return a as i64 * b as i64;
}

/// `a * b` as an `i64` from 32-bit multiplies only: with `a = ah 2^16 + al`
/// (`ah = a >> 16`, `al = a & 0xFFFF`) and likewise `b`, `a b = ah bh 2^32 +
/// (ah bl + al bh) 2^16 + al bl`, where `|ah bh| <= 2^30`, `|ah bl|, |al bh|
/// < 2^31` and `al bl < 2^32`: every product fits its 32-bit type. Exactly
/// `a as i64 * b as i64` (tested on all platforms).
#[cfg_attr(
    not(all(target_arch = "arm", not(target_feature = "v7"))),
    allow(dead_code)
)]
#[inline(always)]
pub fn mul_wide_16(a: i32, b: i32) -> i64 {
    let (ah, al) = (a >> 16, a & 0xFFFF);
    let (bh, bl) = (b >> 16, b & 0xFFFF);
    let hi = (ah * bh) as i64;
    let mid = (ah * bl) as i64 + (al * bh) as i64;
    let lo = (al as u32 * bl as u32) as i64;
    (hi << 32) + (mid << 16) + lo
}

/// gemmlowp `RoundingDivideByPOT`: `round(x / 2^e)`, halves away from zero.
/// `e` must be `<= 31` (callers validate; larger values are clamped to 31).
#[inline(always)]
pub fn rdbpot(x: i32, e: u8) -> i32 {
    let e = if e > MAX_SHIFT { MAX_SHIFT } else { e };
    let mask = ((1u32 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> e) + (remainder > threshold) as i32
}

/// Requantizes an accumulator: `rdbpot(srdhm(acc, m0), shift)` clamped to `0..=255`
/// (the clamp at 0 is the ReLU; the output zero point is 0).
#[inline(always)]
pub fn requantize_u8(acc: i32, m0: i32, shift: u8) -> u8 {
    let v = rdbpot(srdhm(acc, m0), shift);
    v.clamp(0, 255) as u8
}

/// [`requantize_u8`] by a shorter road for a multiplier `>= 0` (every
/// validated blob's): an accumulator `<= 0` gives 0 (the ReLU) at once, and
/// a positive one has a positive product, so SRDHM's nudge and saturation
/// and RDBPOT's sign handling drop out: `v = (acc * m0 + 2^30) >> 31`
/// (`< 2^31`), then `(v + 2^(shift - 1)) >> shift` (halves up, which is
/// away from zero for `v >= 0`), clamped to 255. The same value for every
/// input (tested against [`requantize_u8`]); a negative multiplier takes
/// the general road.
#[inline(always)]
pub fn requantize_relu(acc: i32, m0: i32, shift: u8) -> u8 {
    if m0 < 0 {
        return requantize_u8(acc, m0, shift);
    }
    if acc <= 0 {
        return 0;
    }
    // 0 <= acc * m0 < 2^62: v < 2^31, and v + half < 2^32.
    let v = ((mul_wide(acc, m0) + (1 << 30)) >> 31) as u32;
    let e = if shift > MAX_SHIFT { MAX_SHIFT } else { shift };
    let half = (1u32 << e) >> 1;
    let q = (v + half) >> e;
    if q > 255 {
        255
    } else {
        q as u8
    }
}

/// The requantization multiplier `m` in `[0, 1)` in this module's
/// convention: a Q31 mantissa `m0` and a right shift, `m ≈ m0 * 2^-31 *
/// 2^-shift`, `m0` in `[2^30, 2^31)` unless the shift saturates at
/// [`MAX_SHIFT`]; `None` for `m` outside `[0, 1)` or rounding to 1. Host
/// only (the exporter's; floats never reach the inference path).
#[cfg(feature = "std")]
#[allow(clippy::float_arithmetic)]
pub fn quantize_multiplier(m: f64) -> Option<(i32, u8)> {
    if !(m.is_finite() && (0.0..1.0).contains(&m)) {
        return None;
    }
    if m == 0.0 {
        return Some((0, 0));
    }
    let (mut mm, mut shift) = (m, 0u8);
    while mm < 0.5 && shift < MAX_SHIFT {
        mm *= 2.0;
        shift += 1;
    }
    let mut m0 = (mm * 2f64.powi(31)).round() as i64;
    if m0 == 1i64 << 31 {
        if shift == 0 {
            return None;
        }
        m0 >>= 1;
        shift -= 1;
    }
    Some((m0 as i32, shift))
}

/// The real value of a quantized multiplier ([`quantize_multiplier`]). Host only.
#[cfg(feature = "std")]
#[allow(clippy::float_arithmetic)]
pub fn multiplier_value(m0: i32, shift: u8) -> f64 {
    m0 as f64 * 2f64.powi(-31 - shift as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic xorshift64 stream (shifts 13, 7, 17) from `s`.
    fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// Exact reference: `n / 2^e` rounded half up (toward +inf), in i128.
    fn round_half_up_pow2(n: i128, e: u32) -> i128 {
        (n + (1i128 << (e - 1))).div_euclid(1i128 << e)
    }

    /// Exact reference: `q = n / 2^e` rounded half away from zero, in i128.
    fn round_div_pow2(n: i128, e: u32) -> i128 {
        let d = 1i128 << e;
        let q = n.abs() / d;
        let r = n.abs() % d;
        let q = if 2 * r >= d { q + 1 } else { q };
        if n < 0 {
            -q
        } else {
            q
        }
    }

    fn reference(acc: i32, m0: i32, shift: u8) -> u8 {
        let step1 = round_half_up_pow2(acc as i128 * m0 as i128, 31)
            .clamp(i32::MIN as i128, i32::MAX as i128);
        let step2 = round_div_pow2(step1, shift as u32);
        step2.clamp(0, 255) as u8
    }

    fn reference_i32(acc: i32, m0: i32, shift: u8) -> i32 {
        let step1 = round_half_up_pow2(acc as i128 * m0 as i128, 31)
            .clamp(i32::MIN as i128, i32::MAX as i128);
        round_div_pow2(step1, shift as u32) as i32
    }

    const ACCS: [i32; 16] = [
        0,
        1,
        -1,
        2,
        -2,
        255,
        -255,
        1 << 20,
        -(1 << 20),
        123_456_789,
        -123_456_789,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        i32::MAX - 1,
        1 << 30,
    ];
    const M0S: [i32; 9] = [
        0,
        1,
        1 << 30,
        (1 << 30) + 1,
        i32::MAX,
        i32::MAX - 1,
        1_518_500_250,
        i32::MIN,
        -(1 << 30),
    ];

    #[test]
    fn srdhm_and_rdbpot_match_i128_reference_on_edges() {
        for &acc in &ACCS {
            for &m0 in &M0S {
                for shift in [0u8, 1, 2, 7, 15, 30, 31] {
                    assert_eq!(
                        rdbpot(srdhm(acc, m0), shift),
                        reference_i32(acc, m0, shift),
                        "acc={acc} m0={m0} shift={shift}"
                    );
                    assert_eq!(
                        requantize_u8(acc, m0, shift),
                        reference(acc, m0, shift),
                        "acc={acc} m0={m0} shift={shift}"
                    );
                }
            }
        }
    }

    #[test]
    fn wide_multiply_from_16_bit_halves_is_exact() {
        let edges = [
            0,
            1,
            -1,
            0xFFFF,
            0x1_0000,
            -0x1_0000,
            0x7FFF,
            -0x8000,
            i32::MAX,
            i32::MIN,
        ];
        for &a in edges.iter().chain(&ACCS).chain(&M0S) {
            for &b in edges.iter().chain(&ACCS).chain(&M0S) {
                assert_eq!(mul_wide_16(a, b), a as i64 * b as i64, "{a} * {b}");
            }
        }
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        for _ in 0..200_000 {
            let s = next();
            let (a, b) = (s as i32, (s >> 32) as i32);
            assert_eq!(mul_wide_16(a, b), a as i64 * b as i64, "{a} * {b}");
            assert_eq!(mul_wide(a, b), a as i64 * b as i64);
        }
    }

    #[test]
    fn relu_form_equals_the_general_one() {
        let edges = [0u8, 1, 2, 7, 15, 30, 31, 32, 255];
        for &acc in &ACCS {
            for &m0 in &M0S {
                for &shift in &edges {
                    assert_eq!(
                        requantize_relu(acc, m0, shift),
                        requantize_u8(acc, m0, shift),
                        "acc={acc} m0={m0} shift={shift}"
                    );
                }
            }
        }
        let mut next = xorshift(0x1234_5678_9ABC_DEF1);
        for _ in 0..500_000 {
            let r = next();
            // Accumulators of every magnitude, multipliers mostly in the
            // exporter's range [2^30, 2^31), shifts 0..=33.
            let acc = r as i32 >> (r >> 59);
            let m0 = match next() % 4 {
                0 => (next() >> 33) as i32,
                _ => (1 << 30) | (next() >> 34) as i32,
            };
            let shift = (next() % 34) as u8;
            assert_eq!(
                requantize_relu(acc, m0, shift),
                requantize_u8(acc, m0, shift),
                "acc={acc} m0={m0} shift={shift}"
            );
        }
        // Every accumulator around the rounding points of one channel.
        for acc in -3000..300_000 {
            assert_eq!(
                requantize_relu(acc, 1_518_500_250, 9),
                requantize_u8(acc, 1_518_500_250, 9)
            );
        }
    }

    #[test]
    fn saturating_case() {
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(i32::MIN, i32::MAX), -i32::MAX);
        assert_eq!(srdhm(i32::MAX, i32::MAX), i32::MAX - 1);
    }

    #[test]
    fn negative_halves_round_away_from_zero() {
        assert_eq!(rdbpot(-3, 1), -2); // -1.5 -> -2
        assert_eq!(rdbpot(3, 1), 2); // 1.5 -> 2
        assert_eq!(rdbpot(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rdbpot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rdbpot(i32::MIN, 31), -1);
        assert_eq!(rdbpot(i32::MAX, 31), 1);
        assert_eq!(rdbpot(-7, 0), -7);
        // srdhm rounds halves up (toward +inf), as gemmlowp does:
        // -0.5 -> 0, +0.5 -> +1, -1.5 -> -1.
        assert_eq!(srdhm(-1, 1 << 30), 0);
        assert_eq!(srdhm(1, 1 << 30), 1);
        assert_eq!(srdhm(-3, 1 << 30), -1);
        assert_eq!(srdhm(-1, (1 << 30) + 1), -1);
    }

    #[test]
    fn saturates_to_u8_range() {
        assert_eq!(requantize_u8(i32::MAX, i32::MAX, 0), 255);
        assert_eq!(requantize_u8(i32::MIN, i32::MAX, 0), 0);
        assert_eq!(requantize_u8(1000, 1 << 30, 1), 250); // 1000 * 0.5 * 0.5
        assert_eq!(requantize_u8(-1000, 1 << 30, 1), 0);
    }

    #[test]
    fn random_inputs_match_reference() {
        // xorshift, deterministic
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200_000 {
            let r = next();
            let acc = r as i32 >> (r >> 59);
            let m0 = (next() >> 33) as i32;
            let shift = (next() % 32) as u8;
            assert_eq!(rdbpot(srdhm(acc, m0), shift), reference_i32(acc, m0, shift));
        }
    }

    #[test]
    fn monotone_in_acc_for_nonnegative_multiplier() {
        // Max-pooling before requantization relies on this.
        let mut prev = requantize_u8(-100_000, 1_518_500_250, 9);
        for acc in (-100_000..400_000).step_by(7) {
            let q = requantize_u8(acc, 1_518_500_250, 9);
            assert!(q >= prev);
            prev = q;
        }
    }
}
