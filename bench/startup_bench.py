"""Local job start-up: a job importing what the jobs import, forked from the template vs started plainly.

Each case runs a real job through ``run_logged`` (the engine's own path: its session, log, exit code)
whose script imports numpy, PIL, torch, torchvision and its models, then exits: all a job pays before
its own work. The cases take turns; the forked one reuses one warm template, as an engine does after
its first job. The goal is under 0.5 s per forked start on 2 cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench.harness import Report, measure_interleaved
from pipeline.local.forked_jobs import ENABLE_ENV, SERVER
from pipeline.local.job_process import run_logged

SCRIPT = "import numpy, PIL.Image, torch, torchvision, torchvision.models\nprint('ready')\n"


def run(report: Report, *, quick: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = folder / "job.py"
        script.write_text(SCRIPT)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        counter = iter(range(10_000))

        def start(mode: str) -> None:
            os.environ[ENABLE_ENV] = "1" if mode == "forked" else "0"
            run_logged([sys.executable, str(script)], env, folder, folder / f"{next(counter)}.log")

        previous = os.environ.get(ENABLE_ENV)
        try:
            SERVER.warm()
            start("forked")  # the template's own start: once per engine
            timings = measure_interleaved(
                {"forked": lambda: start("forked"), "plain": lambda: start("plain")},
                warmup=0 if quick else 1,
                repeats=2 if quick else 5,
            )
        finally:
            if previous is None:
                os.environ.pop(ENABLE_ENV, None)
            else:
                os.environ[ENABLE_ENV] = previous
    for mode, timing in timings.items():
        report.latency("startup", f"job start-up, {mode}", [s * 1000 for s in timing.samples])
    report.ratio("startup", "forked job start-up (s)", timings["forked"].median, "<= 0.5")
    report.ratio("startup", "forked / plain start-up", timings["forked"].median / timings["plain"].median)
