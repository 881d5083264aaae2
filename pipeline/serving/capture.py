"""Data capture on a local endpoint: each sampled request and its reply as one SageMaker capture record.

The record and its frame are ``capture_format.py``'s.

Off the request's path, and out of the server's process: the request only draws the sample and puts a
reference to its body and reply on a bounded queue (microseconds). A feeder thread waits for a lull (no
record for ``QUIET_S``; ``HOLD_S`` at most, or until the queue is half full), then hands the raw bytes,
framed (:func:`frame`), through a pipe to a writer child (``python -m pipeline.serving.capture_child``:
plain Python, no torch, at nice 19), which encodes and appends, and reports its ``written`` and
``errors`` totals on its stdout, read by a thread here. A writer thread in the server held the GIL the
request threads wait for while it encoded (and, at nice 19, could be descheduled holding it): p50
1.03-1.07x at 100 % on 2 cores. The child shares no GIL, and the lull keeps its CPU time (~0.2 ms for a
95 KB photo, mostly base64) away from the model threads of the requests that follow.

A full queue drops the record and counts it (``dropped``); a record the child fails to write, or loses
by dying, is counted (``errors``) and never reaches the request: a dead child costs records, never the
server. The child ends with the server (end of file on its stdin: it writes what it was given, exits)
and ignores SIGINT/SIGTERM/SIGHUP, so that the records a stopping server still hands over get written.
Bounded on disk: a file is closed at ``max_file_bytes`` or when the hour changes (rotation), and the
oldest files of this endpoint are deleted once its folder exceeds ``max_total_bytes``. Lines are appended
whole and flushed after each batch, so a reader sees complete records (a last partial line, while
one is being written, is to be skipped).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.serving.capture_format import FLUSH, CaptureSettings, Exchange, frame

log = logging.getLogger(__name__)

_STOP = object()
#: The writer child's module: it imports only the standard library and this module.
CHILD_MODULE = "pipeline.serving.capture_child"
#: The feeder hands records over once no new one came for QUIET_S (beyond the ~5 ms torch's OpenMP
#: threads spin after a forward pass), or after HOLD_S at the most, or at a half-full queue.
QUIET_S = 0.02
HOLD_S = 0.5
#: The pipe's size asked of Linux (default 64 KiB: two images): fewer wake-ups of the feeder.
PIPE_BYTES = 1 << 20


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


class CaptureWriter:
    """Samples requests on the caller's thread and feeds their bytes to a writer child that writes the
    records (see the module doc). ``python`` is the child's interpreter."""

    def __init__(
        self,
        settings: CaptureSettings,
        *,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
        python: str = sys.executable,
        quiet_s: float = QUIET_S,
        hold_s: float = HOLD_S,
    ) -> None:
        self.settings = settings
        self.quiet_s = quiet_s
        self.hold_s = hold_s
        self.clock = clock
        self.draw = draw
        self.captured = 0  # records put on the queue
        self.dropped = 0  # records refused by a full queue
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self._lock = threading.Lock()  # the feeder's write and count against the reader's settling
        self._sent = 0  # records handed whole to the child
        self._child_written = 0  # the child's totals, as it last reported them
        self._child_errors = 0
        self._lost = 0  # records that never reached the child or that it died holding
        self._dead = False  # the child is gone (or never started): records are counted lost
        self._closed = False
        self._last_offer = 0.0  # monotonic time of the last record queued
        self._half = max(1, settings.queue_size // 2)
        self._wake = threading.Event()  # ends the feeder's hold: a half-full queue, or close()
        self._process = self._start_child(python)
        self._reader: threading.Thread | None = None
        if self._process is not None:
            self._reader = threading.Thread(target=self._read_reports, name="dogpipe-capture-reports",
                                            daemon=True)  # fmt: skip
            self._reader.start()
        self._thread = threading.Thread(target=self._run, name="dogpipe-capture", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        """Records appended to a file (the child's count)."""
        return self._child_written

    @property
    def errors(self) -> int:
        """Records lost to a failed write, or to a writer child that died or never started."""
        return self._child_errors + self._lost

    @property
    def child_pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def offer(self, body: bytes, content_type: str | None, reply: bytes, reply_type: str) -> bool:
        """Record this request if it is sampled and the queue has room; never blocks, never raises."""
        if self.settings.sampling_percentage < 100 and self.draw() * 100 >= self.settings.sampling_percentage:
            return False
        self._last_offer = time.monotonic()  # before the put: the feeder may take the record at once
        try:
            self._queue.put_nowait(Exchange(self.clock(), body, content_type, reply, reply_type))
        except queue.Full:
            self.dropped += 1
            return False
        self.captured += 1
        if self._queue.qsize() >= self._half:
            self._wake.set()  # the feeder's hold ends: no more waiting for a lull
        return True

    def stats(self) -> dict[str, int]:
        return {
            "captured": self.captured,
            "dropped": self.dropped,
            "written": self.written,
            "errors": self.errors,
        }

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, let the child finish and exit, stop the threads (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(max(0.0, deadline - time.monotonic()))
        if self._reader is not None:
            self._reader.join(max(0.0, deadline - time.monotonic()))

    # -- the child ------------------------------------------------------------------------------------

    def _start_child(self, python: str) -> subprocess.Popen[bytes] | None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(), env.get("PYTHONPATH")]))
        try:
            process = subprocess.Popen(
                [python, "-m", CHILD_MODULE, self.settings.to_json()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env=env,
                close_fds=True,  # only this process holds the stdin's write end: its exit is the EOF
            )
        except OSError:
            log.warning("capture: could not start the writer child; records will be counted as errors",
                        exc_info=True)  # fmt: skip
            self._dead = True
            return None
        assert process.stdin is not None
        with contextlib.suppress(OSError, AttributeError):  # at once, not after the child's imports
            os.setpriority(os.PRIO_PROCESS, process.pid, 19)  # the child sets it too (another start)
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            fcntl.fcntl(process.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        return process

    def _read_reports(self) -> None:
        """The child's totals, one ``<written> <errors>`` line after each batch; at its end, what it
        held unwritten is counted lost."""
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout.fileno()
        with contextlib.suppress(OSError, ValueError), open(stdout, "rb", closefd=False) as lines:
            for line in lines:  # buffered: the raw pipe would read a byte at a time
                written, errors = line.split()
                self._child_written, self._child_errors = int(written), int(errors)
        with contextlib.suppress(OSError):
            self._process.stdout.close()
        code = self._process.wait()
        with self._lock:
            self._dead = True
            lost = self._sent - self._child_written - self._child_errors
            self._lost += max(0, lost)
        if lost or (code and not self._closed):
            log.warning("capture: the writer child exited (code %s), %d records lost", code, max(0, lost))

    # -- the feeder thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is not _STOP:
                self._hold()
            batch = [first]
            while batch[-1] is not _STOP:  # drain what is waiting: one flush per batch
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = False
            for index, entry in enumerate(batch):
                if entry is _STOP:
                    stopping = True
                    with self._lock:
                        self._lost += len(batch) - index - 1  # offered after close(): never written
                    break
                self._write(entry)
            self._send(FLUSH)
            if stopping:
                self._end_child()
                return

    def _hold(self) -> None:
        """Wait, a record in hand, until no record came for ``quiet_s``, the queue is half full,
        ``hold_s`` have passed or ``close()`` was called: the child then encodes while the server is
        idle, not beside the model threads of the requests that follow (measured on 2 cores: p50 1.06x
        writing at once, see BENCHMARKS.md §9)."""
        deadline = time.monotonic() + self.hold_s
        self._wake.clear()
        while not self._closed and self._queue.qsize() < self._half:
            left = min(self._last_offer + self.quiet_s, deadline) - time.monotonic()
            if left <= 0 or self._wake.wait(left):
                return

    def _write(self, entry: Exchange) -> None:
        try:
            data = frame(entry)
        except Exception:  # a content type that cannot be framed costs its record only
            log.debug("capture frame failed", exc_info=True)
            with self._lock:
                self._lost += 1
            return
        with self._lock:
            if self._send_locked(data):
                self._sent += 1
            else:
                self._lost += 1

    def _send(self, data: bytes) -> None:
        with self._lock:
            self._send_locked(data)

    def _send_locked(self, data: bytes) -> bool:
        """Write all of ``data`` to the child (the lock held); False once the child is gone."""
        if self._dead or self._process is None or self._process.stdin is None:
            return False
        view = memoryview(data)
        try:
            while view:
                view = view[self._process.stdin.write(view) or 0 :]
        except (OSError, ValueError):  # EPIPE: the child died; a record half sent is lost with it
            self._dead = True
            return False
        return True

    def _end_child(self) -> None:
        """End of file on the child's stdin: it writes what it holds, reports, exits."""
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
