"""``dogpipe definition``: build time of the shipped SageMaker config, and the AWS calls it makes (0).

The build runs in a fresh interpreter each time (what a user's ``dogpipe definition`` pays, SDK
imports included) with botocore's API call and HTTP send counted; every count must be zero.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.harness import Report, measure

ROOT = Path(__file__).resolve().parent.parent

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
from pipeline.definition import build_definition
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


def run(report: Report, *, quick: bool = False) -> None:
    config = ROOT / "config" / "pipeline.yaml"
    outcomes: list[dict] = []
    timing = measure(lambda: outcomes.append(build_once(config)), warmup=0, repeats=1 if quick else 3)
    report.latency("definition", "dogpipe definition (fresh process)", [s * 1000 for s in timing.samples])
    report.ratio(
        "definition", "AWS calls during build (max over builds)", max(o["calls"] for o in outcomes), "<= 0"
    )
