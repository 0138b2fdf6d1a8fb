"""The project's pause protocol (``trainer/src/pause.rs``) for Python loops.

While a file ``hold-<pid>`` of a live process lies in the pause folder
(``$FLAPPY_PAUSE_DIR``, else ``$TMPDIR/flappy-pause``, else
``/tmp/flappy-pause``), a clocked loop sleeps between two steps and its
clock does not count that time. The loop announces itself with
``trainer-<pid>`` and says ``paused-<pid>`` while paused, so that
``scripts/quiet CMD`` waits until it has paused before running CMD.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LOOK_EVERY = 0.5
POLL = 0.5


def pause_dir() -> Path:
    """The pause folder (see the module docs)."""
    d = os.environ.get("FLAPPY_PAUSE_DIR")
    if d:
        return Path(d)
    return Path(os.environ.get("TMPDIR") or "/tmp") / "flappy-pause"


def _lives(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() if Path("/proc/self").exists() else True


def live_holds(d: Path) -> list[Path]:
    """The holds in ``d`` whose process lives; stale ones are removed."""
    live = []
    try:
        entries = list(d.iterdir())
    except OSError:
        return live
    for e in entries:
        if not e.name.startswith("hold-"):
            continue
        pid = e.name[len("hold-"):]
        if pid.isdigit() and _lives(int(pid)):
            live.append(e)
        else:
            e.unlink(missing_ok=True)
    return sorted(live)


class Clock:
    """Budget seconds: wall time since ``start`` (plus ``before_s``) less the
    time spent paused."""

    def __init__(self, before_s: float = 0.0, directory: Path | None = None):
        self.dir = directory if directory is not None else pause_dir()
        self.before_s = before_s
        self.start = time.monotonic()
        self.paused_s = 0.0
        self._last_look = 0.0
        self._pid = os.getpid()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / f"trainer-{self._pid}").touch()
            self.registered = True
        except OSError:
            self.registered = False

    def elapsed(self) -> float:
        """Budget seconds used so far."""
        return self.before_s + time.monotonic() - self.start - self.paused_s

    def hold_if_asked(self, say=print) -> float:
        """Between two steps: while a live hold exists, sleeps (not counted)
        and returns the seconds paused; ``say`` hears when it pauses and resumes."""
        now = time.monotonic()
        if not self.registered or now - self._last_look < LOOK_EVERY:
            return 0.0
        self._last_look = now
        holds = live_holds(self.dir)
        if not holds:
            return 0.0
        mark = self.dir / f"paused-{self._pid}"
        mark.touch()
        say(f"paused: {holds[0]} holds the CPU (the clock stops until it is gone)")
        while live_holds(self.dir):
            time.sleep(POLL)
        mark.unlink(missing_ok=True)
        s = time.monotonic() - now
        self.paused_s += s
        say(f"resumed after {s / 60:.1f} min paused")
        return s

    def close(self):
        """Removes this process's files from the pause folder."""
        for name in (f"trainer-{self._pid}", f"paused-{self._pid}"):
            (self.dir / name).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
