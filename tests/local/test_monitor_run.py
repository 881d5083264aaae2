"""Watching the served model, end to end on this machine (issue 20's Done-when).

One ``dogpipe run`` trains a small model (5 synthetic breeds, MobileNetV2's offline ImageNet weights, a
frozen backbone), Evaluate writes its drift baseline, Register points the version at it and the staging
endpoint captures its traffic. Then windows of traffic are sent and judged by ``dogpipe monitor run``:
images like the training ones raise nothing; darkened, blurred and new-breed images raise the
violations each should; with ``on_drift: retrain`` a violation starts ``dogpipe run``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import LOCAL_CONFIG
from pipeline.local.endpoint_records import read_endpoint, stop_endpoint
from pipeline.sample_data import shifted_jpeg, write_sample_data
from pipeline.serving.client import invoke_http

pytestmark = pytest.mark.slow
ENDPOINT = "dogpipe-watch-staging"
SIDES = (48, 128)
CLASSES = 5


def watch_config(root: Path, data: Path) -> dict[str, Any]:
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["data"]["image_size"] = 48
    config["tuning"]["enabled"] = False
    config["training"]["hyperparameters"].update(epochs=3, lr=0.01, batch_size=16, num_workers=0)
    config["debugger"].update(hook=False, platform_hook=False, profiler=False)
    config["evaluation"]["accuracy_threshold"] = 0.5
    config["deploy"]["staging_endpoint"] = ENDPOINT
    config["monitor"] = {"stage": "staging", "min_records": 30, "on_drift": "alert"}
    config["local"] = {"root": str(root / "engine")}
    return config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("watch")
    data = root / "data"
    write_sample_data(data, classes=CLASSES, per_class=40, seed=0, sides=SIDES)
    config = root / "local.yaml"
    config.write_text(yaml.safe_dump(watch_config(root, data)))
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--data", str(data)])
    assert result.exit_code == 0, result.output
    try:
        yield {"config": config, "root": root / "engine", "data": data}
    finally:
        stop_endpoint(root / "engine", ENDPOINT)


def send_window(served: dict[str, Any], shift: str, count: int = 40, seed: int = 0) -> str:
    """``count`` images of ``shift`` to the endpoint; returns the window's start (ISO, UTC)."""
    time.sleep(1.1)  # capture times have whole seconds: the windows must not share one
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1.1)
    url = read_endpoint(served["root"], ENDPOINT)["url"]
    rng = np.random.default_rng([seed, len(shift)])
    for index in range(count):
        invoke_http(url, shifted_jpeg(index % CLASSES, shift, rng, SIDES), "image/jpeg")
    return since


def monitor(served: dict[str, Any], since: str, config: Path | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 10  # the capture thread writes behind the replies
    while time.monotonic() < deadline:
        with urllib.request.urlopen(read_endpoint(served["root"], ENDPOINT)["url"] + "/ping") as response:
            ping = json.loads(response.read())
        if ping["capture"]["captured"] == ping["capture"]["written"]:
            break
        time.sleep(0.1)
    result = CliRunner().invoke(
        cli, ["monitor", "run", "--since", since, "--config", str(config or served["config"]), "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{") :])


def test_the_build_pipeline_attached_a_baseline_and_the_endpoint_captures(served: dict[str, Any]) -> None:
    from pipeline.registry import LocalRegistry

    (package,) = LocalRegistry(served["root"]).list_packages("dogpipe-dog-breeds")
    assert str(package.metrics["drift_baseline"]).endswith("/evaluation/baseline.json")
    record = read_endpoint(served["root"], ENDPOINT)
    assert record["capture_folder"].endswith("s3/dogpipe-local/dogpipe/data-capture")


def test_in_distribution_traffic_raises_nothing(served: dict[str, Any]) -> None:
    found = monitor(served, send_window(served, "none"))
    assert found["status"] == "judged" and found["images"] == 40, found
    assert found["violations"] == 0, found


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        ("dark", {"input.brightness_r", "input.brightness_g", "input.brightness_b"}),
        ("blur", {"input.sharpness"}),
        ("new_breed", {"predicted_class", "embedding"}),
    ],
)
def test_shifted_traffic_raises_the_violations_it_should(
    served: dict[str, Any], shift: str, expected: set[str]
) -> None:
    found = monitor(served, send_window(served, shift))
    assert set(found["violated"]) >= expected, found
    reports = Path(found["reports"])
    violations = json.loads((reports / "constraint_violations.json").read_text())["violations"]
    assert {item["constraint_check_type"] for item in violations} == {"baseline_drift_check"}
    statistics = json.loads((reports / "statistics.json").read_text())
    assert len(statistics["contributors"]) == 5  # the images that pulled away most, by event id
    assert (reports / "summary.txt").read_text().count("VIOLATION") == len(violations)
    metrics = next((reports.parents[1] / "output" / "metrics" / "cloudwatch").glob("*.jsonl"))
    first = json.loads(metrics.read_text().splitlines()[0])
    assert first["MetricName"] == "drift_violations" and first["Value"] == len(violations)


def test_a_window_too_small_is_not_judged_and_status_lists_the_runs(served: dict[str, Any]) -> None:
    found = monitor(served, send_window(served, "dark", count=5))
    assert found["status"] == "insufficient_data" and found["violations"] == 0
    listing = CliRunner().invoke(cli, ["monitor", "status", "--config", str(served["config"]), "-o", "json"])
    runs = json.loads(listing.output)
    assert runs[0]["run"] == found["run"] and len(runs) >= 2


def test_drift_with_on_drift_retrain_starts_dogpipe_run(served: dict[str, Any], tmp_path: Path) -> None:
    raw = yaml.safe_load(served["config"].read_text())
    raw["monitor"].update(on_drift="retrain", retrain_data=str(tmp_path / "no-such-data"))
    config = tmp_path / "retrain.yaml"
    config.write_text(yaml.safe_dump(raw))
    found = monitor(served, send_window(served, "dark"), config)
    retrain = found["retrain"]
    assert retrain["command"][-2:] == ["--data", str(tmp_path / "no-such-data")]
    assert str(config) in retrain["command"]
    log = Path(retrain["log"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "no-such-data" not in log.read_text():
        time.sleep(0.5)
    assert "no-such-data" in log.read_text()  # dogpipe run started, and refused the missing folder
