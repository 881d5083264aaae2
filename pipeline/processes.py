"""Which process a record names, whether it still runs, and how to stop it: one rule for every record.

A pid alone is not an identity (pids are reused), so a record names a process by its pid *and* its start
time as psutil reads it. The execution records (the engine) and the endpoint records (servers) used to
check that with different tolerances (0.05 s and 0.01 s) and opposite answers for a record without a
start time; both now ask :func:`running_process`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any

import psutil

#: psutil's start time is exact to the clock tick (10 ms); this absorbs float rounding and a boot time
#: read a tick apart, and stays far below the time a pid takes to come round again.
SAME_START_S = 0.05


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as a record names it: its pid and its start time (seconds since the epoch)."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of the live process ``pid``, or None when there is none."""
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls(os.getpid(), psutil.Process().create_time())

    def process(self) -> psutil.Process | None:
        """This process if it still runs (a zombie does not): see :func:`running_process`."""
        return running_process(self.pid, self.started)

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.started}


def running_process(pid: int | None, started: float | None) -> psutil.Process | None:
    """The process ``pid`` if it runs and started at ``started``; None otherwise.

    A record without a start time cannot tell its process from a later one with the same pid, so it
    names no running process (the answer both kinds of record now share).
    """
    if not pid or pid <= 0 or started is None:
        return None
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(process.create_time() - float(started)) >= SAME_START_S:
            return None  # the pid now belongs to another process
    except psutil.Error:
        return None
    return process


def signal_group(pid: int, number: signal.Signals) -> None:
    """Signal the process group ``pid`` leads; the process alone if it leads none (yet); nothing if gone."""
    try:
        os.killpg(pid, number)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)
    except PermissionError:
        pass


def stop_group(process: psutil.Process, grace_s: float) -> None:
    """SIGTERM the group ``process`` leads, then SIGKILL it if the leader has not exited in ``grace_s``."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except psutil.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.TimeoutExpired):
            process.wait(timeout=grace_s)
    except psutil.NoSuchProcess:
        pass
