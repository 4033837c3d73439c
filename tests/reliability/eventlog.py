"""A per-process event log: one line per event, appended with a single ``write``.

Lines are ``KIND MONOTONIC_NS PID FIELD...``. ``time.monotonic_ns`` reads
``CLOCK_MONOTONIC``, which all processes of one machine share, so intervals logged
by different worker processes can be compared. Each line is written with one
``os.write`` on an ``O_APPEND`` descriptor: a process killed with ``kill -9`` loses at
most the line it had not written yet, and never leaves half a line.

Kinds written by the worker processes:

* ``E+``/``E-`` an orchestration episode starts (work item received) / ends (its
  result is about to be sent, or it is given up);
* ``A+``/``A-`` an activity execution starts / returns;
* ``X`` the server refused a completion (stale token, lease expired ...).
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_fd: int | None = None
_pid = os.getpid()


def open_log(path: str | os.PathLike[str]) -> None:
    """Send this process's events to ``path`` (appending)."""
    global _fd, _pid
    _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _pid = os.getpid()


def write(kind: str, *fields: str) -> None:
    """Append one event (does nothing until :func:`open_log` was called)."""
    if _fd is not None:
        line = " ".join((kind, str(time.monotonic_ns()), str(_pid), *fields)) + "\n"
        os.write(_fd, line.encode())


@dataclass(frozen=True)
class Event:
    kind: str
    ns: int
    pid: int
    fields: tuple[str, ...]


def read(*paths: Path) -> list[Event]:
    """Every complete line of the logs at ``paths``, in file order."""
    events = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            events.append(Event(parts[0], int(parts[1]), int(parts[2]), tuple(parts[3:])))
    return events


@dataclass
class Summary:
    """What the logs say about activities and episodes."""

    activity_runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Activity executions started, per (instance id, task id)."""

    unfinished_activities: set[tuple[int, str, str]] = field(default_factory=set)
    """(pid, instance, task) of activities started and never returned."""

    unfinished_episodes: set[tuple[int, str]] = field(default_factory=set)
    """(pid, instance) of episodes started and never ended."""

    episodes: dict[str, list[tuple[int, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """Per instance: (start ns, end ns, pid) of every finished episode."""

    refused: int = 0
    """Completions the server refused."""

    @property
    def repeated_activities(self) -> dict[tuple[str, str], int]:
        """Activities started more than once, with their run counts."""
        return {key: n for key, n in self.activity_runs.items() if n > 1}


def summarize(events: list[Event]) -> Summary:
    """Pair the start and end lines of ``events`` (from any number of processes)."""
    summary = Summary()
    open_episodes: dict[tuple[int, str], list[int]] = defaultdict(list)
    for event in events:
        if event.kind == "A+":
            instance, task_id = event.fields
            summary.activity_runs[(instance, task_id)] += 1
            summary.unfinished_activities.add((event.pid, instance, task_id))
        elif event.kind == "A-":
            instance, task_id = event.fields
            summary.unfinished_activities.discard((event.pid, instance, task_id))
        elif event.kind == "E+":
            open_episodes[(event.pid, event.fields[0])].append(event.ns)
        elif event.kind == "E-":
            starts = open_episodes.get((event.pid, event.fields[0]))
            if starts:
                start = starts.pop(0)
                summary.episodes[event.fields[0]].append((start, event.ns, event.pid))
        elif event.kind == "X":
            summary.refused += 1
    summary.unfinished_episodes = {key for key, starts in open_episodes.items() if starts}
    return summary


def overlaps(summary: Summary) -> list[str]:
    """Descriptions of every pair of episodes of one instance that overlap in time."""
    found = []
    for instance, intervals in summary.episodes.items():
        latest: tuple[int, int, int] | None = None  # the episode that ends last so far
        for start, end, pid in sorted(intervals):
            if latest is not None and start < latest[1]:
                found.append(
                    f"{instance}: episode [{start}, {end}] in pid {pid} overlaps "
                    f"[{latest[0]}, {latest[1]}] in pid {latest[2]}"
                )
            if latest is None or end > latest[1]:
                latest = (start, end, pid)
    return found
