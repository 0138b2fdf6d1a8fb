//! The plan as a TFLite int8 flatbuffer (schema: `tensorflow/lite/schema/schema.fbs`,
//! file identifier `TFL3`): int8 NHWC activations with zero point -128 (the
//! input: int8 0/1 pixels, `[1, 80, 80, 4]`, zero point 0), per-channel int8
//! weights, int32 biases, fused ReLU, `MAX_POOL_2D`, `RESHAPE` before the
//! first dense layer, and an int16 output `[1, 2]` equal to policy-core's
//! int32 Q-values (`docs/interop.md`).
//!
//! The fast flavour ([`Flavour::Fast`]) keeps every integer and scale but
//! writes a first conv whose stride is its kernel as `SPACE_TO_DEPTH` and a
//! 1x1 conv (XNNPACK's int8 kernels here pad each kernel tap's channels to
//! 64, so 4 channels per tap cost 16 times their work), the hidden dense
//! layers as `FULLY_CONNECTED`, and the output layer as `DEQUANTIZE` and a
//! float `FULLY_CONNECTED` (its weights the int8 values times their scale),
//! so that XNNPACK takes the whole graph in one partition; float Q-values out.
//!
//! The model is first assembled as plain tensors and operators ([`TfGraph`]),
//! then serialized with the `flatbuffers` builder, field by field.

use crate::plan::{self, Kind, Plan, PlanStage};
use crate::Flavour;
use anyhow::{ensure, Result};
use flatbuffers::{FlatBufferBuilder, TableFinishedWIPOffset, WIPOffset};

// schema.fbs: TensorType
const FLOAT32: i8 = 0;
const INT8: i8 = 9;
const INT16: i8 = 7;
const INT32: i8 = 2;
const INT64: i8 = 4;
// BuiltinOperator, with the op version written.
const CONV_2D: (i32, i32) = (3, 3);
const MAX_POOL_2D: (i32, i32) = (17, 2);
const FULLY_CONNECTED: (i32, i32) = (9, 7);
const FULLY_CONNECTED_INT8: (i32, i32) = (9, 4);
const FULLY_CONNECTED_FLOAT: (i32, i32) = (9, 1);
const DEQUANTIZE: (i32, i32) = (6, 2);
const SPACE_TO_DEPTH: (i32, i32) = (26, 2);
const RESHAPE: (i32, i32) = (22, 1);
const PAD: (i32, i32) = (34, 2);
const QUANTIZE: (i32, i32) = (114, 4);
// BuiltinOptions union tags.
const OPT_CONV: u8 = 1;
const OPT_POOL: u8 = 5;
const OPT_FC: u8 = 8;
const OPT_RESHAPE: u8 = 17;
const OPT_SPACE_TO_DEPTH: u8 = 19;
const OPT_PAD: u8 = 22;
// Padding, ActivationFunctionType.
const SAME: i8 = 0;
const VALID: i8 = 1;
const RELU: i8 = 1;
const NO_ACTIVATION: i8 = 0;

/// A flatbuffer table's field `id` as its vtable offset.
const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// Affine quantization of a tensor (per channel along dimension 0 when
/// there are several scales).
#[derive(Clone, Debug, PartialEq)]
pub struct Quant {
    /// Scales.
    pub scales: Vec<f32>,
    /// Zero points, one per scale.
    pub zero_points: Vec<i64>,
}

impl Quant {
    fn tensor(scale: f32, zero_point: i32) -> Quant {
        Quant {
            scales: vec![scale],
            zero_points: vec![zero_point as i64],
        }
    }

    fn symmetric(scales: Vec<f32>) -> Quant {
        let zero_points = vec![0; scales.len()];
        Quant {
            scales,
            zero_points,
        }
    }
}

/// One tensor of the subgraph.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name (Netron shows it; the conformance tests find stage outputs by it).
    pub name: String,
    /// Shape.
    pub shape: Vec<i32>,
    /// `TensorType`.
    pub ty: i8,
    /// Index into the buffers (0: the empty buffer of activations).
    pub buffer: u32,
    /// Quantization, if any.
    pub quant: Option<Quant>,
}

