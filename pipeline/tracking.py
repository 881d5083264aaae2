"""Every execution as one MLflow run: what the engine records after the jobs have recorded theirs.

The training jobs log their own runs while they train (``training_code/tracking.py``: a run per
tuning trial and for Train, named after the job, with per-epoch metrics). They cannot know their
pipeline execution without defeating step caching, so this side, which does (the local engine after
``dogpipe run``, ``dogpipe report`` for a SageMaker execution), records the execution's run:

- tags ``dogpipe.execution_id``, ``dogpipe.pipeline``, ``dogpipe.status``, ``dogpipe.config_digest``,
  each Debugger rule's and profiler rule's verdict, the registered version;
- params: the execution's pipeline parameters and the hyperparameters Train used;
- metrics: test accuracy, weighted F1 and the number of test images, Train's per-epoch curve;
- artifacts: the report, ``evaluation.json`` and ``comparison.json`` where they exist;
- and nests the job runs under it (``mlflow.parentRunId``), found by their ``dogpipe.job_name`` tags.

Recording the same execution again (``dogpipe report`` twice) updates the same run. Any failure of the
store is one warning line and ``None``: tracking never changes an execution's outcome. MLflow is
imported here only when something is recorded, never while a definition is built.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("dogpipe.tracking")

EXECUTION_TAG = "dogpipe.execution_id"
JOB_TAG = "dogpipe.job_name"  # what training_code/tracking.py tags a job's run with
KIND_TAG = "dogpipe.kind"
VERSION_TAG = "dogpipe.model_version"
#: Stores that failed in this process: said once, not asked again (each try may cost a timeout).
_UNAVAILABLE: set[str] = set()
#: The registry's customer-metadata key naming the execution's run (``models show`` prints it).
RUN_ID_KEY = "mlflow_run_id"


@dataclass
class ExecutionFacts:
    """What one execution's run records (local files only; every field optional but the id)."""

    execution_id: str
    pipeline: str
    status: str = ""
    execution_arn: str | None = None
    config_digest: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    job_names: list[str] = field(default_factory=list)  # Train and every tuning trial
    history: Path | None = None
    evaluation: Path | None = None
    rules: Path | None = None
    profiler_summary: Path | None = None
    comparison: Path | None = None
    report: Path | None = None
    model_version: int | None = None
    model_package_arn: str | None = None


def ui_command(uri: str) -> str:
    """The line that shows the runs in a browser."""
    return f"mlflow ui --backend-store-uri {uri}"


