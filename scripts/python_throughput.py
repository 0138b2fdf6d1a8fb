#!/usr/bin/env python3
"""Observed environment steps per second from Python, measured in one run
(`make python-bench`, under scripts/quiet): flappy_dqn's single env and
native vector env (with a copy of every observation), Gymnasium's
SyncVectorEnv and AsyncVectorEnv over the single env, flappy-bird-gymnasium
(pixels and features), and the Rust game alone (`flappy bench`) as the
ceiling. EnvPool's published figures stand beside them as an outside
anchor, not measured here. Writes results/python-throughput.{json,md}.

Every row plays random actions (flap with probability 1/12, so birds crash
and episodes restart within the timing) for --seconds after a short warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import flappy_dqn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLAP_P = 1 / 12

# EnvPool's README, "Benchmark Results" (github.com/sail-sg/envpool, README.md):
# Atari with its wrappers, frames per second, highest over worker counts.
ENVPOOL = [
    ("EnvPool (async), Atari, laptop i7-8750H", 12, 50_513),
    ("EnvPool (sync), Atari, laptop i7-8750H", 12, 40_791),
    ("Python for-loop, Atari, laptop i7-8750H", 12, 4_876),
    ("EnvPool (numa+async), Atari, DGX-A100", 256, 1_060_371),
]
ENVPOOL_SOURCE = "github.com/sail-sg/envpool README.md, section \"Benchmark Results\" (Atari frames/s)"


def actions(shape, seed=0):
    """A block of random actions to cycle through (drawn before timing)."""
    return (np.random.default_rng(seed).random((4096, *shape)) < FLAP_P).astype(np.int64)


def timed(step, per_call: int, seconds: float) -> tuple[int, float]:
    """Calls ``step(k)`` for ``seconds`` (after a warm-up); returns the
    steps taken (``per_call`` per call) and the time."""
    t_end = time.perf_counter() + min(0.5, seconds / 5)
    k = 0
    while time.perf_counter() < t_end:
        step(k)
        k += 1
    calls, t0 = 0, time.perf_counter()
    t_end = t0 + seconds
    while True:
        for _ in range(16):
            step(k + calls)
            calls += 1
        now = time.perf_counter()
        if now >= t_end:
            return calls * per_call, now - t0


def single(env, seconds):
    """A single Gymnasium env in a Python loop, resetting when an episode ends."""
    acts = actions(())
    env.reset(seed=1)

    def step(k):
        _, _, term, trunc, _ = env.step(int(acts[k % len(acts)]))
        if term or trunc:
            env.reset()

    return timed(step, 1, seconds)


def single_pixels(env, seconds):
    """As :func:`single`, with ``render()`` (the RGB screen) after every step."""
    acts = actions(())
    env.reset(seed=1)

    def step(k):
        _, _, term, trunc, _ = env.step(int(acts[k % len(acts)]))
        env.render()
        if term or trunc:
            env.reset()

    return timed(step, 1, seconds)


def vector(env, seconds, copy_obs: bool):
    """A vector env (autoresetting itself); ``copy_obs`` copies each batch."""
    n = env.num_envs
    acts = actions((n,))
    env.reset(seed=1)

    def step(k):
        obs = env.step(acts[k % len(acts)])[0]
        if copy_obs:
            obs.copy()

    return timed(step, n, seconds)


def rust_ceiling() -> float:
    """`flappy bench`'s step + observe + stack push rate (Rust, no Python)."""
    exe = ROOT / "target" / "release" / "flappy"
    out = subprocess.run([exe, "bench", "--steps", "3000000"], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"step \+ observe \+ stack push\s+\d+\s+[\d.]+\s+(\d+)", out)
    if not m:
        raise SystemExit(f"could not read flappy bench's output:\n{out}")
    return float(m[1])


