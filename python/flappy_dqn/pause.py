"""The project's pause protocol (``trainer/src/pause.rs``) for Python loops.

While a file ``hold-<pid>`` of a live process lies in the pause folder
(``$FLAPPY_PAUSE_DIR``, else ``$TMPDIR/flappy-pause``, else
``/tmp/flappy-pause``), a clocked loop sleeps between two steps and its
clock does not count that time. The loop announces itself with
``trainer-<pid>`` and says ``paused-<pid>`` while paused, so that
``scripts/quiet CMD`` waits until it has paused before running CMD.

``trainer-`` and ``hold-`` files hold their process's start time (field 22
of ``/proc/<pid>/stat``): a file left by a killed process is stale even once
its pid belongs to another process.

A hold of one of this process's ancestors is not for it: under
``scripts/quiet python train.py`` the loop must not wait for its own
wrapper (the training loops beside it pause; this one runs).
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


def start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[22 - 3])
    except (OSError, ValueError, IndexError):
        return None


def start_mark(pid: int) -> str:
    """What a ``trainer-<pid>`` or ``hold-<pid>`` file holds."""
    t = start_ticks(pid)
    return "" if t is None else str(t)


def _same_process(pid: int, mark: str) -> bool:
    """Whether ``pid`` lives and, when ``mark`` names a start time, started then."""
    if not Path("/proc/self").exists():
        return True
    got = start_ticks(pid)
    if got is None:
        return False
    mark = mark.strip()
    return not mark.isdigit() or int(mark) == got


def ancestors() -> set[int]:
    """The process ids above this one (Linux ``/proc``; empty elsewhere)."""
    out, pid = set(), os.getppid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def live_holds(d: Path, ignore: set[int] = frozenset()) -> list[Path]:
    """The holds in ``d`` whose process lives and is not in ``ignore``;
    stale ones are removed."""
    live = []
    try:
        entries = list(d.iterdir())
    except OSError:
        return live
    for e in entries:
        if not e.name.startswith("hold-"):
            continue
        pid = e.name[len("hold-"):]
        try:
            mark = e.read_text()
        except OSError:
            mark = ""
        if pid.isdigit() and _same_process(int(pid), mark):
            if int(pid) not in ignore:
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
        self._ancestors = ancestors()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / f"trainer-{self._pid}").write_text(start_mark(self._pid))
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
        holds = live_holds(self.dir, self._ancestors)
        if not holds:
            return 0.0
        mark = self.dir / f"paused-{self._pid}"
        mark.touch()
        say(f"paused: {holds[0]} holds the CPU (the clock stops until it is gone)")
        while live_holds(self.dir, self._ancestors):
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
