"""The native vector env: equal to Gymnasium's SyncVectorEnv over the
single env, step for step, through crashes, truncations and NEXT_STEP
autoresets; packed observations; bad input."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ClosedEnvironmentError, ResetNeeded
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import flappy_dqn


def test_equals_sync_vector_env_over_the_single_env():
    n, cap = 6, 2
    native = flappy_dqn.FlappyBirdVectorEnv(n, max_score=cap)
    sync = SyncVectorEnv([lambda: flappy_dqn.FlappyBirdEnv(max_score=cap)] * n,
                         autoreset_mode=AutoresetMode.NEXT_STEP)
    assert native.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    o1, i1 = native.reset(seed=100)
    o2, _ = sync.reset(seed=100)
    assert np.array_equal(o1, o2)
    assert native.observation_space == sync.observation_space
    assert native.action_space == sync.action_space
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for t in range(2500):
        # Half the games follow the scripted controller (they reach the
        # cap), the others flap at random (they crash).
        scripted = native.heuristic_actions()
        actions = np.where(np.arange(n) % 2 == 0, scripted, rng.random(n) < 0.09).astype(np.int64)
        a = native.step(actions)
        b = sync.step(actions)
        for k in range(4):
            assert np.array_equal(a[k], b[k]), (t, k)
        assert np.array_equal(a[4]["score"], b[4]["score"]), t
        ends["terminated"] += int(a[2].sum())
        ends["truncated"] += int(a[3].sum())
    assert ends["terminated"] > 20 and ends["truncated"] > 5, ends


def test_next_step_autoreset_has_no_off_by_one():
    env = flappy_dqn.FlappyBirdVectorEnv(2, max_score=1)
    env.reset(seed=[21, 22])
    # Game 0 falls to the ground; game 1 follows the scripted controller to the cap.
    seen = {0: None, 1: None}
    for t in range(200):
        acts = np.array([0, env.heuristic_actions()[1]])
        obs, rew, term, trunc, info = env.step(acts)
        for i in (0, 1):
            if seen[i] is None and (term[i] or trunc[i]):
                seen[i] = (t, obs[i].copy())
        if all(seen.values()):
            break
    (t0, end0), (t1, end1) = seen[0], seen[1]
    assert t0 != t1
    # Replay each ending step by step: the step after an end is the reset step.
    env.reset(seed=[21, 22])
    single = [flappy_dqn.FlappyBirdEnv(max_score=1) for _ in range(2)]
    for i, s in enumerate(single):
        s.reset(seed=21 + i)
    for t in range(max(t0, t1) + 3):
        acts = np.array([0, env.heuristic_actions()[1]])
        obs, rew, term, trunc, info = env.step(acts)
        for i, (te, end) in enumerate(((t0, end0), (t1, end1))):
            if t == te:
                assert term[i] if i == 0 else trunc[i]
                assert np.array_equal(obs[i], end)
            elif t == te + 1:
                # The reset step: the action is ignored, reward 0, a new
                # game's first stack (4 times the same frame), score 0.
                assert (rew[i], term[i], trunc[i], info["score"][i]) == (0.0, False, False, 0)
                assert all(np.array_equal(obs[i][0], obs[i][c]) for c in range(4))
                first, _ = single[i].reset()
                assert np.array_equal(obs[i], first)
            elif t < te:
                o, r, *_ = single[i].step(int(acts[i]))
                assert np.array_equal(obs[i], o) and rew[i] == r
            elif t == te + 2:
                o, r, *_ = single[i].step(int(acts[i]))
                assert np.array_equal(obs[i], o) and rew[i] == r and not (term[i] or trunc[i])


def test_packed_observations_are_the_cells_bits():
    cells = flappy_dqn.FlappyBirdVectorEnv(3)
    packed = flappy_dqn.FlappyBirdVectorEnv(3, packed=True)
    assert packed.single_observation_space.shape == (4, 80, 10)
    a, _ = cells.reset(seed=8)
    b, _ = packed.reset(seed=8)
    for t in range(300):
        acts = cells.heuristic_actions()
        assert np.array_equal(np.unpackbits(b, axis=-1), a)
        a = cells.step(acts)[0]
        b = packed.step(acts)[0]
    policy = flappy_dqn.Policy.from_file(flappy_dqn_reference_blob())
    assert np.array_equal(policy.q_values(a), policy.q_values(b))


def flappy_dqn_reference_blob():
    from conftest import REFERENCE

    return REFERENCE / "policy.bin"


def test_copies_or_the_envs_own_buffers():
    env = flappy_dqn.FlappyBirdVectorEnv(2, copy=False)
    o1, _ = env.reset(seed=3)
    o2 = env.step(np.array([1, 1]))[0]
    assert o1 is o2, "copy=False hands out the env's one buffer"
    env = flappy_dqn.FlappyBirdVectorEnv(2)
    o1, _ = env.reset(seed=3)
    o2 = env.step(np.array([1, 1]))[0]
    assert o1 is not o2 and not np.array_equal(o1, o2)


def test_make_vec_render_and_bad_input():
    env = gym.make_vec(flappy_dqn.ENV_ID, num_envs=3, vectorization_mode="vector_entry_point",
                       render_mode="rgb_array")
    assert isinstance(env, flappy_dqn.FlappyBirdVectorEnv)
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(3, int))
    env.reset(seed=50)
    single = flappy_dqn.FlappyBirdEnv(render_mode="rgb_array")
    single.reset(seed=52)
    assert np.array_equal(env.render()[2], single.render())
    for bad, msg in ((np.zeros(2, int), "shape"), (np.array([0, 1, 2]), "bad action 2"),
                     (np.array([0, -1, 0]), "bad action -1"), (np.zeros(3) + 0.5, "integers"),
                     ([[0, 1, 0]], "shape")):
        with pytest.raises(ValueError, match=msg):
            env.step(bad)
    with pytest.raises(ValueError, match="2 seeds for 3 envs"):
        env.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="num_envs"):
        flappy_dqn.FlappyBirdVectorEnv(0)
    env.close()
    with pytest.raises(ClosedEnvironmentError):
        env.step(np.zeros(3, int))