def rows(seconds: float) -> list[dict]:
    """Every measured row, in table order."""
    import flappy_bird_gymnasium  # noqa: F401  (registers FlappyBird-v0)

    obs_bytes = 4 * 80 * 80
    plan = [
        ("flappy_dqn FlappyBirdEnv (single, Python loop)", 1, 1, obs_bytes,
         lambda: single(flappy_dqn.FlappyBirdEnv(), seconds)),
        ("flappy_dqn via gymnasium.make (+ Gymnasium's checker wrappers)", 1, 1, obs_bytes,
         lambda: single(gym.make(flappy_dqn.ENV_ID), seconds)),
    ]
    for n in (16, 64, 256):
        plan.append((f"flappy_dqn FlappyBirdVectorEnv, {n} games, obs copied", n, 1, obs_bytes,
                     lambda n=n: vector(flappy_dqn.FlappyBirdVectorEnv(n, copy=False), seconds, True)))
    plan.append(("flappy_dqn FlappyBirdVectorEnv, 64 games, obs not copied (copy=False)", 64, 1,
                 obs_bytes,
                 lambda: vector(flappy_dqn.FlappyBirdVectorEnv(64, copy=False), seconds, False)))
    for n in (64, 256):
        plan.append((f"flappy_dqn FlappyBirdVectorEnv packed bits, {n} games, obs copied", n, 1,
                     obs_bytes // 8,
                     lambda n=n: vector(flappy_dqn.FlappyBirdVectorEnv(n, packed=True, copy=False),
                                        seconds, True)))
    make = lambda: flappy_dqn.FlappyBirdEnv()  # noqa: E731
    plan += [
        ("Gymnasium SyncVectorEnv over FlappyBirdEnv, 16 games", 16, 1, obs_bytes,
         lambda: vector(gym.vector.SyncVectorEnv([make] * 16), seconds, False)),
        ("Gymnasium AsyncVectorEnv over FlappyBirdEnv, 2 processes x 1 game", 2, 2, obs_bytes,
         lambda: vector(gym.vector.AsyncVectorEnv([make] * 2), seconds, False)),
        ("Gymnasium AsyncVectorEnv over FlappyBirdEnv, 8 processes x 1 game", 8, 2, obs_bytes,
         lambda: vector(gym.vector.AsyncVectorEnv([make] * 8), seconds, False)),
        ("flappy-bird-gymnasium 0.4.0, features (use_lidar=False, 12 floats)", 1, 1, 12 * 8,
         lambda: single(gym.make("FlappyBird-v0", use_lidar=False), seconds)),
        ("flappy-bird-gymnasium 0.4.0, lidar (its default, 180 floats)", 1, 1, 180 * 8,
         lambda: single(gym.make("FlappyBird-v0"), seconds)),
        ("flappy-bird-gymnasium 0.4.0, pixels (render() each step, 512x288x3)", 1, 1, 512 * 288 * 3,
         lambda: single_pixels(gym.make("FlappyBird-v0", render_mode="rgb_array"), seconds)),
    ]
    out = []
    for name, envs, cores, nbytes, run in plan:
        steps, secs = run()
        out.append({"what": name, "games": envs, "cores": cores, "obs_bytes": nbytes,
                    "steps": steps, "seconds": round(secs, 3), "steps_per_s": round(steps / secs)})
        print(f"{out[-1]['steps_per_s']:>12,} steps/s  {name}", flush=True)
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(report: dict) -> str:
    """The results as a Markdown table."""
    m = report["measured"]
    best_vec = max(r["steps_per_s"] for r in m if "FlappyBirdVectorEnv, " in r["what"] and "obs copied" in r["what"])
    best_packed = max(r["steps_per_s"] for r in m if "packed bits" in r["what"])
    lines = [
        "# Observed steps per second from Python",
        "",
        f"Written by `{report['command']}` on {report['date']} ({report['cpu']}, "
        f"{report['cpu_count']} cores, Python {report['python']}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ").",
        f"Random actions (flap with probability {FLAP_P:.3f}), episodes restart inside the timing; "
        f"{report['seconds_per_row']} s per row. `obs` bytes: one observation as the env returns it.",
        "",
        "| environment | games | cores | obs bytes | steps/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in m:
        lines.append(f"| {r['what']} | {r['games']} | {r['cores']} | {r['obs_bytes']:,} | "
                     f"{r['steps_per_s']:,} |")
    lines.append(f"| Rust `flappy bench`: step + observe + stack push, no Python (ceiling) | 1 | 1 | "
                 f"800 | {round(report['rust_ceiling']):,} |")
    lines += ["", f"Outside anchor, not measured here ({ENVPOOL_SOURCE}; an Atari frame is one "
              "emulator frame, four per agent step with the usual frame skip):", "",
              "| published | cores | frames/s | per core |", "|---|---:|---:|---:|"]
    for name, cores, fps in ENVPOOL:
        lines.append(f"| {name} | {cores} | {fps:,} | {round(fps / cores):,} |")
    verdict = lambda x: "met" if x >= 1_000_000 else "not met"  # noqa: E731
    lines += ["", "Goal >= 1 M observed steps/s from Python with the vector env on one core, "
              f"observations copied: 4 x 80 x 80 cells (25.6 kB a step) **{verdict(best_vec)}**, "
              f"best {best_vec:,}/s; packed bits (3.2 kB a step) **{verdict(best_packed)}**, "
              f"best {best_packed:,}/s. See docs/python.md."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="timing per row")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "python-throughput")
    a = ap.parse_args()
    # flappy-bird-gymnasium's lidar observations fall outside its own space
    # now and then, and Gymnasium's checker says so at every step.
    warnings.filterwarnings("ignore", message=".*not within the observation space")
    versions = {p: metadata.version(p) for p in
                ("flappy-dqn", "gymnasium", "numpy", "flappy-bird-gymnasium", "pygame")}
    report = {
        "command": "make python-bench" if a.seconds == 3.0 else " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cpu": cpu_name(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "versions": versions, "seconds_per_row": a.seconds, "flap_probability": FLAP_P,
        "measured": rows(a.seconds),
        "rust_ceiling": rust_ceiling(),
        "envpool_published": {"source": ENVPOOL_SOURCE,
                              "rows": [{"what": n, "cores": c, "frames_per_s": f} for n, c, f in ENVPOOL]},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {a.out}.json and {a.out}.md")


if __name__ == "__main__":
    main()
