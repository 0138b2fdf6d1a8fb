//! The plan as an ONNX QDQ graph (opset 13): int8 weights and int32 biases
//! as initializers behind `DequantizeLinear`, every activation through a
//! `QuantizeLinear` / `DequantizeLinear` pair at the blob's scale (zero point
//! -128), float input `[1, 4, 80, 80]` (0.0 / 1.0, NCHW as in PyTorch) and
//! float Q-values `[1, 2]` out. ONNX Runtime fuses the pattern into its
//! integer kernels (`QLinearConv`, `QGemm`), which requantize in float, so
//! its actions agree with policy-core's on nearly every frame but its
//! integers are not guaranteed to be the same.
//!
//! The fast flavour ([`Flavour::Fast`]) has policy-core's own activations,
//! uint8 with zero point 0 (x86 runtimes multiply u8 by s8; ONNX Runtime's
//! s8 x s8 convolutions are several times slower) and a uint8 NHWC input
//! `[1, 80, 80, 4]` dequantized and then transposed (ONNX Runtime and
//! OpenVINO both run NHWC inside and drop the transpose), and flattens the
//! quantized map before the first dense layer, so that its
//! `DequantizeLinear` feeds the `Gemm` directly: ONNX Runtime's pattern for
//! its integer `QGemm` (with the flatten after the dequantization it
//! dequantizes the 800 x 256 weights on every call and runs a float `Gemm`).

use crate::pb::Msg;
use crate::plan::{self, Kind, Plan, PlanStage};
use crate::Flavour;

/// The opset the graph imports.
pub const OPSET: i64 = 13;
/// The ONNX IR version written (the one that goes with opset 13).
pub const IR_VERSION: i64 = 7;

// TensorProto.DataType
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT8: i64 = 3;
const INT32: i64 = 6;
// AttributeProto.AttributeType
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

/// The graph under construction: nodes and initializers.
struct Graph {
    nodes: Vec<Msg>,
    inits: Vec<Msg>,
}

/// A node attribute.
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
}

impl Graph {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: &[(&str, Attr)]) {
        let mut n = Msg::new();
        for i in inputs {
            n.string(1, i);
        }
        n.string(2, output).string(3, output).string(4, op);
        for (name, a) in attrs {
            let mut m = Msg::new();
            m.string(1, name);
            match a {
                Attr::Int(v) => m.int(3, *v).int(20, ATTR_INT),
                Attr::Ints(v) => m.packed_ints(8, v).int(20, ATTR_INTS),
            };
            n.msg(5, &m);
        }
        self.nodes.push(n);
    }

    fn init(&mut self, name: &str, data_type: i64, dims: &[usize], raw: Vec<u8>) {
        let mut t = Msg::new();
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        t.packed_ints(1, &dims)
            .int(2, data_type)
            .string(8, name)
            .bytes(9, &raw);
        self.inits.push(t);
    }

    fn f32s(&mut self, name: &str, dims: &[usize], v: &[f32]) {
        self.init(
            name,
            FLOAT,
            dims,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
    }

    /// `v` as a float tensor, flattened to `[1, n]` when `flatten`: on the
    /// integer side (before `DequantizeLinear`) when `int_side`.
    fn float_input(&mut self, v: &Edge, flatten: bool, int_side: bool, p: &str) -> String {
        let (mut x, quant) = match v {
            Edge::Float(x) => (x.clone(), None),
            Edge::Quant { q, scale, zp } => (q.clone(), Some((scale, zp))),
        };
        let flat = format!("{p}_flat");
        let axis = [("axis", Attr::Int(1))];
        if flatten && (int_side || quant.is_none()) {
            self.node("Flatten", &[&x], &flat, &axis);
            x = flat.clone();
        }
        if let Some((scale, zp)) = quant {
            let dq = format!("{p}_in");
            self.node("DequantizeLinear", &[&x, scale, zp], &dq, &[]);
            x = dq;
            if flatten && !int_side {
                self.node("Flatten", &[&x], &flat, &axis);
                x = flat;
            }
        }
        x
    }
}

/// A tensor between stages.
enum Edge {
    /// Quantized: the tensor, its scale and its zero point.
    Quant {
        q: String,
        scale: String,
        zp: String,
    },
    /// Float: the fast flavour's input (dequantized, NCHW) and the Q-values.
    Float(String),
}

/// How a flavour writes activations: ONNX type and zero point, and where a
/// dense layer fed by a map flattens it.
#[derive(Clone, Copy)]
struct ActType {
    elem: i64,
    zero_point: u8,
    flatten_quantized: bool,
}

