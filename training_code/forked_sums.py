"""Sum an integer vector over many items with forked workers, the caller working as one of them.

``pixel_stats`` sums 768-count histograms over a split's images. A ``DataLoader`` with worker processes
did it, but its start and shutdown cost ~0.2 s (measured here, 2 cores), as much as the whole work at
300 photos; threads avoid that but get ~1.3x from a second core (the GIL). Here the caller forks
``workers - 1`` children (a fork of an interpreter that has imported torch and torchvision: 7-10 ms,
copying the page tables of its ~400 MB of anonymous memory), every process takes pieces from one shared
counter, and each child streams ``(count, partial sum)`` records through a pipe, read by the caller
between its own pieces (progress) and at the end. Integer sums, so the result never depends on who
summed what.

The pieces shrink towards the end (guided scheduling: at most ``chunk`` items, at most a ``2 * workers``-th
of what is left, at least one), so the workers finish within about one item of each other; with
equal chunks the last one left one core idle for half a chunk on average (~9 ms of ~300 at 300 photos,
measured). A child that is done says so, closes its pipe and exits; the caller does not wait for its
exit, which unmaps the forked address space (11-15 ms for a torch-sized process, measured), but reaps it
at its next call or at exit.

A child that fails sends its error text and exits non-zero; the caller raises it after every failed
child has ended. Children die with the job: they share its process group, which the engine signals.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import select
import signal
import struct
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

Item = TypeVar("Item")
NextChunk = Callable[[], "tuple[int, torch.Tensor] | None"]  # the next piece's (count, sum), or None
#: Each record's header: >= 0, the items summed (their sum follows); -1, an error message of the length
#: that follows; -2, the child is done.
_HEADER = struct.Struct("<q")
_ERROR, _DONE = -1, -2

#: Children that said they were done and closed their pipe, possibly still exiting: reaped later.
_exiting: list[int] = []


class WorkerFailed(RuntimeError):
    """A forked worker raised; the message is its error."""


def _reap_exiting(block: bool = True) -> None:
    """Reap the children that were left exiting: wait for each (at exit), or only those that have
    exited (``block`` false: before forking again, which must not wait for an exit)."""
    for pid in list(_exiting):
        try:
            reaped, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored, or another waiter)
            reaped = pid
        if reaped:
            _exiting.remove(pid)


atexit.register(_reap_exiting)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_exiting.clear)  # a fork's child has no such children


def _send_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pieces(count: int, workers: int, chunk: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` pieces of ``count`` items, in order: guided scheduling, each piece at most
    ``chunk`` items and at most a ``2 * workers``-th of those left, at least one."""
    bounds, start = [], 0
    while start < count:
        size = min(chunk, max(1, -(-(count - start) // (2 * workers))))
        bounds.append((start, start + size))
        start += size
    return bounds


def _work(
    items: Sequence[Item],
    chunk_sum: Callable[[Sequence[Item]], torch.Tensor],
    bounds: list[tuple[int, int]],
    counter: Any,  # a multiprocessing.Value("q") shared with the children
) -> NextChunk:
    """The next piece's ``(count, sum)`` from the shared counter, or None when none is left."""

    def next_chunk() -> tuple[int, torch.Tensor] | None:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if index >= len(bounds):
            return None
        part = items[slice(*bounds[index])]
        return len(part), chunk_sum(part)

    return next_chunk


def _child(write_fd: int, next_chunk: NextChunk) -> None:
    code = 0
    try:
        while (done := next_chunk()) is not None:
            count, total = done
            _send_all(write_fd, _HEADER.pack(count) + total.numpy().tobytes())
        _send_all(write_fd, _HEADER.pack(_DONE))
    except BaseException as error:  # everything, so the caller learns why rather than a bare exit code
        message = "".join(traceback.format_exception_only(type(error), error)).strip().encode()
        _send_all(write_fd, _HEADER.pack(_ERROR) + _HEADER.pack(len(message)) + message)
        code = 1
    finally:
        # closed here, so the caller reads the end now rather than after this process's exit has
        # unmapped everything; never the caller's atexit handlers or buffered output
        os.close(write_fd)
        os._exit(code)


class _Reader:
    """One child's pipe: complete records as they arrive."""

    def __init__(self, pid: int, fd: int, length: int) -> None:
        self.pid, self.fd, self.record = pid, fd, _HEADER.size + 8 * length
        self.buffer = b""
        self.open = True
        self.done = False
        self.error: str | None = None

    def read(self) -> list[tuple[int, torch.Tensor]]:
        data = os.read(self.fd, 1 << 16)
        if not data:
            self.open = False
            return []
        self.buffer += data
        records = []
        while len(self.buffer) >= _HEADER.size:
            (count,) = _HEADER.unpack_from(self.buffer)
            if count == _DONE:
                self.done = True
                self.buffer = self.buffer[_HEADER.size :]
                continue
            if count == _ERROR:
                if len(self.buffer) < 2 * _HEADER.size:
                    break
                (size,) = _HEADER.unpack_from(self.buffer, _HEADER.size)
                end = 2 * _HEADER.size + size
                if len(self.buffer) < end:
                    break
                self.error = self.buffer[2 * _HEADER.size : end].decode(errors="replace")
                self.buffer = self.buffer[end:]
                continue
            if len(self.buffer) < self.record:
                break
            total = torch.frombuffer(bytearray(self.buffer[_HEADER.size : self.record]), dtype=torch.int64)
            records.append((count, total))
            self.buffer = self.buffer[self.record :]
        return records


def _fork_workers(count: int, next_chunk: NextChunk, length: int) -> list[_Reader]:
    readers = []
    for _ in range(count):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_fd)
            _child(write_fd, next_chunk)
        os.close(write_fd)
        readers.append(_Reader(pid, read_fd, length))
    return readers


def _leave_exiting(pid: int) -> None:
    """Reap a child that is done if it has already exited; otherwise reap it later."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if reaped == 0:
        _exiting.append(pid)


def _end(readers: list[_Reader], kill: bool) -> None:
    """Close every pipe; reap every failed or killed worker (killed first when the caller failed) and
    leave the ones that are done to exit; raise the first worker's error."""
    failures = []
    for reader in readers:
        if kill:
            os.kill(reader.pid, signal.SIGKILL)
        os.close(reader.fd)
        if reader.done and not kill:
            _leave_exiting(reader.pid)
            continue
        _, status = os.waitpid(reader.pid, 0)
        if not kill:
            failures.append(reader.error or f"worker {reader.pid} ended with status {status} before its sums")
    if failures:
        raise WorkerFailed(failures[0])


def sum_in_forks(
    items: Sequence[Item],
    chunk_sum: Callable[[Sequence[Item]], torch.Tensor],
    length: int,
    workers: int,
    chunk: int,
    on_done: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The sum of ``chunk_sum(piece)`` (an int64 vector of ``length``) over ``items`` in pieces of at most
    ``chunk`` (see :func:`pieces`), computed by this process and ``workers - 1`` forked ones.
    ``on_done(chunk)`` for every ``chunk`` items summed, then ``on_done(rest)`` (progress)."""
    _reap_exiting(block=False)
    counter = multiprocessing.get_context("fork").Value("q", 0)
    next_chunk = _work(items, chunk_sum, pieces(len(items), workers, chunk), counter)
    readers = _fork_workers(workers - 1, next_chunk, length)
    total = torch.zeros(length, dtype=torch.int64)
    summed = reported = 0

    def add(records: list[tuple[int, torch.Tensor]]) -> None:
        nonlocal total, summed, reported
        for count, part in records:
            total += part
            summed += count
        while on_done is not None and summed - reported >= chunk:
            on_done(chunk)
            reported += chunk

    def drain(timeout: float | None) -> None:
        ready, _, _ = select.select([r.fd for r in readers if r.open], [], [], timeout)
        for reader in readers:
            if reader.fd in ready:
                add(reader.read())

    try:
        while (done := next_chunk()) is not None:
            add([done])
            drain(0)
        while any(reader.open for reader in readers):
            drain(None)
    except BaseException:  # this process failed (or was interrupted): the workers' sums are moot
        _end(readers, kill=True)
        raise
    _end(readers, kill=False)
    if on_done is not None and summed > reported:
        on_done(summed - reported)
    return total
