"""Where the time of ``compute_stats`` goes at 300 photos, against the stats bench's limit (2026-12-07).

``python -m bench.stats_breakdown [--repeats N]`` (not part of ``python -m bench``): the cases of
``bench/stats_bench.py`` (dogpipe, seed-style, one core's decode+resize) taking turns, plus one core's
decode+resize+histogram (the limit with the stats' own per-image work), and, from a trace of every piece
the two workers summed, the parts of dogpipe's time: until the first piece starts (the fork), the time
per image while both work, and what is left after the last piece. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from bench.harness import measure_interleaved
from bench.photos import write_photos
from bench.stats_bench import IMAGE_SIZE, one_core_decode_resize, pixel_stats, seed_style_stats

IMAGES = 300


def traced_stats(paths: list[Path], log: Path, parts: dict[str, list[float]]) -> Callable[[], None]:
    """``compute_stats`` as the bench calls it, each piece's start and end (per process) appended to
    ``log``; after each call its parts in ms go to ``parts``."""
    original = pixel_stats._chunk_histogram

    def piece(names: Sequence[str], image_size: int) -> torch.Tensor:
        start = time.perf_counter()
        total = original(names, image_size)
        with log.open("a") as handle:
            handle.write(f"{os.getpid()} {start} {time.perf_counter()} {len(names)}\n")
        return total

    def run() -> None:
        log.write_text("")
        pixel_stats._chunk_histogram = piece
        try:
            began = time.perf_counter()
            pixel_stats.compute_stats(paths, IMAGE_SIZE, num_workers=2)
            ended = time.perf_counter()
        finally:
            pixel_stats._chunk_histogram = original
        spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for line in log.read_text().splitlines():
            pid, start, end, _ = line.split()
            spans[int(pid)].append((float(start) - began, float(end) - began))
        firsts = [min(start for start, _ in span) for span in spans.values()]
        lasts = [max(end for _, end in span) for span in spans.values()]
        busy = sum(end - start for span in spans.values() for start, end in span)
        for name, value in (
            ("total", ended - began),
            ("until the first piece", min(firsts)),
            ("until both work", max(firsts)),
            ("busy per image, both workers", busy / len(paths)),
            ("between the workers' last pieces", max(lasts) - min(lasts)),
            ("after the last piece", ended - began - max(lasts)),
        ):
            parts[name].append(1e3 * value)

    return run


def one_core_with_histogram(paths: list[Path]) -> None:
    """One core's decode+resize+histogram: the limit plus the stats' own per-image work."""
    with pixel_stats.single_intra_op_thread():
        pixel_stats._chunk_histogram([os.fspath(path) for path in paths], IMAGE_SIZE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stats_breakdown", description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    parts: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        paths = write_photos(photos, IMAGES)
        stats = traced_stats(paths, Path(tmp) / "pieces.log", parts)
        timings = measure_interleaved(
            {
                "dogpipe": stats,
                "seed": lambda: seed_style_stats(photos),
                "limit": lambda: one_core_decode_resize(paths),
                "limit+histogram": lambda: one_core_with_histogram(paths),
            },
            repeats=args.repeats,
        )
    medians = {name: timing.median for name, timing in timings.items()}
    for name, seconds in medians.items():
        print(f"{name:36s} {1e3 * seconds:8.1f} ms  ({IMAGES / seconds:6.0f} img/s)")
    print(f"{'dogpipe / seed-style':36s} {medians['seed'] / medians['dogpipe']:8.3f}")
    print(f"{'dogpipe / limit (one core x 2)':36s} {medians['limit'] / 2 / medians['dogpipe']:8.3f}")
    print(f"{'dogpipe / (limit+histogram)':36s} {medians['limit+histogram'] / 2 / medians['dogpipe']:8.3f}")
    print(f"{'one core, ms per image: limit':36s} {1e3 * medians['limit'] / IMAGES:8.3f}")
    print(f"{'one core, ms per image: +histogram':36s} {1e3 * medians['limit+histogram'] / IMAGES:8.3f}")
    print("dogpipe's parts, ms (median of the measured calls; the warm-up's dropped):")
    for name, values in parts.items():
        print(f"  {name:34s} {statistics.median(values[1:]):8.2f}")


if __name__ == "__main__":
    main()
