//! A policy blob with random integer parameters (host only): stands in for a
//! trained blob in tests and in `make mcu` when no exported model exists.
//! Deterministic in its seed; the architecture comes from `netspec`.

use std::vec::Vec;

/// The encoded blob of a random network of `arch`.
pub fn of(arch: &netspec::Arch, seed: u64) -> Vec<u8> {
    policy_core::test_support::random_blob(arch, seed)
}

/// The encoded blob of a random `classic` network (conv 8x8/4 → 32, pool 2,
/// conv 4x4/2 → 64, conv 3x3/1 → 64, fc 1600 → 512, fc 512 → 2).
pub fn classic(seed: u64) -> Vec<u8> {
    of(&netspec::CLASSIC, seed)
}
