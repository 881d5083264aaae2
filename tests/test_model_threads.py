"""``pipeline/serving/model_threads``: one thread with a multi-threaded OpenMP team, shared threads that
add no helpers, and every thread keeping the intra-op thread count it was given."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
import torch

from pipeline.serving.model_threads import ModelThreads, shared_threads


def parallel_work() -> int:
    """Big enough for torch's intra-op parallel_for (and so for an OpenMP team); returns the thread count
    the calling thread runs it with."""
    torch.ones(4_000_000).mul_(2).sum()
    return torch.get_num_threads()


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_shared_threads_add_no_openmp_helpers_and_keep_their_thread_counts() -> None:
    """Two threads that each run torch with two intra-op threads would each own an OpenMP team; libgomp
    then stops its helpers spinning and a forward pass more than doubles (model_threads' docstring). So
    after the solo thread has its team, requests on the shared threads must not start another."""
    before_main = torch.get_num_threads()
    threads = ModelThreads(workers=2, shared_threads=1, solo_threads=2)
    try:
        assert threads.call(parallel_work) == 2  # the solo thread's team: one helper
        both_started = threading.Barrier(3)

        def wait_for_both() -> None:
            both_started.wait(timeout=10)

        futures = [threads.shared.submit(wait_for_both) for _ in range(2)]
        both_started.wait(timeout=10)
        for future in futures:
            future.result(timeout=10)
        started = os_threads()  # main, solo, its helper, both shared threads (and torch's own)

        async def side_by_side() -> list[int]:
            calls = [threads.run(parallel_work, shared=True) for _ in range(8)]
            return await asyncio.gather(*calls)

        assert asyncio.run(side_by_side()) == [1] * 8
        assert os_threads() == started, "a shared thread started an OpenMP team of its own"
        assert threads.call(torch.get_num_threads) == 2  # the solo thread kept its count
        assert torch.get_num_threads() == before_main  # and the caller's is untouched
    finally:
        threads.close()


def test_one_worker_runs_everything_on_the_solo_thread() -> None:
    threads = ModelThreads(workers=1, shared_threads=1, solo_threads=1)
    try:

        async def names() -> set[str]:
            name = lambda: threading.current_thread().name  # noqa: E731
            calls = [threads.run(name, shared=index % 2 == 0) for index in range(4)]
            return set(await asyncio.gather(*calls))

        (name,) = asyncio.run(names())
        assert name.startswith("dogpipe-solo")
    finally:
        threads.close()


def test_thread_counts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ModelThreads(workers=0, shared_threads=1)
    assert shared_threads(2, requested=3) == 3
    assert shared_threads(64) == 1  # never below one
