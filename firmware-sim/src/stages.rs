//! The per-layer split: one decision re-run stage by stage through
//! `policy-core`'s public kernels, with a hook at every stage boundary (the
//! Cortex-M4 image reads SysTick there).
//!
//! [`Staged`] mirrors `Policy::q_values` (same kernels, same buffers, same
//! order), so it computes the very same Q-values: the host tests compare the
//! two on every decision of whole episodes, and the MCU image checks that a
//! full pass through [`Staged`] reproduces the checksum of the
//! [`Policy`](policy_core::Policy) pass. It is a measuring instrument only;
//! the decision path of both binaries is `Policy::q_values`.

use crate::QFunction;
use flappy::{Frame, FrameStack};
use policy_core::blob::{LayerKind, Stage};
use policy_core::conv1_table::{self, TableScratch, WINDOW_CAP};
use policy_core::kernels::{self, Conv1Scratch, ConvGeom, Gather, Requant};
use policy_core::{
    Policy, ACC_CAP, ACT_CAP, MAX_K1, NUM_ACTIONS, POOL_ROW_CAP, ROWSUM_CAP, STACK_LEN,
};

/// Working buffers of [`Staged`] (the same capacities as the policy's own).
pub struct StageScratch {
    act: [[u8; ACT_CAP]; 2],
    acc: [i32; ACC_CAP],
    pool_row: [i32; POOL_ROW_CAP],
    rowsum: [i32; ROWSUM_CAP],
    rows: [u128; 4 * MAX_K1],
    windows: [u8; WINDOW_CAP],
    gather: Gather,
}

impl StageScratch {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        StageScratch {
            act: [[0; ACT_CAP]; 2],
            acc: [0; ACC_CAP],
            pool_row: [0; POOL_ROW_CAP],
            rowsum: [0; ROWSUM_CAP],
            rows: [0; 4 * MAX_K1],
            windows: [0; WINDOW_CAP],
            gather: Gather::new(),
        }
    }
}

impl Default for StageScratch {
    fn default() -> Self {
        Self::new()
    }
}

fn geom(policy: &Policy, st: &Stage) -> ConvGeom {
    let (k, stride, pad) = match policy.model().layers[st.layer].kind {
        LayerKind::Conv2d { k, stride, pad, .. } => (k as usize, stride as usize, pad as usize),
        _ => (1, 1, 0),
    };
    ConvGeom {
        in_c: st.input.c,
        in_h: st.input.h,
        in_w: st.input.w,
        out_c: st.pre_pool.c,
        k,
        stride,
        pad,
    }
}

/// A policy evaluated stage by stage; `mark(i)` runs right before stage `i`
/// and `mark(n)` after the last of the `n` stages (a stage is a conv or dense
/// layer with the max-pool that follows it fused).
pub struct Staged<'p, 'a, F: FnMut(usize)> {
    policy: &'p Policy<'a>,
    s: &'p mut StageScratch,
    mark: F,
}

impl<'p, 'a, F: FnMut(usize)> Staged<'p, 'a, F> {
    /// Prepares `scratch` for `policy` (the first conv's row sums).
    pub fn new(policy: &'p Policy<'a>, scratch: &'p mut StageScratch, mark: F) -> Self {
        let first = policy.stages()[0];
        let g = geom(policy, &first);
        kernels::conv1_row_sums(
            &g,
            policy.model().layers[first.layer].weights.0,
            &mut scratch.rowsum,
        );
        Staged {
            policy,
            s: scratch,
            mark,
        }
    }

    /// Number of stages.
    pub fn stages(&self) -> usize {
        self.policy.stages().len()
    }
}

impl<F: FnMut(usize)> QFunction for Staged<'_, '_, F> {
    fn q_values(&mut self, stack: &FrameStack) -> [i32; NUM_ACTIONS] {
        let frames: [&Frame; STACK_LEN] = core::array::from_fn(|i| stack.frame(i));
        let StageScratch {
            act,
            acc,
            pool_row,
            rowsum,
            rows,
            windows,
            gather,
        } = &mut *self.s;
        let [buf_a, buf_b] = act;
        let (mut cur, mut nxt): (&mut [u8; ACT_CAP], &mut [u8; ACT_CAP]) = (buf_a, buf_b);
        let mut q = [0i32; NUM_ACTIONS];
        let stages = self.policy.stages();
        for (si, st) in stages.iter().enumerate() {
            (self.mark)(si);
            let layer = &self.policy.model().layers[st.layer];
            let rq = Requant {
                multipliers: layer.multipliers.0,
                shifts: layer.shifts.0,
            };
            let (w, b) = (layer.weights.0, layer.biases.0);
            let n_out = st.output.len();
            match layer.kind {
                LayerKind::Conv2d { .. } => {
                    let g = geom(self.policy, st);
                    if let (0, Some(table)) = (si, self.policy.conv1_table()) {
                        let s = TableScratch {
                            acc: &mut acc[..],
                            pool_row: &mut pool_row[..],
                            windows: &mut windows[..],
                            gather,
                        };
                        conv1_table::conv1_table(
                            frames,
                            &g,
                            st.pool,
                            table,
                            b,
                            rq,
                            s,
                            &mut nxt[..],
                        );
                    } else if si == 0 {
                        let s = Conv1Scratch {
                            acc: &mut acc[..],
                            pool_row: &mut pool_row[..],
                            rows: &mut rows[..],
                            rowsum: &rowsum[..],
                            gather,
                        };
                        kernels::conv1_binary(frames, &g, st.pool, w, b, rq, s, &mut nxt[..]);
                    } else {
                        kernels::conv_u8(
                            &cur[..st.input.len()],
                            &g,
                            w,
                            b,
                            rq,
                            &mut acc[..],
                            gather,
                            &mut nxt[..],
                        );
                    }
                }
                LayerKind::Dense { .. } => {
                    if st.last {
                        kernels::dense_acc(
                            &cur[..st.input.len()],
                            n_out,
                            w,
                            b,
                            &mut acc[..],
                            gather,
                        );
                        for (qv, &a) in q.iter_mut().zip(acc.iter()) {
                            *qv = a;
                        }
                        break;
                    }
                    kernels::dense_u8(
                        &cur[..st.input.len()],
                        n_out,
                        w,
                        b,
                        rq,
                        &mut acc[..],
                        gather,
                        &mut nxt[..],
                    );
                }
                LayerKind::MaxPool { .. } => {}
            }
            core::mem::swap(&mut cur, &mut nxt);
        }
        (self.mark)(stages.len());
        q
    }
}
