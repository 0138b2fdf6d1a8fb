"""`make peers`: batch-1, one-thread latency of policy-core and the standard
int8 runtimes on the same recorded frames, in interleaved rounds.

Per round, every runtime (in an order rotated each round) runs every stack of
the recording once; only the inference call is timed (LiteRT/TFLite Micro
`invoke()`, ONNX Runtime `run_with_iobinding()`, OpenVINO `infer()`; the
input is copied in before the clock starts). policy-core runs in its own
process (`interop bench --serve`, one round per request), timed in Rust
around `Policy::q_values`, which includes unpacking the bit-packed frames.
The binding overhead of each Python runtime is measured in the same rounds:
the same call on a model with one trivial operator (`interop null`).

Writes results/peers.json and results/peers.md and prints the table.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import runtimes

POLICY_CORE = "policy-core (conv1 nibble table)"


def time_calls(runner, xs):
    """Nanoseconds of each `invoke()`, input set before the clock starts."""
    out = np.empty(len(xs), np.int64)
    clock = time.perf_counter_ns
    for i, x in enumerate(xs):
        runner.set_input(x)
        t = clock()
        runner.invoke()
        out[i] = clock() - t
    return out


def timer_overhead_ns(n=20000):
    clock = time.perf_counter_ns
    v = np.empty(n, np.int64)
    for i in range(n):
        t = clock()
        v[i] = clock() - t
    return float(np.median(v))


def agreement(runner, xs, want_actions):
    got = []
    for x in xs:
        runner.set_input(x)
        runner.invoke()
        got.append(runner.q_values().astype(np.float64))
    return float(np.mean(np.argmax(np.array(got), axis=1) == want_actions))


def measure(model, rounds, limit, work):
    files = runtimes.prepare(model, work, limit=limit)
    xs = np.load(os.path.join(files["trace"], "input.npy"))
    meta = json.load(open(os.path.join(files["trace"], "meta.json")))
    q = np.load(os.path.join(files["trace"], meta["stages"][-1]["file"]))
    want = np.argmax(q, axis=1)
    zero = np.zeros((1, 2), np.float32)
    peers = runtimes.peers(files)
    bench = subprocess.Popen(
        [runtimes.INTEROP_BIN, "bench", "--serve", "--blob", files["blob"],
         "--frames", files["frames"], "--limit", str(len(xs))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    times = {name: [] for name, _, _ in peers}
    null = {name: [] for name, _, _ in peers}
    core = {}
    try:
        for r in range(rounds):
            order = peers[r % len(peers):] + peers[: r % len(peers)]
            bench.stdin.write("round\n")
            bench.stdin.flush()
            for name, t in json.loads(bench.stdout.readline()).items():
                core.setdefault(name, []).extend(t)
            for name, runner, null_runner in order:
                times[name].extend(time_calls(runner, xs))
                null[name].extend(time_calls(null_runner, [zero] * len(xs)))
    finally:
        bench.stdin.close()
        bench.wait()
    rows = []
    for name, t in core.items():
        rows.append({"runtime": name, "median_us": float(np.median(t)) / 1e3,
                     "p90_us": float(np.percentile(t, 90)) / 1e3,
                     "call_overhead_us": 0.0, "action_agreement": 1.0})
    for name, runner, _ in peers:
        t, n = np.array(times[name]), np.array(null[name])
        rows.append({"runtime": name, "median_us": float(np.median(t)) / 1e3,
                     "p90_us": float(np.percentile(t, 90)) / 1e3,
                     "call_overhead_us": float(np.median(n)) / 1e3,
                     "action_agreement": agreement(runner, xs, want)})
    base = next(r["median_us"] for r in rows if r["runtime"] == POLICY_CORE)
    for r in rows:
        r["vs_policy_core"] = r["median_us"] / base
    rows.sort(key=lambda r: r["median_us"])
    return {"model": model, "stacks": int(len(xs)), "rounds": rounds, "rows": rows}


def versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for p in ["ai-edge-litert", "onnxruntime", "tflite-micro", "numpy", "openvino"]:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def source_state():
    """The commit measured, and whether policy-core or interop had
    uncommitted changes (the binary is built from the working tree)."""
    def git(*a):
        r = subprocess.run(["git", "-C", runtimes.REPO, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--", "policy-core", "interop")
    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "uncommitted_changes": bool(dirty)}


def render(report):
    lines = [
        "# policy-core and the standard int8 runtimes, batch 1, one thread",
        "",
        f"Written by `make peers` ({report['date']}, {report['cpu']}, "
        f"{report['cores']} cores, under scripts/quiet; commit {report['source']['commit']}"
        + (", policy-core/interop with uncommitted changes" if report["source"]["uncommitted_changes"] else "")
        + "). Median microseconds per "
        "decision over every recorded stack of each round; rounds interleave the "
        "runtimes. Only the inference call is timed; \"call overhead\" is the "
        "same call on a model with one trivial operator, included in the "
        "median. policy-core's time includes unpacking the bit-packed frames; "
        f"Python's timer costs {report['timer_overhead_ns']:.0f} ns per reading.",
        "",
    ]
    for m in report["models"]:
        lines += [
            f"## `{m['model']}` ({m['stacks']} stacks x {m['rounds']} rounds)",
            "",
            "| runtime | median µs | p90 µs | call overhead µs | × policy-core | action agreement |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in m["rows"]:
            lines.append(
                f"| {r['runtime']} | {r['median_us']:.1f} | {r['p90_us']:.1f} | "
                f"{r['call_overhead_us']:.2f} | {r['vs_policy_core']:.2f} | "
                f"{100 * r['action_agreement']:.2f} % |"
            )
        lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="reference,tiny")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="at most this many stacks")
    ap.add_argument("--out", default=os.path.join(runtimes.REPO, "results", "peers"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        models = [measure(m, a.rounds, a.limit, os.path.join(work, m)) for m in a.models.split(",")]
    report = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "timer_overhead_ns": timer_overhead_ns(),
        "versions": versions(),
        "source": source_state(),
        "command": "make peers",
        "models": models,
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = render(report)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
