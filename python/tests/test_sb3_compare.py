"""scripts/sb3_compare.py: the table and the verdict it writes for the
README, on synthetic runs (the real ones take hours)."""

import importlib.util
import math

from conftest import ROOT

spec = importlib.util.spec_from_file_location("sb3_compare", ROOT / "scripts" / "sb3_compare.py")
sb3_compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sb3_compare)


def run(who, to_cap, curve, minutes):
    test = {"mean": 500.0, "median": 400.0, "at_cap": 3, "scores": [0] * 100}
    points = [{"minutes": m, "median": v} for m, v in curve]
    return sb3_compare.row(who, 1, 1_000_000, 125_000, minutes, to_cap, test, points)


OURS = "this project (`make train`)"
SB3 = "Stable-Baselines3 DQN (rl-zoo3 Atari)"


def test_best_within_counts_only_evaluations_inside_the_budget():
    r = run(OURS, 60.0, [(10.0, 50.0), (50.0, 400.0), (60.0, 1000.0)], 120.0)
    assert sb3_compare.best_within(r, 55.0) == 400.0
    assert sb3_compare.best_within(r, 60.0) == 1000.0
    assert math.isnan(sb3_compare.best_within(r, 5.0))  # none yet


def test_verdict_when_sb3_never_reaches_the_cap():
    sb3 = run(SB3, None, [(20.0, 3.0), (55.0, 40.0)], 55.0)
    early = sb3_compare.table([run(OURS, 11.0, [(11.0, 1000.0)], 90.0), sb3], 1000, 55.0)
    assert "a ratio below 0.20" in early
    late = sb3_compare.table([run(OURS, 80.0, [(80.0, 1000.0)], 90.0), sb3], 1000, 55.0)
    assert "ratio" not in late and "compared at equal minutes" in late
    # One row per run, its best validation median inside SB3's 55 minutes.
    rows = [line for line in late.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and "| 40.0 |" in rows[2]


def test_verdict_when_both_reach_the_cap():
    text = sb3_compare.table(
        [run(OURS, 10.0, [(10.0, 1000.0)], 90.0), run(SB3, 40.0, [(40.0, 1000.0)], 55.0)], 1000, 55.0
    )
    assert "this project 10.0, SB3 40.0: ratio 0.25." in text


def test_verdict_when_the_project_never_reaches_the_cap():
    text = sb3_compare.table([run(OURS, None, [(90.0, 500.0)], 90.0)], 1000, 55.0)
    assert "did not reach" in text
