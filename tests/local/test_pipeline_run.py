"""The README's main command end to end on the real definition, at test size.

One ``dogpipe run`` (session fixture) is shared by every test here: 4 breeds at 48 px, 2 trials of
1 epoch, 2 steps per epoch. A second run checks that unchanged job steps come from the cache.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from pipeline.cli.main import cli
from pipeline.cli.output import parse_table
from pipeline.config import LOCAL_CONFIG
from pipeline.local.endpoint_records import read_endpoint, stop_endpoint
from pipeline.local.executions import ExecutionStore
from pipeline.registry import LocalRegistry

pytestmark = pytest.mark.slow
JOB_STEPS = ("Preprocess", "Tune", "Train", "Evaluate", "DebugRules")


def tiny_config(root: Path) -> dict[str, Any]:
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["data"]["image_size"] = 48
    config["tuning"].update(max_jobs=2, max_parallel_jobs=1, epochs=1)
    config["training"]["hyperparameters"].update(epochs=1, max_steps_per_epoch=2, batch_size=8, num_workers=0)
    config["debugger"]["hook_config"] = {"save_interval": 1, "eval_save_interval": 1}
    config["evaluation"]["accuracy_threshold"] = 0.0  # the gate must pass on a 2-step model
    config["deploy"]["staging_endpoint"] = "dogpipe-test-staging"
    config["local"] = {"root": str(root / "engine")}
    return config


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory, sample_dataset: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("pipeline_run")
    config_path = root / "local.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(root)))
    runner = CliRunner()
    first = runner.invoke(cli, ["run", "--config", str(config_path), "--data", str(sample_dataset)])
    second = runner.invoke(cli, ["run", "--config", str(config_path)])
    engine_root = root / "engine"
    try:
        yield {"config": config_path, "root": engine_root, "first": first, "second": second}
    finally:
        stop_endpoint(engine_root, "dogpipe-test-staging")


def executions(root: Path) -> list[Any]:
    return ExecutionStore(root).list()


def test_run_goes_from_data_to_a_served_prediction(pipeline_run: dict[str, Any]) -> None:
    result: Result = pipeline_run["first"]
    assert result.exit_code == 0, result.output
    states = executions(pipeline_run["root"])[0].step_states()
    expected = {
        **dict.fromkeys(JOB_STEPS, "Succeeded"),
        "Compare": "Succeeded",  # a job too, never cached: it asks the registry each time
        "CheckRules": "Succeeded",
        "CheckAccuracy": "Succeeded",
        "CheckProduction": "Succeeded",
        "WorseThanProduction": "NotExecuted",
        "Register": "Succeeded",
        "CreateModel": "Succeeded",
        "EndpointConfig": "Succeeded",
        "Deploy": "Succeeded",
        "AccuracyTooLow": "NotExecuted",
        "DebugRulesFailed": "NotExecuted",
    }
    assert {name: state["status"] for name, state in states.items()} == expected
    output = result.output
    assert "best hyperparameters: batch_size=" in output and "test accuracy: " in output
    assert "registered: dogpipe-dog-breeds version 1 (PendingManualApproval)" in output
    assert "endpoint: dogpipe-test-staging at http://127.0.0.1:" in output
    assert "prediction for " in output


def test_training_used_the_best_trial_and_debugger_output_was_uploaded(pipeline_run: dict[str, Any]) -> None:
    states = executions(pipeline_run["root"])[0].step_states()
    best = states["Tune"]["properties"]["BestTrainingJob"]
    summaries = states["Tune"]["properties"]["TrainingJobSummaries"]
    values = [item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for item in summaries]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values)
    hyperparameters = states["Train"]["arguments"]["HyperParameters"]
    assert {name: hyperparameters[name] for name in best["TunedHyperParameters"]} == best[
        "TunedHyperParameters"
    ]
    train = states["Train"]["properties"]
    debug_uri = f"{train['DebugHookConfig']['S3OutputPath']}/{train['TrainingJobName']}/debug-output"
    store_path = pipeline_run["root"] / "s3" / debug_uri.removeprefix("s3://")
    assert any(path.name.endswith(".tfevents") for path in store_path.rglob("*"))


def test_endpoint_answers_ping_and_invocations(pipeline_run: dict[str, Any], sample_dataset: Path) -> None:
    record = read_endpoint(pipeline_run["root"], "dogpipe-test-staging")
    with urllib.request.urlopen(f"{record['url']}/ping", timeout=10) as response:
        assert response.status == 200
    image = next((sample_dataset / "test").rglob("*.jpg"))
    request = urllib.request.Request(
        f"{record['url']}/invocations",
        data=image.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.loads(response.read())
    classes = sorted(path.name for path in (sample_dataset / "train").iterdir())
    (prediction,) = reply["predictions"]
    top = prediction["top_k"]
    assert top and all(item["breed"] in classes for item in top)
    probabilities = [item["probability"] for item in top]
    assert probabilities == sorted(probabilities, reverse=True) and 0.0 < sum(probabilities) <= 1.0 + 1e-6
    # The second run redeployed the same name with the same model: still version 1's package.
    latest = executions(pipeline_run["root"])[1].step_state("Register")["properties"]["ModelPackageArn"]
    assert (
        record["model_package_arn"]
        == latest
        == LocalRegistry(pipeline_run["root"]).get("dogpipe-dog-breeds", 1).arn
    )


def test_registered_model_can_be_approved(pipeline_run: dict[str, Any]) -> None:
    registry = LocalRegistry(pipeline_run["root"])
    package = registry.get("dogpipe-dog-breeds", 1)
    assert package.model_data_url and package.accuracy is not None
    registry.set_approval("dogpipe-dog-breeds", 1, "Approved")
    assert registry.latest_approved("dogpipe-dog-breeds").version == 1


def test_second_run_reuses_every_job_step_from_cache(pipeline_run: dict[str, Any]) -> None:
    result: Result = pipeline_run["second"]
    assert result.exit_code == 0, result.output
    first, second = executions(pipeline_run["root"])[:2]
    states = second.step_states()
    hits = {name: states[name].get("cache_hit") for name in JOB_STEPS}
    # A miss here also happens when training_code/ is edited between the two runs (new code sha).
    assert hits == dict.fromkeys(JOB_STEPS, first.id), f"cache misses: {hits}"
    # The same model artifact is registered once (issue 25): the re-run says which version it is.
    assert (
        "is already dogpipe-dog-breeds version 1 (PendingManualApproval); nothing registered" in result.output
    )
    arns = {run.step_state("Register")["properties"]["ModelPackageArn"] for run in (first, second)}
    assert len(arns) == 1


def test_models_show_traces_a_version_to_its_execution_data_code_trial_and_rules(
    pipeline_run: dict[str, Any],
) -> None:
    """Issue 22's lineage on the local engine: what the Register step recorded, read back by
    `models show`, equals what the execution itself holds."""
    config = str(pipeline_run["config"])
    shown = CliRunner().invoke(cli, ["models", "show", "1", "--config", config, "-o", "json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    first = executions(pipeline_run["root"])[0]
    states = first.step_states()
    assert record["source_execution"].endswith(first.id)
    assert record["training_job"] == states["Train"]["properties"]["TrainingJobName"]
    best = states["Tune"]["properties"]["BestTrainingJob"]
    assert record["best_trial"] == best["TrainingJobName"]
    assert record["hyperparameters"] == " ".join(
        f"{name}={best['TunedHyperParameters'][name]}" for name in sorted(best["TunedHyperParameters"])
    )
    assert record["data_uri"] == first.load().parameters["InputDataUrl"]
    assert record["data_digest"] and f"/by-content/{record['data_digest']}/" in record["data_uri"]
    assert len(record["code_sha256"]) == 64 and record["test_images"] > 0
    assert 0 <= record["accuracy"] <= 1 and record["weighted_f1"] is not None
    assert {rule["rule"] for rule in record["rules"]} >= {"vanishing_gradient", "overfit"}
    assert all(rule["status"] for rule in record["rules"]) and record["rules_blocking"] == 0
    table = CliRunner().invoke(cli, ["models", "show", "1", "--config", config]).output
    assert "training_job:" in table and "RULE" in table and "vanishing_gradient" in table


def test_every_run_leaves_a_report_with_every_section(pipeline_run: dict[str, Any]) -> None:
    import re

    for execution, result in zip(executions(pipeline_run["root"]), ("first", "second"), strict=True):
        report = execution.folder / "report.html"
        assert f"report: {report}" in pipeline_run[result].output
        document = report.read_text()
        sections = dict(re.findall(r'<section id="([a-z-]+)">(.*?)</section>', document, re.S))
        for anchor in ("hyperparameter-tuning", "training", "gradient-norms-per-layer", "evaluation"):
            assert "data:image/png;base64," in sections[anchor], anchor
        for anchor in ("debugger-rules", "profiler", "model-summary", "sample-prediction"):
            assert 'class="note"' not in sections[anchor], anchor
        assert "Best hyperparameters" in sections["hyperparameter-tuning"]
        assert "vanishing_gradient" in sections["debugger-rules"] and "Dataloader" in sections["profiler"]
        assert "data:image/jpeg;base64," in sections["sample-prediction"]  # the image sent to the endpoint


def test_executions_list_and_status_show_the_runs(pipeline_run: dict[str, Any]) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["executions", "list", "--config", str(pipeline_run["config"])])
    assert listed.exit_code == 0, listed.output
    ids = [execution.id for execution in executions(pipeline_run["root"])]
    assert all(execution_id in listed.output for execution_id in ids)
    status = runner.invoke(cli, ["status", ids[0], "--config", str(pipeline_run["config"])])
    assert status.exit_code == 0, status.output
    assert f"execution: {ids[0]}" in status.output and "Deploy" in status.output


def test_a_newcomer_types_commands_without_config_and_they_act_on_the_local_engine(
    pipeline_run: dict[str, Any], sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the demo, in the checkout: no --config, no DOGPIPE_CONFIG, no AWS account. Each command
    answers from the store the run filled (an AWS call would fail: no credentials exist here)."""
    from tests.moto_server import hide_aws_config

    hide_aws_config(monkeypatch, tmp_path)
    monkeypatch.delenv("DOGPIPE_CONFIG", raising=False)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "local.yaml").write_text(pipeline_run["config"].read_text())
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    latest = ExecutionStore(pipeline_run["root"]).latest()
    image = next((sample_dataset / "test").rglob("*.jpg"))

    def ok(*args: str) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, (args, result.output)
        return result.output

    assert f"execution: {latest.id}" in ok("status")
    assert [row["version"] for row in parse_table(ok("models", "list"))] == ["1"]
    if "endpoints" in cli.commands:  # the deploy issue adds `dogpipe endpoints list`
        assert "dogpipe-test-staging" in ok("endpoints", "list")
    classes = {path.name for path in (sample_dataset / "train").iterdir()}
    table = ok("predict", str(image), "--endpoint", "dogpipe-test-staging").splitlines()
    reply = json.loads(ok("predict", str(image), "--endpoint", "dogpipe-test-staging", "-o", "json"))
    top_k = reply["predictions"][0]["top_k"]
    assert {item["breed"] for item in top_k} <= classes  # -o json: the fields of the table
    assert [line.split() for line in table[1:-1]] == [
        [item["breed"], f"{item['probability']:.4f}"] for item in top_k
    ]
    assert table[-1].startswith(f"model {reply['model_version']}")
    report = tmp_path / "report.html"
    assert str(report) in ok("report", "--output-file", str(report)) and latest.id in report.read_text()
    # The README's approvers' sequence, on the same engine from start to end. prod is the stage
    # approvals deploy to (on_approval: prod): `deploy --stage prod` runs the deploy pipeline too.
    try:
        ok("models", "approve", "1", "--note", "checked the report")
        before = len(ExecutionStore(pipeline_run["root"]).list())
        deployed = ok("deploy", "--stage", "prod")
        assert (
            "with dogpipe-local-deploy" in deployed and "dogpipe-prod serves dogpipe-dog-breeds/1" in deployed
        )
        runs = ExecutionStore(pipeline_run["root"]).list()
        assert len(runs) == before + 1 and runs[-1].load().pipeline_name == "dogpipe-local-deploy"
        assert any(name in ok("predict", str(image), "--endpoint", "dogpipe-prod") for name in classes)
        (row,) = [row for row in json.loads(ok("models", "list", "-o", "json")) if row["version"] == 1]
        first_run = executions(pipeline_run["root"])[0]
        assert row["note"] == "checked the report" and row["approved_by"] and row["approval_time"]
        assert row["serving"] == "staging,prod" and row["model_data"].endswith("model.tar.gz")
        assert row["source_execution"].endswith(first_run.id)
    finally:
        stop_endpoint(pipeline_run["root"], "dogpipe-prod")