impl ActType {
    fn of(flavour: Flavour) -> ActType {
        match flavour {
            // TFLite's int8, zero point -128: the exact file's activations.
            Flavour::Exact => ActType {
                elem: INT8,
                zero_point: plan::ACT_ZERO_POINT as u8,
                flatten_quantized: false,
            },
            // policy-core's own u8 with zero point 0 (x86 runtimes' u8 x s8 path).
            Flavour::Fast => ActType {
                elem: UINT8,
                zero_point: 0,
                flatten_quantized: true,
            },
        }
    }
}

/// A `[dims...]` value description of element type `elem`.
fn value_info(name: &str, elem: i64, dims: &[usize]) -> Msg {
    let mut shape = Msg::new();
    for &d in dims {
        shape.msg(1, Msg::new().int(1, d as i64));
    }
    let mut tensor = Msg::new();
    tensor.int(1, elem).msg(2, &shape);
    let mut ty = Msg::new();
    ty.msg(1, &tensor);
    let mut v = Msg::new();
    v.string(1, name).msg(2, &ty);
    v
}

/// Writes the plan as an ONNX model (protobuf bytes).
pub fn write(plan: &Plan, flavour: Flavour) -> Vec<u8> {
    let mut g = Graph {
        nodes: Vec::new(),
        inits: Vec::new(),
    };
    let act = ActType::of(flavour);
    g.f32s("input_scale", &[], &[plan::INPUT_SCALE]);
    let (input, mut x) = match flavour {
        Flavour::Exact => {
            g.init(
                "input_zero_point",
                INT8,
                &[],
                vec![plan::INPUT_ZERO_POINT as u8],
            );
            let (scale, zp) = ("input_scale".to_string(), "input_zero_point".to_string());
            g.node("QuantizeLinear", &["input", &scale, &zp], "input_q", &[]);
            let q = "input_q".to_string();
            (
                value_info("input", FLOAT, &[1, 4, 80, 80]),
                Edge::Quant { q, scale, zp },
            )
        }
        Flavour::Fast => {
            g.init(
                "input_zero_point",
                UINT8,
                &[],
                vec![plan::INPUT_ZERO_POINT as u8],
            );
            let ins = ["input", "input_scale", "input_zero_point"];
            g.node("DequantizeLinear", &ins, "input_dq", &[]);
            let perm = [("perm", Attr::Ints(vec![0, 3, 1, 2]))];
            g.node("Transpose", &["input_dq"], "input_nchw", &perm);
            let info = value_info("input", UINT8, &[1, 80, 80, 4]);
            (info, Edge::Float("input_nchw".into()))
        }
    };
    for (si, st) in plan.stages.iter().enumerate() {
        let from_map = si > 0 && matches!(plan.stages[si - 1].kind, Kind::Conv { .. });
        x = stage(&mut g, si, st, &x, from_map, act);
    }
    let out = match &x {
        Edge::Float(name) | Edge::Quant { q: name, .. } => name.clone(),
    };
    let last = plan.stages.last().map_or(0, |s| s.out_c());
    model_bytes(
        &g,
        "flappy_dqn_int8",
        &input,
        &value_info(&out, FLOAT, &[1, last]),
    )
}

/// A model with one trivial operator (`Identity` on a float `[1, 2]`): the
/// cost of a call into a runtime with almost no work, for `make peers`.
pub fn null_model() -> Vec<u8> {
    let mut g = Graph {
        nodes: Vec::new(),
        inits: Vec::new(),
    };
    g.node("Identity", &["input"], "output", &[]);
    model_bytes(
        &g,
        "null",
        &value_info("input", FLOAT, &[1, 2]),
        &value_info("output", FLOAT, &[1, 2]),
    )
}

/// The model around a graph's nodes and initializers.
fn model_bytes(g: &Graph, name: &str, input: &Msg, output: &Msg) -> Vec<u8> {
    let mut graph = Msg::new();
    for n in &g.nodes {
        graph.msg(1, n);
    }
    graph.string(2, name);
    for t in &g.inits {
        graph.msg(5, t);
    }
    graph
        .string(
            10,
            "flappy-dqn int8 policy, from the policy blob (docs/interop.md)",
        )
        .msg(11, input)
        .msg(12, output);
    let mut opset = Msg::new();
    opset.string(1, "").int(2, OPSET);
    let mut model = Msg::new();
    model
        .int(1, IR_VERSION)
        .string(2, "flappy-dqn interop")
        .string(3, env!("CARGO_PKG_VERSION"))
        .msg(7, &graph)
        .msg(8, &opset);
    model.0
}

