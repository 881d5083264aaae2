"""The fields each listing command shows, as plain dicts: the one source of the table and ``-o json``.

Columns are named here once per listing; ``pipeline.cli_output`` renders them either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.local.executions import Execution
    from pipeline.registry import ModelPackage
    from pipeline.remote import ExecutionReport

EXECUTION_COLUMNS = ("execution", "status", "started", "failure")
LOCAL_STEP_COLUMNS = ("step", "type", "status", "duration_s", "attempts", "note")
REMOTE_STEP_COLUMNS = ("step", "status", "started", "ended", "failure")
PACKAGE_COLUMNS = ("version", "status", "created", "accuracy")


def _first_line(text: str | None) -> str | None:
    return text.splitlines()[0] if text else None


def execution_rows(executions: Iterable[Execution]) -> list[dict[str, Any]]:
    """Local executions in the order given (``executions list`` gives them newest first)."""
    return [
        {
            "execution": execution.id,
            "status": execution.record["status"],
            "started": execution.record["started_at"],
            "failure": _first_line(execution.record.get("failure_reason")),
        }
        for execution in executions
    ]


def local_step_rows(states: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A local execution's steps in run order; ``note`` is the cache source or the failure's first line."""
    ordered = sorted(states.values(), key=lambda state: state.get("started_ts", float("inf")))
    return [
        {
            "step": state["name"],
            "type": state.get("type"),
            "status": state["status"],
            "duration_s": None if state.get("duration_s") is None else round(state["duration_s"], 1),
            "attempts": attempts_text(state.get("attempts") or []),
            "note": _first_line(state.get("failure_reason"))
            or (f"cached from {state['cache_hit']}" if state.get("cache_hit") else None),
        }
        for state in ordered
    ]


def attempts_text(attempts: list[Mapping[str, Any]]) -> str | None:
    """``1 Failed [JOB_INTERNAL_ERROR], 2 Succeeded``; None for a step done in one attempt (or cached)."""
    if len(attempts) < 2 and all(item.get("status") == "Succeeded" for item in attempts):
        return None
    return ", ".join(
        f"{item['attempt']} {item['status']}"
        + (f" [{str(item['exception_type']).split('.', 1)[-1]}]" if item.get("exception_type") else "")
        for item in attempts
    )


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
        "steps": local_step_rows(execution.step_states()),
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


def package_rows(packages: Iterable[ModelPackage]) -> list[dict[str, Any]]:
    return [
        {
            "version": package.version,
            "status": package.approval_status,
            "created": package.created,
            "accuracy": package.accuracy,
        }
        for package in packages
    ]
