"""Fill ``ReportInputs`` from a local-engine execution: every S3 URI in its steps' recorded properties is
mapped to the local store, and the report's files are found there by name. Working from the recorded
properties (what SageMaker's Describe* calls return) rather than from step names keeps this independent
of how the DAG names its steps."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.report.inputs import ReportInputs

WANTED = (
    "history.json",
    "evaluation.json",
    "rules.json",
    "profiler_summary.json",
    "model.tar.gz",
    "output.tar.gz",
)


def _s3_uris(value: Any) -> Iterator[str]:
    if isinstance(value, str) and value.startswith("s3://"):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _s3_uris(item)
    elif isinstance(value, list):
        for item in value:
            yield from _s3_uris(item)


def find_artifacts(paths: list[Path]) -> dict[str, Path]:
    """The newest file of each wanted name under ``paths`` (files or folders)."""
    found: dict[str, Path] = {}
    for path in paths:
        candidates = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for candidate in candidates:
            if candidate.name in WANTED and candidate.is_file():
                current = found.get(candidate.name)
                if current is None or candidate.stat().st_mtime > current.stat().st_mtime:
                    found[candidate.name] = candidate
    return found


def inputs_from_local_execution(root: Path, execution_id: str | None, scratch: Path) -> ReportInputs:
    """``ReportInputs`` for one execution (the latest when ``execution_id`` is None)."""
    from pipeline.local.executions import ExecutionStore
    from pipeline.local.store import ObjectStore

    executions, store = ExecutionStore(root), ObjectStore(root)
    execution = executions.get(execution_id) if execution_id else executions.latest()
    if execution is None:
        raise LookupError(f"no executions under {root}")
    states = execution.step_states()
    paths = [
        store.path_for(uri) for state in states.values() for uri in _s3_uris(state.get("properties", {}))
    ]
    found = find_artifacts([p for p in paths if p.exists()])
    inputs = ReportInputs(title=f"dogpipe execution {execution.id}")
    if "output.tar.gz" in found:
        unpacked = scratch / "training_output"
        with tarfile.open(found["output.tar.gz"]) as tar:
            tar.extractall(unpacked, filter="data")
        found.update({k: v for k, v in find_artifacts([unpacked]).items() if k not in found})
        inputs.profiler_dir = unpacked / "profiler" if (unpacked / "profiler").is_dir() else None
        inputs.trace_dir = unpacked / "tensors" if (unpacked / "tensors").is_dir() else None
    inputs.history = found.get("history.json")
    inputs.evaluation = found.get("evaluation.json")
    inputs.rules = found.get("rules.json")
    inputs.profiler_summary = found.get("profiler_summary.json")
    inputs.model_archive = found.get("model.tar.gz")
    inputs.tuning_trials = _tuning_trials(states)
    return inputs


def _tuning_trials(states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials recorded by the local tuning step, when it kept them in its properties."""
    trials = []
    for state in states.values():
        for trial in (state.get("properties") or {}).get("TrainingJobSummaries", []) or []:
            objective = (trial.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
            trials.append(
                {
                    "name": trial.get("TrainingJobName"),
                    "status": trial.get("TrainingJobStatus"),
                    "objective": objective,
                    "hyperparameters": {k: v for k, v in (trial.get("TunedHyperParameters") or {}).items()},
                }
            )
    return trials