/// One stage's nodes: the dequantized weights and bias, the conv or dense
/// node, and, on hidden stages, ReLU, the quantized output and a max-pool.
/// Returns the stage's output (float Q-values on the last stage).
fn stage(g: &mut Graph, si: usize, st: &PlanStage, x: &Edge, from_map: bool, act: ActType) -> Edge {
    let p = format!("s{si}");
    weights(g, &p, st);
    let flatten = from_map && st.kind == Kind::Dense;
    let xin = g.float_input(x, flatten, act.flatten_quantized, &p);
    let acc = layer_node(g, &p, st, &xin);
    if st.last {
        return Edge::Float(acc);
    }
    g.node("Relu", &[&acc], &format!("{p}_relu"), &[]);
    let (scale, zp) = (format!("{p}_scale"), format!("{p}_zero_point"));
    g.f32s(&scale, &[], &[st.out_scale]);
    g.init(&zp, act.elem, &[], vec![act.zero_point]);
    let q = format!("{p}_q");
    g.node(
        "QuantizeLinear",
        &[&format!("{p}_relu"), &scale, &zp],
        &q,
        &[],
    );
    if st.pool <= 1 {
        return Edge::Quant { q, scale, zp };
    }
    let k = st.pool as i64;
    let pooled = format!("{p}_pool");
    let dq = format!("{p}_pool_in");
    g.node("DequantizeLinear", &[&q, &scale, &zp], &dq, &[]);
    let window = [
        ("kernel_shape", Attr::Ints(vec![k, k])),
        ("strides", Attr::Ints(vec![k, k])),
    ];
    g.node("MaxPool", &[&dq], &pooled, &window);
    let q = format!("{p}_pool_q");
    g.node("QuantizeLinear", &[&pooled, &scale, &zp], &q, &[]);
    Edge::Quant { q, scale, zp }
}

/// The stage's int8 weights and int32 biases as initializers behind
/// `DequantizeLinear` (`<p>_w_dq`, `<p>_b_dq`): per channel (axis 0) on
/// hidden stages, per tensor on the last.
fn weights(g: &mut Graph, p: &str, st: &PlanStage) {
    let n = st.out_c();
    let (w, w_dims) = match st.kind {
        Kind::Conv { k, .. } => (ohwi_to_oihw(st), vec![n, st.input.c, k, k]),
        Kind::Dense if st.input.h * st.input.w > 1 => (
            plan::dense_hwc_to_chw(&st.weights, st.input),
            vec![n, st.input.len()],
        ),
        Kind::Dense => (st.weights.clone(), vec![n, st.input.len()]),
    };
    let per = st.filter_scales.len();
    let per_dims: &[usize] = if per > 1 { &[per] } else { &[] };
    let (wq, wsc, wzp) = (
        format!("{p}_w"),
        format!("{p}_w_scale"),
        format!("{p}_w_zero_point"),
    );
    g.init(&wq, INT8, &w_dims, w.iter().map(|&v| v as u8).collect());
    g.f32s(&wsc, per_dims, &st.filter_scales);
    g.init(&wzp, INT8, per_dims, vec![0; per]);
    let (bq, bsc) = (format!("{p}_b"), format!("{p}_b_scale"));
    let biases = st.biases.iter().flat_map(|b| b.to_le_bytes()).collect();
    g.init(&bq, INT32, &[n], biases);
    let b_scales: Vec<f32> = st.filter_scales.iter().map(|&w| st.in_scale * w).collect();
    g.f32s(&bsc, per_dims, &b_scales);
    let axis = if per > 1 {
        vec![("axis", Attr::Int(0))]
    } else {
        vec![]
    };
    g.node(
        "DequantizeLinear",
        &[&wq, &wsc, &wzp],
        &format!("{p}_w_dq"),
        &axis,
    );
    let axis0 = [("axis", Attr::Int(0))];
    g.node(
        "DequantizeLinear",
        &[&bq, &bsc],
        &format!("{p}_b_dq"),
        &axis0,
    );
}

/// The conv or dense node on the float input `x`.
fn layer_node(g: &mut Graph, p: &str, st: &PlanStage, x: &str) -> String {
    let (w, b) = (format!("{p}_w_dq"), format!("{p}_b_dq"));
    let y = if st.last {
        "q_values".to_string()
    } else {
        format!("{p}_out")
    };
    match st.kind {
        Kind::Conv { k, stride, pad } => {
            let (k, s, pd) = (k as i64, stride as i64, pad as i64);
            let attrs = [
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("strides", Attr::Ints(vec![s, s])),
                ("pads", Attr::Ints(vec![pd; 4])),
            ];
            g.node("Conv", &[x, &w, &b], &y, &attrs);
        }
        Kind::Dense => {
            g.node("Gemm", &[x, &w, &b], &y, &[("transB", Attr::Int(1))]);
        }
    }
    y
}

