"""The int8 runtimes policy-core is compared with, behind one interface.

Each runner loads one model file and has ``set_input`` (outside any timing:
converts a ``[80, 80, 4]`` uint8 0/1 stack into the input the file declares
and copies it into the runtime), ``invoke`` (the inference call, the only
thing ``make peers`` times) and ``q_values`` (the two outputs of the last
call). The TFLite files take int8 NHWC pixels; the exact ONNX file float
NCHW pixels, the fast one uint8 NHWC pixels (docs/interop.md).
"""

import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INTEROP_BIN = os.environ.get(
    "INTEROP_BIN", os.path.join(REPO, "target", "release", "interop")
)


def interop(*args):
    """Runs the project's `interop` binary; raises with its stderr on failure."""
    r = subprocess.run([INTEROP_BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"interop {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def write_report(out, report, render):
    """Writes `report` to `<out>.json` and its markdown, `render(report)`, to
    `<out>.md` (creating `out`'s folder), and prints the markdown."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = render(report)
    with open(out + ".md", "w") as f:
        f.write(md)
    sys.stdout.write(md)


FLAVOURS = ("exact", "fast")


def prepare(model, out_dir, frames=None, limit=None):
    """Writes both flavours of `models/<model>` as TFLite and ONNX, the null
    models and policy-core's traces into `out_dir`; returns the paths: keys
    "tflite" and "onnx" (exact flavour), "tflite-fast", "onnx-fast",
    "null_tflite", "null_onnx", "trace", "blob", "frames"."""
    blob = os.path.join(REPO, "models", model, "policy.bin")
    frames = frames or os.path.join(REPO, "models", model, "frames.rec")
    os.makedirs(out_dir, exist_ok=True)
    p = {
        "blob": blob,
        "frames": frames,
        "null_tflite": os.path.join(out_dir, "null.tflite"),
        "null_onnx": os.path.join(out_dir, "null.onnx"),
        "trace": os.path.join(out_dir, "trace"),
    }
    for fmt in ("tflite", "onnx"):
        for flavour in FLAVOURS:
            key = file_key(fmt, flavour)
            p[key] = os.path.join(out_dir, f"model-{flavour}.{fmt}")
            interop("convert", "--blob", blob, "--format", fmt, "--flavour", flavour,
                    "--out", p[key])
        interop("null", "--format", fmt, "--out", p["null_" + fmt])
    trace = ["trace", "--blob", blob, "--frames", frames, "--out", p["trace"]]
    if limit:
        trace += ["--limit", str(limit)]
    interop(*trace)
    return p


def file_key(fmt, flavour):
    """The key of a converted file in `prepare`'s paths."""
    return fmt if flavour == "exact" else f"{fmt}-{flavour}"


def stack_as(x, shape, dtype):
    """A `[80, 80, 4]` stack (or any array of the declared size) as an input
    of `shape`: transposed to NCHW when the file declares `[1, 4, 80, 80]`."""
    if x.ndim == 3 and tuple(shape) == (1, x.shape[2], x.shape[0], x.shape[1]):
        x = x.transpose(2, 0, 1)
    return x.reshape(shape).astype(dtype)


class LiteRT:
    """LiteRT's interpreter, one thread: `mode` is "xnnpack" (the default
    delegate), "builtin" (its optimized built-in kernels, no delegate) or
    "reference" (OpResolverType.BUILTIN_REF); `preserve` keeps every
    intermediate tensor (for the conformance tests, not for timing)."""

    def __init__(self, path, mode, preserve=False):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kw = {"model_path": path, "num_threads": 1,
              "experimental_preserve_all_tensors": preserve}
        if mode == "reference":
            kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
        elif mode == "builtin":
            kw["experimental_op_resolver_type"] = (
                OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        elif mode != "xnnpack":
            raise ValueError(mode)
        self.it = Interpreter(**kw)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]["index"]
        self.names = {t["name"]: t["index"] for t in self.it.get_tensor_details()}

    def set_input(self, x):
        self.it.set_tensor(self.inp["index"], x.reshape(self.inp["shape"]).astype(self.inp["dtype"]))

    def invoke(self):
        self.it.invoke()

    def q_values(self):
        return self.it.get_tensor(self.out).reshape(-1)

    def tensor(self, name):
        return self.it.get_tensor(self.names[name])


class TFLM:
    """TensorFlow Lite Micro's Python interpreter (its reference kernels on x86)."""

    def __init__(self, path, preserve=False):
        from tflite_micro.python.tflite_micro import runtime

        data = open(path, "rb").read()
        cfg = (
            runtime.InterpreterConfig.kPreserveAllTensors
            if preserve
            else runtime.InterpreterConfig.kAllocationRecording
        )
        self.it = runtime.Interpreter.from_bytes(
            data, arena_size=4 << 20, intrepreter_config=cfg
        )
        model = runtime.convert_bytearray_to_object(bytearray(data))
        tensors = model.subgraphs[0].tensors
        self.names = {t.name.decode(): i for i, t in enumerate(tensors)}
        d = self.it.get_input_details(0)
        self.shape, self.dtype = tuple(d["shape"]), d["dtype"]

    def set_input(self, x):
        self.it.set_input(x.reshape(self.shape).astype(self.dtype), 0)

    def invoke(self):
        self.it.invoke()

    def q_values(self):
        return self.it.get_output(0).reshape(-1)

    def tensor(self, name):
        return self.it.GetTensor(self.names[name], 0)["tensor_data"]


ORT_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


class OnnxRuntime:
    """ONNX Runtime, CPU provider, one thread, sequential execution, every
    graph optimization (its default), inputs and outputs bound once."""

    def __init__(self, path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        i = self.sess.get_inputs()[0]
        self.name, self.shape = i.name, tuple(i.shape)
        self.x = np.zeros(self.shape, ORT_TYPES[i.type])
        self.io = self.sess.io_binding()
        self.io.bind_cpu_input(self.name, self.x)
        self.io.bind_output(self.sess.get_outputs()[0].name)

    def set_input(self, x):
        self.x[...] = stack_as(x, self.shape, self.x.dtype)

    def invoke(self):
        self.sess.run_with_iobinding(self.io)

    def q_values(self):
        return self.io.copy_outputs_to_cpu()[0].reshape(-1)


class OpenVINO:
    """OpenVINO's CPU plugin on an ONNX file, one inference thread, the
    latency hint (optional: only if the package is installed)."""

    def __init__(self, path):
        import openvino as ov

        core = ov.Core()
        cfg = {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = core.compile_model(core.read_model(path), "CPU", cfg)
        self.req = self.compiled.create_infer_request()
        inp = self.compiled.input(0)
        self.shape = tuple(inp.shape)
        self.x = np.zeros(self.shape, inp.get_element_type().to_dtype())
        self.req.set_input_tensor(0, ov.Tensor(self.x, shared_memory=True))

    def set_input(self, x):
        self.x[...] = stack_as(x, self.shape, self.x.dtype)

    def invoke(self):
        self.req.infer()

    def q_values(self):
        return np.asarray(self.req.get_output_tensor(0).data).reshape(-1)


def openvino_installed():
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def peers(files, failures=None):
    """Every available Python peer on every flavour, as (name, flavour,
    runner, null runner); a runtime that cannot load a flavour's file is
    left out of that flavour and listed in `failures` as (name, flavour,
    the error's first line)."""
    kinds = [
        ("LiteRT + XNNPACK", lambda p: LiteRT(p, "xnnpack"), "tflite"),
        ("LiteRT built-in kernels", lambda p: LiteRT(p, "builtin"), "tflite"),
        ("LiteRT reference kernels", lambda p: LiteRT(p, "reference"), "tflite"),
        ("ONNX Runtime", OnnxRuntime, "onnx"),
        ("TFLite Micro (x86 interpreter)", TFLM, "tflite"),
    ]
    if openvino_installed():
        kinds.append(("OpenVINO", OpenVINO, "onnx"))
    out = []
    for name, make, fmt in kinds:
        null = make(files["null_" + fmt])
        for flavour in FLAVOURS:
            try:
                runner = make(files[file_key(fmt, flavour)])
            except Exception as e:  # a runtime refusing a file is a result, not a crash
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                why = (lines[-1] if lines else type(e).__name__)[:200]  # OpenVINO: the cause is last
                print(f"{name} cannot run the {flavour} {fmt} file: {why}", file=sys.stderr)
                if failures is not None:
                    failures.append((name, flavour, why))
                continue
            out.append((name, flavour, runner, null))
    return out