def _client(uri: str) -> Any:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for name in ("alembic", "mlflow.store"):  # a fresh store's migrations say a lot at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def artifact_location(uri: str) -> str | None:
    """Where a SQLite store's artifacts go: beside its file (MLflow's default, ``./mlruns``, is the
    working directory of whoever created the experiment); a server decides for itself (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location(client.tracking_uri)))


def prepare_store(uri: str, experiment: str, warn: Callable[[str], None]) -> bool:
    """Create the store's tables and the experiment once, before jobs start side by side (two trials
    creating a fresh SQLite store at once would race); False, with one warning, when it cannot."""
    try:
        _experiment_id(_client(uri), experiment)
    except Exception as error:
        _UNAVAILABLE.add(uri)
        warn(_unavailable(uri, "open the tracking store", error))
        return False
    return True


def _unavailable(uri: str, what: str, error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return f"tracking: could not {what} at {uri} ({type(error).__name__}: {first}); the run is not tracked"


def record_execution(
    uri: str, experiment: str, facts: ExecutionFacts, warn: Callable[[str], None]
) -> str | None:
    """Record ``facts`` as the execution's run (created, or found again by its execution id) and nest
    the job runs under it; the run id, or None (and one warning) when the store fails. A store that
    already failed in this process is not asked again (its warning was said)."""
    if uri in _UNAVAILABLE:
        return None
    try:
        client = _client(uri)
        experiment_id = _experiment_id(client, experiment)
        run_id = _execution_run(client, experiment_id, facts)
        _log(client, run_id, facts)
        _nest_jobs(client, experiment_id, run_id, facts.job_names)
        client.set_terminated(run_id, status=_run_status(facts.status))
    except Exception as error:
        _UNAVAILABLE.add(uri)
        warn(_unavailable(uri, f"record execution {facts.execution_id}", error))
        return None
    return str(run_id)


def _execution_run(client: Any, experiment_id: str, facts: ExecutionFacts) -> str:
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{EXECUTION_TAG}` = '{facts.execution_id}'", max_results=1
    )
    if found:
        return str(found[0].info.run_id)
    tags = {EXECUTION_TAG: facts.execution_id, KIND_TAG: "execution", "dogpipe.pipeline": facts.pipeline}
    run = client.create_run(experiment_id, run_name=f"{facts.pipeline} {facts.execution_id}", tags=tags)
    return str(run.info.run_id)


def _read(path: Path | None) -> Any:
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None


def _log(client: Any, run_id: str, facts: ExecutionFacts) -> None:
    from mlflow.entities import Metric, Param, RunTag

    tags = {"dogpipe.pipeline": facts.pipeline, "dogpipe.status": facts.status}
    tags.update({key: value for key, value in _optional_tags(facts).items() if value is not None})
    tags.update(_verdicts(facts))
    params = {f"parameter.{key}": value for key, value in facts.parameters.items()}
    history = _read(facts.history) or {}
    metrics: list[Metric] = []
    for epoch in history.get("epochs") or []:
        for name in ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy"):
            if isinstance(epoch.get(name), (int, float)):
                metrics.append(Metric(name, float(epoch[name]), 0, int(epoch.get("epoch", 0))))
    for name, value in _test_metrics(_read(facts.evaluation)).items():
        metrics.append(Metric(name, value, 0, 0))
    existing = client.get_run(run_id).data.params
    fresh = [Param(k, str(v)[:6000]) for k, v in sorted(params.items()) if k not in existing]
    client.log_batch(
        run_id,
        metrics=metrics,
        params=fresh,
        tags=[RunTag(key, str(value)) for key, value in sorted(tags.items())],
    )
    for path in (facts.report, facts.evaluation, facts.comparison):
        if path is not None and path.is_file():
            client.log_artifact(run_id, str(path))


def _optional_tags(facts: ExecutionFacts) -> dict[str, Any]:
    comparison = _read(facts.comparison) or {}
    return {
        "dogpipe.execution_arn": facts.execution_arn,
        "dogpipe.config_digest": facts.config_digest,
        VERSION_TAG: facts.model_version,
        "dogpipe.model_package_arn": facts.model_package_arn,
        "dogpipe.comparison": comparison.get("status"),
    }


def _test_metrics(evaluation: Any) -> dict[str, float]:
    if not isinstance(evaluation, Mapping):
        return {}
    section = evaluation.get("multiclass_classification_metrics") or {}
    found: dict[str, float] = {}
    for name in ("accuracy", "weighted_f1"):
        value = (section.get(name) or {}).get("value") if isinstance(section.get(name), Mapping) else None
        if isinstance(value, (int, float)):
            found[f"test_{name}"] = float(value)
    if isinstance(evaluation.get("num_samples"), int):
        found["test_images"] = float(evaluation["num_samples"])
    return found


def _verdicts(facts: ExecutionFacts) -> dict[str, str]:
    """``rule.<name>`` and ``profiler.<name>`` tags: each Debugger and profiler rule's verdict."""
    tags: dict[str, str] = {}
    for prefix, document in (("rule", _read(facts.rules)), ("profiler", _read(facts.profiler_summary))):
        items = (document or {}).get("rules") if isinstance(document, Mapping) else None
        for item in items or []:
            if isinstance(item, Mapping) and item.get("rule") and item.get("status"):
                tags[f"{prefix}.{item['rule']}"] = str(item["status"])
    return tags


def _nest_jobs(client: Any, experiment_id: str, run_id: str, job_names: list[str]) -> None:
    if not job_names:
        return
    for name in sorted(set(job_names)):  # tag filters take one value each (no IN)
        for run in client.search_runs([experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{name}'"):
            if run.data.tags.get("mlflow.parentRunId") != run_id:
                client.set_tag(run.info.run_id, "mlflow.parentRunId", run_id)


def _run_status(status: str) -> str:
    return {"Succeeded": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}.get(status, "FINISHED")
