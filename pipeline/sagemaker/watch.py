"""``dogpipe start --wait``: follow a SageMaker pipeline execution, printing each change as it is seen.

Each poll describes the execution and lists its steps; a line is printed when a step appears or its
status changes (with the failure reason when it fails) and when the execution's own status changes.
Where the API will not list steps (some proxies; moto), that is said once and only the execution's
status is followed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pipeline.sagemaker.aws import aws_errors
from pipeline.sagemaker.pipelines import RUNNING_STATUSES, PipelineError, StepState, list_execution_steps


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%H:%M:%S")


class ExecutionWatch:
    """What has been printed so far, so that only changes are printed."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.execution_status: str | None = None
        self.step_statuses: dict[str, str] = {}
        self.steps_unavailable = False

    def execution(self, status: str) -> None:
        if status != self.execution_status:
            self.echo(f"{_now()}  {'execution':<24} {status}")
            self.execution_status = status

    def steps(self, steps: list[StepState]) -> None:
        for step in steps:
            if self.step_statuses.get(step.name) == step.status:
                continue
            reason = f"  ({step.failure_reason})" if step.failure_reason else ""
            self.echo(f"{_now()}  {step.name:<24} {step.status}{reason}")
            self.step_statuses[step.name] = step.status

    def poll(self, sagemaker: Any, arn: str) -> str:
        """One look at the execution; prints what changed and returns the execution's status."""
        with aws_errors():
            status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)[
                "PipelineExecutionStatus"
            ]
        if not self.steps_unavailable:
            try:
                self.steps(list_execution_steps(sagemaker, arn))
            except PipelineError as error:
                self.echo(f"{_now()}  {error}; following the execution's status only")
                self.steps_unavailable = True
        self.execution(status)
        return status


def watch_execution(
    sagemaker: Any,
    arn: str,
    echo: Callable[[str], None],
    timeout_s: float,
    poll_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll until the execution leaves Executing/Stopping, printing changes; returns its final status."""
    watch = ExecutionWatch(echo)
    deadline = time.monotonic() + timeout_s
    while True:
        status = watch.poll(sagemaker, arn)
        if status not in RUNNING_STATUSES:
            return status
        if time.monotonic() >= deadline:
            raise PipelineError(
                f"execution still {status} after {timeout_s:.0f} s (it keeps running): "
                f"`dogpipe status {arn}` to follow it"
            )
        sleep(poll_s)
