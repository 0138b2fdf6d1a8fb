"""Conformance of the standard files (`interop convert`) with policy-core.

The exact flavour: LiteRT's reference kernels and TFLite Micro's interpreter
must give the very integers policy-core computes, at every stage, on every
recorded frame of models/reference (compact) and models/tiny (after the
zero-point mapping: int8 q - (-128) = policy-core's u8; the int16 outputs
are its int32 Q-values less the file's constant `q_offset`, 0 while they
fit int16: interop/src/q_offset.rs). The fast flavour keeps the integers but not every
operator: its conv stages (the first one through SPACE_TO_DEPTH) must still
be bit-identical under both. LiteRT with XNNPACK or its built-in kernels and
ONNX Runtime requantize differently (in float) and must agree on the action
on at least 99 % of the frames, on both flavours. policy-core's side comes
from `interop trace` (policy-core's trace feature), not from arithmetic here.
"""

import json
import os
import subprocess

import numpy as np
import pytest

import runtimes

MODELS = ["reference", "tiny"]


@pytest.fixture(scope="session", params=MODELS)
def model(request, tmp_path_factory):
    files = runtimes.prepare(request.param, str(tmp_path_factory.mktemp(request.param)))
    t = files["trace"]
    meta = json.load(open(os.path.join(t, "meta.json")))
    stages = [np.load(os.path.join(t, s["file"])) for s in meta["stages"]]
    return {
        "name": request.param,
        "files": files,
        "meta": meta,
        "input": np.load(os.path.join(t, "input.npy")),
        "stages": stages,
    }


def actions(q):
    """argmax, ties to the first action (Idle), as policy-core."""
    return np.argmax(q, axis=-1)


def check_bit_identical(model, runner, maps_only=False):
    """Every stage (only the conv stages, whose outputs are maps, with
    `maps_only`) equal to policy-core's on every stack."""
    meta, x = model["meta"], model["input"]
    assert meta["stacks"] == len(x) and len(x) >= 1000, "a full recording"
    stages = [(s, w) for s, w in zip(meta["stages"], model["stages"])
              if not maps_only or len(s["shape"]) == 3]
    assert stages, "stages to compare"
    bad = {}
    for i in range(len(x)):
        runner.set_input(x[i])
        runner.invoke()
        for s, want in stages:
            got = runner.tensor(s["tflite_tensor"]).astype(np.int64).reshape(want[i].shape)
            if not s["last"]:
                got = got + 128  # int8 zero point -128 <-> u8 zero point 0
            else:
                got = got + s["q_offset"]  # the int16 outputs are the Q-values less it
            n = int(np.count_nonzero(got != want[i]))
            if n:
                bad.setdefault(s["tflite_tensor"], []).append((i, n))
    assert not bad, {k: (len(v), v[:5]) for k, v in bad.items()}


def test_litert_reference_kernels_are_bit_identical_at_every_stage(model):
    runner = runtimes.LiteRT(model["files"]["tflite"], "reference", preserve=True)
    check_bit_identical(model, runner)


def test_tflite_micro_is_bit_identical_at_every_stage(model):
    runner = runtimes.TFLM(model["files"]["tflite"], preserve=True)
    check_bit_identical(model, runner)


def test_fast_flavour_conv_stages_are_bit_identical(model):
    """SPACE_TO_DEPTH + 1x1 conv is the first conv, integer for integer."""
    f = model["files"]["tflite-fast"]
    check_bit_identical(model, runtimes.LiteRT(f, "reference", preserve=True), maps_only=True)
    check_bit_identical(model, runtimes.TFLM(f, preserve=True), maps_only=True)


@pytest.mark.parametrize("flavour", runtimes.FLAVOURS)
@pytest.mark.parametrize(
    "make",
    [
        lambda f, fl: runtimes.LiteRT(f[runtimes.file_key("tflite", fl)], "xnnpack"),
        lambda f, fl: runtimes.LiteRT(f[runtimes.file_key("tflite", fl)], "builtin"),
        lambda f, fl: runtimes.LiteRT(f[runtimes.file_key("tflite", fl)], "reference"),
        lambda f, fl: runtimes.TFLM(f[runtimes.file_key("tflite", fl)]),
        lambda f, fl: runtimes.OnnxRuntime(f[runtimes.file_key("onnx", fl)]),
    ],
    ids=["litert-xnnpack", "litert-builtin", "litert-reference", "tflite-micro", "onnxruntime"],
)
def test_runtimes_agree_on_the_action(model, make, flavour):
    runner = make(model["files"], flavour)
    x, q = model["input"], model["stages"][-1]
    got = []
    for i in range(len(x)):
        runner.set_input(x[i])
        runner.invoke()
        got.append(runner.q_values().astype(np.float64))
    agree = float(np.mean(actions(np.array(got)) == actions(q)))
    assert agree >= 0.99, f"{model['name']}: action agreement {agree:.4f}"


@pytest.mark.parametrize(
    "flavour,tflite_out,onnx_in",
    [("exact", np.int16, ((1, 4, 80, 80), np.float32)),
     ("fast", np.float32, ((1, 80, 80, 4), np.uint8))],
)
def test_files_declare_the_documented_interface(model, flavour, tflite_out, onnx_in):
    lite = runtimes.LiteRT(model["files"][runtimes.file_key("tflite", flavour)], "builtin")
    i, o = lite.inp, lite.it.get_output_details()[0]
    assert list(i["shape"]) == [1, 80, 80, 4] and i["dtype"] == np.int8
    assert i["quantization"] == (1.0, 0)
    assert list(o["shape"]) == [1, 2] and o["dtype"] == tflite_out
    ort = runtimes.OnnxRuntime(model["files"][runtimes.file_key("onnx", flavour)])
    assert (ort.shape, ort.x.dtype) == onnx_in
    assert [o.name for o in ort.sess.get_outputs()] == ["q_values"]


def test_a_bad_blob_gives_the_parsers_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"definitely not a policy blob")
    r = subprocess.run(
        [runtimes.INTEROP_BIN, "convert", "--blob", str(bad), "--format", "tflite",
         "--out", str(tmp_path / "x.tflite")],
        capture_output=True, text=True,
    )
    assert r.returncode == 1
    assert "not a policy blob (wrong magic bytes)" in r.stderr, r.stderr
    assert not (tmp_path / "x.tflite").exists()
