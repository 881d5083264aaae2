"""``dogpipe graph|validate|definition``: cold build vs answer from the cache, and AWS calls (0).

Each command runs as a user runs it, in a fresh interpreter (imports included), taking turns: cold
with an empty cache folder (the SDK is imported and the definition built; validate also lists
torchvision's models), warm with the folder the cold runs filled. The goals: a warm answer under
1 s on 2 cores, i.e. a small fraction of the cold build, and a cold ``dogpipe definition`` within 3 s
(its CPU seconds are reported beside the wall time: on a shared machine they are what it takes alone).
A separate build counts botocore API calls and HTTP sends; every count must be zero.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import Report, measure, measure_interleaved

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "pipeline.yaml"

COUNTING_BUILD = """
import json, sys
import botocore.client, botocore.endpoint
calls = []
def refuse(kind):
    def record(*args, **kwargs):
        calls.append(kind)
        raise RuntimeError(f"AWS call during build: {kind}")
    return record
botocore.client.BaseClient._make_api_call = refuse("api")
botocore.endpoint.Endpoint._send = refuse("http")
from pipeline.config import load_config
from pipeline.definition.document import build_definition
text = build_definition(load_config(sys.argv[1]))
print(json.dumps({"calls": len(calls), "bytes": len(text)}))
"""


def build_once(config: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", COUNTING_BUILD, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dogpipe(command: str, cache: Path, cpu: list[float] | None = None) -> str:
    """``dogpipe COMMAND --config config/pipeline.yaml`` in a fresh process with ``cache`` as its cache;
    its CPU seconds are appended to ``cpu`` (on a busy machine, the wall time it would take alone)."""
    before = child_cpu_seconds()
    environment = {**os.environ, "DOGPIPE_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", command, "--config", str(CONFIG)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    if cpu is not None:
        cpu.append(child_cpu_seconds() - before)
    return result.stdout


def run(report: Report, *, quick: bool = False) -> None:
    commands = ["graph"] if quick else ["graph", "validate", "definition"]
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="dogpipe-bench-cache-") as scratch:
        warm_cache = Path(scratch) / "warm"
        cold_runs = iter(range(1_000))
        for command in commands:
            warm_cpu: list[float] = []
            cold_cpu: list[float] = []
            cold_answer = dogpipe(command, warm_cache)  # fills the warm cache
            cases = {
                "cold": lambda c=command, cpu=cold_cpu: dogpipe(
                    c, Path(scratch) / f"cold-{next(cold_runs)}", cpu
                ),
                "warm": lambda c=command, cpu=warm_cpu: dogpipe(c, warm_cache, cpu),
            }
            timings = measure_interleaved(cases, warmup=0, repeats=repeats)
            assert dogpipe(command, warm_cache) == cold_answer, f"{command}: cached answer differs"
            for case, timing in timings.items():
                report.latency(
                    "definition", f"dogpipe {command} ({case} cache)", [s * 1000 for s in timing.samples]
                )
            report.ratio(
                "definition",
                f"{command}: warm / cold wall time",
                timings["warm"].median / timings["cold"].median,
                "<= 0.2",
            )
            report.ratio("definition", f"{command}: warm wall seconds", timings["warm"].median, "<= 1")
            report.ratio("definition", f"{command}: warm CPU seconds", statistics.median(warm_cpu), "<= 1")
            cold_goal = "<= 3" if command == "definition" else None
            report.ratio("definition", f"{command}: cold wall seconds", timings["cold"].median, cold_goal)
            report.ratio("definition", f"{command}: cold CPU seconds", statistics.median(cold_cpu), cold_goal)
    outcomes: list[dict] = []
    measure(lambda: outcomes.append(build_once(CONFIG)), warmup=0, repeats=1)
    report.ratio("definition", "AWS calls during build", max(o["calls"] for o in outcomes), "<= 0")
