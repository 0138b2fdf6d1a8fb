//! tract (sonos' Rust inference engine, from crates.io) on the ONNX files,
//! for `make peers` (feature `tract`, out of the default build: it is heavy
//! to compile). A file is loaded, optimized and planned once; each recorded
//! stack is converted beforehand into the input the file declares (uint8 or
//! int8 NHWC `[1, 80, 80, 4]`, or float NCHW `[1, 4, 80, 80]`), so that only
//! the run is timed, as with policy-core.

use crate::trace::nhwc_pixels;
use anyhow::{anyhow, Context, Result};
use flappy::{FrameStack, FRAME_SIDE, STACK_LEN};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;
use tract_onnx::prelude::*;

/// An optimized model, its run state and one input tensor per stack.
pub struct Tract {
    state: TypedSimpleState,
    inputs: Vec<TValue>,
}

impl Tract {
    /// Loads and optimizes the ONNX file at `path` and converts `stacks`
    /// into its input. A file whose input is not a frame stack (the null
    /// model) gets one zero tensor per stack.
    pub fn load(path: &Path, stacks: &[FrameStack]) -> Result<Tract> {
        let err = |e: TractError| anyhow!("tract: {}: {e:#}", path.display());
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(err)?
            .into_optimized()
            .map_err(err)?;
        let fact = model.input_fact(0).map_err(err)?.clone();
        let shape: Vec<usize> = fact
            .shape
            .as_concrete()
            .ok_or_else(|| anyhow!("{}: the input shape is not fixed", path.display()))?
            .to_vec();
        let plan = model.into_runnable().map_err(err)?;
        let state = plan.spawn().map_err(err)?;
        let inputs = stacks
            .iter()
            .map(|s| input_tensor(s, &shape, fact.datum_type).map(TValue::from))
            .collect::<Result<Vec<_>>>()
            .with_context(|| path.display().to_string())?;
        Ok(Tract { state, inputs })
    }

    /// One pass over the stacks: nanoseconds of each run, in order.
    pub fn round(&mut self) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.inputs.len());
        for x in &self.inputs {
            let x = x.clone();
            let t = Instant::now();
            let y = self.state.run(tvec![x]);
            out.push(t.elapsed().as_nanos() as u64);
            black_box(y.map_err(|e| anyhow!("tract run: {e:#}"))?);
        }
        Ok(out)
    }

    /// The outputs for stack `i` (the Q-values), as f32.
    pub fn q_values(&mut self, i: usize) -> Result<Vec<f32>> {
        let x = self
            .inputs
            .get(i)
            .ok_or_else(|| anyhow!("no stack {i}"))?
            .clone();
        let y = self
            .state
            .run(tvec![x])
            .map_err(|e| anyhow!("tract run: {e:#}"))?;
        let q = y.first().ok_or_else(|| anyhow!("tract: no output"))?;
        let q = q
            .cast_to::<f32>()
            .map_err(|e| anyhow!("tract output: {e:#}"))?;
        let v = q
            .to_plain_array_view::<f32>()
            .map_err(|e| anyhow!("{e:#}"))?;
        Ok(v.iter().copied().collect())
    }
}

/// `stack` as the model's input: `[1, 80, 80, 4]` NHWC or `[1, 4, 80, 80]`
/// NCHW 0/1 pixels of type `dt`; zeros for any other shape.
fn input_tensor(stack: &FrameStack, shape: &[usize], dt: DatumType) -> Result<Tensor> {
    let (side, c) = (FRAME_SIDE, STACK_LEN);
    let nhwc = nhwc_pixels(stack);
    let pixels: Vec<u8> = if shape == [1, side, side, c] {
        nhwc
    } else if shape == [1, c, side, side] {
        let mut v = vec![0u8; nhwc.len()];
        for (i, &p) in nhwc.iter().enumerate() {
            let (yx, ch) = (i / c, i % c);
            v[ch * side * side + yx] = p;
        }
        v
    } else {
        vec![0; shape.iter().product()]
    };
    let t = tract_ndarray::ArrayD::from_shape_vec(shape, pixels)
        .context("input shape")?
        .into_tensor();
    t.cast_to_dt(dt)
        .map(|t| t.into_owned())
        .map_err(|e| anyhow!("input as {dt:?}: {e:#}"))
}
