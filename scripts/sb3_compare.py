#!/usr/bin/env python3
"""The project's trainer beside Stable-Baselines3's DQN on the same game, CPU
and budget: reads results/study-NAME.json (`make study`: NAME `default`,
or the study of an earlier default after it was renamed) and
results/sb3-seed*.json (`make sb3`), writes results/sb3-vs-trainer.md (the
table the README includes) and results/sb3-vs-trainer.png (every run's
validation median against training minutes).

    .venv/bin/python scripts/sb3_compare.py [--study NAME]
"""

import json
import sys
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: {path}: {e}")


def row(who: str, seed, steps, updates, minutes, to_cap, test, curve: list[dict]) -> dict:
    """One run's row; `curve` is its periodic validation evaluations
    (`minutes`, `median`)."""
    return {
        "who": who,
        "seed": seed,
        "steps": steps,
        "updates": updates,
        "minutes": minutes,
        "to_cap": to_cap,
        "ours": who.startswith("this"),
        "steps_per_min": steps / minutes if minutes else float("nan"),
        "test": test,
        "curve": [(p["minutes"], p["median"]) for p in curve],
    }


def trainer_rows(study: dict) -> list[dict]:
    return [row("this project (`make train`)", r["seed"], r["steps"], r["updates"],
                r["minutes"], r["minutes_to_cap"], r["float"], r["curve"])
            for r in study["runs"]]


def sb3_rows(files: list[Path]) -> list[dict]:
    rows = []
    for f in files:
        j = load(f)
        t = j["training"]
        rows.append(row("Stable-Baselines3 DQN (rl-zoo3 Atari)", j["settings"]["seed"],
                        t["env_steps"], t["updates"], t["budget_minutes"],
                        j["minutes_to_validation_median_cap"], j["final_test"], j["curve"]))
    return rows


def fmt_min(m) -> str:
    return "not reached" if m is None else f"{m:.1f}"


def best_within(r: dict, minutes: float) -> float:
    """The run's best validation median at or before `minutes`."""
    return max((m for t, m in r["curve"] if t <= minutes + 1e-9), default=float("nan"))


def table(rows: list[dict], cap: int, budget: float) -> str:
    out = [
        f"| learner | seed | env steps | gradient updates | training minutes | env steps per minute | "
        f"best validation median in the first {budget:.0f} min | best validation median | "
        f"minutes to validation median {cap} | test mean | test median | test games at the cap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r["test"]
        out.append(
            f"| {r['who']} | {r['seed']} | {r['steps']:,} | {r['updates']:,} | {r['minutes']:.1f} | "
            f"{r['steps_per_min']:,.0f} | {best_within(r, budget):.1f} | {best_within(r, float('inf')):.1f} | "
            f"{fmt_min(r['to_cap'])} | {t['mean']:.1f} | {t['median']:.1f} | {t['at_cap']}/{len(t['scores'])} |"
        )
    ours = [r["to_cap"] for r in rows if r["ours"]]
    theirs = [r["to_cap"] for r in rows if not r["ours"]]
    reached = [m for m in ours if m is not None]
    out.append("")
    if not reached:
        out.append(f"This project's runs did not reach a validation median of {cap}.")
    elif theirs and all(m is None for m in theirs):
        mine = median(reached)
        head = (f"SB3 did not reach a validation median of {cap} within its {budget:.0f} minutes on any seed; "
                f"this project's median time to it was {mine:.1f} minutes ({len(reached)} of {len(ours)} seeds)")
        if mine <= budget:
            out.append(f"{head}: a ratio below {mine / budget:.2f}.")
        else:
            out.append(f"{head}, later than SB3's budget, so the two are compared at equal minutes "
                       f"(the column 'best validation median in the first {budget:.0f} min') and by the curves.")
    elif theirs:
        mine = median(reached)
        theirs_m = median([m if m is not None else float("inf") for m in theirs])
        out.append(f"Median minutes to a validation median of {cap}: this project {mine:.1f}, "
                   f"SB3 {fmt_min(None if theirs_m == float('inf') else theirs_m)}: ratio "
                   f"{mine / theirs_m:.2f}.")
    return "\n".join(out)


def plot(rows: list[dict], cap: int, budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=100)
    styles = ["-", "--", ":", "-.", (0, (5, 1))]
    for i, r in enumerate(rows):
        ours = r["ours"]
        xs, ys = zip(*r["curve"]) if r["curve"] else ((), ())
        ax.plot(xs, ys, color="tab:blue" if ours else "tab:red", alpha=0.8, lw=1.5 if ours else 2,
                ls=styles[i % len(styles)], marker="o", ms=3,
                label=f"{'this project' if ours else 'SB3 DQN'}, seed {r['seed']}")
    ax.axhline(cap, color="black", ls="--", lw=0.8)
    ax.axvline(budget, color="tab:red", ls=":", lw=0.8)
    ax.set_xlabel("training minutes (same 2-core CPU, pausable clock)")
    ax.set_ylabel("validation median (10 games, pipes)")
    ax.set_title("Time to score: the project's trainer vs Stable-Baselines3's DQN")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="default", help="the trainer's study: results/study-NAME.json")
    study_file = f"study-{ap.parse_args().study}.json"
    study = load(RESULTS / study_file)
    files = sorted(RESULTS.glob("sb3-seed*.json"))
    if not files:
        sys.exit("error: no results/sb3-seed*.json: run `make sb3 SB3_SEED=1` first")
    rows = trainer_rows(study) + sb3_rows(files)
    cap = study["cap"]
    # SB3's budget: the trainer's runs are step-budgeted and run longer.
    budget = max(r["minutes"] for r in rows if not r["ours"])
    md = [
        f"<!-- written by scripts/sb3_compare.py from results/{study_file} and results/sb3-seed*.json -->",
        f"Both learners on the same game (4x80x80 frame stacks, the game's rewards) and the same 2-core CPU "
        f"(pausable clocks; env steps per minute shows each run's share of it), the same 10 validation games "
        f"for the curve and the same {len(rows[0]['test']['scores'])} test games (cap {cap}) after training. "
        f"SB3 trains for {budget:.0f} minutes; this project's runs are those of the study `{study['name']}` "
        f"(`make train`'s default when it ran: a budget of env steps, not minutes), so they are compared at equal minutes in the column "
        f"'best validation median in the first {budget:.0f} min' and in the plot (dotted line: SB3's budget). "
        f"SB3's settings and adaptations: results/sb3-seed*.json and docs/python.md.",
        "",
        table(rows, cap, budget),
        "",
        "![time to score: this project vs SB3](sb3-vs-trainer.png)",
    ]
    (RESULTS / "sb3-vs-trainer.md").write_text("\n".join(md) + "\n")
    plot(rows, cap, budget, RESULTS / "sb3-vs-trainer.png")
    print(f"wrote {RESULTS / 'sb3-vs-trainer.md'} and .png")


if __name__ == "__main__":
    main()
