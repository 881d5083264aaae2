"""Fill ``ReportInputs`` from an execution's recorded job descriptions, on either engine.

A step's artifacts are found from what SageMaker's Describe* calls return for its job (the local engine
records the same documents as step properties): a training job's ``model.tar.gz``, its
``output.tar.gz`` (history, profiler) and its Debugger trace under ``DebugHookConfig.S3OutputPath``; a
processing job's outputs (evaluation, rules). Working from the job descriptions rather than from step
names keeps this independent of how the DAG names its steps, and lets ``dogpipe report`` fetch a
SageMaker execution with the same rules (:mod:`pipeline.report.fetch`).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.report.inputs import ReportInputs

if TYPE_CHECKING:
    from pipeline.report.evidence import Evidence

WANTED = (
    "history.json",
    "evaluation.json",
    "rules.json",
    "profiler_summary.json",
    "comparison.json",
    "model.tar.gz",
    "output.tar.gz",
)
REPORT_NAME = "report.html"


@dataclass(frozen=True)
class StepArtifacts:
    """Where one step's report files live: S3 objects or prefixes (searched for :data:`WANTED` names)
    and, for a training job with the Debugger hook on, the prefix of its smdebug trace."""

    step: str
    uris: list[str] = field(default_factory=list)
    trace_uri: str | None = None


def step_artifacts(step: str, step_type: str, described: Mapping[str, Any]) -> StepArtifacts | None:
    """The artifacts of a ``Training`` or ``Processing`` step from its job description; None otherwise."""
    if step_type == "Training":
        name = described.get("TrainingJobName", "")
        uris = []
        model = (described.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if model:
            uris.append(model)
        output = (described.get("OutputDataConfig") or {}).get("S3OutputPath")
        if output and name:
            uris.append(f"{output.rstrip('/')}/{name}/output/output.tar.gz")
        hook = (described.get("DebugHookConfig") or {}).get("S3OutputPath")
        trace = f"{hook.rstrip('/')}/{name}/debug-output" if hook and name else None
        return StepArtifacts(step, uris, trace)
    if step_type == "Processing":
        outputs = (described.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        uris = [item["S3Output"]["S3Uri"] for item in outputs if (item.get("S3Output") or {}).get("S3Uri")]
        return StepArtifacts(step, uris)
    return None


def trials_from_summaries(summaries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tuning trials in the report's shape, from ``TrainingJobSummaries`` (DescribeHyperParameterTuningJob
    locally, ListTrainingJobsForHyperParameterTuningJob on SageMaker)."""
    trials = []
    for trial in summaries:
        objective = (trial.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
        trials.append(
            {
                "name": trial.get("TrainingJobName"),
                "status": trial.get("TrainingJobStatus"),
                "objective": objective,
                "hyperparameters": dict(trial.get("TunedHyperParameters") or {}),
            }
        )
    return trials


def find_artifacts(paths: Iterable[Path]) -> dict[str, Path]:
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


def inputs_from_files(
    title: str,
    paths: Iterable[Path],
    trace_dirs: Iterable[Path],
    trials: list[dict[str, Any]],
    scratch: Path,
) -> ReportInputs:
    """``ReportInputs`` from local copies of the artifacts; ``output.tar.gz`` is unpacked into ``scratch``
    for the history, the profiler records and (when the hook wrote it there) the trace."""
    found = find_artifacts(paths)
    inputs = ReportInputs(title=title, tuning_trials=trials)
    if "output.tar.gz" in found:
        unpacked = scratch / "training_output"
        with tarfile.open(found["output.tar.gz"]) as tar:
            tar.extractall(unpacked, filter="data")
        found.update({k: v for k, v in find_artifacts([unpacked]).items() if k not in found})
        inputs.profiler_dir = unpacked / "profiler" if (unpacked / "profiler").is_dir() else None
        inputs.trace_dir = unpacked / "tensors" if (unpacked / "tensors").is_dir() else None
    traces = [path for path in trace_dirs if (path / "index").is_dir()]
    if traces:
        inputs.trace_dir = traces[-1]
    inputs.history = found.get("history.json")
    inputs.evaluation = found.get("evaluation.json")
    inputs.rules = found.get("rules.json")
    inputs.profiler_summary = found.get("profiler_summary.json")
    inputs.model_archive = found.get("model.tar.gz")
    inputs.comparison = found.get("comparison.json")
    return inputs


def job_facts(inputs: ReportInputs, step_type: str, described: Mapping[str, Any]) -> None:
    """Note in ``inputs`` the training jobs (Train, trials) and the registered version a step's job
    description names; the same on both engines (Describe* shapes)."""
    if step_type == "Training" and described.get("TrainingJobName"):
        inputs.job_names.append(str(described["TrainingJobName"]))
    for trial in described.get("TrainingJobSummaries") or []:
        if trial.get("TrainingJobName"):
            inputs.job_names.append(str(trial["TrainingJobName"]))
    if step_type == "RegisterModel" and described.get("ModelPackageArn"):
        arn = str(described["ModelPackageArn"])
        inputs.model_package_arn = arn
        version = described.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1]
        inputs.model_version = int(version) if str(version).isdigit() else None


