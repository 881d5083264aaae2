"""Normalisation stats: exact per-channel mean/std of a split's pixels at the training geometry.

Stats are population mean/std (ddof 0) of ``x / 255`` per channel, computed from exact uint8
histograms, so the result does not depend on the order images are counted in, nor on how they are
shared between threads, processes or the instances of a sharded Preprocess (whose parts carry the
histograms, merged by ``preprocess_merge.py``). ``preprocess.py`` writes them to ``stats.json``;
``dogdata.read_stats`` reads them back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
import torchdata.nodes as tn
from PIL import Image

if __package__:  # imported as training_code.pixel_stats (tests)
    from . import dogdata, forked_sums, thread_map
else:  # run inside the processing container, beside dogdata.py
    import dogdata  # type: ignore[no-redef]
    import forked_sums  # type: ignore[no-redef]
    import thread_map  # type: ignore[no-redef]


@contextmanager
def single_intra_op_thread() -> Iterator[None]:
    """Run data-only work with one torch intra-op thread.

    Measured here: torch's intra-op pool fighting the loader threads for 2 cores cost up to 5x.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def image_histogram(image: torch.Tensor) -> list[int]:
    """The 3x256 counts (red, green, blue concatenated) of a uint8 CHW image, by PIL's one-pass C
    histogram over the image's own HWC rows (a crop's rows are read in place, through their stride).

    0.09-0.12 ms a 224 px crop against 0.18 for ``torch.bincount`` per channel, which copies each
    strided channel and passes over it three times (min, max, count); 2026-12-07, one core, where the
    decode+resize it follows takes 1.6 ms. Tried before, all exact and slower: one bincount over an
    offset int64/int32/int16 copy, ``np.bincount``, ``torch.histc``, float sums of squares."""
    hwc = image.permute(1, 2, 0)
    height, width, _ = hwc.shape
    if hwc.stride(2) != 1 or hwc.stride(1) != 3:  # not pixel-interleaved rows (e.g. a CHW copy)
        hwc = hwc.contiguous()
    row, start = hwc.stride(0), hwc.storage_offset()
    storage = torch.empty(0, dtype=torch.uint8).set_(hwc.untyped_storage()).numpy()
    rows = storage[start : start + row * (height - 1) + 3 * width]
    return Image.frombuffer("RGB", (width, height), rows, "raw", "RGB", row, 1).histogram()


def _channel_histogram(path: str, image_size: int) -> list[int]:
    """One image's 3x256 counts at the training geometry."""
    return image_histogram(dogdata.decode_image(path, image_size))


#: Crops that ``images_histogram`` copies side by side before one PIL histogram counts them all.
HISTOGRAM_BATCH = 16


def images_histogram(images: Iterable[torch.Tensor], batch: int = HISTOGRAM_BATCH) -> np.ndarray:
    """The summed 3x256 counts of uint8 CHW images, ``batch`` same-sized images at a time: each is
    copied (HWC) into one buffer, which one :func:`image_histogram` counts.

    Counting one crop at a time paid PIL's fixed costs per crop (a new image, a 768-int list turned
    into numpy): 168 us a 224 px crop against 125 us so, the copy included (10 us); 2026-12-07, one
    core. An image of another size than the batch's flushes it and starts a new one."""
    total = np.zeros(3 * 256, dtype=np.int64)
    buffer: torch.Tensor | None = None
    filled = 0

    def count() -> None:
        nonlocal total, filled
        if buffer is not None and filled:
            total += image_histogram(buffer[:filled].flatten(0, 1).permute(2, 0, 1))
        filled = 0

    for image in images:
        hwc = image.permute(1, 2, 0)
        if buffer is None or buffer.shape[1:] != hwc.shape:
            count()
            buffer = torch.empty((batch, *hwc.shape), dtype=torch.uint8)
        buffer[filled].copy_(hwc)
        filled += 1
        if filled == batch:
            count()
    count()
    return total


