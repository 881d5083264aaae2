"""The whole pipeline at dogImages' scale: per-step seconds and peak memory, and what bounds training.

``dogpipe sample-data --classes 133`` (133 breeds, 40 + 10 + 10 images each: 7,980 images of 150–500
px, dogImages has 8,351) runs through ``run_local`` with ``config/local.yaml`` in a throw-away store.
Recorded: each step's wall time (from the execution record), the peak resident memory of the engine
and its job processes together while each step ran (psutil, sampled every 0.2 s), the Train step's
steady training rate (training images per second of its epochs after the first, validation pass
included, from ``history.json``), and the two limits that rate is held against on this machine, with
the model and image size of the config: the decode + augment-resize rate of one core times the cores,
and the model's forward + backward + optimizer step on random batches (no data loading).

It takes about 15 minutes on 2 cores: it is not part of ``python -m bench`` unless named
(``--only scale``). ``--quick`` runs 3 breeds of tiny images, one trial, one epoch, no deploy.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import torch
import yaml

from bench.harness import Report, Row, measure
from pipeline.config import LOCAL_CONFIG, PipelineConfig, parse_config
from pipeline.sample_data import write_sample_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training_code"))
import dogdata
import models
import pixel_stats

CLASSES = 133
SAMPLE_INTERVAL_S = 0.2
LIMIT_IMAGES = 200  # images decoded for the decode+resize limit
LIMIT_STEPS = 10  # batches timed for the forward/backward limit


class MemoryWatch:
    """Peak RSS of this process and all its descendants, per step (the step the engine last announced)."""

    def __init__(self) -> None:
        self.step = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def echo(self, line: str) -> None:
        """The engine's console: ``[Step] Type ...`` starts a step."""
        if line.startswith("[") and line.rstrip().endswith(" ..."):
            self.step = line[1 : line.index("]")]

    def _tree_rss(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # ended between the listing and the reading
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            rss = self._tree_rss()
            self.peaks[self.step] = max(self.peaks.get(self.step, 0), rss)

    @contextmanager
    def running(self) -> Iterator[MemoryWatch]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def scale_config(root: Path, quick: bool) -> PipelineConfig:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"]["root"] = str(root)
    # The bench times every step; synthetic breeds at 133 classes reach ~0.47 test accuracy, which the
    # demo's gate (0.6) would turn into a failed execution before Register and Deploy are timed.
    raw["evaluation"]["accuracy_threshold"] = 0.0
    if quick:
        raw["tuning"].update(max_jobs=1, epochs=1)
        raw["training"]["hyperparameters"].update(epochs=2)
        raw["data"]["image_size"] = 48
        raw["deploy"]["enabled"] = False
    return parse_config(raw, LOCAL_CONFIG)


def run_pipeline(cfg: PipelineConfig, data: Path) -> tuple[Any, dict[str, int], float]:
    """The execution result, the peak memory per step and the total seconds."""
    from pipeline.local.endpoint_records import stop_endpoint
    from pipeline.local.run import run_local

    watch = MemoryWatch()
    started = time.perf_counter()
    with watch.running():
        result = run_local(cfg, data_dir=data, echo=watch.echo)
    total = time.perf_counter() - started
    if cfg.deploy.enabled:
        stop_endpoint(cfg.local.root, cfg.deploy.staging_endpoint)
    if result.status != "Succeeded":
        raise RuntimeError(f"scale run {result.status}: {result.failure_reason}")
    return result, watch.peaks, total


def steady_training_rate(cfg: PipelineConfig, execution_id: str, scratch: Path) -> float:
    """Training images per second of the Train step's epochs after the first (all epochs if only one)."""
    import json

    from pipeline.report.collect import inputs_from_local_execution

    inputs = inputs_from_local_execution(cfg.local.root, execution_id, scratch)
    epochs = json.loads(Path(inputs.history).read_text())["epochs"]
    steady = epochs[1:] or epochs
    return statistics.median(epoch["train_samples"] / epoch["seconds"] for epoch in steady)


def decode_limit(train_dir: Path, image_size: int, quick: bool) -> float:
    """Images per second one core decodes and augment-resizes, times the cores: the loader's ceiling."""
    _, samples = dogdata.scan_split(train_dir)
    paths = [path for path, _ in samples[: 16 if quick else LIMIT_IMAGES]]
    generator = torch.Generator().manual_seed(0)

    def decode_all() -> None:
        with pixel_stats.single_intra_op_thread():
            for path in paths:
                dogdata.random_crop_flip(dogdata.augment_base(path, image_size), image_size, generator)

    timing = measure(decode_all, repeats=1 if quick else 3)
    return len(paths) / timing.median * (os.cpu_count() or 1)


def forward_backward_limit(cfg: PipelineConfig, quick: bool) -> float:
    """Images per second of forward + backward + optimizer step of the configured model on random
    batches (channels_last, as train.py runs it): the ceiling with free data."""
    hyper = cfg.training.hyperparameters
    batch, size = int(hyper.batch_size), cfg.data.image_size
    model = models.build_model(cfg.model.architecture, 3 if quick else CLASSES, freeze=cfg.model.freeze)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 3 if quick else CLASSES, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def steps() -> None:
        for _ in range(2 if quick else LIMIT_STEPS):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(images), labels).backward()
            optimizer.step()

    timing = measure(steps, repeats=1 if quick else 3)
    return batch * (2 if quick else LIMIT_STEPS) / timing.median


def record_steps(report: Report, result: Any, peaks: dict[str, int], total: float) -> None:
    ran = [state for state in result.steps.values() if state.get("duration_s") is not None]
    for state in sorted(ran, key=lambda state: state.get("started_at") or ""):
        peak = peaks.get(state["name"])
        note = f"peak RSS {peak / 2**30:.2f} GiB" if peak else ""
        report.latency("scale", f"step {state['name']}", [state["duration_s"] * 1000], note)
    report.latency(
        "scale", "dogpipe run, total", [total * 1000], f"peak RSS {max(peaks.values()) / 2**30:.2f} GiB"
    )


def run(report: Report, *, quick: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="dogpipe-scale-") as tmp:
        cfg = scale_config(Path(tmp) / "store", quick)
        data = Path(tmp) / "data"
        write_sample_data(data, classes=3 if quick else CLASSES, per_class=6 if quick else 40,
                          sides=(48, 96) if quick else (150, 500))  # fmt: skip
        result, peaks, total = run_pipeline(cfg, data)
        training = steady_training_rate(cfg, result.execution.id, Path(tmp) / "scratch")
        decode = decode_limit(data / "train", cfg.data.image_size, quick)
    compute = forward_backward_limit(cfg, quick)
    record_steps(report, result, peaks, total)
    for case, rate in (("Train, steady epochs (valid pass included)", training),
                       ("decode+resize limit (one core x cores)", decode),
                       ("forward+backward limit (random batches)", compute)):  # fmt: skip
        report.rows.append(Row("scale", case, "img/s", rate, rate, rate))
    report.ratio("scale", "training / decode+resize limit", training / decode)
    report.ratio("scale", "training / forward+backward limit", training / compute)
