"""What a run report is built from: local paths only, so the builder is testable on its own and both the
local engine and ``dogpipe report EXEC`` (which downloads a SageMaker execution's artifacts) can fill it.
Every field is optional: a section whose input is missing says so instead of failing the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ReportInputs:
    title: str = "dogpipe run"
    # The execution's steps in run order: {"step", "type", "status", "duration_s", "attempts", "note"}
    steps: list[dict[str, Any]] = field(default_factory=list)
    history: Path | None = None  # train.py's history.json
    evaluation: Path | None = None  # evaluate.py's evaluation.json
    rules: Path | None = None  # debug_rules.py's rules.json
    profiler_summary: Path | None = None  # debug_rules.py's profiler_summary.json
    profiler_dir: Path | None = None  # train.py's profiler/ (steps.jsonl for the step-time breakdown)
    trace_dir: Path | None = None  # the smdebug trace (gradient norms)
    model_archive: Path | None = None  # model.tar.gz
    tuning_trials: list[dict[str, Any]] = field(
        default_factory=list
    )  # {"name", "hyperparameters", "objective", "status"}
    objective_metric: str = "valid_accuracy"
    prediction: dict[str, Any] | None = (
        None  # an endpoint answer: {"predictions": [{"label", "probability"}]}
    )
    prediction_image: Path | None = None  # the image that was sent
    prediction_source: str | None = None  # where that image came from (its label, in an ImageFolder)
    # What the execution was and what it registered (the approver's summary, the MLflow run):
    execution_id: str | None = None
    execution_arn: str | None = None
    pipeline_name: str | None = None
    status: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    job_names: list[str] = field(default_factory=list)  # Train's job and every tuning trial
    comparison: Path | None = None  # the Compare step's comparison.json (candidate vs production)
    model_version: int | None = None  # the version Register created or found (a cached Train)
    model_package_arn: str | None = None
    package: dict[str, Any] | None = None  # that version as `dogpipe models show` prints it
