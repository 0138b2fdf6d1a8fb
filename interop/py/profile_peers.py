"""`make peers-profile`: where the optimized runtimes spend their time on the
converted files (batch 1, one thread, the recorded stacks), to see why one is
slow rather than guess.

* LiteRT (XNNPACK and built-in kernels), per operator: the file cut after
  each operator (`tflite_prefix`), each prefix timed; an operator's time is
  the difference to the previous prefix. The plan (which operators XNNPACK
  took: one `DELEGATE` node per partition) is listed.
* XNNPACK's int8 1x1 convolution on a 20x20 map for several input and output
  channel counts (single-operator files): its cost per output pixel.
* ONNX Runtime, per node after its graph optimizations (its own profiler,
  `SessionOptions.enable_profiling`), and OpenVINO, per executed layer
  (`PERF_COUNT`), with the kernel each picked.

Per-operator figures of the profilers include their own overhead; the sum of
a column is larger than the `make peers` median. Writes
results/peers-profile.json and .md.
"""

import argparse
import collections
import json
import os
import tempfile
import time

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

import runtimes


def load_tflite(data):
    return S.ModelT.InitFromObj(S.Model.GetRootAsModel(bytearray(data), 0))


def pack(model):
    b = flatbuffers.Builder(1 << 20)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def tflite_prefix(data, k):
    """The model cut after operator `k` (its output the subgraph's)."""
    m = load_tflite(data)
    sg = m.subgraphs[0]
    sg.operators = sg.operators[: k + 1]
    sg.outputs = [sg.operators[-1].outputs[0]]
    return pack(m)


def litert(content, mode):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {"model_content": content, "num_threads": 1}
    if mode == "builtin":
        kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(**kw)
    it.allocate_tensors()
    return it


def median_invoke_us(it, xs, reps):
    d = it.get_input_details()[0]
    ts = []
    for r in range(reps):
        for x in xs:
            it.set_tensor(d["index"], x.reshape(d["shape"]).astype(d["dtype"]))
            t = time.perf_counter_ns()
            it.invoke()
            ts.append(time.perf_counter_ns() - t)
    return float(np.median(ts)) / 1e3


def litert_ops(path, mode, xs, reps):
    data = open(path, "rb").read()
    n = len(load_tflite(data).subgraphs[0].operators)
    ops, prev = [], 0.0
    for k in range(n):
        it = litert(tflite_prefix(data, k), mode)
        t = median_invoke_us(it, xs, reps)
        ops.append({"op": it._get_ops_details()[k]["op_name"], "upto_us": t, "us": t - prev})
        prev = t
    plan = [o["op_name"] for o in litert(data, mode)._get_ops_details()][n:]
    return {"ops": ops, "partitions": plan.count("DELEGATE")}


def conv1x1_model(c, n, side=20):
    """One int8 1x1 CONV_2D, `side` x `side` x `c` -> `n`, fused ReLU."""
    rng = np.random.default_rng(1)

    def quant(scales, zps):
        q = S.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = list(scales), list(zps), 0
        return q

    def tensor(name, shape, ty, buf, q):
        t = S.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, list(shape), ty, buf, q
        return t

    def buffer(data):
        b = S.BufferT()
        b.data = None if data is None else np.frombuffer(data, np.uint8)
        return b

    m = S.ModelT()
    m.version = 3
    code = S.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = S.BuiltinOperator.CONV_2D, 3, 3
    m.operatorCodes = [code]
    w = rng.integers(-127, 128, (n, 1, 1, c)).astype(np.int8)
    b = rng.integers(-1000, 1000, n).astype(np.int32)
    m.buffers = [buffer(None), buffer(w.tobytes()), buffer(b.tobytes())]
    i8, i32 = S.TensorType.INT8, S.TensorType.INT32
    sg = S.SubGraphT()
    sg.tensors = [tensor(b"input", [1, side, side, c], i8, 0, quant([1.0], [0])),
                  tensor(b"w", [n, 1, 1, c], i8, 1, quant([0.004] * n, [0] * n)),
                  tensor(b"b", [n], i32, 2, quant([0.004] * n, [0] * n)),
                  tensor(b"out", [1, side, side, n], i8, 0, quant([0.02], [-128]))]
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    o = S.Conv2DOptionsT()
    o.padding, o.strideW, o.strideH = S.Padding.VALID, 1, 1
    o.fusedActivationFunction = S.ActivationFunctionType.RELU
    o.dilationWFactor = o.dilationHFactor = 1
    op.builtinOptionsType, op.builtinOptions = S.BuiltinOptions.Conv2DOptions, o
    sg.operators, sg.inputs, sg.outputs = [op], [0], [3]
    m.subgraphs = [sg]
    return pack(m)


def xnnpack_gemm_probe(reps):
    """XNNPACK's and the built-in kernels' time for a 1x1 conv on 20x20 pixels."""
    rows = []
    for c, n in [(4, 16), (16, 16), (64, 16), (128, 16), (64, 64), (64, 128)]:
        content = conv1x1_model(c, n)
        x = [np.zeros((20, 20, c), np.int8)]
        rows.append({"in_channels": c, "out_channels": n,
                     "xnnpack_us": median_invoke_us(litert(content, "xnnpack"), x, reps * 500),
                     "builtin_us": median_invoke_us(litert(content, "builtin"), x, reps * 500)})
    return rows


