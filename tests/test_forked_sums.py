"""forked_sums: guided pieces, progress in steps of a chunk, workers that are done left to exit and reaped
later, and a worker that ends without saying it is done counted as failed (its sums would be missing)."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence

import pytest
import torch

from training_code import forked_sums

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers need fork")


def _sum(part: Sequence[int]) -> torch.Tensor:
    return torch.tensor([len(part), sum(part)], dtype=torch.int64)


def test_pieces_cover_every_item_in_order_and_shrink_towards_the_end() -> None:
    bounds = forked_sums.pieces(300, 2, 18)
    assert bounds[0] == (0, 18) and bounds[-1][1] == 300
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(bounds))
    sizes = [end - start for start, end in bounds]
    assert max(sizes) == 18 and sizes[-1] == 1 and sizes == sorted(sizes, reverse=True)
    assert forked_sums.pieces(0, 2, 4) == []
    assert forked_sums.pieces(5, 2, 32) == [(0, 2), (2, 3), (3, 4), (4, 5)]


def test_the_sum_and_progress_in_steps_of_a_chunk() -> None:
    items = list(range(1000))
    done: list[int] = []
    total = forked_sums.sum_in_forks(items, _sum, 2, 2, 7, done.append)
    assert total.tolist() == [1000, sum(items)]
    assert done == [7] * (1000 // 7) + [1000 % 7]


def _zombies(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` that have exited but were not reaped (state Z in /proc)."""
    zombies = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # reaped: gone
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(pid)
    return zombies


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_workers_that_are_done_are_reaped_later_not_left_as_zombies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the workers these calls forked are looked at: other tests' children are not this one's."""
    forked: list[int] = []
    fork = os.fork

    def recording_fork() -> int:
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    forked_sums._reap_exiting()
    for _ in range(3):
        forked_sums.sum_in_forks(list(range(64)), _sum, 2, 3, 4)  # each call reaps what has exited
    forked_sums._reap_exiting()  # what the interpreter's exit does
    assert len(forked) >= 3  # a worker per call at least
    assert not forked_sums._exiting and not _zombies(forked)


def test_a_worker_that_exits_without_its_sums_fails_the_call() -> None:
    caller = os.getpid()
    took_a_piece = multiprocessing.get_context("fork").Event()

    def vanishing(part: Sequence[int]) -> torch.Tensor:
        if os.getpid() != caller:
            took_a_piece.set()
            os._exit(0)  # a clean exit code, but no "done": its share of the sum never arrived
        assert took_a_piece.wait(60), "the worker never took a piece"  # else this process sums them all
        return _sum(part)

    with pytest.raises(forked_sums.WorkerFailed, match="before its sums"):
        forked_sums.sum_in_forks(list(range(200)), vanishing, 2, 2, 1)
