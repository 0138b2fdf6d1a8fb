"""The single environment: one game, stepped in Rust (the native core with one game)."""

from __future__ import annotations

import numpy as np
import gymnasium
from gymnasium import spaces
from gymnasium.error import ClosedEnvironmentError, ResetNeeded

from ._native import VecCore
from ._seeds import check_seed, draw_training_seed


def observation_space(packed: bool) -> spaces.Box:
    """The space of one observation: 4 x 80 x 80 cells of 0/1, or packed bits."""
    if packed:
        return spaces.Box(0, 255, (4, 80, 10), np.uint8)
    return spaces.Box(0, 1, (4, 80, 80), np.uint8)


def check_action(action) -> int:
    """``action`` as 0 or 1, or a ``ValueError`` naming it."""
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
        if action in (0, 1):
            return int(action)
    raise ValueError(f"invalid action {action!r}: expected 0 (idle) or 1 (flap)")


class FlappyBirdEnv(gymnasium.Env):
    """Flappy Bird as the trainer plays it.

    * observation: the last 4 binary 80 x 80 frames, ``uint8`` 0/1, shape
      ``(4, 80, 80)``, channel 0 the oldest (``packed=True``: the same bits
      packed 8 to a byte, ``(4, 80, 10)``; ``numpy.unpackbits(obs, axis=-1)``);
    * action: 0 idle, 1 flap; reward 0.1 alive, 1.0 a pipe passed, -1.0 a crash;
    * terminated: the bird crashed. The game restarts at once (as the
      classic environment does), so the observation of that step is the
      next game's first stack, 4 times the same frame;
    * truncated: the score reached ``max_score`` (never, when None);
    * ``reset(seed=s)``: the pipe course of ``flappy::Game::new(s)``;
      ``reset()``: the next game of the same gap stream (a random training
      seed if no seed was ever given);
    * info: ``score`` (pipes passed in the episode; on a crash, the
      crashed game's score) and, after a reset, ``seed`` (None when the
      game continues a stream);
    * ``render_mode="rgb_array"``: 512 x 288 x 3 frames, the pixels of
      ``flappy play --png``; for a window, wrap the env in
      ``gymnasium.wrappers.HumanRendering`` (it needs pygame).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, max_score: int | None = None,
                 packed: bool = False):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r}: expected one of {self.metadata['render_modes']}")
        if max_score is not None:
            max_score = int(max_score)
            if max_score < 1:
                raise ValueError(f"max_score must be at least 1, got {max_score}")
        self.render_mode = render_mode
        self.max_score = max_score
        self.observation_space = observation_space(packed)
        self.action_space = spaces.Discrete(2)
        self._core = VecCore(1, packed=packed, max_score=max_score, autoreset=False)
        self._obs = np.zeros((1, *self.observation_space.shape), np.uint8)
        self._act = np.zeros(1, np.uint8)
        self._rew = np.zeros(1, np.float64)
        self._term = np.zeros(1, np.bool_)
        self._trunc = np.zeros(1, np.bool_)
        self._score = np.zeros(1, np.int64)
        self._started = False
        self._ended = False
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts an episode (see the class docs for what the seed means)."""
        self._check_open()
        if seed is not None:
            seed = check_seed(seed)
        super().reset(seed=seed)
        if seed is not None:
            game_seed = seed
        elif not self._started:
            game_seed = draw_training_seed(self.np_random)
        else:
            game_seed = None
        self._core.reset([game_seed], self._obs)
        self._started, self._ended = True, False
        return self._obs[0].copy(), {"score": 0, "seed": game_seed}

    def step(self, action):
        """One frame with ``action``; returns obs, reward, terminated, truncated, info."""
        self._check_open()
        if not self._started:
            raise ResetNeeded("call reset() before step()")
        if self._ended:
            raise ResetNeeded("the episode is over (terminated or truncated): call reset()")
        self._act[0] = check_action(action)
        self._core.step(self._act, self._obs, self._rew, self._term, self._trunc, self._score)
        terminated, truncated = bool(self._term[0]), bool(self._trunc[0])
        self._ended = terminated or truncated
        return (self._obs[0].copy(), float(self._rew[0]), terminated, truncated,
                {"score": int(self._score[0])})

    def render(self):
        """The game as a ``(512, 288, 3)`` RGB array (``render_mode="rgb_array"``)."""
        self._check_open()
        if self.render_mode is None:
            gymnasium.logger.warn("render() without a render_mode: pass render_mode='rgb_array'")
            return None
        return self._core.render(0)

    def heuristic_action(self) -> int:
        """What ``flappy``'s scripted look-ahead controller would do now."""
        self._check_open()
        return int(self._core.heuristic_actions()[0])

    def close(self):
        """Any later call raises ``ClosedEnvironmentError``."""
        self._closed = True

    def _check_open(self):
        if self._closed:
            raise ClosedEnvironmentError("the environment is closed")
