"""``dogpipe report EXEC_ARN`` for a SageMaker execution: find its artifacts, download them, fill
``ReportInputs`` with the same rules as a local execution (:mod:`pipeline.report.collect`).

Two halves, tested apart: :func:`plan_artifacts` asks SageMaker where each step's artifacts are
(ListPipelineExecutionSteps, then DescribeTrainingJob / DescribeProcessingJob /
ListTrainingJobsForHyperParameterTuningJob); :func:`download_artifacts` copies what that plan names
from S3 into a scratch folder, taking only the files the report reads from prefixes that also hold
data (a preprocessing output, say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipeline.report.collect import (
    WANTED,
    StepArtifacts,
    inputs_from_files,
    job_facts,
    step_artifacts,
    trials_from_summaries,
)
from pipeline.report.inputs import ReportInputs
from pipeline.sagemaker.aws import AwsClients, aws_errors, is_not_found
from pipeline.sagemaker.pipelines import PipelineError, StepState, execution_report
from pipeline.text import first_line


@dataclass
class ArtifactPlan:
    """What to download for a report, and the tuning trials (already complete, no download needed)."""

    steps: list[StepArtifacts] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    job_names: list[str] = field(default_factory=list)  # the training jobs' names (their MLflow runs)


@dataclass
class Downloaded:
    """Local copies: files and folders searched for the report's files, and smdebug trace folders."""

    paths: list[Path] = field(default_factory=list)
    traces: list[Path] = field(default_factory=list)


def _job_name(job_arn: str) -> str:
    return job_arn.rsplit("/", 1)[-1]


def plan_artifacts(sagemaker: Any, steps: list[StepState]) -> ArtifactPlan:
    """Each job step's artifact URIs, from the jobs the steps ran (``list_execution_steps``)."""
    plan = ArtifactPlan()
    for step in steps:
        metadata = step.metadata
        if "TrainingJob" in metadata:
            described = sagemaker.describe_training_job(
                TrainingJobName=_job_name(metadata["TrainingJob"]["Arn"])
            )
            plan.steps.append(step_artifacts(step.name, "Training", described))  # type: ignore[arg-type]
            plan.job_names.append(str(described.get("TrainingJobName", "")))
        elif "ProcessingJob" in metadata:
            described = sagemaker.describe_processing_job(
                ProcessingJobName=_job_name(metadata["ProcessingJob"]["Arn"])
            )
            plan.steps.append(step_artifacts(step.name, "Processing", described))  # type: ignore[arg-type]
        elif "TuningJob" in metadata:
            paginator = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
            pages = paginator.paginate(HyperParameterTuningJobName=_job_name(metadata["TuningJob"]["Arn"]))
            plan.trials += trials_from_summaries(
                summary for page in pages for summary in page.get("TrainingJobSummaries", [])
            )
    return plan


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _keys(s3: Any, uri: str) -> list[str]:
    """The object ``uri`` names, else the objects under it as a prefix (none when neither exists)."""
    bucket, key = _split(uri)
    if key and not key.endswith("/"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
            return [key]
        except ClientError as error:
            if not is_not_found(error):
                raise
    prefix = key.rstrip("/") + "/" if key else ""
    paginator = s3.get_paginator("list_objects_v2")
    return [
        item["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


def _fetch(s3: Any, uri: str, target: Path, only_wanted: bool) -> int:
    bucket, base = _split(uri)
    count = 0
    for key in _keys(s3, uri):
        if only_wanted and key.rsplit("/", 1)[-1] not in WANTED:
            continue
        relative = key[len(base) :].lstrip("/") or key.rsplit("/", 1)[-1]
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(local))
        count += 1
    return count


def download_artifacts(s3: Any, steps: list[StepArtifacts], scratch: Path) -> Downloaded:
    """Copy each step's artifacts under ``scratch/<step>/``; a URI with nothing behind it is skipped (a
    failed run's report shows what exists)."""
    downloaded = Downloaded()
    with aws_errors():
        for step in steps:
            for index, uri in enumerate(step.uris):
                target = scratch / step.step / f"artifact-{index}"
                if _fetch(s3, uri, target, only_wanted=True):
                    downloaded.paths.append(target)
            if step.trace_uri:
                target = scratch / step.step / "debug-output"
                if _fetch(s3, step.trace_uri, target, only_wanted=False):
                    downloaded.traces.append(target)
    return downloaded


def inputs_from_sagemaker_execution(
    clients: AwsClients, cfg: Any, execution_arn: str | None, scratch: Path
) -> ReportInputs:
    """``ReportInputs`` for a SageMaker execution (the pipeline's latest when ``execution_arn`` is None).

    Credentials, the ARN and the step listing are checked before anything is downloaded."""
    described = execution_report(clients, cfg, execution_arn)
    if described.steps_unavailable:
        raise PipelineError(f"cannot report on {described.arn}: {described.steps_unavailable}")
    with aws_errors():
        plan = plan_artifacts(clients.sagemaker, described.steps)
    downloaded = download_artifacts(clients.s3, plan.steps, scratch / "s3")
    title = f"dogpipe execution {described.arn.rsplit('/', 1)[-1]} ({described.status})"
    inputs = inputs_from_files(title, downloaded.paths, downloaded.traces, plan.trials, scratch)
    inputs.steps = step_rows(described.steps)
    inputs.execution_id, inputs.execution_arn = described.arn.rsplit("/", 1)[-1], described.arn
    inputs.pipeline_name, inputs.status = cfg.project.name, described.status
    inputs.job_names = plan.job_names + [str(trial["name"]) for trial in plan.trials if trial.get("name")]
    for step in described.steps:
        registered = step.metadata.get("RegisterModel") or {}
        if registered.get("Arn"):
            job_facts(inputs, "RegisterModel", {"ModelPackageArn": registered["Arn"]})
    return inputs


def step_rows(steps: list[StepState]) -> list[dict[str, Any]]:
    """SageMaker's step listing in the columns of a local execution's (``local.summary``), oldest first;
    the type is the kind of what the step ran (``TrainingJob``, ``Condition``, ...)."""
    ordered = sorted(steps, key=lambda step: step.started or datetime.max.replace(tzinfo=timezone.utc))
    return [
        {
            "step": step.name,
            "type": next(iter(step.metadata), None),
            "status": step.status,
            "duration_s": round((step.ended - step.started).total_seconds(), 1)
            if step.started and step.ended
            else None,
            "attempts": None,
            "note": first_line(step.failure_reason),
        }
        for step in ordered
    ]
