"""The fields each listing command shows, as plain dicts: the one source of the table and ``-o json``.

Columns are named here once per listing (a local execution's steps in ``pipeline.local.summary``, which
the report shares); ``pipeline.cli.output`` renders them either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pipeline.local.summary import local_step_rows
from pipeline.text import first_line

if TYPE_CHECKING:
    from pipeline.local.executions import Execution
    from pipeline.registry import ModelPackage
    from pipeline.sagemaker.pipelines import ExecutionReport

#: Either engine's executions: the store (or SageMaker) holds the build pipeline's and ``<project>-deploy``'s.
EXECUTION_COLUMNS = ("execution", "status", "started", "failure", "pipeline")
REMOTE_STEP_COLUMNS = ("step", "status", "started", "ended", "failure")
PACKAGE_COLUMNS = ("version", "status", "created", "accuracy", "serving", "approved_by")


def execution_rows(executions: Iterable[Execution]) -> list[dict[str, Any]]:
    """Local executions in the order given (``executions list`` gives them newest first)."""
    return [
        {
            "execution": execution.id,
            "status": execution.record["status"],
            "started": execution.record["started_at"],
            "failure": first_line(execution.record.get("failure_reason")),
            "pipeline": execution.record.get("pipeline_name"),
        }
        for execution in executions
    ]


def local_status(execution: Execution) -> dict[str, Any]:
    record = execution.record
    return {
        "execution": execution.id,
        "pipeline": record.get("pipeline_name"),
        "status": record["status"],
        "started": record["started_at"],
        "ended": record.get("ended_at"),
        "folder": str(execution.folder),
        "failure": record.get("failure_reason"),
        "steps": local_step_rows(execution.step_states(), execution.definition),
    }


def remote_status(report: ExecutionReport) -> dict[str, Any]:
    return {
        "execution": report.arn,
        "status": report.status,
        "started": report.created,
        "failure": report.failure_reason,
        "note": report.steps_unavailable,  # why steps are missing (moto lacks the call)
        "steps": [
            {
                "step": step.name,
                "status": step.status,
                "started": step.started,
                "ended": step.ended,
                "failure": step.failure_reason,
            }
            for step in report.steps
        ],
    }


def package_rows(
    packages: Iterable[ModelPackage], serving: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """One row per version: what an approver weighs (accuracy, where it came from, who decided what and
    when, with which note) and the endpoints that serve it now (``serving``: package ARN → endpoints)."""
    return [
        {
            "version": package.version,
            "status": package.approval_status,
            "created": package.created,
            "accuracy": package.accuracy,
            "serving": ",".join((serving or {}).get(package.arn, [])) or None,
            "approved_by": package.approved_by,
            "approval_time": package.approval_time,
            "note": package.approval_description,
            "source_execution": package.metrics.get("source_execution"),
            "model_data": package.model_data_url,
        }
        for package in packages
    ]
