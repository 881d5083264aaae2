"""``dogpipe report`` for a SageMaker execution: where the artifacts are (the listing, against botocore's
Stubber, since moto lacks ListPipelineExecutionSteps) and their download (against a real moto server)."""

from __future__ import annotations

import io
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.report import ReportInputs, build_report
from pipeline.report.collect import StepArtifacts, inputs_from_files
from pipeline.report.fetch import download_artifacts, plan_artifacts, step_rows
from pipeline.sagemaker.pipelines import StepState, list_execution_steps
from tests.moto_server import BUCKET, REGION, aws_env, hide_aws_config, moto_endpoint  # noqa: F401
from tests.test_report import _section, artifacts  # noqa: F401

ACCOUNT_ARN = "arn:aws:sagemaker:us-east-1:123456789012"
EXECUTION = f"{ACCOUNT_ARN}:pipeline/dogpipe/execution/abc123"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _sagemaker() -> tuple[object, Stubber]:
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="stub", aws_secret_access_key="stub"
    )
    return client, Stubber(client)


def test_plan_follows_each_step_to_its_job_artifacts_and_trials() -> None:
    sagemaker, stub = _sagemaker()
    steps = [
        {
            "StepName": "Tune",
            "StepStatus": "Succeeded",
            "Metadata": {"TuningJob": {"Arn": f"{ACCOUNT_ARN}:hyper-parameter-tuning-job/tune-1"}},
        },
        {
            "StepName": "Train",
            "StepStatus": "Succeeded",
            "Metadata": {"TrainingJob": {"Arn": f"{ACCOUNT_ARN}:training-job/train-1"}},
        },
        {
            "StepName": "Evaluate",
            "StepStatus": "Failed",
            "Metadata": {"ProcessingJob": {"Arn": f"{ACCOUNT_ARN}:processing-job/eval-1"}},
        },
        {
            "StepName": "CheckAccuracy",
            "StepStatus": "Succeeded",
            "Metadata": {"Condition": {"Outcome": "True"}},
        },
    ]
    stub.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": EXECUTION, "SortOrder": "Ascending"},
    )
    trial = {
        "TrainingJobName": "tune-1-001",
        "TrainingJobArn": f"{ACCOUNT_ARN}:training-job/tune-1-001",
        "CreationTime": NOW,
        "TrainingJobStatus": "Completed",
        "TunedHyperParameters": {"lr": "0.003"},
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid_accuracy", "Value": 0.8},
    }
    stub.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {"TrainingJobSummaries": [trial]},
        {"HyperParameterTuningJobName": "tune-1"},
    )
    stub.add_response(
        "describe_training_job",
        {
            "TrainingJobName": "train-1",
            "TrainingJobArn": f"{ACCOUNT_ARN}:training-job/train-1",
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/p/train-1/output/model.tar.gz"},
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "CreationTime": NOW,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/p"},
            "DebugHookConfig": {"S3OutputPath": f"s3://{BUCKET}/debug"},
        },
        {"TrainingJobName": "train-1"},
    )
    stub.add_response(
        "describe_processing_job",
        {
            "ProcessingJobName": "eval-1",
            "ProcessingJobArn": f"{ACCOUNT_ARN}:processing-job/eval-1",
            "ProcessingJobStatus": "Failed",
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
            },
            "AppSpecification": {"ImageUri": "image"},
            "CreationTime": NOW,
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "evaluation",
                        "S3Output": {
                            "S3Uri": f"s3://{BUCKET}/p/eval",
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
        },
        {"ProcessingJobName": "eval-1"},
    )
    with stub:
        plan = plan_artifacts(sagemaker, list_execution_steps(sagemaker, EXECUTION))
    stub.assert_no_pending_responses()
    assert plan.steps == [
        StepArtifacts(
            "Train",
            [f"s3://{BUCKET}/p/train-1/output/model.tar.gz", f"s3://{BUCKET}/p/train-1/output/output.tar.gz"],
            f"s3://{BUCKET}/debug/train-1/debug-output",
        ),
        StepArtifacts("Evaluate", [f"s3://{BUCKET}/p/eval"]),
    ]
    assert plan.trials == [
        {"name": "tune-1-001", "status": "Completed", "objective": 0.8, "hyperparameters": {"lr": "0.003"}}
    ]


def _put_tree(s3: object, folder: Path, prefix: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder).as_posix()}")  # type: ignore[attr-defined]


