"""A SageMaker execution's job logs as ``dogpipe logs`` prints them: CloudWatch Logs, per job.

A pipeline step names the job it ran in ``ListPipelineExecutionSteps``' metadata; SageMaker writes that
job's output to ``/aws/sagemaker/TrainingJobs`` or ``/aws/sagemaker/ProcessingJobs`` in streams named
``<job>/<host>-<n>``. A tuning step's logs are those of its training jobs. Steps that run no job
(conditions, registration, endpoints) have none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.sagemaker.pipelines import StepState

TRAINING_LOGS = "/aws/sagemaker/TrainingJobs"
PROCESSING_LOGS = "/aws/sagemaker/ProcessingJobs"
#: How far before the newest event seen a poll looks again (event ids drop what was printed).
LATE_EVENTS_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class JobLogs:
    """Where one job's streams are: the step, the log group and the stream-name prefix."""

    step: str
    group: str
    prefix: str


def _name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def job_logs(sagemaker: Any, steps: list[StepState], step: str | None = None) -> list[JobLogs]:
    """The jobs of ``step`` (every step when None), in the order the steps ran."""
    found = []
    for state in steps:
        if step and state.name != step:
            continue
        metadata = state.metadata
        if "TrainingJob" in metadata:
            found.append(JobLogs(state.name, TRAINING_LOGS, _name_of(metadata["TrainingJob"]["Arn"]) + "/"))
        elif "ProcessingJob" in metadata:
            found.append(
                JobLogs(state.name, PROCESSING_LOGS, _name_of(metadata["ProcessingJob"]["Arn"]) + "/")
            )
        elif "TuningJob" in metadata:
            tuning = _name_of(metadata["TuningJob"]["Arn"])
            paginator = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
            for page in paginator.paginate(HyperParameterTuningJobName=tuning):
                for summary in page.get("TrainingJobSummaries", []):
                    found.append(JobLogs(state.name, TRAINING_LOGS, summary["TrainingJobName"] + "/"))
    return found


@dataclass
class CloudWatchTail:
    """FilterLogEvents per job from the last event seen; event ids drop the overlap of two polls."""

    logs: Any
    since_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def new_lines(self, jobs: list[JobLogs]) -> Iterator[str]:
        for job in jobs:
            key = (job.group, job.prefix)
            request: dict[str, Any] = {"logGroupName": job.group, "logStreamNamePrefix": job.prefix}
            if key in self.since_ms:  # a host's line may land after a later one of another host
                request["startTime"] = self.since_ms[key] - LATE_EVENTS_MS
            try:
                pages = self.logs.get_paginator("filter_log_events").paginate(**request)
                events = [
                    event
                    for page in pages
                    for event in page.get("events", [])
                    if str(event.get("logStreamName", "")).startswith(job.prefix)  # moto ignores the prefix
                ]
            except self.logs.exceptions.ResourceNotFoundException:
                continue  # the job has not written yet: no group or stream
            for event in sorted(events, key=lambda item: (item.get("timestamp", 0), item.get("eventId", ""))):
                if event.get("eventId") in self.seen:
                    continue
                self.seen.add(str(event.get("eventId")))
                self.since_ms[key] = max(self.since_ms.get(key, 0), int(event.get("timestamp", 0)))
                stream = event.get("logStreamName", job.prefix)
                yield f"[{job.step}/{stream}] {str(event.get('message', '')).rstrip()}"
