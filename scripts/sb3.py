#!/usr/bin/env python3
"""Stable-Baselines3's DQN on flappy_dqn's environment, side by side with
`make train`: the same game, the same frame stack, the same CPU and time
budget (55 minutes of a pausable clock), the same periodic greedy
validation games and the same final greedy test games (`make sb3`).

SB3 settings: rl-zoo3 2.9.2's `atari` entry of hyperparams/dqn.yml, each
value below (`ZOO`); SB3's own defaults for the rest (`SB3_DEFAULTS`).
Adaptations, each forced by the game or the comparison (`ADAPTATIONS`).
Writes results/sb3-seed<S>.json: every setting, the curve of validation
evaluations against budget minutes, the final test scores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import flappy_dqn
from flappy_dqn.pause import Clock

ROOT = Path(__file__).resolve().parents[1]

# rl-zoo3 2.9.2, hyperparams/dqn.yml, entry `atari` (its env_wrapper and
# frame_stack are in ADAPTATIONS).
ZOO = {
    "policy": "CnnPolicy",
    "n_timesteps": 10_000_000,
    "buffer_size": 100_000,
    "learning_rate": 1e-4,
    "batch_size": 32,
    "learning_starts": 100_000,
    "target_update_interval": 1000,
    "train_freq": 4,
    "gradient_steps": 1,
    "exploration_fraction": 0.1,
    "exploration_final_eps": 0.01,
    "optimize_memory_usage": False,
}
# SB3 2.9's DQN defaults that the zoo entry leaves as they are.
SB3_DEFAULTS = {"gamma": 0.99, "tau": 1.0, "exploration_initial_eps": 1.0,
                "max_grad_norm": 10, "n_envs": 1,
                "policy": "NatureCNN (conv 8x8/4 32, 4x4/2 64, 3x3/1 64, fc 512) + linear Q head"}
ADAPTATIONS = [
    "Observation: the 4x80x80 frame stack of 0/1 cells, multiplied by 255 (Box(0, 255, uint8)) so "
    "that SB3's image normalisation (divide by 255) gives the network the trainer's 0/1 floats.",
    "No AtariWrapper: no frame skip (both learners decide every frame), no no-op starts, no life "
    "loss, no 84x84 resize (NatureCNN runs on 80x80), and no reward clipping (sign clipping would "
    "make the alive reward 0.1 equal to a pipe's 1.0).",
    "No VecFrameStack: the observation already is the 4-frame stack (frame_stack: 4).",
    "A time budget instead of n_timesteps: learning stops when the pausable clock reaches "
    "--minutes; n_timesteps (1e7) still sets the exploration schedule (10 % of it = 1e6 steps).",
    "Periodic greedy evaluations and the final test games run outside SB3 (as `make train` "
    "does them): the 10 validation games count in the budget, the 100 test games do not.",
]


class Scale255(gym.ObservationWrapper):
    """0/1 cells as 0/255 bytes (see ADAPTATIONS)."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 255, env.observation_space.shape, np.uint8)

    def observation(self, obs):
        return obs * np.uint8(255)


def greedy_q(model, obs: np.ndarray) -> torch.Tensor:
    """SB3's Q-values for a batch of the env's 0/1 observations, given to the
    network as in training: scaled to 0/255 (``Scale255``); the policy divides
    by 255 itself (``preprocess_obs``), so 0/1 floats would reach it as
    0..1/255."""
    x, _ = model.policy.obs_to_tensor(obs * np.uint8(255))
    return model.policy.q_net(x)


def greedy_scores(model, seeds: list[int], cap: int, clock: Clock | None = None) -> list[int]:
    """Plays one greedy game on each seed together (capped at ``cap``
    pipes) and returns the scores; holds for the pause protocol if given a clock."""
    env = flappy_dqn.FlappyBirdVectorEnv(len(seeds), max_score=cap, copy=False)
    obs, _ = env.reset(seed=list(seeds))
    done = np.zeros(len(seeds), bool)
    scores = np.zeros(len(seeds), np.int64)
    with torch.no_grad():
        while not done.all():
            if clock is not None:
                clock.hold_if_asked()
            actions = greedy_q(model, obs).argmax(dim=1).numpy()
            obs, _, term, trunc, info = env.step(actions)
            ended = (term | trunc) & ~done
            scores[ended] = info["score"][ended]
            done |= ended
    return scores.tolist()


def summary(scores: list[int], cap: int) -> dict:
    s = np.asarray(scores)
    return {"mean": float(s.mean()), "median": float(np.median(s)), "min": int(s.min()),
            "max": int(s.max()), "at_cap": int((s >= cap).sum()), "scores": scores}


