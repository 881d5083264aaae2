"""What a report is written with beyond the execution's files, on both engines: the version the
execution registered (as ``dogpipe models show`` reads it, for the approver's summary), and, once the
report exists, the execution's MLflow run (``pipeline/tracking.py``), linked both ways with that
version: the run carries ``dogpipe.model_version``, the version's metadata the run id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.config.tracking import config_digest, experiment_name
from pipeline.registry import ModelPackage, ModelRegistry, RegistryError
from pipeline.report.inputs import ReportInputs

log = logging.getLogger("dogpipe.report")


def _warn(message: str) -> None:
    log.warning("%s", message)


@dataclass
class Evidence:
    """The registry and tracking store a report is written against (``engine.registry()`` and its
    ``read_json``); ``warn`` says what could not be recorded, in one line each."""

    cfg: PipelineConfig
    registry: ModelRegistry
    read_json: Callable[[str], Any]
    tracking_uri: str | None  # the engine's ``tracking_uri``: None, nothing is recorded
    warn: Callable[[str], None] = _warn

    def registered(self, inputs: ReportInputs) -> ModelPackage | None:
        if inputs.model_version is None:
            return None
        try:
            return self.registry.get(self.cfg.registry.model_package_group, inputs.model_version)
        except RegistryError:
            return None

    def enrich(self, inputs: ReportInputs) -> None:
        """``inputs.package``: the registered version as ``models show`` prints it."""
        from pipeline.lineage import show

        package = self.registered(inputs)
        inputs.package = show(package, [], self.read_json) if package else None

    def record(self, inputs: ReportInputs, report: Path | None) -> str | None:
        """The execution's MLflow run (None when tracking is off or the store failed); the version this
        execution registered gets the run id in its metadata (a version found again by a cached Train
        keeps the run of the execution that registered it)."""
        from pipeline.tracking import RUN_ID_KEY, ExecutionFacts, record_execution

        uri = self.tracking_uri
        if uri is None or inputs.execution_id is None:
            return None
        facts = ExecutionFacts(
            execution_id=inputs.execution_id,
            pipeline=inputs.pipeline_name or self.cfg.project.name,
            status=inputs.status or "",
            execution_arn=inputs.execution_arn,
            config_digest=config_digest(self.cfg),
            parameters=dict(inputs.parameters),
            job_names=list(inputs.job_names),
            history=inputs.history,
            evaluation=inputs.evaluation,
            rules=inputs.rules,
            profiler_summary=inputs.profiler_summary,
            comparison=inputs.comparison,
            report=report,
            model_version=inputs.model_version,
            model_package_arn=inputs.model_package_arn,
        )
        run_id = record_execution(uri, experiment_name(self.cfg), facts, self.warn)
        package = self.registered(inputs)
        source = str((package.metrics if package else {}).get("source_execution") or "")
        registered_here = package is not None and source.endswith(inputs.execution_id)
        if run_id and package and registered_here and package.metrics.get(RUN_ID_KEY) != run_id:
            try:
                self.registry.annotate(package.group, package.version, {RUN_ID_KEY: run_id})
            except Exception as error:  # the report and the run matter more than the link
                self.warn(f"tracking: version {package.version} not linked to run {run_id}: {error}")
        return run_id