#: From this many images on, ``compute_stats`` decodes in forked worker processes (``forked_sums``):
#: Python threads get ~1.3x from a second core here (resizing and the glue hold the GIL part of the
#: time), processes scale with the cores, and a fork of this torch-sized interpreter costs 7-10 ms of
#: the caller's time (the kernel copying its page tables), paid back after ~20 photos at 1.5 ms a photo
#: in threads against 0.95 ms in two processes (2 idle cores, 2026-12-07; a DataLoader's workers cost
#: ~0.2 s).
PROCESS_MIN_IMAGES = 128
#: Most images per piece a worker takes from the shared counter: at most an eighth of a worker's share
#: on small sets, and the pieces shrink to one image towards the end (``forked_sums.pieces``), so the
#: cores finish within about one image (2 ms) of each other.
PROCESS_CHUNK = 32


def _chunk_histogram(paths: Sequence[str], image_size: int) -> torch.Tensor:
    images = (dogdata.decode_image(path, image_size) for path in paths)
    return torch.from_numpy(images_histogram(images, batch=min(HISTOGRAM_BATCH, len(paths))))


def _histograms_in_threads(
    paths: list[str], image_size: int, num_workers: int
) -> Iterator[tuple[list[int], int]]:
    node = thread_map.map_node(
        tn.IterableWrapper(paths), lambda path: _channel_histogram(path, image_size), num_workers
    )
    for histogram in tn.Loader(node):
        yield histogram, 1


def channel_histogram(
    paths: Sequence[str | os.PathLike[str]],
    image_size: int,
    num_workers: int = 2,
    *,
    on_done: Callable[[int], None] | None = None,
    processes: bool | None = None,
) -> list[int]:
    """The summed 3x256 uint8 counts (red, green, blue concatenated) of images at the training geometry.

    Integer counts, so the sum over any split of ``paths`` (threads, worker processes, or the instances
    of a sharded Preprocess) is the same; :func:`stats_from_histogram` turns it into mean/std. Decoding
    runs in ``num_workers`` threads, or worker processes when ``processes`` is true (default: from
    :data:`PROCESS_MIN_IMAGES` images on, with at least two workers, where fork exists).
    ``on_done(count)`` is called as images are counted (progress). No paths give all zeros.
    """
    names = [os.fspath(path) for path in paths]
    total = np.zeros(3 * 256, dtype=np.int64)
    if not names:
        return total.tolist()
    if processes is None:
        processes = len(names) >= PROCESS_MIN_IMAGES and num_workers > 1
    processes = processes and num_workers > 1 and hasattr(os, "fork")
    with single_intra_op_thread():
        if processes:
            chunk = max(1, min(PROCESS_CHUNK, len(names) // (8 * num_workers)))
            part = partial(_chunk_histogram, image_size=image_size)
            return forked_sums.sum_in_forks(names, part, 3 * 256, num_workers, chunk, on_done).tolist()
        for histogram, count in _histograms_in_threads(names, image_size, num_workers):
            total += histogram
            if on_done is not None:
                on_done(count)
    return total.tolist()


def stats_from_histogram(histogram: Sequence[int]) -> tuple[list[float], list[float], int]:
    """Exact per-channel ``(mean, std, n_pixels)`` of ``x / 255`` from :func:`channel_histogram`'s counts:
    mean and population variance (ddof 0) in float64 from 256 bins, so equal counts give equal bits."""
    counts = torch.tensor(list(histogram), dtype=torch.int64).view(3, 256).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n_pixels = counts[0].sum()
    if n_pixels.item() == 0:
        raise ValueError("no pixels counted: statistics need at least one image")
    mean = (counts * values).sum(dim=1) / n_pixels
    variance = (counts * (values.view(1, -1) - mean.view(-1, 1)) ** 2).sum(dim=1) / n_pixels
    return mean.tolist(), variance.sqrt().tolist(), int(n_pixels.item())


def compute_stats(
    paths: Sequence[str | os.PathLike[str]],
    image_size: int,
    num_workers: int = 2,
    *,
    on_done: Callable[[int], None] | None = None,
    processes: bool | None = None,
) -> tuple[list[float], list[float], int]:
    """Exact per-channel ``(mean, std, n_pixels)`` of ``x / 255`` over images at the training geometry:
    :func:`stats_from_histogram` of :func:`channel_histogram` (see there for workers and progress)."""
    if not paths:
        raise ValueError("compute_stats needs at least one image")
    histogram = channel_histogram(paths, image_size, num_workers, on_done=on_done, processes=processes)
    return stats_from_histogram(histogram)
