"""The native vector environment: N games stepped in Rust, no Python loop."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.error import ClosedEnvironmentError, ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ._native import VecCore
from ._seeds import check_seed, draw_training_seed
from .env import observation_space


class FlappyBirdVectorEnv(VectorEnv):
    """``num_envs`` games stepped together in Rust (one thread, the GIL
    released), writing into NumPy arrays allocated once.

    Each game behaves as :class:`flappy_dqn.FlappyBirdEnv`, with Gymnasium
    1.x's ``NEXT_STEP`` autoreset: the step after a game's episode ended
    (terminated or truncated) ignores its action, starts its next game (the
    next of its gap stream, as ``reset()`` without a seed does) and returns
    that game's first observation, reward 0, neither terminated nor
    truncated. ``reset(seed=s)`` gives game ``i`` the course of
    ``flappy::Game::new(s + i)``; a list gives each game its own seed (None:
    the next game of its stream).

    ``copy=True`` (the default) returns fresh arrays; ``copy=False`` returns
    the env's own buffers, which the next ``step`` overwrites. ``info`` has
    ``score`` (each game's episode score; on a crash, the crashed game's)
    and its mask ``_score``. ``packed=True``: observations bit-packed
    ``(num_envs, 4, 80, 10)``, eight times fewer bytes to write and copy.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["rgb_array"]}

    def __init__(self, num_envs: int, *, max_score: int | None = None, packed: bool = False,
                 copy: bool = True, render_mode: str | None = None):
        num_envs = int(num_envs)
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r}: expected None or 'rgb_array'")
        if max_score is not None and int(max_score) < 1:
            raise ValueError(f"max_score must be at least 1, got {max_score}")
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.copy = copy
        self.single_observation_space = observation_space(packed)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._core = VecCore(num_envs, packed=packed,
                             max_score=None if max_score is None else int(max_score))
        self._obs = np.zeros((num_envs, *self.single_observation_space.shape), np.uint8)
        self._act = np.zeros(num_envs, np.uint8)
        self._rew = np.zeros(num_envs, np.float64)
        self._term = np.zeros(num_envs, np.bool_)
        self._trunc = np.zeros(num_envs, np.bool_)
        self._score = np.zeros(num_envs, np.int64)
        self._mask = np.ones(num_envs, np.bool_)
        self._started = False
        self._closed = False

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        """Starts every game's episode (see the class docs for the seeds)."""
        self._check_open()
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise ValueError(f"{len(seed)} seeds for {self.num_envs} envs")
            seeds = [None if s is None else check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)]
            first = next((s for s in seeds if s is not None), None)
            super().reset(seed=first)
        else:
            super().reset(seed=None if seed is None else check_seed(seed))
            if seed is None and not self._started:
                seed = draw_training_seed(self.np_random)
            base = None if seed is None else int(seed)
            seeds = [None if base is None else (base + i) % (1 << 64) for i in range(self.num_envs)]
        self._core.reset(seeds, self._obs)
        self._started = True
        self._score[:] = 0
        return self._out(self._obs), {"score": self._score.copy(), "_score": self._mask.copy()}

    def step(self, actions):
        """Steps every game; returns obs, rewards, terminations, truncations, infos."""
        self._check_open()
        if not self._started:
            raise ResetNeeded("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions have shape {a.shape}, expected ({self.num_envs},)")
        if a.dtype != np.uint8:
            if a.dtype.kind not in "iu":
                raise ValueError(f"actions must be integers 0 or 1, got dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() > 1):
                bad = a[(a < 0) | (a > 1)][0]
                raise ValueError(f"bad action {bad} (expected 0 = idle or 1 = flap)")
            a = a.astype(np.uint8)
        self._act[:] = a
        self._core.step(self._act, self._obs, self._rew, self._term, self._trunc, self._score)
        info = {"score": self._out(self._score), "_score": self._mask.copy()}
        return (self._out(self._obs), self._out(self._rew), self._out(self._term),
                self._out(self._trunc), info)

    def render(self):
        """Each game's ``(512, 288, 3)`` RGB frame (``render_mode="rgb_array"``)."""
        self._check_open()
        if self.render_mode != "rgb_array":
            return None
        return tuple(self._core.render(i) for i in range(self.num_envs))

    def heuristic_actions(self) -> np.ndarray:
        """What ``flappy``'s scripted look-ahead controller would do in each game."""
        self._check_open()
        return self._core.heuristic_actions()

    def close_extras(self, **kwargs):
        """Marks the env closed; later calls raise ``ClosedEnvironmentError``."""
        self._closed = True

    def _check_open(self):
        if self._closed:
            raise ClosedEnvironmentError("the vector environment is closed")

    def _out(self, a: np.ndarray) -> np.ndarray:
        return a.copy() if self.copy else a