def ort_nodes(path, xs, reps, work):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(work, "ort")
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    i = sess.get_inputs()[0]
    dtype = runtimes.ORT_TYPES[i.type]
    for _ in range(reps):
        for x in xs:
            sess.run(None, {i.name: runtimes.stack_as(x, i.shape, dtype)})
    per = collections.defaultdict(list)
    for e in json.load(open(sess.end_profiling())):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[(e["name"][: -len("_kernel_time")], e["args"].get("op_name", ""))].append(e["dur"])
    return [{"node": k[0], "op": k[1], "us": float(np.median(v))} for k, v in per.items()]


def openvino_layers(path, xs, reps):
    import openvino as ov

    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    compiled = core.compile_model(core.read_model(path), "CPU", cfg)
    req = compiled.create_infer_request()
    inp = compiled.input(0)
    shape, dtype = tuple(inp.shape), inp.get_element_type().to_dtype()
    per = collections.defaultdict(list)
    for _ in range(reps):
        for x in xs:
            req.infer({0: runtimes.stack_as(x, shape, dtype)})
            for p in req.get_profiling_info():
                if p.status == p.Status.EXECUTED:
                    per[(p.node_name, p.node_type, p.exec_type)].append(
                        p.real_time.total_seconds() * 1e6)
    return [{"layer": k[0], "op": k[1], "kernel": k[2], "us": float(np.median(v))}
            for k, v in per.items()]


def profile(model, n, reps, work):
    files = runtimes.prepare(model, work, limit=n)
    xs = list(np.load(os.path.join(files["trace"], "input.npy")))
    out = {"model": model, "stacks": len(xs), "reps": reps, "litert": {}, "onnxruntime": {},
           "openvino": {}}
    for fl in runtimes.FLAVOURS:
        tfl, onx = files[runtimes.file_key("tflite", fl)], files[runtimes.file_key("onnx", fl)]
        for mode in ("xnnpack", "builtin"):
            out["litert"][f"{mode}/{fl}"] = litert_ops(tfl, mode, xs, reps)
        out["onnxruntime"][fl] = ort_nodes(onx, xs, reps, work)
        if runtimes.openvino_installed():
            try:
                out["openvino"][fl] = openvino_layers(onx, xs, reps)
            except Exception as e:  # OpenVINO refusing a file is a result
                out["openvino"][fl] = {"error": str(e).strip().splitlines()[-1]}
    return out


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines + [""]


def render_model(m):
    lines = [f"## `{m['model']}` ({m['stacks']} stacks x {m['reps']} passes)", ""]
    for key, r in m["litert"].items():
        mode, fl = key.split("/")
        name = "LiteRT + XNNPACK" if mode == "xnnpack" else "LiteRT built-in kernels"
        lines += [f"### {name}, {fl} flavour ({r['partitions']} XNNPACK partitions)", ""]
        lines += table(["operator", "µs (difference)", "µs up to here"],
                       [(o["op"], f"{o['us']:.1f}", f"{o['upto_us']:.1f}") for o in r["ops"]])
    for fl, nodes in m["onnxruntime"].items():
        lines += [f"### ONNX Runtime, {fl} flavour (its profiler, per node after fusion)", ""]
        lines += table(["node", "operator", "µs"],
                       [(n["node"], n["op"], f"{n['us']:.1f}") for n in nodes])
    for fl, layers in m["openvino"].items():
        lines += [f"### OpenVINO, {fl} flavour (PERF_COUNT, executed layers)", ""]
        if isinstance(layers, dict):
            lines += [f"Does not compile: {layers['error']}", ""]
            continue
        lines += table(["layer", "type", "kernel", "µs"],
                       [(x["layer"], x["op"], x["kernel"], f"{x['us']:.1f}") for x in layers])
    return lines


def render(report):
    lines = [
        "# Where the runtimes spend their time, batch 1, one thread",
        "",
        f"Written by `make peers-profile` ({report['date']}, under scripts/quiet; "
        f"machine and versions as in results/peers.md). See interop/py/profile_peers.py: "
        "LiteRT per operator as the difference between the file cut after it and the file "
        "cut before it; ONNX Runtime's and OpenVINO's own per-node profilers (their overhead "
        "included).",
        "",
        "## XNNPACK's int8 1x1 convolution on 20 x 20 pixels",
        "",
    ]
    lines += table(["input channels", "output channels", "XNNPACK µs", "built-in µs"],
                   [(r["in_channels"], r["out_channels"], f"{r['xnnpack_us']:.1f}",
                     f"{r['builtin_us']:.1f}") for r in report["xnnpack_1x1"]])
    for m in report["models"]:
        lines += render_model(m)
    return "\n".join(lines) + "\n"


def main():
    import datetime

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="reference")
    ap.add_argument("--stacks", type=int, default=300, help="recorded stacks per pass")
    ap.add_argument("--reps", type=int, default=3, help="passes over them")
    ap.add_argument("--out", default=os.path.join(runtimes.REPO, "results", "peers-profile"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        models = [profile(m, a.stacks, a.reps, os.path.join(work, m))
                  for m in a.models.split(",")]
    report = {"date": datetime.date.today().isoformat(), "command": "make peers-profile",
              "xnnpack_1x1": xnnpack_gemm_probe(a.reps), "models": models}
    runtimes.write_report(a.out, report, render)


if __name__ == "__main__":
    main()