/// An operator's builtin options.
#[derive(Clone, Debug, PartialEq)]
pub enum Options {
    /// `Conv2DOptions`.
    Conv {
        /// `SAME` or `VALID`.
        padding: i8,
        /// Stride (both directions).
        stride: i32,
    },
    /// `Pool2DOptions` (window = stride = `k`, `VALID`).
    Pool {
        /// Window side.
        k: i32,
    },
    /// `FullyConnectedOptions`.
    Fc {
        /// Fused ReLU.
        relu: bool,
    },
    /// `ReshapeOptions`.
    Reshape {
        /// The new shape.
        shape: Vec<i32>,
    },
    /// `PadOptions` (empty).
    Pad,
    /// `SpaceToDepthOptions`.
    SpaceToDepth {
        /// Block side.
        block: i32,
    },
    /// No options (`QUANTIZE`).
    None,
}

/// One operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// `(BuiltinOperator, version)`.
    pub code: (i32, i32),
    /// Input tensor indices.
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
    /// Options.
    pub options: Options,
}

/// The model as plain data, before serialization.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TfGraph {
    /// Tensors.
    pub tensors: Vec<Tensor>,
    /// Buffers; buffer 0 is empty (activations).
    pub buffers: Vec<Vec<u8>>,
    /// Operators, in execution order.
    pub ops: Vec<Op>,
    /// The input tensor.
    pub input: i32,
    /// The output tensor.
    pub output: i32,
}

impl TfGraph {
    fn activation(&mut self, name: String, shape: Vec<i32>, ty: i8, q: Quant) -> i32 {
        self.tensors.push(Tensor {
            name,
            shape,
            ty,
            buffer: 0,
            quant: Some(q),
        });
        self.tensors.len() as i32 - 1
    }

    fn float_activation(&mut self, name: String, shape: Vec<i32>) -> i32 {
        let t = self.activation(name, shape, FLOAT32, Quant::tensor(1.0, 0));
        self.tensors[t as usize].quant = None;
        t
    }

    fn constant(
        &mut self,
        name: String,
        shape: Vec<i32>,
        ty: i8,
        data: Vec<u8>,
        q: Option<Quant>,
    ) -> i32 {
        self.buffers.push(data);
        self.tensors.push(Tensor {
            name,
            shape,
            ty,
            buffer: self.buffers.len() as u32 - 1,
            quant: q,
        });
        self.tensors.len() as i32 - 1
    }

    fn op(&mut self, code: (i32, i32), inputs: Vec<i32>, output: i32, options: Options) {
        self.ops.push(Op {
            code,
            inputs,
            outputs: vec![output],
            options,
        });
    }

    fn shape_of(&self, t: i32) -> Vec<i32> {
        self.tensors[t as usize].shape.clone()
    }

    /// Type and quantization of tensor `t`.
    fn kind_of(&self, t: i32) -> (i8, Quant) {
        let t = &self.tensors[t as usize];
        (t.ty, t.quant.clone().unwrap_or(Quant::tensor(1.0, 0)))
    }

    /// `x` reshaped to `shape` (same type and quantization) unless it has it.
    fn reshaped(&mut self, p: &str, x: i32, shape: Vec<i32>) -> i32 {
        if self.shape_of(x) == shape {
            return x;
        }
        let s = self.constant(
            format!("{p}/shape"),
            vec![dim(shape.len())],
            INT32,
            shape.iter().flat_map(|v| v.to_le_bytes()).collect(),
            None,
        );
        let (ty, q) = self.kind_of(x);
        let y = self.activation(format!("{p}/flatten"), shape.clone(), ty, q);
        self.op(RESHAPE, vec![x, s], y, Options::Reshape { shape });
        y
    }
}

/// Writes the plan as a TFLite flatbuffer.
pub fn write(plan: &Plan, flavour: Flavour) -> Result<Vec<u8>> {
    Ok(serialize(&graph(plan, flavour)?))
}

/// Assembles the tensors and operators of the plan.
pub fn graph(plan: &Plan, flavour: Flavour) -> Result<TfGraph> {
    let mut g = TfGraph {
        buffers: vec![Vec::new()],
        ..TfGraph::default()
    };
    let q_in = Quant::tensor(plan::INPUT_SCALE, plan::INPUT_ZERO_POINT);
    g.input = g.activation("input".into(), vec![1, 80, 80, 4], INT8, q_in);
    let mut x = g.input;
    for (si, st) in plan.stages.iter().enumerate() {
        let p = format!("stage{si}");
        x = match (st.kind, st.last, flavour) {
            (Kind::Conv { .. }, _, _) => conv_stage(&mut g, &p, st, x, flavour)?,
            (Kind::Dense, false, Flavour::Exact) => dense_as_conv(&mut g, &p, st, x),
            (Kind::Dense, false, Flavour::Fast) => dense_fc(&mut g, &p, st, x),
            (Kind::Dense, true, Flavour::Exact) => output_int16(&mut g, &p, st, x, plan.q_offset()),
            (Kind::Dense, true, Flavour::Fast) => output_float(&mut g, &p, st, x),
        };
    }
    g.output = x;
    Ok(g)
}