def _unservable_copy(root: Path, model_data_url: str) -> str:
    """The same model with its normalisation std set to 0: it loads and answers /ping, and every
    prediction is NaN (what a broken training run can hand over). Returns its store URI."""
    import io
    import tarfile

    from pipeline.object_store import ObjectStore

    store = ObjectStore(root)
    source = store.path_for(model_data_url)
    target_uri = model_data_url.replace("model.tar.gz", "nan-std/model.tar.gz")
    buffer = io.BytesIO()
    with tarfile.open(source) as original, tarfile.open(fileobj=buffer, mode="w:gz") as copy:
        for member in original.getmembers():
            data = original.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("model_info.json"):
                info = json.loads(data)
                data = json.dumps({**info, "std": [0.0] * len(info["std"])}).encode()
                member.size = len(data)
            copy.addfile(member, io.BytesIO(data) if data is not None else None)
    store.put_bytes(target_uri, buffer.getvalue())
    return target_uri


def test_approval_runs_the_deploy_pipeline_and_a_failing_version_leaves_the_old_one_serving(
    pipeline_run: dict[str, Any], sample_dataset: Path
) -> None:
    """Issue 12 locally: approve → the deploy pipeline puts that version on prod; approving a newer
    version whose model fails its smoke prediction fails the deploy execution with the reason and
    leaves the old version serving; rejecting deploys nothing; `endpoints list` shows what serves where."""
    root, config = pipeline_run["root"], str(pipeline_run["config"])
    runner = CliRunner()
    registry = LocalRegistry(root)
    try:
        approved = runner.invoke(cli, ["models", "approve", "1", "--config", config])
        assert approved.exit_code == 0, approved.output
        assert "Succeeded: dogpipe-prod serves dogpipe-dog-breeds/1 at http://127.0.0.1:" in approved.output
        serving = read_endpoint(root, "dogpipe-prod")
        image = next((sample_dataset / "test").rglob("*.jpg"))
        predicted = runner.invoke(
            cli, ["predict", str(image), "--endpoint", "dogpipe-prod", "--config", config]
        )
        assert "model dogpipe-dog-breeds/1" in predicted.output

        broken = registry.register(
            "dogpipe-dog-breeds",
            _unservable_copy(root, registry.get("dogpipe-dog-breeds", 1).model_data_url),
            "",
        )
        failed = runner.invoke(cli, ["models", "approve", str(broken.version), "--config", config])
        assert failed.exit_code == 1, failed.output
        assert "smoke prediction failed" in failed.output
        deploy_run = ExecutionStore(root).latest().load()
        assert deploy_run.pipeline_name.endswith("-deploy") and deploy_run.status == "Failed"
        assert (
            "Deploy" in deploy_run.failure_reason and "smoke prediction failed" in deploy_run.failure_reason
        )
        assert read_endpoint(root, "dogpipe-prod") == serving
        again = runner.invoke(cli, ["predict", str(image), "--endpoint", "dogpipe-prod", "--config", config])
        assert "model dogpipe-dog-breeds/1" in again.output

        before = len(ExecutionStore(root).list())
        rejected = runner.invoke(cli, ["models", "reject", str(broken.version), "--config", config])
        assert rejected.exit_code == 0 and len(ExecutionStore(root).list()) == before

        listed = runner.invoke(cli, ["endpoints", "list", "--config", config, "--output", "json"])
        rows = {row["name"]: row for row in json.loads(listed.output)}
        assert (
            rows["dogpipe-prod"]["model_version"] == "dogpipe-dog-breeds/1" and rows["dogpipe-prod"]["alive"]
        )
        assert rows["dogpipe-test-staging"]["alive"]
    finally:
        stop_endpoint(root, "dogpipe-prod")


