"""Game seeds as Gymnasium passes them (shared by the single and vector env)."""

import numpy as np

from ._native import VALIDATION_SEED

_U64 = 1 << 64


def check_seed(seed, what="seed"):
    """``seed`` as a Python int in 0..2^64, or a ``ValueError``/``TypeError``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{what} must be an int in 0..2**64, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < _U64:
        raise ValueError(f"{what} must be in 0..2**64, got {seed}")
    return seed


def draw_training_seed(rng: np.random.Generator) -> int:
    """A game seed below the validation seeds (flappy::seeds), for a reset
    that names none before any seeded one."""
    return int(rng.integers(0, VALIDATION_SEED, dtype=np.uint64))
