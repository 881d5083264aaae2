"""Sum an integer vector over many items with forked workers, the caller working as one of them.

``pixel_stats`` sums 768-count histograms over a split's images. A ``DataLoader`` with worker processes
did it, but its start and shutdown cost ~0.2 s (measured here, 2 cores), as much as the whole work at
300 photos; threads avoid that but get ~1.3x from a second core (the GIL). Here the caller forks
``workers - 1`` children (a fork of an interpreter that has imported torch: tens of ms), every process
takes chunks from one shared counter (so a slow image delays one chunk, not a fixed share), and each
child streams ``(count, partial sum)`` records through a pipe, read by the caller between its own
chunks (progress) and at the end. Integer sums, so the result never depends on who summed what.

A child that fails sends its error text and exits non-zero; the caller raises it after every child
has ended. Children die with the job: they share its process group, which the engine signals.
"""

from __future__ import annotations

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
NextChunk = Callable[[], "tuple[int, torch.Tensor] | None"]  # the next chunk's (count, sum), or None
_HEADER = struct.Struct("<q")  # images in the record; -1: an error message of that many bytes follows


class WorkerFailed(RuntimeError):
    """A forked worker raised; the message is its error."""


def _send_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _work(
    items: Sequence[Item],
    chunk_sum: Callable[[Sequence[Item]], torch.Tensor],
    chunk: int,
    counter: Any,  # a multiprocessing.Value("q") shared with the children
) -> Callable[[], tuple[int, torch.Tensor] | None]:
    """The next chunk's ``(count, sum)`` from the shared counter, or None when none is left."""

    def next_chunk() -> tuple[int, torch.Tensor] | None:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        part = items[index * chunk : (index + 1) * chunk]
        return (len(part), chunk_sum(part)) if part else None

    return next_chunk


def _child(write_fd: int, next_chunk: Callable[[], tuple[int, torch.Tensor] | None]) -> None:
    code = 0
    try:
        while (done := next_chunk()) is not None:
            count, total = done
            _send_all(write_fd, _HEADER.pack(count) + total.numpy().tobytes())
    except BaseException as error:  # everything, so the caller learns why rather than a bare exit code
        message = "".join(traceback.format_exception_only(type(error), error)).strip().encode()
        _send_all(write_fd, _HEADER.pack(-1) + _HEADER.pack(len(message)) + message)
        code = 1
    finally:
        os._exit(code)  # never the caller's atexit handlers or buffered output


class _Reader:
    """One child's pipe: complete records as they arrive."""

    def __init__(self, pid: int, fd: int, length: int) -> None:
        self.pid, self.fd, self.record = pid, fd, _HEADER.size + 8 * length
        self.buffer = b""
        self.open = True
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
            if count < 0:
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


def _end(readers: list[_Reader], kill: bool) -> None:
    """Close every pipe and reap every worker (killed first when the caller failed); raise the first
    worker's error."""
    failures = []
    for reader in readers:
        if kill:
            os.kill(reader.pid, signal.SIGKILL)
        os.close(reader.fd)
        _, status = os.waitpid(reader.pid, 0)
        if status != 0 and not kill:
            failures.append(reader.error or f"worker {reader.pid} ended with status {status}")
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
    """The sum of ``chunk_sum(chunk)`` (an int64 vector of ``length``) over ``items`` in chunks of
    ``chunk``, computed by this process and ``workers - 1`` forked ones. ``on_done(count)`` as chunks end."""
    counter = multiprocessing.get_context("fork").Value("q", 0)
    next_chunk = _work(items, chunk_sum, chunk, counter)
    readers = _fork_workers(workers - 1, next_chunk, length)
    total = torch.zeros(length, dtype=torch.int64)

    def add(records: list[tuple[int, torch.Tensor]]) -> None:
        nonlocal total
        for count, part in records:
            total += part
            if on_done is not None:
                on_done(count)

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
    return total
