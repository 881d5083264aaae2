"""The threads that run the model, arranged so that the CPU's OpenMP runtime keeps a single team.

Torch's CPU kernels parallelise with OpenMP (libgomp in the PyPI wheels), and libgomp gives every
thread that starts a parallel region a team of helper threads of its own. As soon as the helpers of all
teams outnumber the cores, libgomp stops letting them spin between regions: each of a forward pass's
dozens of parallel regions then waits for helpers to be woken from sleep. Measured on 2 cores
(squeezenet1_1 at 224 px, oneDNN build): a forward takes 2.3 ms while one thread has ever run the
model, 5.5 ms on *every* thread once a second thread has run it with two intra-op threads, and 2.3 ms
again once that second thread has exited (eager: 4.2 ms against 11.3 ms).

So a server keeps exactly one thread with a multi-threaded team:

- ``solo``: one thread that loads and warms the model (the first parallel regions, hence the team) and
  runs the requests that arrive while the server is not under load (``app.LOAD_MEMORY_S``), on every
  core;
- ``shared``: ``workers`` threads for requests that arrive under load, each limited to
  ``shared_threads`` intra-op threads from its first task (OpenMP's thread count is per thread, and torch
  takes it from the global setting only when a thread first uses it), so on a machine whose cores the
  workers share out one each, they add no helpers at all.

The event loop's thread never runs torch.

On more cores than workers, the default share (``shared_threads``: cores / workers) gives each shared
thread a team of its own again, and once those helpers exist libgomp throttles every team, the solo one
included; there, ``--threads 1`` with ``--workers`` at the core count keeps the solo team whole. Only
the 2-core case is measured (BENCHMARKS.md, endpoint).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import torch

P = ParamSpec("P")
R = TypeVar("R")


def shared_threads(workers: int, requested: int | None = None) -> int:
    """Torch threads of a request that runs beside others: the cores shared out between the worker
    threads, so that ``workers`` concurrent requests do not oversubscribe the CPU. A request alone gets
    every core (bench/endpoint_bench.py measures both)."""
    if requested is not None:
        return max(1, requested)
    return max(1, (os.cpu_count() or 1) // workers)


class ModelThreads:
    """One thread for the model on every core, ``workers`` for requests that share the cores."""

    def __init__(self, workers: int, shared_threads: int, solo_threads: int | None = None) -> None:
        """``solo_threads``: the solo thread's intra-op threads (default: torch's count on the calling
        thread). With one worker, every request runs on the solo thread, one at a time."""
        solo_threads = solo_threads or torch.get_num_threads()
        if min(workers, shared_threads, solo_threads) < 1:
            counts = f"{workers}, {shared_threads}, {solo_threads}"
            raise ValueError(f"workers, shared and solo threads must be positive, got {counts}")
        self.solo = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="dogpipe-solo",
            initializer=torch.set_num_threads,
            initargs=(solo_threads,),
        )
        self.shared = self.solo
        if workers > 1:
            self.shared = ThreadPoolExecutor(
                max_workers=workers,
                thread_name_prefix="dogpipe-shared",
                initializer=torch.set_num_threads,
                initargs=(shared_threads,),
            )

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn`` on the solo thread, waited for: loading the model here gives it the process's one team."""
        return self.solo.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., R], *args: object, shared: bool) -> R:
        """``fn(*args)`` on the solo thread, or on a shared one when other requests are running."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.shared if shared else self.solo, fn, *args)

    def close(self) -> None:
        for executor in {self.solo, self.shared}:
            executor.shutdown(wait=False, cancel_futures=True)
