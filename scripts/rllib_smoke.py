#!/usr/bin/env python3
"""flappy_dqn under Ray RLlib: the environment registered with Ray Tune's
registry and PPO trained for a few iterations with 2 env-runner processes
on this machine (`make rllib-smoke`). It checks that the env works where
RLlib runs it (separate worker processes that import flappy_dqn, batches
of whole and partial episodes), not that PPO learns in a minute.

The observation is flattened into 25,600 floats for a small MLP: RLlib's CNN
encoder wants channel-last images with filters of its own, which a real run
configures (docs/python.md, "Ray RLlib"). A cluster run is the same script
with `ray.init(address="auto")` and more env runners.
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np
import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.tune.registry import register_env

ENV_NAME = "flappy_dqn"


def make_env(config: dict):
    """The env as RLlib's workers build it (each imports flappy_dqn)."""
    import flappy_dqn

    env = flappy_dqn.FlappyBirdEnv(max_score=config.get("max_score", 50))
    return gym.wrappers.DtypeObservation(gym.wrappers.FlattenObservation(env), np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--env-runners", type=int, default=2)
    a = ap.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=a.env_runners + 1, include_dashboard=False, log_to_driver=True)
    register_env(ENV_NAME, make_env)
    config = (
        PPOConfig()
        .environment(ENV_NAME, env_config={"max_score": 50})
        .framework("torch")
        .env_runners(num_env_runners=a.env_runners, num_envs_per_env_runner=1,
                     rollout_fragment_length=250)
        .training(train_batch_size_per_learner=500, minibatch_size=250, num_epochs=1, lr=3e-4)
        .rl_module(model_config={"fcnet_hiddens": [64]})
        # A failing env runner must fail the smoke, not be restarted quietly.
        .fault_tolerance(restart_failed_env_runners=False)
    )
    algo = config.build_algo()
    runners = algo.env_runner_group.num_remote_env_runners()
    print(f"RLlib PPO on {ENV_NAME}: {runners} remote env runners (processes)", flush=True)
    t0 = time.monotonic()
    sampled = 0
    for i in range(a.iterations):
        r = algo.train()
        runs = r.get("env_runners", {})
        sampled = runs.get("num_env_steps_sampled_lifetime") or 0
        print(f"iteration {i + 1}: env steps sampled {runs.get('num_env_steps_sampled_lifetime')}, "
              f"episodes {runs.get('num_episodes_lifetime')}, "
              f"mean episode return {runs.get('episode_return_mean')}, "
              f"mean episode length {runs.get('episode_len_mean')}", flush=True)
    print(f"rllib smoke: {a.iterations} iterations in {time.monotonic() - t0:.1f} s", flush=True)
    algo.stop()
    ray.shutdown()
    if runners != a.env_runners:
        raise SystemExit(f"expected {a.env_runners} env-runner processes, RLlib had {runners}")
    if sampled < a.iterations * 500:
        raise SystemExit(f"RLlib sampled only {sampled} env steps")


if __name__ == "__main__":
    main()
