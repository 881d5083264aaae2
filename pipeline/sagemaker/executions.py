"""SageMaker executions of both pipelines (build and deploy) for ``dogpipe executions list|stop|retry``.

Rows carry the fields of the local engine's listing (``execution``, ``status``, ``started``,
``failure``) plus the pipeline and the ARN, so the same table and JSON describe either engine. An
execution is named by its ARN or by its id (the ARN's last part), looked up in both pipelines.
"""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import deploy_pipeline_name
from pipeline.sagemaker.aws import aws_errors, is_not_found
from pipeline.sagemaker.pipelines import PipelineError
from pipeline.text import first_line

STOPPABLE = frozenset({"Executing"})
RETRYABLE = frozenset({"Failed", "Stopped"})


def pipeline_names(cfg: PipelineConfig) -> list[str]:
    return [cfg.project.name, deploy_pipeline_name(cfg)]


def _rows_of(sagemaker: Any, pipeline: str) -> list[dict[str, Any]]:
    rows = []
    try:
        pages = sagemaker.get_paginator("list_pipeline_executions").paginate(
            PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending"
        )
        for page in pages:
            for item in page.get("PipelineExecutionSummaries", []):
                arn = item["PipelineExecutionArn"]
                started = item.get("StartTime")
                rows.append(
                    {
                        "execution": arn.rsplit("/", 1)[-1],
                        "status": item.get("PipelineExecutionStatus"),
                        "started": started.isoformat(timespec="seconds") if started else None,
                        "failure": first_line(item.get("PipelineExecutionFailureReason")),
                        "pipeline": pipeline,
                        "arn": arn,
                    }
                )
    except ClientError as error:
        if is_not_found(error):
            return []  # a pipeline not upserted yet has no executions
        raise
    return rows


def list_sagemaker_executions(sagemaker: Any, cfg: PipelineConfig) -> list[dict[str, Any]]:
    """Executions of the build and deploy pipelines, newest first."""
    with aws_errors():
        rows = [row for name in pipeline_names(cfg) for row in _rows_of(sagemaker, name)]
    return sorted(rows, key=lambda row: row["started"] or "", reverse=True)


def find_execution(sagemaker: Any, cfg: PipelineConfig, execution: str) -> dict[str, Any]:
    """The row of an execution ARN or id; a clear error listing the latest ones when unknown."""
    rows = list_sagemaker_executions(sagemaker, cfg)
    for row in rows:
        if execution in {row["arn"], row["execution"]}:
            return row
    latest = ", ".join(row["execution"] for row in rows[:5]) or "none"
    raise PipelineError(
        f"no execution {execution!r} of {' or '.join(pipeline_names(cfg))} (latest: {latest})"
    )


def stop_execution(sagemaker: Any, cfg: PipelineConfig, execution: str) -> dict[str, Any]:
    """StopPipelineExecution of a running execution; returns its row."""
    row = find_execution(sagemaker, cfg, execution)
    if row["status"] not in STOPPABLE:
        raise PipelineError(f"execution {row['execution']} is {row['status']}; only an Executing one stops")
    with aws_errors():
        sagemaker.stop_pipeline_execution(
            PipelineExecutionArn=row["arn"], ClientRequestToken=str(uuid.uuid4())
        )
    return row


def retry_execution(sagemaker: Any, cfg: PipelineConfig, execution: str) -> dict[str, Any]:
    """RetryPipelineExecution: SageMaker reruns a Failed or Stopped execution from its failed steps."""
    row = find_execution(sagemaker, cfg, execution)
    if row["status"] not in RETRYABLE:
        raise PipelineError(
            f"execution {row['execution']} is {row['status']}; only a Failed or Stopped one can be retried"
        )
    with aws_errors():
        sagemaker.retry_pipeline_execution(
            PipelineExecutionArn=row["arn"], ClientRequestToken=str(uuid.uuid4())
        )
    return row
