"""`make peers`: batch-1, one-thread latency of policy-core and the standard
int8 runtimes on the same recorded frames, in interleaved rounds.

Every runtime runs both flavours of the converted files (docs/interop.md:
`exact`, bit-exact under LiteRT's reference kernels and TFLite Micro, and
`fast`, the same integers in the operators the optimized runtimes run
fastest); the table shows each runtime on its faster flavour and names it.
Per round, every runtime and flavour (in an order rotated each round) runs
every stack of the recording once; only the inference call is timed
(LiteRT/TFLite Micro `invoke()`, ONNX Runtime `run_with_iobinding()`,
OpenVINO `infer()`; the input is copied in before the clock starts).
policy-core and tract run in their own process (`interop bench --serve`,
one round per request), timed in Rust around `Policy::q_values` (which
includes unpacking the bit-packed frames) and tract's `run`. The binding
overhead of each runtime is measured in the same rounds: the same call on a
model with one trivial operator (`interop null`).

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
NATIVE_PREFIX = "policy-core -C target-cpu=native"
TRACT = "tract"
# The CPU flags that decide which kernels the runtimes pick.
SIMD_FLAGS = ["sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"]


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


def actions(q):
    """argmax, ties to the first action (Idle), as policy-core."""
    return np.argmax(np.asarray(q, np.float64), axis=1)


def agreement(runner, xs, want_actions):
    got = []
    for x in xs:
        runner.set_input(x)
        runner.invoke()
        got.append(runner.q_values().astype(np.float64))
    return float(np.mean(actions(got) == want_actions))


class Bench:
    """policy-core (and tract, when the binary has it) in `interop bench --serve`."""

    def __init__(self, files, n, binary=None, with_tract=True):
        args = [binary or runtimes.INTEROP_BIN, "bench", "--serve", "--blob", files["blob"],
                "--frames", files["frames"], "--limit", str(n)]
        tract = [f"--tract={f}={files[runtimes.file_key('onnx', f)]}" for f in runtimes.FLAVOURS]
        tract.append(f"--tract=null={files['null_onnx']}")
        self.tract = False
        if with_tract:
            probe = subprocess.run(args[:2] + args[3:7] + ["--limit", "1", "--rounds", "1"] + tract,
                                   capture_output=True, text=True)
            self.tract = probe.returncode == 0
            if not self.tract:
                print("tract left out: " + probe.stderr.strip().splitlines()[-1], file=sys.stderr)
        self.proc = subprocess.Popen(args + (tract if self.tract else []), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def row(runtime, flavour, t, overhead_ns, agree):
    t = np.asarray(t)
    return {"runtime": runtime, "flavour": flavour,
            "median_us": float(np.median(t)) / 1e3, "p90_us": float(np.percentile(t, 90)) / 1e3,
            "call_overhead_us": overhead_ns / 1e3, "action_agreement": agree}


def bench_rows(times, q, want):
    """Rows of the Rust process: policy-core's variants and tract's flavours."""
    null = float(np.median(times.pop("tract:null"))) if "tract:null" in times else 0.0
    rows = []
    for name, t in times.items():
        agree = float(np.mean(actions(q[name]) == want))
        if name.startswith("tract:"):
            rows.append(row(TRACT, name.split(":", 1)[1], t, null, agree))
        else:
            rows.append(row(name, None, t, 0.0, agree))
    return rows


def measure(model, rounds, limit, work):
    files = runtimes.prepare(model, work, limit=limit)
    xs = np.load(os.path.join(files["trace"], "input.npy"))
    meta = json.load(open(os.path.join(files["trace"], "meta.json")))
    want = actions(np.load(os.path.join(files["trace"], meta["stages"][-1]["file"])))
    zero = [np.zeros((1, 2), np.float32)] * len(xs)
    failures = []
    peers = runtimes.peers(files, failures)
    bench = Bench(files, len(xs))
    # The same policy-core built with -C target-cpu=native (make peers builds
    # it into target/native), in its own process, in the same rounds.
    native_bin = os.environ.get("INTEROP_NATIVE_BIN")
    native = Bench(files, len(xs), native_bin, with_tract=False) if native_bin else None
    times = {(name, fl): [] for name, fl, _, _ in peers}
    null = {name: [] for name, _, _, _ in peers}
    core, core_native = {}, {}
    try:
        for r in range(rounds):
            order = peers[r % len(peers):] + peers[: r % len(peers)]
            for name, t in bench.ask("round").items():
                core.setdefault(name, []).extend(t)
            if native:
                for name, t in native.ask("round").items():
                    core_native.setdefault(name, []).extend(t)
            for name, fl, runner, null_runner in order:
                times[(name, fl)].extend(time_calls(runner, xs))
                null[name].extend(time_calls(null_runner, zero))
        rows = bench_rows(core, bench.ask("q"), want)
        if native:
            for r in bench_rows(core_native, native.ask("q"), want):
                r["runtime"] = r["runtime"].replace("policy-core", NATIVE_PREFIX, 1)
                rows.append(r)
    finally:
        bench.close()
        if native:
            native.close()
    for name, fl, runner, _ in peers:
        rows.append(row(name, fl, times[(name, fl)], float(np.median(null[name])),
                        agreement(runner, xs, want)))
    base = next(r["median_us"] for r in rows if r["runtime"] == POLICY_CORE)
    for r in rows:
        r["vs_policy_core"] = r["median_us"] / base
    rows.sort(key=lambda r: r["median_us"])
    failed = [{"runtime": n, "flavour": f, "error": e} for n, f, e in failures]
    return {"model": model, "stacks": int(len(xs)), "rounds": rounds, "rows": rows,
            "failed": failed, "best": best_rows(rows, failed)}


def best_rows(rows, failed):
    """Each runtime on its fastest flavour (rows sorted by median), with its
    median on the other flavour ("fails" where it cannot load that file)."""
    best = []
    for r in rows:
        if any(b["runtime"] == r["runtime"] for b in best):
            continue
        other = [o["median_us"] for o in rows if o["runtime"] == r["runtime"] and o is not r]
        fails = any(f["runtime"] == r["runtime"] for f in failed)
        best.append(dict(r, other_flavour_us=other[0] if other else ("fails" if fails else None)))
    return best


def versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for p in ["ai-edge-litert", "onnxruntime", "openvino", "tflite-micro", "numpy"]:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    out["tract-onnx"] = cargo_lock_version("tract-onnx")
    out["rustc"] = run_text(["rustc", "--version"]).split(" (")[0].replace("rustc ", "")
    return {k: v for k, v in out.items() if v}


def cargo_lock_version(name):
    """The version of crate `name` in the workspace's Cargo.lock."""
    try:
        blocks = open(os.path.join(runtimes.REPO, "Cargo.lock")).read().split("[[package]]")
    except OSError:
        return None
    for b in blocks:
        if f'name = "{name}"\n' in b:
            return b.split('version = "', 1)[1].split('"', 1)[0]
    return None