def make_callback(args, clock: Clock, curve: list, stats: dict):
    """The SB3 callback: pause protocol, time budget, periodic evaluations."""
    from stable_baselines3.common.callbacks import BaseCallback

    eval_seeds = [flappy_dqn.PERIODIC_EVAL_SEED + i for i in range(args.eval_episodes)]

    class Budget(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval = args.eval_every
            self.next_log = time.monotonic() + 60

        def _on_step(self) -> bool:
            clock.hold_if_asked()
            minutes = clock.elapsed() / 60
            n = self.num_timesteps
            if n >= self.next_eval:
                self.next_eval += args.eval_every
                t0 = time.monotonic()
                r = summary(greedy_scores(self.model, eval_seeds, args.eval_max_score, clock),
                            args.eval_max_score)
                r.update(step=n, minutes=round(minutes, 3),
                         eval_seconds=round(time.monotonic() - t0, 1),
                         epsilon=round(self.model.exploration_rate, 4))
                curve.append(r)
                print(f"[{minutes:6.1f} min] step {n}: validation mean {r['mean']:.1f} "
                      f"median {r['median']:.1f} (eps {r['epsilon']:.3f})", flush=True)
            if time.monotonic() >= self.next_log:
                # From now, not += 60: after a long pause that would print a
                # line per step until the schedule caught up.
                self.next_log = time.monotonic() + 60
                print(f"[{minutes:6.1f} min] step {n}, eps {self.model.exploration_rate:.3f}, "
                      f"{n / max(clock.elapsed(), 1e-9):.0f} steps/s", flush=True)
            stats["steps"] = n
            return minutes < args.minutes

    return Budget()


def settings(args) -> dict:
    """Every setting of the run, as written to the results file."""
    zoo = dict(ZOO)
    for k in ("buffer_size", "learning_starts", "n_timesteps"):
        zoo[k] = getattr(args, k)
    changed = {k: zoo[k] for k in zoo if zoo[k] != ZOO[k]}
    return {"zoo_atari_dqn": zoo, "changed_from_zoo": changed, "sb3_defaults": SB3_DEFAULTS,
            "adaptations": ADAPTATIONS, "minutes": args.minutes, "torch_threads": args.threads,
            "seed": args.seed, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
            "eval_seed": flappy_dqn.PERIODIC_EVAL_SEED, "eval_max_score": args.eval_max_score,
            "final_episodes": args.final_episodes, "final_seed": flappy_dqn.TEST_SEED,
            "final_max_score": args.final_max_score}


def train(args) -> dict:
    """Learns for the budget, then plays the final test games; returns the report."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.monitor import Monitor

    torch.set_num_threads(args.threads)
    env = Monitor(Scale255(flappy_dqn.FlappyBirdEnv()))
    z = settings(args)["zoo_atari_dqn"]
    model = DQN(z["policy"], env, buffer_size=z["buffer_size"], learning_rate=z["learning_rate"],
                batch_size=z["batch_size"], learning_starts=z["learning_starts"],
                target_update_interval=z["target_update_interval"], train_freq=z["train_freq"],
                gradient_steps=z["gradient_steps"], exploration_fraction=z["exploration_fraction"],
                exploration_final_eps=z["exploration_final_eps"],
                optimize_memory_usage=z["optimize_memory_usage"], seed=args.seed, verbose=0,
                device="cpu")
    curve, stats = [], {}
    wall0 = time.monotonic()
    with Clock() as clock:
        model.learn(total_timesteps=z["n_timesteps"],
                    callback=make_callback(args, clock, curve, stats))
        budget_s, paused_s = clock.elapsed(), clock.paused_s
    wall_s = time.monotonic() - wall0
    t0 = time.monotonic()
    test_seeds = [flappy_dqn.TEST_SEED + i for i in range(args.final_episodes)]
    final = summary(greedy_scores(model, test_seeds, args.final_max_score), args.final_max_score)
    final["seconds"] = round(time.monotonic() - t0, 1)
    first = next((r["minutes"] for r in curve if r["median"] >= args.eval_max_score), None)
    eps = env.get_episode_rewards()
    return {
        "settings": settings(args),
        "training": {"env_steps": stats.get("steps", 0), "updates": int(model._n_updates),
                     "episodes": len(eps), "budget_minutes": round(budget_s / 60, 3),
                     "paused_minutes": round(paused_s / 60, 3), "wall_minutes": round(wall_s / 60, 3),
                     "env_steps_per_s": round(stats.get("steps", 0) / max(budget_s, 1e-9), 1)},
        "curve": curve,
        "minutes_to_validation_median_cap": first,
        "final_test": final,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="SB3 seed (torch, numpy; training game seed)")
    ap.add_argument("--minutes", type=float, default=55.0, help="budget of the pausable clock")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--eval-every", type=int, default=100_000, help="env steps between validation evaluations")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--eval-max-score", type=int, default=1000)
    ap.add_argument("--final-episodes", type=int, default=100)
    ap.add_argument("--final-max-score", type=int, default=1000)
    ap.add_argument("--buffer-size", type=int, default=ZOO["buffer_size"], help="(smoke runs only)")
    ap.add_argument("--learning-starts", type=int, default=ZOO["learning_starts"], help="(smoke runs only)")
    ap.add_argument("--n-timesteps", type=int, default=ZOO["n_timesteps"],
                    help="sets the exploration schedule (10 %% of it)")
    ap.add_argument("--out", type=Path, help="default: results/sb3-seed<S>.json")
    args = ap.parse_args()
    out = args.out or ROOT / "results" / f"sb3-seed{args.seed}.json"
    report = train(args)
    report["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    report["machine"] = {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
                         **{p: metadata.version(p) for p in ("stable-baselines3", "torch", "gymnasium",
                                                             "flappy-dqn")}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    f = report["final_test"]
    print(f"final greedy test ({args.final_episodes} games, cap {args.final_max_score}): "
          f"mean {f['mean']:.1f} median {f['median']:.1f}; wrote {out}")


if __name__ == "__main__":
    main()
