"""Shared paths: the repository, the project's binaries and reference model."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
REFERENCE = ROOT / "models" / "reference"

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv_q(h: int, q) -> int:
    """FNV-1a 64 folded over the little-endian bytes of each i32 Q-value
    (firmware-sim/src/lib.rs, "Checksum"), written here from its docs."""
    for v in q:
        for b in int(v).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def binary(name: str) -> Path:
    """A project binary from target/release (`make python-test` builds them)."""
    p = TARGET / "release" / name
    if not p.is_file():
        pytest.fail(f"{p} is missing: run `cargo build --release -p {name}` (make python-test does)")
    return p
