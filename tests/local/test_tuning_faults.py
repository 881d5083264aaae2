"""Tuning under faults: failed trials and a SIGTERM during parallel trials print no Optuna traceback,
and a SIGTERM stops the trials running in worker threads at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.local.context import EngineSettings
from pipeline.local.engine import LocalEngine

from .definitions import BUCKET, definition, stage_sourcedir
from .test_jobs import tuning_step

# sgd trials fail; with BLOCK set every trial waits (so a signal finds them running).
TRAIN = """
    import argparse, os, pathlib, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--optimizer", default="adam")
    args, _ = parser.parse_known_args()
    print("started", flush=True)
    while pathlib.Path(os.environ.get("BLOCK", "/nonexistent")).exists():
        time.sleep(0.1)
    if args.optimizer == "sgd":
        sys.exit("sgd is broken in this test")
    print(f"epoch=1 train_loss=0.5 valid_loss=0.4 valid_accuracy={args.lr:.6f}", flush=True)
"""


def tuning(store, block: Path | None = None, max_jobs: int = 4) -> dict:  # type: ignore[no-untyped-def]
    step = tuning_step(stage_sourcedir(store, {"train.py": TRAIN}), max_jobs=max_jobs)
    step["Arguments"]["TrainingJobDefinition"]["Environment"] = {"BLOCK": str(block or "/nonexistent")}
    return definition(step)


def test_failed_trials_are_one_line_each_and_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    lines: list[str] = []
    engine = LocalEngine(EngineSettings(root=tmp_path / "root", max_parallel_trials=2), echo=lines.append)
    engine.store.put_bytes(f"{BUCKET}/data/train/a.jpg", b"jpeg")
    result = engine.start(tuning(engine.store, max_jobs=6), "test")
    assert result.status == "Succeeded", result.failure_reason
    counters = result.steps["Tune"]["properties"]["TrainingJobStatusCounters"]
    assert counters["Failed"] >= 1 and counters["Completed"] >= 1
    failed = [line for line in lines if " failed: " in line]
    assert len(failed) == counters["Failed"] and all("exited with code 1" in line for line in failed)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err + "\n".join(lines)


@pytest.mark.slow
def test_sigterm_during_parallel_trials_stops_them_at_once_without_tracebacks(tmp_path: Path) -> None:
    root, block = tmp_path / "root", tmp_path / "block"
    block.touch()
    engine = LocalEngine(EngineSettings(root=root, max_parallel_trials=2), echo=lambda line: None)
    engine.store.put_bytes(f"{BUCKET}/data/train/a.jpg", b"jpeg")
    definition_path = tmp_path / "definition.json"
    definition_path.write_text(json.dumps(tuning(engine.store, block)))
    program = (
        "import json; from pathlib import Path; from pipeline.local.context import EngineSettings; "
        "from pipeline.local.engine import LocalEngine\n"
        "try:\n"
        f"    LocalEngine(EngineSettings(root=Path({str(root)!r}), max_parallel_trials=2))"
        f".start(json.loads(Path({str(definition_path)!r}).read_text()), 't')\n"
        "except KeyboardInterrupt as stop:\n"
        "    print('STOPPED', stop.reason)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(trials(block)) < 2:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "two trials never ran at once"
            time.sleep(0.1)
        running = trials(block)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)  # not the trials' lifetime: they wait forever
    finally:
        if process.poll() is None:
            process.kill()
    assert "STOPPED interrupted (SIGTERM)" in output and "Traceback" not in output, output
    psutil.wait_procs(running, timeout=10)
    assert trials(block) == []
    execution = engine.executions.latest()
    assert execution.load().status == "Stopped"


def trials(block: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("BLOCK") == str(block):
                found.append(process)
        except psutil.Error:
            continue
    return found