fn dim(v: usize) -> i32 {
    v as i32
}

/// TFLite's padding for a PyTorch conv: `VALID` without padding, `SAME`
/// where TFLite's padding (total `max((out - 1) * stride + k - in, 0)`, the
/// smaller half before) is the same `pad` on both sides; otherwise `None`
/// (an explicit `PAD` first).
fn tflite_padding(input: usize, out: usize, k: usize, stride: usize, pad: usize) -> Option<i8> {
    if pad == 0 {
        return Some(VALID);
    }
    let same_out = input.div_ceil(stride);
    let total = ((same_out - 1) * stride + k).saturating_sub(input);
    (same_out == out && total == 2 * pad).then_some(SAME)
}

/// The per-channel weights and bias tensors of a stage.
/// An int64 bias (the output layer's) is lowered by `q_offset` (exact in i64).
fn params(
    g: &mut TfGraph,
    p: &str,
    st: &PlanStage,
    w_shape: Vec<i32>,
    bias_ty: i8,
    q_offset: i32,
) -> (i32, i32) {
    let n = st.out_c();
    let w = g.constant(
        format!("{p}/weights"),
        w_shape,
        INT8,
        st.weights.iter().map(|&v| v as u8).collect(),
        Some(Quant::symmetric(st.filter_scales.clone())),
    );
    // Per channel like the filter (one scale on the output layer: TFLite's
    // fully connected kernel checks a per-tensor bias scale against
    // input scale x filter scale).
    let b_scales = st.filter_scales.iter().map(|&w| st.in_scale * w).collect();
    let data = if bias_ty == INT64 {
        st.biases
            .iter()
            .flat_map(|&v| (v as i64 - q_offset as i64).to_le_bytes())
            .collect()
    } else {
        debug_assert_eq!(q_offset, 0, "only the int64 output biases are shifted");
        st.biases.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    let b = g.constant(
        format!("{p}/bias"),
        vec![dim(n)],
        bias_ty,
        data,
        Some(Quant::symmetric(b_scales)),
    );
    (w, b)
}

/// The block side when a conv can run as `SPACE_TO_DEPTH` and a 1x1 conv:
/// stride = kernel, no padding, a square input the kernel tiles. The OHWI
/// weights of one output channel, `(ky * k + kx) * c + ic`, are then in
/// `SPACE_TO_DEPTH`'s channel order.
fn space_to_depth_block(st: &PlanStage) -> Option<usize> {
    let Kind::Conv { k, stride, pad } = st.kind else {
        return None;
    };
    let tiles = st.input.h == st.input.w && st.input.h.is_multiple_of(k);
    (k > 1 && stride == k && pad == 0 && tiles).then_some(k)
}

/// An explicit `PAD` of `pad` on each side of the map `x` (TFLite pads with
/// the zero point, real 0, as policy-core pads with 0).
fn explicit_pad(g: &mut TfGraph, p: &str, st: &PlanStage, x: i32, pad: usize) -> i32 {
    let (h, w) = (st.input.h + 2 * pad, st.input.w + 2 * pad);
    let pads = [0, 0, pad, pad, pad, pad, 0, 0].map(|v| v as i32);
    let pads = g.constant(
        format!("{p}/paddings"),
        vec![4, 2],
        INT32,
        pads.iter().flat_map(|v| v.to_le_bytes()).collect(),
        None,
    );
    let (ty, q) = g.kind_of(x);
    let shape = vec![1, dim(h), dim(w), dim(st.input.c)];
    let y = g.activation(format!("{p}/pad"), shape, ty, q);
    g.op(PAD, vec![x, pads], y, Options::Pad);
    y
}

/// The map `x` as `SPACE_TO_DEPTH` blocks of side `b`.
fn space_to_depth(g: &mut TfGraph, p: &str, st: &PlanStage, x: i32, b: usize) -> i32 {
    let (h, w) = (st.input.h / b, st.input.w / b);
    let shape = vec![1, dim(h), dim(w), dim(b * b * st.input.c)];
    let (ty, q) = g.kind_of(x);
    let y = g.activation(format!("{p}/space_to_depth"), shape, ty, q);
    let block = dim(b);
    g.op(SPACE_TO_DEPTH, vec![x], y, Options::SpaceToDepth { block });
    y
}

fn conv_stage(g: &mut TfGraph, p: &str, st: &PlanStage, x: i32, fl: Flavour) -> Result<i32> {
    let Kind::Conv { k, stride, pad } = st.kind else {
        return Ok(x);
    };
    ensure!(
        st.pre_pool.h == st.pre_pool.w,
        "{p}: only square maps are written"
    );
    let (c_in, n) = (st.input.c, st.out_c());
    let block = space_to_depth_block(st).filter(|_| fl == Flavour::Fast);
    let same = tflite_padding(st.input.h, st.pre_pool.h, k, stride, pad);
    // The conv written: its input, kernel side, stride, padding, input channels.
    let (x, kw, stride, padding, cw) = match (block, same) {
        (Some(b), _) => (space_to_depth(g, p, st, x, b), 1, 1, VALID, b * b * c_in),
        (None, Some(pd)) => (x, k, stride, pd, c_in),
        (None, None) => (explicit_pad(g, p, st, x, pad), k, stride, VALID, c_in),
    };
    let (w, b) = params(g, p, st, vec![dim(n), dim(kw), dim(kw), dim(cw)], INT32, 0);
    let q_out = Quant::tensor(st.out_scale, plan::ACT_ZERO_POINT);
    let (h, wd) = (dim(st.pre_pool.h), dim(st.pre_pool.w));
    let conv_name = if st.pool > 1 {
        format!("{p}/conv")
    } else {
        p.to_string()
    };
    let y = g.activation(conv_name, vec![1, h, wd, dim(n)], INT8, q_out.clone());
    let stride = dim(stride);
    g.op(CONV_2D, vec![x, w, b], y, Options::Conv { padding, stride });
    if st.pool <= 1 {
        return Ok(y);
    }
    let (ph, pw) = (dim(st.output.h), dim(st.output.w));
    let z = g.activation(p.to_string(), vec![1, ph, pw, dim(n)], INT8, q_out);
    g.op(MAX_POOL_2D, vec![y], z, Options::Pool { k: dim(st.pool) });
    Ok(z)
}

/// A hidden dense layer as a 1x1 `CONV_2D` on a `[1, 1, 1, inp]` map (LiteRT's
/// reference `FULLY_CONNECTED` requantizes in double-precision float, its
/// reference `CONV_2D` with the integer multiplier, like TFLite Micro and
/// policy-core).
fn dense_as_conv(g: &mut TfGraph, p: &str, st: &PlanStage, x: i32) -> i32 {
    let (inp, n) = (dim(st.input.len()), dim(st.out_c()));
    let x = g.reshaped(p, x, vec![1, 1, 1, inp]);
    let (w, b) = params(g, p, st, vec![n, 1, 1, inp], INT32, 0);
    let q = Quant::tensor(st.out_scale, plan::ACT_ZERO_POINT);
    let y = g.activation(p.to_string(), vec![1, 1, 1, n], INT8, q);
    let conv = Options::Conv {
        padding: VALID,
        stride: 1,
    };
    g.op(CONV_2D, vec![x, w, b], y, conv);
    y
}

/// A hidden dense layer as an int8 `FULLY_CONNECTED` (per-channel weights,
/// fused ReLU) on a `[1, inp]` vector: the fast flavour.
fn dense_fc(g: &mut TfGraph, p: &str, st: &PlanStage, x: i32) -> i32 {
    let (inp, n) = (dim(st.input.len()), dim(st.out_c()));
    let x = g.reshaped(p, x, vec![1, inp]);
    let (w, b) = params(g, p, st, vec![n, inp], INT32, 0);
    let q = Quant::tensor(st.out_scale, plan::ACT_ZERO_POINT);
    let y = g.activation(p.to_string(), vec![1, n], INT8, q);
    g.op(
        FULLY_CONNECTED_INT8,
        vec![x, w, b],
        y,
        Options::Fc { relu: true },
    );
    y
}

/// The output layer as `QUANTIZE` (int8 to int16, scale kept: the u8
/// values) and a 16x8 `FULLY_CONNECTED` (int16 in, int64 bias) whose
/// multiplier is exactly 1, so its int16 outputs are the int32 Q-values
/// less `q_offset` (subtracted from the biases; [`crate::q_offset`]).
fn output_int16(g: &mut TfGraph, p: &str, st: &PlanStage, x: i32, q_offset: i32) -> i32 {
    let (inp, n) = (dim(st.input.len()), dim(st.out_c()));
    let q_wide = Quant::tensor(st.in_scale, 0);
    let wide = g.activation(format!("{p}/int16"), g.shape_of(x), INT16, q_wide);
    g.op(QUANTIZE, vec![x], wide, Options::None);
    let (w, b) = params(g, p, st, vec![n, inp], INT64, q_offset);
    let q = Quant::tensor(st.out_scale, 0);
    let y = g.activation("q_values".into(), vec![1, n], INT16, q);
    let fc = Options::Fc { relu: false };
    g.op(FULLY_CONNECTED, vec![wide, w, b], y, fc);
    y
}

/// The output layer in float, the fast flavour: `DEQUANTIZE`, then a float
/// `FULLY_CONNECTED` whose weights are the int8 weights times their scale
/// and whose biases are the int32 biases times `s_in * s_w`: its outputs are
/// policy-core's Q-values times the Q-value step, up to float rounding.
fn output_float(g: &mut TfGraph, p: &str, st: &PlanStage, x: i32) -> i32 {
    let (inp, n) = (dim(st.input.len()), dim(st.out_c()));
    let s_w = st.filter_scales.first().copied().unwrap_or(1.0);
    let real = g.float_activation(format!("{p}/float"), g.shape_of(x));
    g.op(DEQUANTIZE, vec![x], real, Options::None);
    let w = st.weights.iter().map(|&v| v as f32 * s_w);
    let step = st.in_scale as f64 * s_w as f64;
    let b = st.biases.iter().map(|&v| (v as f64 * step) as f32);
    let w = g.constant(
        format!("{p}/weights"),
        vec![n, inp],
        FLOAT32,
        f32_bytes(w),
        None,
    );
    let b = g.constant(format!("{p}/bias"), vec![n], FLOAT32, f32_bytes(b), None);
    let y = g.float_activation("q_values".into(), vec![1, n]);
    let fc = Options::Fc { relu: false };
    g.op(FULLY_CONNECTED_FLOAT, vec![real, w, b], y, fc);
    y
}

fn f32_bytes(v: impl Iterator<Item = f32>) -> Vec<u8> {
    v.flat_map(f32::to_le_bytes).collect()
}

/// A model with one trivial operator (`RESHAPE` of an int8 `[1, 2]`): the
/// cost of a call into a runtime with almost no work, for `make peers`.
pub fn null_model() -> Vec<u8> {
    let mut g = TfGraph {
        buffers: vec![Vec::new()],
        ..TfGraph::default()
    };
    let q = Quant::tensor(1.0, 0);
    g.input = g.activation("input".into(), vec![1, 2], INT8, q.clone());
    let shape = vec![1, 2];
    let s = g.constant(
        "shape".into(),
        vec![2],
        INT32,
        shape.iter().flat_map(|v: &i32| v.to_le_bytes()).collect(),
        None,
    );
    g.output = g.activation("output".into(), shape.clone(), INT8, q);
    g.op(
        RESHAPE,
        vec![g.input, s],
        g.output,
        Options::Reshape { shape },
    );
    serialize(&g)
}

type Table = WIPOffset<TableFinishedWIPOffset>;

/// Serializes the graph (one subgraph) with the `TFL3` file identifier.
pub fn serialize(g: &TfGraph) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(1 << 16);
    let buffers: Vec<Table> = g.buffers.iter().map(|d| buffer(&mut fbb, d)).collect();
    let tensors: Vec<Table> = g.tensors.iter().map(|t| tensor(&mut fbb, t)).collect();
    let mut codes: Vec<(i32, i32)> = Vec::new();
    for op in &g.ops {
        if !codes.contains(&op.code) {
            codes.push(op.code);
        }
    }
    let ops: Vec<Table> = g
        .ops
        .iter()
        .map(|op| {
            let idx = codes.iter().position(|c| *c == op.code).unwrap_or(0) as u32;
            operator(&mut fbb, op, idx)
        })
        .collect();
    let code_tables: Vec<Table> = codes.iter().map(|&c| op_code(&mut fbb, c)).collect();
    let sub = {
        let tensors = fbb.create_vector(&tensors);
        let inputs = fbb.create_vector(&[g.input]);
        let outputs = fbb.create_vector(&[g.output]);
        let ops = fbb.create_vector(&ops);
        let name = fbb.create_string("main");
        let s = fbb.start_table();
        fbb.push_slot_always(slot(0), tensors);
        fbb.push_slot_always(slot(1), inputs);
        fbb.push_slot_always(slot(2), outputs);
        fbb.push_slot_always(slot(3), ops);
        fbb.push_slot_always(slot(4), name);
        fbb.end_table(s)
    };
    let codes = fbb.create_vector(&code_tables);
    let subs = fbb.create_vector(&[sub]);
    let desc = fbb.create_string("flappy-dqn int8 policy, from the policy blob (docs/interop.md)");
    let bufs = fbb.create_vector(&buffers);
    let s = fbb.start_table();
    fbb.push_slot_always::<u32>(slot(0), 3);
    fbb.push_slot_always(slot(1), codes);
    fbb.push_slot_always(slot(2), subs);
    fbb.push_slot_always(slot(3), desc);
    fbb.push_slot_always(slot(4), bufs);
    let root = fbb.end_table(s);
    fbb.finish(root, Some("TFL3"));
    fbb.finished_data().to_vec()
}

