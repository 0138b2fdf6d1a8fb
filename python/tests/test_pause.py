"""The pause protocol as the Python training scripts follow it."""

import os
import threading
import time

from flappy_dqn.pause import Clock, start_mark


def test_a_live_hold_stops_the_clock_and_a_stale_one_is_ignored(tmp_path):
    clock = Clock(before_s=100.0, directory=tmp_path)
    pid = os.getpid()
    assert (tmp_path / f"trainer-{pid}").is_file() and clock.elapsed() >= 100.0
    stale = tmp_path / "hold-4294967294"
    stale.touch()
    clock._last_look = 0.0
    assert clock.hold_if_asked(lambda m: None) == 0.0 and not stale.exists()
    # The loop's file names its start time; a hold whose pid lives but names
    # another start time (a killed holder's pid, reused since) is stale too.
    assert (tmp_path / f"trainer-{pid}").read_text() == start_mark(pid) != ""
    reused = tmp_path / f"hold-{pid}"
    reused.write_text("1")
    clock._last_look = 0.0
    assert clock.hold_if_asked(lambda m: None) == 0.0 and not reused.exists()
    hold = tmp_path / f"hold-{pid}"
    hold.touch()
    seen = []

    def release():
        time.sleep(1.2)
        seen.append((tmp_path / f"paused-{pid}").exists())
        hold.unlink()

    t = threading.Thread(target=release)
    t.start()
    clock._last_look = 0.0
    before = clock.elapsed()
    said = []
    paused = clock.hold_if_asked(said.append)
    t.join()
    assert paused >= 1.0 and clock.elapsed() - before < 0.5
    assert seen == [True] and len(said) == 2
    assert not (tmp_path / f"paused-{pid}").exists()
    # A hold of a process that runs this one (scripts/quiet around it) is
    # not for it.
    parent = tmp_path / f"hold-{os.getppid()}"
    parent.touch()
    clock._last_look = 0.0
    assert clock.hold_if_asked(lambda m: None) == 0.0 and parent.exists()
    clock.close()
    assert not (tmp_path / f"trainer-{pid}").exists()