def _deploy_step_started(root: Path, before: int) -> Any:
    """The newest deploy execution started after ``before`` executions, once its Deploy step runs."""
    runs = ExecutionStore(root).list()[before:]
    for execution in runs:
        if (execution.folder / "steps" / "Deploy" / "state.json").is_file():
            return execution
    return None


def test_resuming_a_killed_deploy_does_not_undo_a_later_approval(
    pipeline_run: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 23 item 2 as reported: SIGKILL `models approve 2` while its deploy switches the endpoint,
    approve 2 again, then 1 (prod serves 1); `run --resume` of the killed deploy must not put 2 back."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root, config = pipeline_run["root"], str(pipeline_run["config"])
    registry = LocalRegistry(root)
    group = "dogpipe-dog-breeds"
    two = registry.register(group, registry.get(group, 1).model_data_url, "").version
    runner = CliRunner()

    def approve(version: int) -> None:
        result = runner.invoke(cli, ["models", "approve", str(version), "--config", config])
        assert result.exit_code == 0, result.output

    try:
        approve(1)
        before = len(ExecutionStore(root).list())
        killed = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "models", "approve", str(two), "--config", config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while (execution := _deploy_step_started(root, before)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert execution is not None, "the deploy never reached its Deploy step"
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        reason = execution.load().failure_reason
        assert execution.load().status == "Failed" and "still the newest approval" in reason, reason

        approve(two)
        approve(1)
        serving = read_endpoint(root, "dogpipe-prod")
        assert serving["model_version"] == f"{group}/1"

        resumed = runner.invoke(cli, ["run", "--resume", execution.id, "--config", config])
        assert resumed.exit_code == 1, resumed.output
        assert f"version 1 was approved for prod after this deploy of version {two} started" in resumed.output
        assert read_endpoint(root, "dogpipe-prod") == serving
        listed = runner.invoke(cli, ["endpoints", "list", "--config", config, "-o", "json"])
        assert [row["name"] for row in json.loads(listed.output) if row["name"] == "dogpipe-prod"] == [
            "dogpipe-prod"
        ]
    finally:
        stop_endpoint(root, "dogpipe-prod")
