//! A loaded policy: the validated blob plus its working buffers.

use crate::blob::{BlobError, LayerKind, Model, Stage, Stages};
use crate::conv1_table::{self, TableError, TableScratch, WINDOW_CAP};
use crate::kernels::{self, Conv1Scratch, ConvGeom, ConvScratch, Gather, Requant};
use crate::{
    ACC_CAP, ACT_CAP, MAX_K1, MAX_LAYERS, NUM_ACTIONS, PACK_CAP, POOL_ROW_CAP, ROWSUM_CAP,
    SIMD_HOST, STACK_LEN,
};
use flappy::{Action, FrameStack};

/// All working memory of one decision, sized by the crate's capacity constants
/// (every blob is checked against them at load).
#[derive(Clone)]
pub struct Scratch {
    act: [[u8; ACT_CAP]; 2],
    acc: [i32; ACC_CAP],
    pool_row: [i32; POOL_ROW_CAP],
    rowsum: [i32; ROWSUM_CAP],
    rows: [u128; 4 * MAX_K1],
    windows: [u32; WINDOW_CAP / 4],
    gather: Gather,
}

impl Scratch {
    /// Out of line on purpose: inlined, LLVM builds the ~27 KiB of zeroes as a
    /// temporary and copies it into the policy, doubling the caller's frame
    /// (57 KiB instead of 34 KiB of RAM on the Cortex-M4 image). Called once
    /// per policy, so the call costs nothing that matters.
    #[inline(never)]
    const fn new() -> Self {
        Scratch {
            act: [[0; ACT_CAP]; 2],
            acc: [0; ACC_CAP],
            pool_row: [0; POOL_ROW_CAP],
            rowsum: [0; ROWSUM_CAP],
            rows: [0; 4 * MAX_K1],
            windows: [0; WINDOW_CAP / 4],
            gather: Gather::new(),
        }
    }
}

// The u8 convs keep their biases (at most ACC_CAP) in the first conv's pooled row.
const _: () = assert!(POOL_ROW_CAP >= ACC_CAP);

/// The u8 convs' weights re-laid in groups of input channels
/// (`kernels::packed`), on [`SIMD_HOST`] targets; empty elsewhere.
#[derive(Clone)]
struct Packed {
    words: [u32; PACK_CAP],
    /// Where each stage's words lie (`None`: not packed, the portable kernel runs it).
    at: [Option<(usize, usize)>; MAX_LAYERS],
}

impl Packed {
    /// Out of line for the same reason as [`Scratch::new`].
    #[inline(never)]
    const fn new() -> Self {
        Packed {
            words: [0; PACK_CAP],
            at: [None; MAX_LAYERS],
        }
    }
}

/// Peak RAM of one decision: the working buffers plus the 4-frame stack.
pub const PEAK_RAM_BYTES: usize =
    core::mem::size_of::<Scratch>() + core::mem::size_of::<FrameStack>();

/// A validated policy blob with its working buffers.
#[derive(Clone)]
pub struct Policy<'a> {
    model: Model<'a>,
    stages: Stages,
    /// The first conv's nibble table, if one is attached (checked against the weights).
    table: Option<&'a [u32]>,
    scratch: Scratch,
    packed: Packed,
}

impl core::fmt::Debug for Policy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Policy")
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

