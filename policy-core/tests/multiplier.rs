//! The host-side helpers of the requantization convention
//! (`policy_core::quantize_multiplier`, `multiplier_value`).

use policy_core::{multiplier_value, quantize_multiplier};

#[test]
fn quantize_multiplier_is_accurate_and_normalised() {
    assert_eq!(quantize_multiplier(0.5).unwrap(), (1 << 30, 0));
    assert_eq!(quantize_multiplier(0.25).unwrap(), (1 << 30, 1));
    assert_eq!(quantize_multiplier(0.75).unwrap(), (3 << 29, 0));
    assert_eq!(quantize_multiplier(0.0).unwrap(), (0, 0));
    assert!(quantize_multiplier(1.0).is_none());
    assert!(quantize_multiplier(-0.1).is_none());
    assert!(quantize_multiplier(f64::NAN).is_none());
    let mut m = 0.999_999;
    while m > 1e-12 {
        let (m0, shift) = quantize_multiplier(m).unwrap();
        assert!(shift <= 31);
        if shift < 31 {
            assert!(m0 >= 1 << 30, "m {m}: m0 {m0} not normalised");
        }
        let got = multiplier_value(m0, shift);
        // Rounding the mantissa to an integer: half a unit of 2^-31-shift.
        assert!(
            (got - m).abs() <= 0.5 * 2f64.powi(-31 - shift as i32) * 1.000_001,
            "m {m} got {got}"
        );
        m *= 0.618;
    }
}
