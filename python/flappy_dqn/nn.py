"""The float Q-network in PyTorch, built from netspec's description.

``load_checkpoint("models/reference")`` (a folder with ``model.safetensors``
or ``best.safetensors``, or the file itself) returns a plain
``torch.nn.Module`` whose forward is the trainer's (``trainer::net``): every
conv and dense layer but the last followed by a ReLU, a max-pool where the
architecture has one, the input the ``(N, 4, 80, 80)`` frame stack as 0/1
floats. The layers come from :func:`flappy_dqn.architectures` (netspec's
``Arch`` as data), so no layer is written down here.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._native import architectures


def architecture(name: str) -> dict:
    """netspec's architecture ``name`` (``compact``, ``classic``, ...)."""
    for a in architectures():
        if a["name"] == name:
            return a
    names = ", ".join(a["name"] for a in architectures())
    raise ValueError(f"unknown network {name!r} (expected one of: {names})")


def param_shapes(layer: dict):
    """The weight and bias shapes of a layer (None for a pool)."""
    if layer["kind"] == "conv":
        return ((layer["out_c"], layer["in_c"], layer["k"], layer["k"]), (layer["out_c"],))
    if layer["kind"] == "dense":
        return ((layer["out"], layer["inp"]), (layer["out"],))
    return None


class QNetwork(nn.Module):
    """The Q-network of a netspec architecture; parameters ``l<i>.weight``
    and ``l<i>.bias`` as in the trainer's checkpoints."""

    def __init__(self, arch: str | dict = "compact"):
        super().__init__()
        self.arch = architecture(arch) if isinstance(arch, str) else arch
        for i, layer in enumerate(self.arch["layers"]):
            if layer["kind"] == "conv":
                self.add_module(f"l{i}", nn.Conv2d(layer["in_c"], layer["out_c"], layer["k"],
                                                   stride=layer["stride"], padding=layer["pad"]))
            elif layer["kind"] == "dense":
                self.add_module(f"l{i}", nn.Linear(layer["inp"], layer["out"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Q-values ``(N, 2)`` of a batch ``(N, 4, 80, 80)`` (0/1 cells; uint8 is converted)."""
        if x.dtype == torch.uint8:
            x = x.float()
        for i, layer in enumerate(self.arch["layers"]):
            if layer["kind"] == "maxpool":
                x = F.max_pool2d(x, layer["k"])
                continue
            if layer["kind"] == "dense" and x.dim() > 2:
                x = x.flatten(1)
            x = getattr(self, f"l{i}")(x)
            if layer["relu"]:
                x = F.relu(x)
        return x


_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (float types), with a clear
    ``ValueError`` for a file that is not one."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: not a safetensors file (header of {n} bytes, file of {len(data)})")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a safetensors file (bad header: {e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (the header is not a JSON object)")
    body = memoryview(data)[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[t["dtype"]]
            start, end = t["data_offsets"]
            shape = tuple(int(d) for d in t["shape"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r}: unsupported or malformed entry {t!r}") from None
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= start <= end <= len(body) or end - start != count * np.dtype(dtype).itemsize:
            raise ValueError(f"{path}: tensor {name!r}: data offsets {start}..{end} do not fit")
        arr = np.frombuffer(body[start:end], dtype=dtype).reshape(shape)
        out[name] = torch.from_numpy(arr.astype(np.float32))
    return out


def arch_of(tensors: dict[str, torch.Tensor]) -> dict:
    """The architecture whose every weight and bias has the shape found (as
    the trainer's ``QNetwork::arch_of``)."""
    if "l0.weight" not in tensors:
        raise ValueError("not a Q-network checkpoint: no tensor `l0.weight`")

    def fits(arch):
        for i, layer in enumerate(arch["layers"]):
            shapes = param_shapes(layer)
            if shapes is None:
                continue
            for suffix, shape in zip(("weight", "bias"), shapes):
                t = tensors.get(f"l{i}.{suffix}")
                if t is None or tuple(t.shape) != shape:
                    return False
        return True

    for a in architectures():
        if fits(a):
            return a
    names = ", ".join(a["name"] for a in architectures())
    raise ValueError(f"the weights (first layer {tuple(tensors['l0.weight'].shape)}) "
                     f"match no known network ({names})")


def resolve(path: str | Path) -> Path:
    """A checkpoint file: ``path`` itself, or its ``model.safetensors`` or
    ``best.safetensors`` when it is a folder."""
    p = Path(path)
    if p.is_dir():
        for name in ("model.safetensors", "best.safetensors"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"{p}: no model.safetensors or best.safetensors in this folder")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such checkpoint")
    return p


def load_checkpoint(path: str | Path) -> QNetwork:
    """The trainer's float network from a checkpoint, in eval mode."""
    file = resolve(path)
    tensors = read_safetensors(file)
    net = QNetwork(arch_of(tensors))
    wanted = set(net.state_dict())
    net.load_state_dict({k: v for k, v in tensors.items() if k in wanted})
    return net.eval()
