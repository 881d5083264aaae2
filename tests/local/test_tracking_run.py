"""MLflow tracking on the local engine, end to end at test size: every execution is a run with its
tuning trials and Train nested under it and per-epoch metrics, linked both ways with the version it
registered; a tracking server that does not answer costs a warning, never the run."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config.tracking import local_tracking_uri
from pipeline.registry import LocalRegistry
from tests.local.test_pipeline_run import tiny_config

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, **tracking: Any) -> Path:
    config = tiny_config(tmp_path)
    config["deploy"]["enabled"] = False  # nothing here needs an endpoint
    if tracking:
        config["tracking"] = tracking
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(config: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["run", "--config", str(config), *extra])


def test_each_execution_is_a_run_with_nested_trials_epochs_and_its_version(
    tmp_path: Path, sample_dataset: Path
) -> None:
    import mlflow

    config = _config(tmp_path)
    first = _run(config, "--data", str(sample_dataset))
    assert first.exit_code == 0, first.output
    uri = local_tracking_uri(tmp_path / "engine")
    assert f"tracking: mlflow ui --backend-store-uri {uri}" in first.output
    second = _run(config)  # the job steps come from the cache: a second execution, no new job runs
    assert second.exit_code == 0, second.output

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["dogpipe-local"], output_format="list")
    executions = [run for run in runs if run.data.tags.get("dogpipe.kind") == "execution"]
    assert len(executions) == 2
    # The jobs ran in the first execution only: their runs are its children, the second has none.
    first_run, second_run = sorted(executions, key=lambda run: -len(_children(runs, run)))
    assert not _children(runs, second_run) and second_run.data.tags["dogpipe.status"] == "Succeeded"
    children = _children(runs, first_run)
    assert sorted(run.data.tags["dogpipe.kind"] for run in children) == ["train", "trial", "trial"]
    client = mlflow.MlflowClient(uri)
    for child in children:  # every job logged one point per epoch while it trained
        assert [point.step for point in client.get_metric_history(child.info.run_id, "valid_loss")] == [1]
        assert child.data.params["image_size"] == "48"
    assert [p.step for p in client.get_metric_history(first_run.info.run_id, "train_loss")] == [1]
    assert 0.0 <= first_run.data.metrics["test_accuracy"] <= 1.0
    assert first_run.data.tags["dogpipe.model_version"] == "1"
    verdicts = {key: value for key, value in first_run.data.tags.items() if key.startswith("rule.")}
    assert len(verdicts) == 5, first_run.data.tags  # the five Debugger rules' verdicts
    assert set(verdicts.values()) <= {"NoIssuesFound", "IssuesFound", "Error", "NotRun"}
    assert any(key.startswith("profiler.") for key in first_run.data.tags)
    assert len(first_run.data.tags["dogpipe.config_digest"]) == 64
    assert first_run.data.params["parameter.AccuracyThreshold"] == "0.0"
    artifacts = {item.path for item in client.list_artifacts(first_run.info.run_id)}
    assert {"report.html", "evaluation.json"} <= artifacts
    assert (tmp_path / "engine" / "mlflow" / "artifacts").is_dir()  # beside the store, not in ./mlruns
    version = LocalRegistry(tmp_path / "engine").get("dogpipe-dog-breeds", 1)
    assert version.metrics["mlflow_run_id"] == first_run.info.run_id
    shown = CliRunner().invoke(cli, ["models", "show", "1", "-o", "json", "--config", str(config)])
    assert json.loads(shown.output)["mlflow_run_id"] == first_run.info.run_id
    report = (tmp_path / "engine" / "executions").glob("*/report.html")
    assert any("approver-summary" in path.read_text()[:20000] for path in report)


def _children(runs: list[Any], parent: Any) -> list[Any]:
    return [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the with ends: nothing listens


def test_a_tracking_server_that_is_down_costs_a_warning_not_the_run(
    tmp_path: Path, sample_dataset: Path
) -> None:
    config = _config(tmp_path, uri=f"http://127.0.0.1:{_closed_port()}")
    result = _run(config, "--data", str(sample_dataset))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "tracking: could not" in line]
    assert len(warnings) == 1, result.output
    logs = list((tmp_path / "engine" / "executions").rglob("*algo-1.log"))
    assert logs
    for log in logs:  # each training job said it once and went on
        lines = [line for line in log.read_text().splitlines() if "tracking: could not" in line]
        assert len(lines) == 1, log
