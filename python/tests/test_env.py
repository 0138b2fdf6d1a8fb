"""The single environment: Gymnasium's and SB3's checkers, seeds, episode
ends, rendering, and equality with the `flappy` binary."""

import re
import subprocess

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ClosedEnvironmentError, ResetNeeded
from PIL import Image

import flappy_dqn
from conftest import binary


def test_make_and_both_env_checkers_pass():
    env = gym.make(flappy_dqn.ENV_ID, render_mode="rgb_array")
    assert env.observation_space == gym.spaces.Box(0, 1, (4, 80, 80), np.uint8)
    assert env.action_space == gym.spaces.Discrete(2)
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=False)
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    # SB3 warns that a (0, 1) image is not (0, 255); scripts/sb3.py scales it.
    with pytest.warns(UserWarning, match="upper and lower bounds are not in"):
        sb3_check_env(flappy_dqn.FlappyBirdEnv(max_score=50))
    packed = gym.make(flappy_dqn.ENV_ID, packed=True, render_mode="rgb_array").unwrapped
    check_env(packed)
    assert packed.observation_space.shape == (4, 80, 10)


def play(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [(obs, 0.0, False, False, 0)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, trunc, info["score"]))
        if term or trunc:
            break
    return out


def test_the_course_is_a_pure_function_of_the_seed():
    rng = np.random.default_rng(1)
    actions = (rng.random(400) < 0.12).astype(int)
    a = play(flappy_dqn.FlappyBirdEnv(), 77, actions)
    b = play(flappy_dqn.FlappyBirdEnv(), 77, actions)
    assert len(a) == len(b) > 10
    for x, y in zip(a, b):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]
    # Another env that played another game first: the same again.
    env = flappy_dqn.FlappyBirdEnv()
    play(env, 5, actions)
    c = play(env, 77, actions)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))
    # Another seed: another pipe course (the first pipes come into view).
    d = play(flappy_dqn.FlappyBirdEnv(), 78, [0] * 30)
    e = play(flappy_dqn.FlappyBirdEnv(), 77, [0] * 30)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(d, e))


def test_rewards_cells_and_the_stack_order():
    env = flappy_dqn.FlappyBirdEnv()
    obs, info = env.reset(seed=3)
    assert info == {"score": 0, "seed": 3}
    assert set(np.unique(obs)) <= {0, 1}
    assert all(np.array_equal(obs[0], obs[c]) for c in range(4)), "4 x the first frame"
    prev = obs
    rewards = []
    while True:
        obs, r, term, trunc, info = env.step(env.heuristic_action())
        rewards.append(r)
        if term or trunc or info["score"] >= 2:
            break
        # Channel c of the new stack is channel c + 1 of the old one.
        assert np.array_equal(obs[:3], prev[1:])
        prev = obs
    assert rewards.count(1.0) == 2 and set(rewards) == {0.1, 1.0}


def test_a_crash_terminates_and_the_next_reset_continues_the_stream():
    env = flappy_dqn.FlappyBirdEnv()
    env.reset(seed=9)
    steps = 0
    while True:
        obs, r, term, trunc, info = env.step(0)
        steps += 1
        if term:
            break
    assert (r, trunc, info["score"]) == (-1.0, False, 0)
    # The terminal observation is the next game's first stack (the game
    # restarts at once); reset() without a seed continues with that game.
    obs2, info2 = env.reset()
    assert np.array_equal(obs, obs2) and info2["seed"] is None
    assert steps > 10


def test_max_score_truncates():
    env = flappy_dqn.FlappyBirdEnv(max_score=2)
    env.reset(seed=4)
    while True:
        _, r, term, trunc, info = env.step(env.heuristic_action())
        if term or trunc:
            break
    assert (term, trunc, r, info["score"]) == (False, True, 1.0, 2)


def test_the_heuristic_episode_and_its_last_frame_equal_flappy_play(tmp_path):
    seed, cap = 1234, 3
    png = tmp_path / "last.png"
    out = subprocess.run(
        [binary("flappy"), "play", "--seed", str(seed), "--episodes", "1",
         "--max-score", str(cap), "--png", png],
        check=True, capture_output=True, text=True).stdout
    m = re.search(r"episode 0: seed \d+ score (\d+) steps (\d+) \(max score\)", out)
    assert m, out
    env = flappy_dqn.FlappyBirdEnv(render_mode="rgb_array", max_score=cap)
    env.reset(seed=seed)
    steps = 0
    while True:
        _, _, term, trunc, info = env.step(env.heuristic_action())
        steps += 1
        if term or trunc:
            break
    assert trunc and (info["score"], steps) == (int(m[1]), int(m[2]))
    frame = env.render()
    assert frame.shape == (512, 288, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, np.asarray(Image.open(png).convert("RGB")))


def test_bad_input_raises_clear_errors():
    env = flappy_dqn.FlappyBirdEnv()
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(0)
    env.reset(seed=1)
    for bad in (2, -1, 0.5, "1", None, np.array([1, 0]), True):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(bad)
    env.step(np.int64(1))
    env.step(np.array(0))
    for bad in (-1, 1 << 64):
        with pytest.raises(ValueError, match="seed"):
            env.reset(seed=bad)
    with pytest.raises(TypeError, match="seed"):
        env.reset(seed="7")
    while not env.step(0)[2]:
        pass
    with pytest.raises(ResetNeeded, match="episode is over"):
        env.step(0)
    env.close()
    with pytest.raises(ClosedEnvironmentError):
        env.reset(seed=1)
    with pytest.raises(ClosedEnvironmentError):
        env.step(0)
    with pytest.raises(ValueError, match="render_mode"):
        flappy_dqn.FlappyBirdEnv(render_mode="human")
    with pytest.raises(ValueError, match="max_score"):
        flappy_dqn.FlappyBirdEnv(max_score=0)