fn buffer(fbb: &mut FlatBufferBuilder, data: &[u8]) -> Table {
    let d = (!data.is_empty()).then(|| fbb.create_vector(data));
    let s = fbb.start_table();
    if let Some(d) = d {
        fbb.push_slot_always(slot(0), d);
    }
    fbb.end_table(s)
}

fn tensor(fbb: &mut FlatBufferBuilder, t: &Tensor) -> Table {
    let shape = fbb.create_vector(&t.shape);
    let name = fbb.create_string(&t.name);
    let quant = t.quant.as_ref().map(|q| {
        let scale = fbb.create_vector(&q.scales);
        let zp = fbb.create_vector(&q.zero_points);
        let s = fbb.start_table();
        fbb.push_slot_always(slot(2), scale);
        fbb.push_slot_always(slot(3), zp);
        fbb.push_slot_always::<i32>(slot(6), 0);
        fbb.end_table(s)
    });
    let s = fbb.start_table();
    fbb.push_slot_always(slot(0), shape);
    fbb.push_slot_always::<i8>(slot(1), t.ty);
    fbb.push_slot_always::<u32>(slot(2), t.buffer);
    fbb.push_slot_always(slot(3), name);
    if let Some(q) = quant {
        fbb.push_slot_always(slot(4), q);
    }
    fbb.end_table(s)
}