def run_text(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    """CPU model, the SIMD flags the runtimes choose kernels by, cores, the
    Rust build flags policy-core was compiled with."""
    name, flags = platform.processor(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": name, "cores": os.cpu_count(), "simd_flags": [f for f in SIMD_FLAGS if f in flags],
            "kernel": platform.release(),
            "rustflags": os.environ.get("RUSTFLAGS", "") or (
                "none (the x86-64 baseline, SSE2; policy-core's u8 convs switch to AVX2 at run time "
                "on this CPU, `policy_core::conv_lanes`)" if "avx2" in flags else
                "none (the x86-64 baseline, SSE2; this CPU has no AVX2 for policy-core's run-time convs)")}


def cpu_busy_s():
    """Seconds the whole machine's CPUs were busy and available, so far
    (/proc/stat); (0, 0) where there is none."""
    try:
        v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(v) - v[3] - v[4]) / tick, sum(v) / tick


def own_cpu_s():
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def source_state():
    """The commit measured, and whether policy-core or interop had
    uncommitted changes (the binary is built from the working tree)."""
    def git(*a):
        r = subprocess.run(["git", "-C", runtimes.REPO, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--", "policy-core", "interop")
    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "uncommitted_changes": bool(dirty)}


def fmt_us(v):
    if v is None or isinstance(v, str):
        return v or "—"
    return f"{v:.1f}"


def render(report):
    m, src = report["machine"], report["source"]
    lines = [
        "# policy-core and the standard int8 runtimes, batch 1, one thread",
        "",
        f"Written by `make peers` ({report['date']}, under scripts/quiet; commit {src['commit']}"
        + (", policy-core/interop with uncommitted changes" if src["uncommitted_changes"] else "")
        + f"). Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}; SIMD: "
        + " ".join(m["simd_flags"]) + f". policy-core's Rust flags: {m['rustflags']}"
        + ("; the rows \"policy-core -C target-cpu=native\" are the same code built for this "
           "CPU (`make peers` builds both)" if any(NATIVE_PREFIX in r["runtime"]
                                                  for mod in report["models"] for r in mod["rows"])
           else "") + ".",
        "",
        "Batch 1, one thread, the same recorded stacks for every runtime. Median "
        "microseconds per decision over every stack of every round; rounds interleave "
        "the runtimes. Only the inference call is timed: policy-core's `q_values` "
        "(which includes unpacking the bit-packed frames) and tract's `run` in Rust, "
        "the others through their Python bindings with the input already copied in. "
        "\"Call overhead\" is the same call on a model with one trivial operator, "
        "included in the median. Each runtime ran both flavours of the converted "
        "files (`exact`: bit-exact under LiteRT's reference kernels and TFLite Micro; "
        "`fast`: the same integers in the operators the optimized runtimes run "
        "fastest, docs/interop.md) and is shown on its faster one; \"other flavour\" "
        f"is its median on the other. Python's timer costs {report['timer_overhead_ns']:.0f} ns "
        f"per reading. Other processes kept {100 * report['other_cpu_share']:.0f} % of the "
        "machine's CPU time busy during the run (/proc/stat).",
        "",
    ]
    for mod in report["models"]:
        lines += [
            f"## `{mod['model']}` ({mod['stacks']} stacks x {mod['rounds']} rounds)",
            "",
            "| runtime | flavour | median µs | p90 µs | call overhead µs | × policy-core "
            "| action agreement | other flavour µs |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in mod["best"]:
            lines.append(
                f"| {r['runtime']} | {r['flavour'] or '—'} | {r['median_us']:.1f} | "
                f"{r['p90_us']:.1f} | {r['call_overhead_us']:.2f} | {r['vs_policy_core']:.2f} | "
                f"{100 * r['action_agreement']:.2f} % | {fmt_us(r['other_flavour_us'])} |"
            )
        lines.append("")
        for f in mod["failed"]:
            lines += [f"{f['runtime']} cannot run the {f['flavour']} file: {f['error']}", ""]
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="reference,tiny")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="at most this many stacks")
    ap.add_argument("--out", default=os.path.join(runtimes.REPO, "results", "peers"))
    a = ap.parse_args()
    (busy0, total0), own0 = cpu_busy_s(), own_cpu_s()
    with tempfile.TemporaryDirectory() as work:
        models = [measure(m, a.rounds, a.limit, os.path.join(work, m)) for m in a.models.split(",")]
    (busy1, total1), own1 = cpu_busy_s(), own_cpu_s()
    other = max(busy1 - busy0 - (own1 - own0), 0.0) / max(total1 - total0, 1e-9)
    report = {
        "date": datetime.date.today().isoformat(),
        "command": "make peers",
        "batch": 1,
        "threads": 1,
        "machine": machine(),
        "timer_overhead_ns": timer_overhead_ns(),
        "other_cpu_share": other,
        "versions": versions(),
        "source": source_state(),
        "models": models,
    }
    runtimes.write_report(a.out, report, render)


if __name__ == "__main__":
    main()
