"""flappy-dqn from Python.

* ``gymnasium.make("flappy_dqn/FlappyBird-v0")`` (after ``import flappy_dqn``):
  the deterministic Flappy Bird of the ``flappy`` crate as a Gymnasium
  environment (:class:`FlappyBirdEnv`), observing the trainer's 4 x 80 x 80
  frame stack; ``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``
  or :class:`FlappyBirdVectorEnv`: N games stepped in Rust.
* :class:`Policy`: the int8 policy blob run by policy-core, integer Q-values
  bit for bit those of ``firmware-sim`` and the firmware; :class:`BlobError`.
* :mod:`flappy_dqn.nn` (needs PyTorch): the float checkpoint in a plain
  ``torch.nn.Module`` built from netspec's description (:func:`architectures`).
* :func:`read_recording`: the frame stacks of a ``.rec`` recording.
* :mod:`flappy_dqn.pause`: the project's pause protocol for Python training loops.
"""

from ._native import (
    PERIODIC_EVAL_SEED,
    SCREEN_HEIGHT,
    SCREEN_WIDTH,
    SELECTION_SEED,
    TEST_LEN,
    TEST_SEED,
    VALIDATION_SEED,
    BlobError,
    Policy,
    architectures,
    read_recording,
)
from .env import FlappyBirdEnv
from .registration import ENV_ID, register_envs
from .vector import FlappyBirdVectorEnv

register_envs()

__all__ = [
    "ENV_ID",
    "BlobError",
    "FlappyBirdEnv",
    "FlappyBirdVectorEnv",
    "Policy",
    "architectures",
    "read_recording",
    "register_envs",
    "PERIODIC_EVAL_SEED",
    "SELECTION_SEED",
    "TEST_LEN",
    "TEST_SEED",
    "VALIDATION_SEED",
    "SCREEN_HEIGHT",
    "SCREEN_WIDTH",
]
