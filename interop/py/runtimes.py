"""The int8 runtimes policy-core is compared with, behind one interface.

Each runner loads one model file and has ``set_input`` (outside any timing:
converts a ``[80, 80, 4]`` uint8 0/1 stack and copies it into the runtime),
``invoke`` (the inference call, the only thing ``make peers`` times) and
``q_values`` (the two outputs of the last call). The TFLite files take int8
NHWC pixels, the ONNX file float NCHW pixels (docs/interop.md).
"""

import os
import subprocess

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


def prepare(model, out_dir, frames=None, limit=None):
    """Writes model.tflite, model.onnx, the null models and policy-core's
    traces of `models/<model>` into `out_dir`; returns the file paths."""
    blob = os.path.join(REPO, "models", model, "policy.bin")
    frames = frames or os.path.join(REPO, "models", model, "frames.rec")
    os.makedirs(out_dir, exist_ok=True)
    p = {
        "blob": blob,
        "frames": frames,
        "tflite": os.path.join(out_dir, "model.tflite"),
        "onnx": os.path.join(out_dir, "model.onnx"),
        "null_tflite": os.path.join(out_dir, "null.tflite"),
        "null_onnx": os.path.join(out_dir, "null.onnx"),
        "trace": os.path.join(out_dir, "trace"),
    }
    for fmt in ("tflite", "onnx"):
        interop("convert", "--blob", blob, "--format", fmt, "--out", p[fmt])
        interop("null", "--format", fmt, "--out", p["null_" + fmt])
    trace = ["trace", "--blob", blob, "--frames", frames, "--out", p["trace"]]
    if limit:
        trace += ["--limit", str(limit)]
    interop(*trace)
    return p


class LiteRT:
    """LiteRT's interpreter: `mode` is "xnnpack" (the default delegate),
    "builtin" (its optimized built-in kernels, no delegate) or "reference"
    (OpResolverType.BUILTIN_REF, every intermediate tensor kept)."""

    def __init__(self, path, mode):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kw = {"model_path": path, "num_threads": 1}
        if mode == "reference":
            kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
            kw["experimental_preserve_all_tensors"] = True
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


class OnnxRuntime:
    """ONNX Runtime, CPU provider, one thread, inputs and outputs bound once."""

    def __init__(self, path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        i = self.sess.get_inputs()[0]
        self.name, self.shape = i.name, tuple(i.shape)
        self.x = np.zeros(self.shape, np.float32)
        self.io = self.sess.io_binding()
        self.io.bind_cpu_input(self.name, self.x)
        self.io.bind_output(self.sess.get_outputs()[0].name)

    def set_input(self, x):
        if x.ndim == 3:  # a [80, 80, 4] NHWC stack: ONNX takes NCHW floats
            x = x.transpose(2, 0, 1)
        self.x[...] = x.reshape(self.shape)

    def invoke(self):
        self.sess.run_with_iobinding(self.io)

    def q_values(self):
        return self.io.copy_outputs_to_cpu()[0].reshape(-1)


class OpenVINO:
    """OpenVINO on the ONNX file (optional: only if the package is installed)."""

    def __init__(self, path):
        import openvino as ov

        core = ov.Core()
        cfg = {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = core.compile_model(core.read_model(path), "CPU", cfg)
        self.req = self.compiled.create_infer_request()
        self.shape = tuple(self.compiled.input(0).shape)
        self.x = np.zeros(self.shape, np.float32)
        self.req.set_input_tensor(0, ov.Tensor(self.x, shared_memory=True))

    def set_input(self, x):
        if x.ndim == 3:
            x = x.transpose(2, 0, 1)
        self.x[...] = x.reshape(self.shape)

    def invoke(self):
        self.req.infer()

    def q_values(self):
        return np.asarray(self.req.get_output_tensor(0).data).reshape(-1)


def peers(files):
    """Every available peer as (name, runner, null runner)."""
    out = [
        ("LiteRT + XNNPACK", lambda p: LiteRT(p, "xnnpack"), "tflite"),
        ("LiteRT built-in kernels", lambda p: LiteRT(p, "builtin"), "tflite"),
        ("LiteRT reference kernels", lambda p: LiteRT(p, "reference"), "tflite"),
        ("ONNX Runtime", OnnxRuntime, "onnx"),
        ("TFLite Micro (x86 interpreter)", TFLM, "tflite"),
    ]
    try:
        import openvino  # noqa: F401

        out.append(("OpenVINO", OpenVINO, "onnx"))
    except ImportError:
        pass
    return [(name, make(files[fmt]), make(files["null_" + fmt])) for name, make, fmt in out]