fn op_code(fbb: &mut FlatBufferBuilder, (code, version): (i32, i32)) -> Table {
    let s = fbb.start_table();
    fbb.push_slot_always::<i8>(slot(0), code.min(127) as i8);
    fbb.push_slot_always::<i32>(slot(2), version);
    fbb.push_slot_always::<i32>(slot(3), code);
    fbb.end_table(s)
}

fn operator(fbb: &mut FlatBufferBuilder, op: &Op, opcode: u32) -> Table {
    let inputs = fbb.create_vector(&op.inputs);
    let outputs = fbb.create_vector(&op.outputs);
    let (tag, opts) = options(fbb, &op.options);
    let s = fbb.start_table();
    fbb.push_slot_always::<u32>(slot(0), opcode);
    fbb.push_slot_always(slot(1), inputs);
    fbb.push_slot_always(slot(2), outputs);
    if tag != 0 {
        fbb.push_slot_always::<u8>(slot(3), tag);
        fbb.push_slot_always(slot(4), opts);
    }
    fbb.end_table(s)
}

fn options(fbb: &mut FlatBufferBuilder, o: &Options) -> (u8, Table) {
    let shape = match o {
        Options::Reshape { shape } => Some(fbb.create_vector(shape)),
        _ => None,
    };
    let s = fbb.start_table();
    let tag = match *o {
        Options::Conv { padding, stride } => {
            fbb.push_slot_always::<i8>(slot(0), padding);
            fbb.push_slot_always::<i32>(slot(1), stride);
            fbb.push_slot_always::<i32>(slot(2), stride);
            fbb.push_slot_always::<i8>(slot(3), RELU);
            fbb.push_slot_always::<i32>(slot(4), 1);
            fbb.push_slot_always::<i32>(slot(5), 1);
            OPT_CONV
        }
        Options::Pool { k } => {
            fbb.push_slot_always::<i8>(slot(0), VALID);
            for id in 1..=4 {
                fbb.push_slot_always::<i32>(slot(id), k);
            }
            fbb.push_slot_always::<i8>(slot(5), NO_ACTIVATION);
            OPT_POOL
        }
        Options::Fc { relu } => {
            fbb.push_slot_always::<i8>(slot(0), if relu { RELU } else { NO_ACTIVATION });
            fbb.push_slot_always::<i8>(slot(1), 0);
            fbb.push_slot_always::<bool>(slot(2), false);
            OPT_FC
        }
        Options::Reshape { .. } => {
            if let Some(shape) = shape {
                fbb.push_slot_always(slot(0), shape);
            }
            OPT_RESHAPE
        }
        Options::Pad => OPT_PAD,
        Options::SpaceToDepth { block } => {
            fbb.push_slot_always::<i32>(slot(0), block);
            OPT_SPACE_TO_DEPTH
        }
        Options::None => 0,
    };
    (tag, fbb.end_table(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fbread::Tab;

    fn compact_graph(flavour: Flavour) -> TfGraph {
        let blob = policy_core::test_support::random_blob(&netspec::COMPACT, 9);
        graph(&crate::lower_blob(&blob).expect("lowers"), flavour).expect("graph")
    }

    #[test]
    fn flatbuffer_round_trips_through_an_independent_reader() {
        for flavour in Flavour::ALL {
            round_trip(&compact_graph(flavour));
        }
    }

    fn round_trip(g: &TfGraph) {
        let bytes = serialize(g);
        assert_eq!(&bytes[4..8], b"TFL3");
        let model = Tab::root(&bytes).expect("root table");
        assert_eq!(model.u32(0), Some(3), "schema version");
        let buffers = model.tables(4);
        assert_eq!(buffers.len(), g.buffers.len());
        for (b, want) in buffers.iter().zip(&g.buffers) {
            assert_eq!(b.bytes(0).unwrap_or(&[]), &want[..]);
        }
        let codes: Vec<(i32, i32)> = model
            .tables(1)
            .iter()
            .map(|c| (c.i32(3).unwrap_or(0), c.i32(2).unwrap_or(1)))
            .collect();
        let subs = model.tables(2);
        assert_eq!(subs.len(), 1);
        let sub = subs[0];
        assert_eq!(sub.i32s(1), vec![g.input]);
        assert_eq!(sub.i32s(2), vec![g.output]);
        let tensors = sub.tables(0);
        assert_eq!(tensors.len(), g.tensors.len());
        for (t, want) in tensors.iter().zip(&g.tensors) {
            assert_eq!(t.str(3), Some(want.name.as_str()));
            assert_eq!(t.i32s(0), want.shape);
            assert_eq!(t.i8(1), Some(want.ty));
            assert_eq!(t.u32(2), Some(want.buffer));
            let q = t.table(4).map(|q| Quant {
                scales: q.f32s(2),
                zero_points: q.i64s(3),
            });
            assert_eq!(q, want.quant);
        }
        let ops = sub.tables(3);
        assert_eq!(ops.len(), g.ops.len());
        for (o, want) in ops.iter().zip(&g.ops) {
            let code = codes[o.u32(0).expect("opcode index") as usize];
            assert_eq!(code, want.code);
            assert_eq!(o.i32s(1), want.inputs);
            assert_eq!(o.i32s(2), want.outputs);
        }
    }

    #[test]
    fn compact_lowers_to_the_expected_operators_and_padding() {
        let g = compact_graph(Flavour::Exact);
        let codes: Vec<i32> = g.ops.iter().map(|o| o.code.0).collect();
        // conv 4x4/4 (VALID), pool, conv 3x3/1 pad 1 (SAME), conv 3x3/2 pad 1
        // on a 10x10 map (TFLite's SAME would pad 0 before and 1 after: an
        // explicit PAD, then VALID), reshape, two fully connected layers.
        assert_eq!(
            codes,
            vec![
                CONV_2D.0,
                MAX_POOL_2D.0,
                CONV_2D.0,
                PAD.0,
                CONV_2D.0,
                RESHAPE.0,
                CONV_2D.0,
                QUANTIZE.0,
                FULLY_CONNECTED.0
            ]
        );
        let out = &g.tensors[g.output as usize];
        assert_eq!(
            (out.name.as_str(), out.ty, &out.shape[..]),
            ("q_values", INT16, &[1, 2][..])
        );
        for (i, name) in ["stage0", "stage1", "stage2", "stage3"].iter().enumerate() {
            assert!(
                g.tensors.iter().any(|t| t.name == *name),
                "stage {i} output named"
            );
        }
    }

    #[test]
    fn fast_flavour_keeps_the_integers_in_its_own_operators() {
        let (exact, fast) = (compact_graph(Flavour::Exact), compact_graph(Flavour::Fast));
        let codes: Vec<(i32, i32)> = fast.ops.iter().map(|o| o.code).collect();
        assert_eq!(
            codes,
            vec![
                SPACE_TO_DEPTH,
                CONV_2D,
                MAX_POOL_2D,
                CONV_2D,
                PAD,
                CONV_2D,
                RESHAPE,
                FULLY_CONNECTED_INT8,
                DEQUANTIZE,
                FULLY_CONNECTED_FLOAT
            ]
        );
        assert_eq!(fast.ops[0].options, Options::SpaceToDepth { block: 4 });
        // The first conv: 1x1 over 4 * 4 * 4 channels, the very OHWI bytes.
        let by_name = |g: &TfGraph, n: &str| -> Tensor {
            g.tensors.iter().find(|t| t.name == n).expect(n).clone()
        };
        let (we, wf) = (
            by_name(&exact, "stage0/weights"),
            by_name(&fast, "stage0/weights"),
        );
        assert_eq!(
            (we.shape, wf.shape),
            (vec![16, 4, 4, 4], vec![16, 1, 1, 64])
        );
        assert_eq!(
            exact.buffers[we.buffer as usize],
            fast.buffers[wf.buffer as usize]
        );
        assert_eq!(we.quant, wf.quant);
        // Hidden dense weights unchanged, as [out, in].
        let (de, df) = (
            by_name(&exact, "stage3/weights"),
            by_name(&fast, "stage3/weights"),
        );
        assert_eq!(df.shape, vec![256, 800]);
        assert_eq!(
            exact.buffers[de.buffer as usize],
            fast.buffers[df.buffer as usize]
        );
        // Output layer: float weights = int8 weight x its scale.
        let (oe, of) = (
            by_name(&exact, "stage4/weights"),
            by_name(&fast, "stage4/weights"),
        );
        let s = oe.quant.expect("quantized").scales[0];
        let floats: Vec<f32> = fast.buffers[of.buffer as usize]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let ints = &exact.buffers[oe.buffer as usize];
        assert_eq!(floats.len(), ints.len());
        for (f, &i) in floats.iter().zip(ints) {
            assert_eq!(*f, i as i8 as f32 * s);
        }
        let out = &fast.tensors[fast.output as usize];
        assert_eq!(
            (out.name.as_str(), out.ty, out.quant.is_none()),
            ("q_values", FLOAT32, true)
        );
    }

    #[test]
    fn space_to_depth_only_where_the_kernel_tiles_the_input() {
        let blob = |a: &netspec::Arch| policy_core::test_support::random_blob(a, 3);
        for (arch, want) in [
            (&netspec::COMPACT, true),
            (&netspec::TINY, true),
            (&netspec::CLASSIC, false),
        ] {
            let g = graph(
                &crate::lower_blob(&blob(arch)).expect("lowers"),
                Flavour::Fast,
            )
            .expect("graph");
            assert_eq!(g.ops[0].code == SPACE_TO_DEPTH, want, "{}", arch.name);
        }
    }

    #[test]
    fn padding_choice_follows_tflite_same_rule() {
        // classic's conv 8x8/4 pad 2 on 80 -> 20: SAME pads 2 and 2.
        assert_eq!(tflite_padding(80, 20, 8, 4, 2), Some(SAME));
        // 3x3/1 pad 1 on 10 -> 10: SAME.
        assert_eq!(tflite_padding(10, 10, 3, 1, 1), Some(SAME));
        // 3x3/2 pad 1 on 10 -> 5: SAME would pad 0 before and 1 after.
        assert_eq!(tflite_padding(10, 5, 3, 2, 1), None);
        // 4x4/2 pad 1 on 10 -> 5: SAME pads 1 and 1.
        assert_eq!(tflite_padding(10, 5, 4, 2, 1), Some(SAME));
        assert_eq!(tflite_padding(80, 20, 4, 4, 0), Some(VALID));
    }
}
