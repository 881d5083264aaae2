"""A function over a ``torchdata.nodes`` node in loader threads, each on one torch intra-op thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
import torchdata.nodes as tn


def map_node(source: tn.BaseNode, fn: Callable, num_workers: int) -> tn.BaseNode:
    """``fn`` over ``source`` in ``num_workers`` threads, in order; inline when ``num_workers`` is 0.

    Each loader thread runs torch with one intra-op thread: left at the process's count, every resize
    forked an OpenMP team that fought the training step's for the same cores (measured on 2 cores: the
    loader thread ran at a fifth of its speed alone). OpenMP's thread count is per calling thread, so
    the training thread keeps all of its own; it is settled here first, before any loader thread runs.
    """
    if num_workers <= 0:
        return tn.Mapper(source, fn)
    torch.get_num_threads()  # the calling thread's count, fixed before a loader thread sets its own
    return tn.ParallelMapper(source, _on_one_intra_op_thread(fn), num_workers=num_workers, method="thread",
                             in_order=True)  # fmt: skip


_loader_thread = threading.local()


def _on_one_intra_op_thread(fn: Callable) -> Callable:
    def run(item: object) -> object:
        if not getattr(_loader_thread, "single", False):
            torch.set_num_threads(1)
            _loader_thread.single = True
        return fn(item)

    return run
