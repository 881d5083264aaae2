"""The approver's summary: ``models approve`` prints it before it acts and refuses a candidate that the
Compare step found worse than production (its comparison.json, else the verdict in the metadata)
without --yes, in one line; with no comparison it says so and decides from the registered metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pipeline.approver import comparison_from_document, summary, summary_lines
from pipeline.cli.main import cli
from pipeline.config import LOCAL_CONFIG
from pipeline.object_store import ObjectStore
from pipeline.registry import LocalRegistry

GROUP = "dog-breeds"
COMPARISON_URI = "s3://dogpipe-local/dogpipe/executions/e2/comparison/comparison.json"


def comparison(delta_accuracy: float, significant: bool = True) -> dict[str, Any]:
    """comparison.json as the Compare step writes it (candidate v2 against production v1)."""
    return {
        "status": "compared",
        "reason": None,
        "production": {"version": 1, "source": "newest approval"},
        "test_images": 40,
        "candidate": {
            "accuracy": 0.75 + delta_accuracy,
            "weighted_f1": 0.74 + delta_accuracy,
            "model_bytes": 1000,
            "latency_ms": 3.0,
        },
        "baseline": {"accuracy": 0.75, "weighted_f1": 0.74, "model_bytes": 1000, "latency_ms": 3.0},
        "delta": {"accuracy": delta_accuracy, "weighted_f1": delta_accuracy},
        "mcnemar": {
            "candidate_only_right": 1,
            "production_only_right": 9,
            "p_value": 0.0215,
            "significant": significant,
            "alpha": 0.05,
        },
        "per_breed": [
            {
                "breed": "beagle",
                "candidate_accuracy": 0.5,
                "production_accuracy": 0.9,
                "delta": -0.4,
                "n": 10,
            },
            {"breed": "pug", "candidate_accuracy": 0.8, "production_accuracy": 0.8, "delta": 0.0, "n": 10},
        ],
        "gate": {"enabled": False, "tolerance": 0.01, "passed": False, "message": "worse by 0.1"},
    }


@pytest.fixture
def local_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"]["root"] = str(tmp_path / "engine")
    raw["registry"]["model_package_group"] = GROUP
    raw["deploy"]["on_approval"] = "off"
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _register(root: Path, accuracy: float, metadata: dict[str, str] | None = None) -> int:
    metrics = {
        "multiclass_classification_metrics": {
            "accuracy": {"value": accuracy},
            "weighted_f1": {"value": accuracy},
        },
        "num_samples": 40,
        "source_execution": "arn:aws:sagemaker:local:000000000000:pipeline/p/execution/e2",
        "code_sha256": "ab" * 32,
        **(metadata or {}),
    }
    registry = LocalRegistry(root)
    return registry.register(GROUP, f"s3://b/{accuracy}/model.tar.gz", "i", metrics=metrics).version


def test_approve_refuses_a_candidate_worse_on_the_same_images_without_yes(
    local_config: Path, tmp_path: Path
) -> None:
    root = tmp_path / "engine"
    _register(root, 0.75)
    LocalRegistry(root).set_approval(GROUP, 1, "Approved")
    # v2 registers *better* metrics than v1, but on the same images the Compare step found it worse.
    ObjectStore(root).put_bytes(COMPARISON_URI, json.dumps(comparison(-0.1)).encode())
    _register(root, 0.8, {"comparison_report": COMPARISON_URI})
    config = ["--config", str(local_config)]
    refused = CliRunner().invoke(cli, ["models", "approve", "2", *config])
    assert refused.exit_code == 1, refused.output
    lines = refused.output.strip().splitlines()
    assert lines[0] == "version 2 (PendingManualApproval)"  # the summary comes first
    assert "accuracy 0.8000, weighted F1 0.8000 on 40 test images" in lines[1]
    assert (
        "WORSE than production v1 on the same 40 test images: accuracy -0.1000, weighted F1 -0.1000, "
        "McNemar p=0.0215 (significant)" in refused.output
    )
    assert "worse on:   beagle (-0.4000)" in refused.output and "pug" not in refused.output
    assert "production gate off (blocked if on)" in refused.output
    assert lines[-1].startswith("Error: version 2 is worse than production version 1 on the same test images")
    assert lines[-1].endswith("approve with --yes to replace it anyway")
    assert LocalRegistry(root).get(GROUP, 2).approval_status == "PendingManualApproval"
    forced = CliRunner().invoke(cli, ["models", "approve", "2", "--yes", *config])
    assert forced.exit_code == 0, forced.output
    assert LocalRegistry(root).get(GROUP, 2).approval_status == "Approved"


def test_the_stored_verdict_decides_when_comparison_json_is_gone(local_config: Path, tmp_path: Path) -> None:
    root = tmp_path / "engine"
    _register(root, 0.75)
    LocalRegistry(root).set_approval(GROUP, 1, "Approved")
    metadata = {
        "comparison_report": "s3://dogpipe-local/gone/comparison.json",
        "comparison_status": "compared",
        "production_version": "1",
        "delta_accuracy": "-0.05",
        "delta_weighted_f1": "0.01",
        "mcnemar_p": "0.4",
        "gate_passed": "true",
    }
    _register(root, 0.9, metadata)
    refused = CliRunner().invoke(cli, ["models", "approve", "2", "--config", str(local_config)])
    assert refused.exit_code == 1 and "WORSE than production v1: accuracy -0.0500" in refused.output


def test_a_better_candidate_and_one_with_no_comparison_are_approved_saying_so(
    local_config: Path, tmp_path: Path
) -> None:
    root = tmp_path / "engine"
    _register(root, 0.75)
    LocalRegistry(root).set_approval(GROUP, 1, "Approved")
    ObjectStore(root).put_bytes(COMPARISON_URI, json.dumps(comparison(0.05, significant=False)).encode())
    _register(
        root, 0.7, {"comparison_report": COMPARISON_URI}
    )  # worse registered metrics: the comparison wins
    _register(root, 0.9)
    config = ["--config", str(local_config)]
    better = CliRunner().invoke(cli, ["models", "approve", "2", *config])
    assert better.exit_code == 0, better.output
    assert "not worse than production v1 on the same 40 test images: accuracy +0.0500" in better.output
    assert "(not significant)" in better.output
    plain = CliRunner().invoke(cli, ["models", "approve", "3", *config])
    assert plain.exit_code == 0, plain.output
    assert "no comparison with production (no Compare step ran for this version)" in plain.output


def test_no_production_is_said_and_decides_nothing() -> None:
    first = {"status": "no_production", "reason": "first version", "delta": None, "mcnemar": None}
    found = comparison_from_document({**comparison(0.0), **first, "per_breed": []})
    assert found is not None and not found.worse
    record = {"version": 1, "status": "PendingManualApproval", "accuracy": 0.5, "rules": []}
    lines = summary_lines(summary(record, found))
    assert "  production: no comparison with production (no_production: first version)" in lines


def _report(tmp_path: Path, with_comparison: bool) -> tuple[str, list[str]]:
    import re

    from pipeline.report import build_report
    from pipeline.report.inputs import ReportInputs

    evaluation = tmp_path / "evaluation.json"
    matrix = {"beagle": {"beagle": 5, "pug": 4, "boxer": 1}, "pug": {"pug": 8, "beagle": 2}}
    evaluation.write_text(json.dumps({"multiclass_classification_metrics": {
        "accuracy": {"value": 0.65}, "weighted_f1": {"value": 0.64}, "confusion_matrix": matrix},
        "num_samples": 20}))  # fmt: skip
    inputs = ReportInputs(
        title="dogpipe execution e2 (Succeeded)",
        steps=[{"step": "AccuracyTooLow", "type": "Fail", "status": "NotExecuted"}],
        evaluation=evaluation,
        status="Succeeded",
        model_version=2,
        package={
            "version": 2,
            "status": "PendingManualApproval",
            "accuracy": 0.65,
            "weighted_f1": 0.64,
            "test_images": 20,
            "rules": [{"rule": "overfit", "status": "NoIssuesFound"}],
            "source_execution": "arn:aws:sagemaker:local:0:pipeline/p/execution/e2",
            "mlflow_run_id": "r1",
        },
    )
    if with_comparison:
        inputs.comparison = tmp_path / "comparison.json"
        inputs.comparison.write_text(json.dumps(comparison(-0.1)))
    html = build_report(inputs, tmp_path / "report.html").read_text()
    return html, re.findall(r'<section id="([a-z-]+)">', html)


def test_the_report_opens_with_the_approvers_summary_then_candidate_vs_production(tmp_path: Path) -> None:
    html, order = _report(tmp_path, with_comparison=True)
    assert order[:3] == ["approver-summary", "candidate-vs-production", "pipeline-steps"]
    summary_html = html.split('<section id="candidate-vs-production">')[0]
    assert "Version <b>2</b> (PendingManualApproval)" in summary_html
    assert "accuracy <b>0.65</b>, weighted F1 <b>0.64</b> on 20 test images" in summary_html
    assert 'class="verdict worse"' in summary_html and "WORSE than production v1" in summary_html
    assert "Breeds that got worse: beagle (-0.4000)" in summary_html
    assert "AccuracyTooLow" in summary_html and "MLflow run" in summary_html
    versus = html.split('<section id="candidate-vs-production">')[1].split("</section>")[0]
    assert '<tr class="worse">' in versus and "pug (4), boxer (1)" in versus  # what beagles were taken for
    assert versus.count("<tr class=") == 1  # pug did not change: only the breed that changed


def test_without_a_comparison_the_report_says_so_and_has_no_versus_section(tmp_path: Path) -> None:
    html, order = _report(tmp_path, with_comparison=False)
    assert order[0] == "approver-summary" and "candidate-vs-production" not in order
    assert "no comparison with production (no Compare step ran for this version)" in html
