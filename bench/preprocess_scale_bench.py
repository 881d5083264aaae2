"""Preprocess as the data grows: seconds per 1,000 photo-sized images and peak memory, local engine.

For each size (``DOGPIPE_BENCH_PREPROCESS_SIZES``, default ``1000,10000``; ``50000`` when asked): an
ImageFolder of photo-sized JPEGs (``bench/photos.py``, 300-800 px; 80/10/10 % train/valid/test over
100 breeds) is put in a throw-away store and the Preprocess step of the definition ``dogpipe run``
builds (224 px stats) runs on the local engine as a real job: input copy, verify and decode of every
file, clean copies with sha256, stats of the train split, upload. Sizes above 1,000 repeat 1,000 distinct
photos under new names (hard links in the store; the job copies and reads each file like any other),
so writing the data does not take longer than the job. Recorded per size: the step's seconds, seconds
per 1,000 images, CPU seconds of the engine and its jobs, and their peak memory (PSS: the forked jobs
share the template's torch pages, which RSS would count once per process). At the largest size the same
data also runs with ``processing.instance_count: 2`` (two processes on this machine's cores, the
sharded path that scales out on SageMaker, MergeStats included) to show what sharding costs here.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench.harness import Report
from bench.photos import write_photos
from bench.scale_bench import MemoryWatch
from pipeline.config import LOCAL_CONFIG, PipelineConfig, load_config, parse_config

DISTINCT = 1000
CLASSES = 100
SIZES_VARIABLE = "DOGPIPE_BENCH_PREPROCESS_SIZES"


class ProportionalMemoryWatch(MemoryWatch):
    """``MemoryWatch`` with proportional set sizes: forked jobs share the template's pages (torch), which
    RSS would count once per process; PSS splits each shared page between its sharers."""

    def _tree_rss(self) -> int:
        me = psutil.Process()
        total = 0
        for process in [me, *me.children(recursive=True)]:
            try:
                total += process.memory_full_info().pss
            except psutil.Error:  # ended between the listing and the reading
                continue
        return total


class CpuWatch:
    """CPU seconds of the engine's process tree while it runs (jobs are forked by its template process,
    so no single ``getrusage`` sees them): each process's own user+system time as last sampled (every
    0.1 s), less what the processes alive at the start had used before."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU s
        self.before: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _read(self, into: dict[tuple[int, float], float]) -> None:
        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                into[(process.pid, process.create_time())] = times.user + times.system
            except psutil.Error:  # ended between the listing and the reading
                continue

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self._read(self.seconds)

    @contextmanager
    def running(self) -> Iterator[CpuWatch]:
        self._read(self.before)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
            self._read(self.seconds)

    @property
    def total(self) -> float:
        return sum(value - self.before.get(key, 0.0) for key, value in self.seconds.items())


def sizes(quick: bool) -> list[int]:
    if quick:
        return [60]
    return [int(size) for size in os.environ.get(SIZES_VARIABLE, "1000,10000").split(",")]


def preprocess_config(instances: int, quick: bool) -> PipelineConfig:
    raw = json.loads(json.dumps(load_config(LOCAL_CONFIG).model_dump(mode="json")))
    raw["processing"]["instance_count"] = instances
    raw["data"]["image_size"] = 48 if quick else 224
    raw["steps"]["cache"] = False
    return parse_config(raw)


def lay_out(pool: list[Path], target: Path, count: int) -> None:
    """``count`` files as ``split/breed/n.jpg`` under ``target``, hard links cycling through ``pool``."""
    for index in range(count):
        split = "train" if index % 10 < 8 else ("valid" if index % 10 == 8 else "test")
        link = target / split / f"{index // 10 % CLASSES:03d}.breed" / f"{index:06d}.jpg"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(pool[index % len(pool)], link)


def run_preprocess(root: Path, pool: list[Path], count: int, instances: int, quick: bool) -> dict[str, Any]:
    """Preprocess (and MergeStats) alone, from the built definition; its seconds and peak memory."""
    from pipeline.definition.document import build_definition
    from pipeline.local.context import EngineSettings
    from pipeline.local.engine import LocalEngine
    from pipeline.local.forked_jobs import SERVER
    from pipeline.local.run import stage_code_in_store

    cfg = preprocess_config(instances, quick)
    watch = ProportionalMemoryWatch()
    engine = LocalEngine(EngineSettings(root=root), echo=watch.echo)
    code = stage_code_in_store(cfg, engine.store)
    full = json.loads(build_definition(cfg, role_arn=cfg.project.role_arn, code=code))
    steps = [step for step in full["Steps"] if step["Name"] in ("Preprocess", "MergeStats")]
    data_uri = f"s3://{cfg.project.bucket}/datasets/bench-{count}/"
    lay_out(pool, engine.store.path_for(data_uri), count)
    SERVER._ensure(dict(os.environ))  # ready, as `dogpipe run` has it: its imports are not the job's
    started = time.perf_counter()
    with watch.running(), CpuWatch().running() as cpu:
        result = engine.start({**full, "Steps": steps}, "bench", {"InputDataUrl": data_uri})
    total = time.perf_counter() - started
    if result.status != "Succeeded":
        raise RuntimeError(f"Preprocess at {count} images: {result.failure_reason}")
    seconds = {name: state["duration_s"] for name, state in result.steps.items()}
    peak = max(watch.peaks.values(), default=0)
    return {"seconds": seconds, "total": total, "cpu": cpu.total, "peak": peak, "load": os.getloadavg()[0]}


def record(report: Report, count: int, instances: int, run: dict[str, Any]) -> None:
    label = f"{count:,} images, {instances} instance{'s' if instances > 1 else ''}"
    steps = " + ".join(f"{name} {value:.1f} s" for name, value in run["seconds"].items())
    peak = run["peak"] / 2**30
    note = f"{steps}; CPU {run['cpu']:.0f} s; peak PSS {peak:.2f} GiB; load {run['load']:.1f}"
    report.latency("preprocess", f"Preprocess, {label}", [run["total"] * 1000], note)
    report.ratio("preprocess", f"seconds per 1,000 images, {label}", run["total"] / count * 1000)
    report.ratio("preprocess", f"CPU seconds per 1,000 images, {label}", run["cpu"] / count * 1000)
    report.ratio("preprocess", f"peak PSS GiB (engine + jobs), {label}", peak)


def run(report: Report, *, quick: bool = False) -> None:
    counts = sizes(quick)
    with tempfile.TemporaryDirectory(prefix="dogpipe-preprocess-") as tmp:
        pool = write_photos(Path(tmp) / "pool", min(DISTINCT, max(counts)), seed=1)
        for count in counts:
            record(report, count, 1, run_preprocess(Path(tmp) / f"one-{count}", pool, count, 1, quick))
        largest = max(counts)
        record(report, largest, 2, run_preprocess(Path(tmp) / f"two-{largest}", pool, largest, 2, quick))
