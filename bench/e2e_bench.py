"""The README demo end to end: ``dogpipe run`` with config/local.yaml on the sample data, per step.

Runs the real ``run_local`` (definition build, staging, every step as a job, local endpoint) in a
throw-away store, then reports each step's wall time from the execution record and the total against
the issue's goal of 5 minutes on 2 cores. ``--quick`` shrinks the data, the trials and the epochs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml

from bench.harness import Report
from pipeline.config import LOCAL_CONFIG, parse_config
from pipeline.local.endpoint_servers import stop_endpoint
from pipeline.local.run import run_local
from pipeline.sample_data import write_sample_data


def run(report: Report, *, quick: bool = False) -> None:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    if quick:
        raw["tuning"].update(max_jobs=1, epochs=1)
        raw["training"]["hyperparameters"].update(epochs=1)
        raw["data"]["image_size"] = 48
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
    ran = [state for state in result.steps.values() if state.get("duration_s") is not None]
    for state in sorted(ran, key=lambda state: state.get("started_at") or ""):
        report.latency("e2e", f"step {state['name']}", [state["duration_s"] * 1000])
    report.latency("e2e", "dogpipe run, total (incl. definition build)", [total * 1000])
    report.ratio("e2e", "demo run total / 300 s goal", total / 300, "<= 1.0")
