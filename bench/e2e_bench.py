"""The README demo end to end: ``dogpipe run`` with config/local.yaml on the sample data, per step.

Runs the real ``run_local`` (definition build, staging, every step as a job, local endpoint) in a
throw-away store, then reports each step's wall time from the execution record and the total against
the issue's goal of 5 minutes on 2 cores. ``--quick`` shrinks the data, the trials and the epochs.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml

from bench.harness import Report
from pipeline.config import LOCAL_CONFIG, parse_config
from pipeline.local.endpoint_records import stop_endpoint
from pipeline.local.forked_jobs import ENABLE_ENV
from pipeline.local.run import run_local
from pipeline.sample_data import write_sample_data


def _demo(raw: dict, quick: bool) -> tuple[object, float]:
    """One ``dogpipe run`` of the demo in a fresh store (nothing cached): its result and wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        raw["local"]["root"] = str(Path(tmp) / "store")
        cfg = parse_config(raw, LOCAL_CONFIG)
        data = Path(tmp) / "data"
        write_sample_data(
            data, classes=5, per_class=8 if quick else 40, sides=(48, 96) if quick else (150, 500)
        )
        started = time.perf_counter()
        result = run_local(cfg, data_dir=data, echo=lambda line: None)
        total = time.perf_counter() - started
        stop_endpoint(cfg.local.root, cfg.deploy.staging_endpoint)
    if result.status != "Succeeded":
        raise RuntimeError(f"demo run {result.status}: {result.failure_reason}")
    return result, total


def run(report: Report, *, quick: bool = False) -> None:
    """The demo with jobs forked from the pre-imported template (the default), then, unless quick,
    with every job started plainly (``DOGPIPE_FORK_SERVER=0``): the same work, the start-up apart."""
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    if quick:
        raw["tuning"].update(max_jobs=1, epochs=1)
        raw["training"]["hyperparameters"].update(epochs=1)
        raw["data"]["image_size"] = 48
    result, total = _demo(raw, quick)
    ran = [state for state in result.steps.values() if state.get("duration_s") is not None]  # type: ignore[attr-defined]
    for state in sorted(ran, key=lambda state: state.get("started_at") or ""):
        report.latency("e2e", f"step {state['name']}", [state["duration_s"] * 1000])
    report.latency("e2e", "dogpipe run, total (incl. definition build)", [total * 1000])
    report.ratio("e2e", "demo run total / 300 s goal", total / 300, "<= 1.0")
    if quick:
        return
    previous = os.environ.get(ENABLE_ENV)
    os.environ[ENABLE_ENV] = "0"
    try:
        _, plain = _demo(raw, quick)
    finally:
        if previous is None:
            os.environ.pop(ENABLE_ENV)
        else:
            os.environ[ENABLE_ENV] = previous
    report.latency("e2e", "dogpipe run, total, every job started plainly", [plain * 1000])
    report.ratio("e2e", "demo run forked / plain", total / plain)
