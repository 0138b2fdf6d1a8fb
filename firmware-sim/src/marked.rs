//! The per-layer split: the policy's own decision path with a hook at every
//! stage boundary (the Cortex-M4 image reads SysTick there).

use crate::QFunction;
use flappy::FrameStack;
use policy_core::{Policy, NUM_ACTIONS};

/// A policy whose decisions call `mark(i)` right before stage `i` and
/// `mark(n)` after the last of its `n` stages (see
/// [`Policy::q_values_marked`]): the same kernels and buffers as
/// [`Policy::q_values`], so the same Q-values.
pub struct Marked<'p, 'a, F: FnMut(usize)> {
    policy: &'p mut Policy<'a>,
    mark: F,
}

impl<'p, 'a, F: FnMut(usize)> Marked<'p, 'a, F> {
    /// Wraps `policy`; `mark` receives the stage boundaries.
    pub fn new(policy: &'p mut Policy<'a>, mark: F) -> Self {
        Marked { policy, mark }
    }

    /// Number of stages (conv / dense layers, a following max-pool fused).
    pub fn stages(&self) -> usize {
        self.policy.stages().len()
    }
}

impl<F: FnMut(usize)> QFunction for Marked<'_, '_, F> {
    #[inline]
    fn q_values(&mut self, stack: &FrameStack) -> [i32; NUM_ACTIONS] {
        self.policy.q_values_marked(stack, &mut self.mark)
    }
}