/// What a stage produced (for the trace hook).
#[cfg_attr(not(feature = "trace"), allow(dead_code))]
enum StageOut<'b> {
    /// u8 activations, HWC.
    U8(&'b [u8]),
    /// Raw i32 Q-values.
    I32(&'b [i32]),
}

impl<'a> Policy<'a> {
    /// Decodes and validates `bytes` (see [`Model::from_bytes`]) and prepares the buffers:
    /// [`Policy::empty`] then [`Policy::load`].
    ///
    /// ```
    /// use flappy::Game;
    /// use policy_core::{Action, FrameStack, Policy};
    /// // The committed reference network (in firmware: a blob in flash).
    /// let blob = include_bytes!("../../models/reference/policy.bin");
    /// let mut policy = Policy::from_blob(blob).expect("a valid blob");
    ///
    /// let mut game = Game::new(7);
    /// let mut stack = FrameStack::new(&game.frame());
    /// for _ in 0..400 {
    ///     let q = policy.q_values(&stack); // raw int32 Q-values: Idle, Flap
    ///     let action = policy.act(&stack); // their argmax, ties to Idle
    ///     assert_eq!(action == Action::Flap, q[1] > q[0]);
    ///     let step = game.step(action).expect("seeded games never fail");
    ///     assert!(!step.terminal, "the reference network survives 400 frames");
    ///     stack.push(&game.frame());
    /// }
    /// assert!(game.score() >= 5, "and passes pipes: {}", game.score());
    /// ```
    pub fn from_blob(bytes: &'a [u8]) -> Result<Policy<'a>, BlobError> {
        let mut p = Policy::empty();
        p.load(bytes)?;
        Ok(p)
    }

    /// A policy with no model: [`Policy::q_values`] returns zeros until
    /// [`Policy::load`] succeeds. `const`, so it can be placed once (in a
    /// `static`, or in `main`'s frame) and loaded in place, without the
    /// temporaries of returning a ~27 KiB value from [`Policy::from_blob`].
    pub const fn empty() -> Policy<'a> {
        Policy {
            model: Model {
                input: crate::blob::InputDesc::FLAPPY,
                num_actions: NUM_ACTIONS as u8,
                layers: heapless::Vec::new(),
            },
            stages: Stages::new(),
            table: None,
            scratch: Scratch::new(),
            packed: Packed::new(),
        }
    }

    /// Decodes and validates `bytes` like [`Policy::from_blob`], into this
    /// policy, reusing its buffers. On error the policy is left unchanged.
    pub fn load(&mut self, bytes: &'a [u8]) -> Result<(), BlobError> {
        let (model, stages) = Model::from_bytes(bytes)?;
        self.model = model;
        self.stages = stages;
        self.table = None;
        let first = self.stages[0];
        let g = self.geom(&first);
        kernels::conv1_row_sums(
            &g,
            self.model.layers[first.layer].weights.0,
            &mut self.scratch.rowsum,
        );
        self.pack();
        Ok(())
    }

    /// Re-lays the u8 convs' weights in groups while they fit [`PACK_CAP`]
    /// ([`SIMD_HOST`] targets only).
    fn pack(&mut self) {
        self.packed.at = [None; MAX_LAYERS];
        if !SIMD_HOST {
            return;
        }
        let mut used = 0;
        for (si, st) in self.stages.iter().enumerate().skip(1) {
            let layer = &self.model.layers[st.layer];
            if !matches!(layer.kind, LayerKind::Conv2d { .. }) {
                continue;
            }
            let g = conv_geom(&layer.kind, st);
            let free = &mut self.packed.words[used..];
            if let Some(n) = kernels::pack(&g, layer.weights.0, free) {
                self.packed.at[si] = Some((used, n));
                used += n;
            }
        }
    }

    /// Words of the first conv's nibble table ([`crate::conv1_table`]) for
    /// this model, `None` if its geometry has none.
    pub fn conv1_table_len(&self) -> Option<usize> {
        let first = self.stages.first()?;
        conv1_table::table_len(&self.geom(first))
    }

    /// Writes the first conv's nibble table for this model into `out`
    /// ([`Policy::conv1_table_len`] words), e.g. at build time, for flash.
    pub fn write_conv1_table(&self, out: &mut [u32]) -> Result<(), TableError> {
        let first = self.stages.first().ok_or(TableError::Unsupported)?;
        let w = self.model.layers[first.layer].weights.0;
        conv1_table::write(&self.geom(first), w, out)
    }

    /// Runs the first conv through `table` from now on, after checking that it
    /// is exactly this model's table ([`Policy::write_conv1_table`]), so the
    /// Q-values do not change; only the time to compute them does. On error
    /// nothing changes.
    pub fn attach_conv1_table(&mut self, table: &'a [u32]) -> Result<(), TableError> {
        let first = self.stages.first().ok_or(TableError::Unsupported)?;
        let w = self.model.layers[first.layer].weights.0;
        conv1_table::check(&self.geom(first), w, table)?;
        self.table = Some(table);
        Ok(())
    }

    /// The attached nibble table, if any.
    pub fn conv1_table(&self) -> Option<&'a [u32]> {
        self.table
    }

    /// The decoded model (descriptor, quantization parameters, borrowed tensors).
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// The compute stages (conv/dense with a fused pool) and their shapes.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    fn geom(&self, st: &Stage) -> ConvGeom {
        conv_geom(&self.model.layers[st.layer].kind, st)
    }

    /// Raw integer Q-values, one per action, all on the scale of the last layer
    /// (so their order is the float network's order up to quantization error).
    pub fn q_values(&mut self, stack: &FrameStack) -> [i32; NUM_ACTIONS] {
        self.run(stack, |_, _, _| {})
    }

    /// [`Policy::q_values`] with a hook at every stage boundary: `mark(i)`
    /// runs right before stage `i` and `mark(n)` after the last of the `n`
    /// stages (a stage is a conv or dense layer with the max-pool that follows
    /// it fused). The same kernels and buffers, so the same Q-values; the
    /// Cortex-M4 image reads its cycle counter there for the per-layer split.
    pub fn q_values_marked(
        &mut self,
        stack: &FrameStack,
        mut mark: impl FnMut(usize),
    ) -> [i32; NUM_ACTIONS] {
        mark(0);
        self.run(stack, |si, _, _| mark(si + 1))
    }

    /// The greedy action: argmax of [`Policy::q_values`], ties to the lowest
    /// index (Idle).
    pub fn act(&mut self, stack: &FrameStack) -> Action {
        action_of(&self.q_values(stack))
    }

    /// The greedy action as an index (0 = Idle, 1 = Flap): argmax of
    /// [`Policy::q_values`], ties to the lowest index.
    pub fn act_index(&mut self, stack: &FrameStack) -> usize {
        argmax(&self.q_values(stack))
    }

    #[inline(always)]
    fn run(
        &mut self,
        stack: &FrameStack,
        mut hook: impl FnMut(usize, &Stage, StageOut),
    ) -> [i32; NUM_ACTIONS] {
        let frames: [&flappy::Frame; STACK_LEN] = core::array::from_fn(|i| stack.frame(i));
        let Scratch {
            act,
            acc,
            pool_row,
            rowsum,
            rows,
            windows,
            gather,
        } = &mut self.scratch;
        let [buf_a, buf_b] = act;
        let (mut cur, mut nxt): (&mut [u8; ACT_CAP], &mut [u8; ACT_CAP]) = (buf_a, buf_b);
        let mut q = [0i32; NUM_ACTIONS];
        for (si, st) in self.stages.iter().enumerate() {
            let layer = &self.model.layers[st.layer];
            let rq = Requant {
                multipliers: layer.multipliers.0,
                shifts: layer.shifts.0,
            };
            let (w, b) = (layer.weights.0, layer.biases.0);
            let n_out = st.output.len();
            match layer.kind {
                LayerKind::Conv2d { .. } => {
                    let g = conv_geom(&layer.kind, st);
                    if let (0, Some(table)) = (si, self.table) {
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
                        // The first conv's pooled row is free by now: it holds the biases.
                        let s = ConvScratch {
                            acc: &mut acc[..],
                            bias: &mut pool_row[..],
                            gather,
                        };
                        let input = &cur[..st.input.len()];
                        match (SIMD_HOST, self.packed.at[si]) {
                            (true, Some((at, n))) => {
                                let packed = &self.packed.words[at..at + n];
                                kernels::conv_packed(input, &g, packed, b, rq, s, &mut nxt[..]);
                            }
                            _ => kernels::conv_u8(input, &g, w, b, rq, s, &mut nxt[..]),
                        }
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
                        hook(si, st, StageOut::I32(&acc[..n_out]));
                        return q;
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
            hook(si, st, StageOut::U8(&nxt[..n_out]));
            core::mem::swap(&mut cur, &mut nxt);
        }
        q
    }
}

/// The kernel geometry of stage `st` (a dense layer is a 1x1 "conv").
fn conv_geom(kind: &LayerKind, st: &Stage) -> ConvGeom {
    let (k, stride, pad) = match *kind {
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

/// The action with the largest Q-value, ties to the lowest index (Idle).
pub fn action_of(q: &[i32; NUM_ACTIONS]) -> Action {
    if argmax(q) == 1 {
        Action::Flap
    } else {
        Action::Idle
    }
}

/// Index of the largest value, ties to the lowest index (so Q-values that
/// tie choose Idle).
///
/// ```
/// assert_eq!(policy_core::argmax(&[3, 4]), 1);
/// assert_eq!(policy_core::argmax(&[3, 3]), 0);
/// ```
pub fn argmax(q: &[i32]) -> usize {
    let mut best = 0;
    for (i, &v) in q.iter().enumerate() {
        if v > q[best] {
            best = i;
        }
    }
    best
}

#[cfg(feature = "std")]
impl Policy<'_> {
    /// The scale of the Q-values: `q_float ≈ q_values * output_scale()`.
    pub fn output_scale(&self) -> f32 {
        self.model
            .layers
            .last()
            .map(|l| f32::from_bits(l.out_scale))
            .unwrap_or(0.0)
    }

    /// The output scale of every stage (u8 activation scale; Q-value scale for the last).
    pub fn layer_scales(&self) -> std::vec::Vec<f32> {
        self.stages
            .iter()
            .map(|st| f32::from_bits(self.model.layers[st.layer].out_scale))
            .collect()
    }
}

/// One stage's integer outputs, in PyTorch NCHW order, with their scale.
#[cfg(feature = "trace")]
#[derive(Clone, Debug, PartialEq)]
pub struct StageTrace {
    /// Index of the compute layer in the blob.
    pub layer: usize,
    /// Output shape (channels, height, width).
    pub shape: (usize, usize, usize),
    /// Integer values (u8 activations widened, or raw i32 Q-values), NCHW order.
    pub values: std::vec::Vec<i32>,
    /// Real value of one integer step.
    pub scale: f32,
}

/// Every stage's outputs of one decision.
#[cfg(feature = "trace")]
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// One entry per stage (conv / dense, with a following max-pool fused).
    pub stages: std::vec::Vec<StageTrace>,
    /// The Q-values ([`Policy::q_values`]).
    pub q: [i32; NUM_ACTIONS],
}

#[cfg(feature = "trace")]
impl Policy<'_> {
    /// Runs one decision and records every stage's integer activations.
    pub fn q_values_trace(&mut self, stack: &FrameStack) -> Trace {
        let scales = self.layer_scales();
        let mut stages = std::vec::Vec::new();
        let q = self.run(stack, |si, st, out| {
            let sh = st.output;
            let hwc: std::vec::Vec<i32> = match out {
                StageOut::U8(v) => v.iter().map(|&x| x as i32).collect(),
                StageOut::I32(v) => v.to_vec(),
            };
            let mut values = std::vec![0i32; hwc.len()];
            for c in 0..sh.c {
                for y in 0..sh.h {
                    for x in 0..sh.w {
                        values[(c * sh.h + y) * sh.w + x] = hwc[(y * sh.w + x) * sh.c + c];
                    }
                }
            }
            stages.push(StageTrace {
                layer: st.layer,
                shape: (sh.c, sh.h, sh.w),
                values,
                scale: scales[si],
            });
        });
        Trace { stages, q }
    }
}
