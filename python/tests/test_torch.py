"""The float checkpoint in a plain PyTorch module built from netspec's
description, equal to the trainer's own forward on recorded frames."""

import json
import zlib

import numpy as np
import pytest
import torch

import flappy_dqn
from conftest import REFERENCE, ROOT
from flappy_dqn import nn as fnn

FIXTURE = ROOT / "python" / "tests" / "fixtures" / "reference-forward.json"


def test_the_module_computes_the_trainers_q_values_on_recorded_frames():
    fx = json.loads(FIXTURE.read_text())
    for key in ("checkpoint", "recording"):
        data = (ROOT / fx[key]).read_bytes()
        assert zlib.crc32(data) == fx[f"{key}_crc32"], (
            f"{fx[key]} changed since the fixture was written; rerun: {fx['command']}")
    net = fnn.load_checkpoint(REFERENCE)
    assert isinstance(net, torch.nn.Module) and net.arch["name"] == fx["arch"]
    _, stacks = flappy_dqn.read_recording(ROOT / fx["recording"])
    torch.set_num_threads(1)
    with torch.no_grad():
        q = net(torch.from_numpy(stacks)).numpy()
    want = np.asarray(fx["q"], np.float32)
    assert q.shape == want.shape == (2000, 2)
    span = float(want.max() - want.min())
    # libtorch under the trainer and PyTorch here are the same library;
    # only the order of float sums may differ.
    np.testing.assert_allclose(q, want, rtol=0, atol=1e-5 * span)
    margin = np.abs(want[:, 1] - want[:, 0]) > 1e-4 * span
    assert np.array_equal(q[margin].argmax(1), want[margin].argmax(1))


def test_every_architecture_builds_from_its_description():
    for arch in flappy_dqn.architectures():
        net = fnn.QNetwork(arch["name"])
        x = torch.zeros((3, *arch["input"]), dtype=torch.uint8)
        assert net(x).shape == (3, 2)
        # The parameters have the shapes the trainer saves, so arch_of finds it again.
        tensors = {k: v for k, v in net.state_dict().items()}
        assert fnn.arch_of(tensors)["name"] == arch["name"]
    assert [a["name"] for a in flappy_dqn.architectures()][0] == "compact"


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    for name, data in {"short": b"abc", "huge-header": b"\xff" * 8 + b"{}",
                       "not-json": (5).to_bytes(8, "little") + b"hello"}.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(data)
        with pytest.raises(ValueError, match="not a safetensors file"):
            fnn.load_checkpoint(p)
    with pytest.raises(FileNotFoundError):
        fnn.load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        fnn.load_checkpoint(tmp_path)
    wrong = {"l0.weight": torch.zeros(3, 3)}
    with pytest.raises(ValueError, match="match no known network"):
        fnn.arch_of(wrong)
    with pytest.raises(ValueError, match="unknown network"):
        fnn.QNetwork("nope")