def test_download_fetches_the_report_files_and_the_trace_into_a_full_report(
    aws_env: object,  # noqa: F811
    artifacts: ReportInputs,  # noqa: F811
    tmp_path: Path,
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.upload_file(str(artifacts.model_archive), BUCKET, "p/train-1/output/model.tar.gz")
    output = io.BytesIO()
    with tarfile.open(fileobj=output, mode="w:gz") as tar:
        tar.add(artifacts.history, "history.json")
        tar.add(artifacts.profiler_dir, "profiler")
    s3.put_object(Bucket=BUCKET, Key="p/train-1/output/output.tar.gz", Body=output.getvalue())
    _put_tree(s3, artifacts.trace_dir, "debug/train-1/debug-output")
    s3.upload_file(str(artifacts.evaluation), BUCKET, "p/eval/evaluation.json")
    s3.upload_file(str(artifacts.rules), BUCKET, "p/rules/rules.json")
    s3.upload_file(str(artifacts.profiler_summary), BUCKET, "p/rules/profiler_summary.json")
    s3.put_object(Bucket=BUCKET, Key="p/data/train/pug/1.jpg", Body=b"not for the report")
    steps = [
        StepArtifacts(
            "Train",
            [f"s3://{BUCKET}/p/train-1/output/model.tar.gz", f"s3://{BUCKET}/p/train-1/output/output.tar.gz"],
            f"s3://{BUCKET}/debug/train-1/debug-output",
        ),
        StepArtifacts("Preprocess", [f"s3://{BUCKET}/p/data"]),
        StepArtifacts("Evaluate", [f"s3://{BUCKET}/p/eval", f"s3://{BUCKET}/p/never-written"]),
        StepArtifacts("DebugRules", [f"s3://{BUCKET}/p/rules/"]),
    ]
    downloaded = download_artifacts(s3, steps, tmp_path / "s3")
    assert not list((tmp_path / "s3").rglob("*.jpg")), "data under an output prefix is not downloaded"
    assert [path.parent.name for path in downloaded.traces] == ["Train"]

    inputs = inputs_from_files(
        "sagemaker run", downloaded.paths, downloaded.traces, artifacts.tuning_trials, tmp_path
    )
    document = build_report(inputs, tmp_path / "report.html").read_text()
    for anchor in (
        "training",
        "gradient-norms-per-layer",
        "debugger-rules",
        "profiler",
        "model-summary",
        "evaluation",
    ):
        assert 'class="note"' not in _section(document, anchor), anchor
    assert "loss per saved step" in _section(document, "training")


def test_report_on_sagemaker_without_credentials_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_aws_config(monkeypatch, tmp_path)
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "engine": "sagemaker",
                "project": {"name": "dogpipe-test", "region": REGION, "bucket": BUCKET},
                "data": {"s3_uri": f"s3://{BUCKET}/data/"},
            }
        )
    )
    result = CliRunner().invoke(
        cli, ["report", EXECUTION, "--config", str(config), "--output-file", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.output and "AWS_ACCESS_KEY_ID" in result.output
    assert not (tmp_path / "r.html").exists()


def test_sagemaker_steps_fill_the_steps_section_in_run_order(tmp_path: Path) -> None:
    """The SageMaker step listing in the local columns: type from what the step ran, duration from its
    times, the failure's first line as the note; steps not started yet go last."""
    later = NOW.replace(minute=5)
    steps = [
        StepState("Evaluate", "Failed", later, later.replace(second=42), "ClientError: no data\nmore"),
        StepState("Deploy", "Starting"),
        StepState("Train", "Succeeded", NOW, later, None, {"TrainingJob": {"Arn": "arn"}}),
    ]
    rows = step_rows(steps)
    assert [row["step"] for row in rows] == ["Train", "Evaluate", "Deploy"]
    assert rows[0] == {
        "step": "Train",
        "type": "TrainingJob",
        "status": "Succeeded",
        "duration_s": 300.0,
        "attempts": None,
        "note": None,
    }
    assert rows[1]["note"] == "ClientError: no data" and rows[1]["duration_s"] == 42.0
    document = build_report(ReportInputs(steps=rows), tmp_path / "report.html")
    section = _section(document.read_text(), "pipeline-steps")
    assert '<tr class="Failed">' in section and "ClientError: no data" in section