def inputs_from_local_execution(root: Path, execution_id: str | None, scratch: Path) -> ReportInputs:
    """``ReportInputs`` for one local execution (the latest when ``execution_id`` is None)."""
    from pipeline.local.executions import ExecutionStore
    from pipeline.local.summary import local_step_rows
    from pipeline.object_store import ObjectStore

    execution, store = ExecutionStore(root).resolve(execution_id), ObjectStore(root)
    paths: list[Path] = []
    traces: list[Path] = []
    trials: list[dict[str, Any]] = []
    record = execution.load()
    states = execution.step_states(record)
    for name, state in states.items():
        properties = state.get("properties") or {}
        trials += trials_from_summaries(properties.get("TrainingJobSummaries") or [])
        artifacts = step_artifacts(name, state.get("type", ""), properties)
        if artifacts is None:
            continue
        paths += [store.path_for(uri) for uri in artifacts.uris]
        if artifacts.trace_uri:
            traces.append(store.path_for(artifacts.trace_uri))
    title = f"dogpipe execution {execution.id} ({record.status})"
    inputs = inputs_from_files(title, paths, traces, trials, scratch)
    inputs.steps = local_step_rows(states, execution.definition)
    inputs.execution_id, inputs.status = execution.id, record.status
    inputs.pipeline_name = record.pipeline_name
    inputs.parameters = dict(record.parameters)
    for state in states.values():
        if not state.get("cache_hit"):  # a cached step's jobs belong to the execution that ran them
            job_facts(inputs, state.get("type", ""), state.get("properties") or {})
    return inputs


SAMPLE_PREDICTION = "sample_prediction.json"


def keep_sample_prediction(
    folder: Path, reply: dict[str, Any] | None, image: Path | None
) -> tuple[dict[str, Any] | None, Path | None, str | None]:
    """Store a new sample prediction in ``folder`` (the reply, a copy of the image), or read back the one
    stored; returns (reply, image, where the image came from). The copy keeps the report whole after the
    data folder moves, and lets ``dogpipe report`` rewrite a report without losing the prediction."""
    import json
    import shutil

    kept = folder / SAMPLE_PREDICTION
    if reply is not None:
        copy = folder / f"sample{image.suffix.lower()}" if image else None
        if image and copy:
            shutil.copyfile(image, copy)
        record = {
            "reply": reply,
            "image": copy.name if copy else None,
            "source": str(image) if image else None,
        }
        kept.write_text(json.dumps(record, indent=1))
    if not kept.is_file():
        return None, None, None
    record = json.loads(kept.read_text())
    return record["reply"], folder / record["image"] if record.get("image") else None, record.get("source")


def write_local_report(
    root: Path,
    execution_id: str | None,
    out_path: Path | None = None,
    *,
    prediction: dict[str, Any] | None = None,
    prediction_image: Path | None = None,
    pipeline_name: str | None = None,
    evidence: Evidence | None = None,
) -> Path:
    """Write the report of a local execution (default: ``<root>/executions/<id>/report.html``), with the
    sample prediction given here or kept from an earlier call. Without ``execution_id``, the latest one
    (of ``pipeline_name`` when given)."""
    import tempfile

    from pipeline.local.executions import ExecutionStore
    from pipeline.report.builder import build_report

    execution = ExecutionStore(Path(root)).resolve(execution_id, pipeline_name)
    with tempfile.TemporaryDirectory(prefix="dogpipe-report-") as scratch:
        inputs = inputs_from_local_execution(Path(root), execution.id, Path(scratch))
        inputs.prediction, inputs.prediction_image, inputs.prediction_source = keep_sample_prediction(
            execution.folder, prediction, prediction_image
        )
        if evidence is not None:
            evidence.enrich(inputs)
        path = build_report(inputs, out_path or execution.folder / REPORT_NAME)
        if evidence is not None:
            evidence.record(inputs, path)
        return path
