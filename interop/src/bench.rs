//! policy-core's batch-1 latency on recorded frames, for `make peers`: one
//! call of `Policy::q_values` per stack, timed alone (it includes unpacking
//! the bit-packed frames, which the peers get as ready int8 / float
//! tensors). Two variants: the first conv through its nibble table (as the
//! firmware and the host simulator run it) and through the gather kernel.

use anyhow::{Context, Result};
use flappy::FrameStack;
use policy_core::Policy;
use std::hint::black_box;
use std::time::Instant;

/// The variants timed, by name.
pub const VARIANTS: [&str; 2] = [
    "policy-core (conv1 nibble table)",
    "policy-core (conv1 gather)",
];

/// The policies of both variants (the table borrowed from `table`).
pub fn policies<'a>(blob: &'a [u8], table: &'a mut Vec<u32>) -> Result<Vec<Policy<'a>>> {
    let gather = Policy::from_blob(blob).context("not a valid policy blob")?;
    let mut with_table = gather.clone();
    if let Some(n) = gather.conv1_table_len() {
        table.resize(n, 0);
        gather
            .write_conv1_table(table)
            .map_err(|e| anyhow::anyhow!("conv1 table: {e:?}"))?;
        with_table
            .attach_conv1_table(table)
            .map_err(|e| anyhow::anyhow!("conv1 table: {e:?}"))?;
    }
    Ok(vec![with_table, gather])
}

/// Another engine timed in the same process and rounds as policy-core
/// (tract, with the `tract` feature).
pub trait Engine {
    /// One pass over its stacks: nanoseconds of each run, in order.
    fn round(&mut self) -> Result<Vec<u64>>;
    /// Its outputs (the Q-values) for stack `i`.
    fn q_values(&mut self, i: usize) -> Result<Vec<f32>>;
}

#[cfg(feature = "tract")]
impl Engine for crate::tract::Tract {
    fn round(&mut self) -> Result<Vec<u64>> {
        crate::tract::Tract::round(self)
    }

    fn q_values(&mut self, i: usize) -> Result<Vec<f32>> {
        crate::tract::Tract::q_values(self, i)
    }
}

/// One pass over `stacks`: nanoseconds of each decision, in order.
pub fn round(policy: &mut Policy, stacks: &[FrameStack]) -> Vec<u64> {
    stacks
        .iter()
        .map(|s| {
            let t = Instant::now();
            black_box(policy.q_values(black_box(s)));
            t.elapsed().as_nanos() as u64
        })
        .collect()
}

/// The median of `v` (sorts it); 0 for none.
pub fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The overhead of the timer itself: median nanoseconds of an empty timed region.
pub fn timer_overhead_ns() -> u64 {
    let mut v: Vec<u64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            black_box(());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    median(&mut v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_variants_give_the_same_q_values_and_time_every_stack() {
        let blob = policy_core::test_support::random_blob(&netspec::COMPACT, 2);
        let mut table = Vec::new();
        let mut ps = policies(&blob, &mut table).expect("valid");
        assert!(
            ps[0].conv1_table().is_some(),
            "compact's 4x4 first conv has a table"
        );
        assert!(ps[1].conv1_table().is_none());
        let stacks = vec![FrameStack::default(); 5];
        let a = ps[0].q_values(&stacks[0]);
        let b = ps[1].q_values(&stacks[0]);
        assert_eq!(a, b);
        let t = round(&mut ps[0], &stacks);
        assert_eq!(t.len(), 5);
        assert_eq!(median(&mut [5, 1, 3]), 3);
    }
}
