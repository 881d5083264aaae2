"""Issue 22 end to end on the local engine: the candidate against production, in the build pipeline.

Run 1 registers v1 (no production yet: the comparison says so and does not block); approving it puts
it on the prod endpoint (the deploy pipeline); run 2 on the same data trains with ``lr: 0`` (the head
stays at its random start) and is stopped by ``WorseThanProduction`` with the numbers in the failure
reason; run 3, a normal model again, registers v2 with its comparison against v1, which
``models show 2 -o json`` returns, and ``models compare 1 2`` scores both again on the same
images. 4 breeds at 48 px, no tuning, two epochs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from pipeline.cli.main import cli
from pipeline.config import LOCAL_CONFIG
from pipeline.local.endpoint_records import stop_endpoint
from pipeline.local.executions import ExecutionStore
from pipeline.object_store import ObjectStore
from pipeline.registry import LocalRegistry

pytestmark = pytest.mark.slow
PROD = "dogpipe-gate-test-prod"
GROUP = "dogpipe-dog-breeds"


def gate_config(root: Path) -> dict[str, Any]:
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["data"]["image_size"] = 48
    config["tuning"]["enabled"] = False
    config["training"]["hyperparameters"].update(epochs=2, batch_size=8, num_workers=0, lr=0.01)
    config["debugger"]["hook_config"] = {"save_interval": 1, "eval_save_interval": 1}
    config["evaluation"].update(accuracy_threshold=0.0, must_not_be_worse_than_production=True)
    config["deploy"].update(enabled=False, production_endpoint=PROD, on_approval="prod")
    config["local"] = {"root": str(root / "engine")}
    return config


def run(config_path: Path, config: dict[str, Any], *extra: str) -> Result:
    config_path.write_text(yaml.safe_dump(config))
    return CliRunner().invoke(cli, ["run", "--config", str(config_path), *extra])


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory, sample_dataset: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("production_gate")
    config_path, config = root / "local.yaml", gate_config(root)
    runner = CliRunner()
    try:
        first = run(config_path, config, "--data", str(sample_dataset))
        approved = runner.invoke(cli, ["models", "approve", "1", "--config", str(config_path)])
        config["training"]["hyperparameters"]["lr"] = 0.0  # the crippled candidate
        crippled = run(config_path, config)
        config["training"]["hyperparameters"]["lr"] = 0.01
        config["steps"]["cache"] = False  # the first run's Train again, as a new artifact
        third = run(config_path, config)
        shown = runner.invoke(cli, ["models", "show", "2", "-o", "json", "--config", str(config_path)])
        compared = runner.invoke(
            cli, ["models", "compare", "1", "2", "-o", "json", "--config", str(config_path)]
        )
        yield {
            "root": root / "engine",
            "first": first,
            "approved": approved,
            "crippled": crippled,
            "third": third,
            "shown": shown,
            "compared": compared,
        }
    finally:
        stop_endpoint(root / "engine", PROD)


def comparison_of(root: Path, execution_index: int) -> dict[str, Any]:
    """comparison.json of the n-th build execution (oldest first)."""
    builds = [
        item
        for item in ExecutionStore(root).list()
        if item.read_stored().get("pipeline_name") == "dogpipe-local"
    ]
    execution = sorted(builds, key=lambda item: item.id)[execution_index]
    output = execution.step_state("Compare")["properties"]["ProcessingOutputConfig"]["Outputs"][0]
    return json.loads(ObjectStore(root).read_text(f"{output['S3Output']['S3Uri']}/comparison.json"))


def test_a_first_run_has_no_production_and_is_not_blocked(three_runs: dict[str, Any]) -> None:
    first: Result = three_runs["first"]
    assert first.exit_code == 0, first.output
    assert "registered: dogpipe-dog-breeds version 1 (PendingManualApproval)" in first.output
    comparison = comparison_of(three_runs["root"], 0)
    assert comparison["status"] == "no_production" and comparison["gate"]["passed"] is True
    package = LocalRegistry(three_runs["root"]).get(GROUP, 1)
    assert package.metrics["comparison_status"] == "no_production"
    assert package.metrics["delta_accuracy"] == "none"


def test_a_crippled_candidate_is_stopped_with_the_numbers(three_runs: dict[str, Any]) -> None:
    assert three_runs["approved"].exit_code == 0, three_runs["approved"].output
    crippled: Result = three_runs["crippled"]
    assert crippled.exit_code != 0, crippled.output
    comparison = comparison_of(three_runs["root"], 1)
    mine, theirs = comparison["candidate"]["accuracy"], comparison["baseline"]["accuracy"]
    assert comparison["status"] == "compared" and mine < theirs
    assert comparison["production"]["version"] == 1 and comparison["production"]["source"] == "stage"
    assert comparison["mcnemar"]["significant"] and comparison["gate"]["passed"] is False
    expected = (
        f"candidate is worse than production: test accuracy {mine:.4f} vs production v1 {theirs:.4f} "
        f"(delta {comparison['delta']['accuracy']:+.4f}, tolerance 0.01; "
        f"McNemar p={comparison['mcnemar']['p_value']:.4g}, alpha 0.05) on 16 images"
    )
    assert f"Failed: {expected} (see comparison.json)" in crippled.output
    assert re.search(r"WorseThanProduction\s+Fail\s+Failed", crippled.output)
    assert [package.version for package in LocalRegistry(three_runs["root"]).list_packages(GROUP)][:1] == [1]
    assert comparison["per_breed"][0]["delta"] < 0  # the breed that got worst leads


def test_a_normal_run_registers_v2_with_its_comparison_against_v1(three_runs: dict[str, Any]) -> None:
    third: Result = three_runs["third"]
    assert third.exit_code == 0, third.output
    assert "registered: dogpipe-dog-breeds version 2 (PendingManualApproval)" in third.output
    shown: Result = three_runs["shown"]
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    comparison = record["comparison"]
    assert comparison == comparison_of(three_runs["root"], 2)
    assert comparison["status"] == "compared" and comparison["production"]["version"] == 1
    assert comparison["gate"]["passed"] is True and comparison["test_images"] == 16
    assert len(comparison["per_breed"]) == 4
    assert record["vs_production"].startswith("v1 (stage): accuracy ")
    package = LocalRegistry(three_runs["root"]).get(GROUP, 2)
    assert package.metrics["production_version"] == "1"
    assert package.metrics["delta_accuracy"] == f"{comparison['delta']['accuracy']:+.4f}"
    assert "status" not in package.metrics  # the comparison is a linked file, not merged into metrics


def test_models_compare_scores_both_versions_again_on_the_same_images(three_runs: dict[str, Any]) -> None:
    compared: Result = three_runs["compared"]
    assert compared.exit_code == 0, compared.output
    rows = {row["metric"]: row for row in json.loads(compared.stdout)}
    comparison = comparison_of(three_runs["root"], 2)  # what run 3's Compare found: v2 against v1
    same = rows["same images: accuracy"]
    assert (same["v1"], same["v2"]) == (
        comparison["baseline"]["accuracy"],
        comparison["candidate"]["accuracy"],
    )
    assert rows["same images: mcnemar_p"]["delta"] == comparison["mcnemar"]["p_value"]
    assert rows["same images: test_images"]["v2"] == 16