/// OHWI conv weights as ONNX's OIHW.
fn ohwi_to_oihw(st: &PlanStage) -> Vec<i8> {
    let Kind::Conv { k, .. } = st.kind else {
        return st.weights.clone();
    };
    let (n, c) = (st.out_c(), st.input.c);
    let mut t = vec![0i8; st.weights.len()];
    for o in 0..n {
        for pos in 0..k * k {
            for i in 0..c {
                t[(o * c + i) * k * k + pos] = st.weights[(o * k * k + pos) * c + i];
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{decode, Value};

    fn field<'a>(fields: &'a [(u32, Value<'a>)], f: u32) -> Vec<&'a Value<'a>> {
        fields
            .iter()
            .filter(|(n, _)| *n == f)
            .map(|(_, v)| v)
            .collect()
    }

    fn text<'a>(v: &Value<'a>) -> &'a str {
        match v {
            Value::Bytes(b) => std::str::from_utf8(b).expect("utf-8"),
            other => panic!("not a string: {other:?}"),
        }
    }

    fn bytes<'a>(v: &Value<'a>) -> &'a [u8] {
        match v {
            Value::Bytes(b) => b,
            other => panic!("not bytes: {other:?}"),
        }
    }

    #[test]
    fn graph_is_connected_and_keeps_the_blob_integers() {
        let blob = policy_core::test_support::random_blob(&netspec::COMPACT, 5);
        let plan = crate::lower_blob(&blob).expect("lowers");
        for (flavour, elem, dims, act) in [
            (Flavour::Exact, FLOAT, [1, 4, 80, 80], INT8),
            (Flavour::Fast, UINT8, [1, 80, 80, 4], UINT8),
        ] {
            let types = check_graph(&plan, &write(&plan, flavour), elem, dims);
            // Every activation zero point has the flavour's type.
            for si in 0..4 {
                assert_eq!(types[&format!("s{si}_zero_point")], act, "{flavour:?}");
            }
        }
    }

    /// Checks one file; returns the element type of each initializer.
    fn check_graph(
        plan: &Plan,
        file: &[u8],
        in_elem: i64,
        in_dims: [i64; 4],
    ) -> std::collections::HashMap<String, i64> {
        let mut types = std::collections::HashMap::new();
        let model = decode(file).expect("a protobuf message");
        let graph = decode(bytes_of(&model, 7)).expect("graph");
        // Every node input is the graph input, an initializer or an earlier output.
        let mut known: Vec<String> = vec!["input".into()];
        let mut weights = Vec::new();
        for t in field(&graph, 5) {
            let t = decode(bytes(t)).expect("tensor");
            let name = text(field(&t, 8)[0]).to_string();
            if let Value::Varint(ty) = field(&t, 2)[0] {
                types.insert(name.clone(), *ty as i64);
            }
            if name.ends_with("_w") {
                weights.extend(bytes(field(&t, 9)[0]).iter().map(|&b| b as i8));
            }
            known.push(name);
        }
        let mut ops = Vec::new();
        for n in field(&graph, 1) {
            let n = decode(bytes(n)).expect("node");
            for i in field(&n, 1) {
                assert!(
                    known.iter().any(|k| k == text(i)),
                    "dangling input {}",
                    text(i)
                );
            }
            known.push(text(field(&n, 2)[0]).to_string());
            ops.push(text(field(&n, 4)[0]).to_string());
        }
        let out = decode(bytes(field(&graph, 12)[0])).expect("output");
        assert_eq!(Some(&text(field(&out, 1)[0]).to_string()), known.last());
        assert_eq!(ops.iter().filter(|o| *o == "Conv").count(), 3);
        assert_eq!(ops.iter().filter(|o| *o == "Gemm").count(), 2);
        assert_eq!(ops.iter().filter(|o| *o == "MaxPool").count(), 1);
        // One flatten, before the first dense layer.
        assert_eq!(ops.iter().filter(|o| *o == "Flatten").count(), 1);
        // The same multiset of int8 weights as the blob.
        let mut a: Vec<i8> = plan.stages.iter().flat_map(|s| s.weights.clone()).collect();
        a.sort_unstable();
        weights.sort_unstable();
        assert_eq!(a, weights);
        // The declared input: element type and shape.
        let input = decode(bytes(field(&graph, 11)[0])).expect("input");
        let ty = decode(bytes(field(&input, 2)[0])).expect("type");
        let tensor = decode(bytes(field(&ty, 1)[0])).expect("tensor type");
        assert_eq!(field(&tensor, 1)[0], &Value::Varint(in_elem as u64));
        let shape = decode(bytes(field(&tensor, 2)[0])).expect("shape");
        let dims: Vec<i64> = field(&shape, 1)
            .iter()
            .map(|d| match field(&decode(bytes(d)).expect("dim"), 1)[0] {
                Value::Varint(v) => *v as i64,
                other => panic!("dim {other:?}"),
            })
            .collect();
        assert_eq!(dims, in_dims);
        types
    }

    fn bytes_of<'a>(fields: &'a [(u32, Value<'a>)], f: u32) -> &'a [u8] {
        bytes(field(fields, f)[0])
    }
}
