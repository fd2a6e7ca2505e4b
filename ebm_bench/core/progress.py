"""Progress lines for long jobs: the one mechanism every loop that can run past a minute uses.

The project's rule: a long job prints a line at least every ~60 s saying what it is doing
and how far along it is, and nothing more often, so logs stay small. A job's loops are
:class:`Task` s nested with ``with`` (the training loop's steps; a sampler's steps inside
one update; a feature pass inside one metric family). Each loop calls :meth:`Task.tick`
with how far it is; whichever tick comes once :data:`CLOCK` says ``every_s`` seconds have
passed since the last line prints one line for the whole nest, on stderr, flushed::

    [mnist/pcd/seed0] train: step 120/1000 loss=0.31 > ULA step 40/60 (0.52 step/s, elapsed 231s, eta 1692s)

- ``[label] stage:`` comes from the innermost :func:`scope` (the training loop and the
  sample, classifier, reference and evaluate stages open one); ``[ebm-bench]`` outside any;
- each open task shows ``what i/n`` and its detail, outermost first, joined by " > ";
- the rate, elapsed time and eta are the outermost task's (the job's); eta once it has
  finished one unit.

A forced tick (the training loop's ``log_every`` rows) always prints and restarts the
interval. An opaque call that cannot tick (scikit-learn's ``fit``) runs inside a task with
``heartbeat=True``: a daemon thread prints the nest's line whenever it is due.

Tests set ``CLOCK.every_s = 0`` (every tick prints) or replace ``CLOCK.now`` by a fake.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Union

Detail = Union[str, Callable[[], str]]  # a callable is evaluated only when a line is printed

EVERY_S = 60.0  # the interval between lines (the project's rule: at least one a minute)


@dataclass
class ProgressClock:
    """When the last line was printed, and the interval between lines (one per process)."""

    every_s: float = EVERY_S
    now: Callable[[], float] = time.monotonic
    last: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return self.now() - self.last >= self.every_s


CLOCK = ProgressClock()
LOCK = threading.Lock()  # the heartbeat thread and the main thread print through one lock
TASKS: list["Task"] = []  # the open tasks, outermost first
SCOPES: list[tuple[str, str]] = []  # (label, stage) of the open scopes, outermost first


class scope:
    """``with scope(label, stage):`` names the prefix ``[label] stage:`` of the lines
    printed inside (the stage functions open one around their work)."""

    def __init__(self, label: str, stage: str = ""):
        self.entry = (str(label), str(stage))

    def __enter__(self) -> "scope":
        SCOPES.append(self.entry)
        return self

    def __exit__(self, *exc) -> None:
        if self.entry in SCOPES:
            SCOPES.reverse()  # remove the innermost copy of this entry
            SCOPES.remove(self.entry)
            SCOPES.reverse()


class Task:
    """One loop of ``total`` units (``with Task("ULA step", n) as t: ... t.tick(i)``).

    ``done`` and ``elapsed`` resume a loop (the training loop from a checkpoint): the
    rate counts only the units done in this process. ``unit`` names the rate (default:
    the last word of ``what``).
    """

    def __init__(self, what: str, total: int, done: int = 0, elapsed: float = 0.0, unit: str | None = None,
                 heartbeat: bool = False):
        self.what, self.total = str(what), int(total)
        self.i = self.i0 = int(done)
        self.elapsed0 = float(elapsed)
        self.unit = unit or (self.what.split()[-1] if self.what.split() else "it")
        self.detail: Detail = ""
        self.heartbeat = heartbeat
        self.t_start = CLOCK.now()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Task":
        self.t_start = CLOCK.now()
        TASKS.append(self)
        if self.heartbeat:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._beat, name=f"progress: {self.what}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            self._stop = self._thread = None
        if self in TASKS:
            TASKS.remove(self)

    def tick(self, i: int, detail: Detail = "", force: bool = False) -> bool:
        """Record that ``i`` of ``total`` units are done; print the nest's line if one is due
        (or ``force``). Cheap when none is due: one clock read. Returns whether it printed."""
        self.i, self.detail = i, detail
        if not force and CLOCK.now() - CLOCK.last < CLOCK.every_s:
            return False
        say(line(self))
        return True

    def part(self) -> str:
        d = self.detail() if callable(self.detail) else self.detail
        return f"{self.what} {self.i}/{self.total}" + (f" {d}" if d else "")

    def _beat(self) -> None:
        while not self._stop.wait(max(CLOCK.every_s / 4, 0.01)):
            if CLOCK.due():
                say(line(self))


def prefix() -> str:
    label, stage = SCOPES[-1] if SCOPES else ("", "")
    return f"[{label or 'ebm-bench'}]" + (f" {stage}:" if stage else "")


def line(task: Task | None = None) -> str:
    """The line for the open tasks (``task`` alone where it is not open)."""
    nest = list(TASKS) or ([task] if task is not None else [])
    if task is not None and task not in nest:
        nest = [task]
    body = " > ".join(t.part() for t in nest)
    tail = []
    if nest:
        outer, now = nest[0], CLOCK.now()
        run = now - outer.t_start
        done = outer.i - outer.i0
        if done > 0 and run > 0:
            rate = done / run
            tail.append(f"{rate:.3g} {outer.unit}/s")
        tail.append(f"elapsed {outer.elapsed0 + run:.0f}s")
        if done > 0 and run > 0:
            tail.append(f"eta {max(outer.total - outer.i, 0) / rate:.0f}s")
    return f"{prefix()} {body} ({', '.join(tail)})" if body else prefix()


def say(msg: str) -> None:
    """Print ``msg`` as a progress line (stderr, flushed) and restart the interval."""
    with LOCK:
        print(msg, file=sys.stderr, flush=True)
        CLOCK.last = CLOCK.now()
