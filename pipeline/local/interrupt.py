"""Stopping a local execution from outside: Ctrl-C, ``kill`` (SIGTERM) or a closed terminal (SIGHUP).

Every job runs in its own session (so a Ctrl-C reaches the engine first, which then stops the job's
whole process group). A SIGTERM or SIGHUP sent to the engine alone would kill it without that cleanup:
the job would run on orphaned and the execution would read ``Executing`` forever. While an execution
runs, SIGTERM, SIGHUP and Ctrl-C therefore first stop every job the engine runs (parallel tuning trials
run in worker threads, which an interrupted main thread would otherwise wait for) and then raise
:class:`KeyboardInterrupt` in the main thread. A SIGKILL leaves no such chance: the jobs die with the
engine through ``PR_SET_PDEATHSIG`` (:mod:`pipeline.local.container`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from pipeline.errors import ExecutionInterrupted

__all__ = ["TERMINATING_SIGNALS", "ExecutionInterrupted", "interrupt_reason", "terminating_signals_interrupt"]

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def interrupt_reason(interrupt: KeyboardInterrupt) -> str:
    """``interrupted (SIGTERM)`` for a signal this module turned into an interrupt, else Ctrl-C's."""
    name = interrupt.args[0] if interrupt.args and isinstance(interrupt.args[0], str) else "Ctrl-C"
    return f"interrupted ({name})"


@contextlib.contextmanager
def terminating_signals_interrupt(on_signal: Callable[[], None] | None = None) -> Iterator[None]:
    """Within the block, SIGTERM, SIGHUP and SIGINT (Ctrl-C) call ``on_signal`` (the engine stops every
    job it runs, in any thread) and raise KeyboardInterrupt; the previous handlers come back after.

    Only the main thread can set handlers (elsewhere this does nothing), and a signal the caller chose to
    ignore (``nohup``) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        if on_signal is not None:
            on_signal()
        raise KeyboardInterrupt("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)

    previous = {}
    for signum in TERMINATING_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
