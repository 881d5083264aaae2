"""The local engine behind the ``Engine`` interface (``pipeline/engines.py``): executions under
``local.root``, the local registry, endpoint servers on this machine, and ``dogpipe run``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline.config import PipelineConfig
from pipeline.engines import (
    EXECUTION_COLUMNS,
    MONITOR_COLUMNS,
    RUNNING_STATUSES,
    EndpointSample,
    Listing,
    LogFeed,
    MonitorReport,
    RunOutcome,
    StatusProbe,
)
from pipeline.errors import DogpipeError
from pipeline.text import first_line

if TYPE_CHECKING:
    from pipeline.local.executions import Execution
    from pipeline.registry import LocalRegistry, ModelPackage

ENDPOINT_COLUMNS = ("name", "model_version", "url", "pid", "alive")


@dataclass
class LocalFacade:
    """The local engine as every command sees it."""

    name: ClassVar[str] = "local"
    verbs: ClassVar[frozenset[str]] = frozenset({"run", "endpoints stop", "monitor run", "monitor status"})
    instead: ClassVar[Mapping[str, str]] = {
        "executions stop": "Ctrl-C or kill the `dogpipe run`",
        "executions retry": "`dogpipe run --resume EXECUTION`",
        "endpoints delete": "`dogpipe endpoints stop NAME` (local endpoints are servers)",
    }
    cfg: PipelineConfig

    def __init__(
        self,
        cfg: PipelineConfig,
        *,
        region: str | None = None,
        bucket: str | None = None,
        role_arn: str | None = None,
    ) -> None:
        del region, bucket, role_arn  # AWS settings: nothing here reaches AWS
        self.cfg = cfg
        self.root = Path(cfg.local.root)

    # -- configuration and the registry -------------------------------------------------------------

    @classmethod
    def config_problems(cls, cfg: PipelineConfig) -> list[str]:
        return []

    def registry(self) -> LocalRegistry:
        from pipeline.registry import LocalRegistry

        return LocalRegistry(self.root)

    def read_json(self, uri: str) -> Any:
        import json

        from pipeline.object_store import ObjectStore, StoreError

        try:
            return json.loads(ObjectStore(self.root).read_text(uri))
        except (StoreError, OSError, ValueError):
            return None

    def fetch(self, uri: str, destination: Path) -> Path | None:
        from pipeline.object_store import ObjectStore, StoreError

        try:
            return ObjectStore(self.root).get(uri, destination)
        except (StoreError, OSError):
            return None

    @property
    def tracking_uri(self) -> str | None:
        from pipeline.config.tracking import local_tracking_uri, store_uri

        return store_uri(self.cfg, local_tracking_uri(self.root))

    def version_choices(self) -> list[tuple[str, str]]:
        packages = self.registry().list_packages(self.cfg.registry.model_package_group)
        return [(str(package.version), package.approval_status) for package in packages]

    # -- executions ---------------------------------------------------------------------------------

    def _store(self) -> Any:
        from pipeline.local.executions import ExecutionStore

        return ExecutionStore(self.root)

    def executions(self) -> Listing:
        store = self._store()
        rows = [_execution_row(execution) for execution in reversed(store.list())]
        return Listing(rows, EXECUTION_COLUMNS, f"no executions under {store.folder}")

    def execution_status(self, execution: str | None) -> StatusProbe:
        from pipeline.local.summary import LOCAL_STEP_COLUMNS

        found = self._store().resolve(execution, self.cfg.project.name)
        return StatusProbe(lambda: _status_record(found), LOCAL_STEP_COLUMNS)

    def execution_choices(self) -> list[tuple[str, str]]:
        choices = []
        for execution in reversed(self._store().list()):
            record = execution.load()
            choices.append((execution.id, f"{record.status} {record.started_at}"))
        return choices

    def logs(self, execution: str, step: str | None) -> LogFeed:
        from pipeline.local.job_logs import LogTail, log_sources, step_names

        found = self._store().get(execution)
        if step and step not in step_names(found):
            known = ", ".join(step_names(found))
            raise DogpipeError(f"execution {found.id} has no step {step!r} (steps: {known})")
        tail = LogTail()

        def lines(final: bool) -> Iterator[str]:
            return tail.new_lines(log_sources(found, step), final)

        return LogFeed(lines, lambda: found.load().status in RUNNING_STATUSES, 0.5)

    def write_report(
        self,
        execution: str | None,
        output: Path | None,
        *,
        sample: EndpointSample | None = None,
    ) -> Path:
        from pipeline.report.collect import write_local_report
        from pipeline.report.evidence import Evidence

        try:
            return write_local_report(
                self.root,
                execution,
                output,
                prediction=sample.reply if sample else None,
                prediction_image=sample.image if sample else None,
                pipeline_name=self.cfg.project.name,
                evidence=Evidence(self.cfg, self.registry(), self.read_json, self.tracking_uri),
            )
        except LookupError as error:
            raise DogpipeError(str(error)) from None

    # -- dogpipe run --------------------------------------------------------------------------------

    def run(
        self,
        *,
        data_dir: Path | None,
        params: Sequence[str],
        resume: str | None,
        echo: Callable[[str], None],
    ) -> RunOutcome:
        """Start or resume an execution here (``params``: ``NAME=VALUE`` overrides); a ``--resume`` of a
        finished one is said, not rerun."""
        from pipeline.definition.parameters import parse_param_pairs
        from pipeline.local.errors import NothingToResume
        from pipeline.local.run import run_local
        from pipeline.local.summary import highlights, steps_table
        from pipeline.object_store import ObjectStore

        try:
            result = run_local(
                self.cfg, data_dir=data_dir, params=parse_param_pairs(params), resume=resume, echo=echo
            )
        except NothingToResume as nothing:
            return RunOutcome(execution_id=resume, status="Succeeded", note=str(nothing))
        steps = list(result.steps.values())
        failed = [state for state in steps if state.get("status") == "Failed"]
        gates = [state["name"] for state in failed if state.get("type") == "Fail"]
        summary = [steps_table(result.steps, result.execution.definition)]
        summary += highlights(result.execution, ObjectStore(self.root))
        return RunOutcome(
            execution_id=result.execution.id,
            status=result.status,
            failure_reason=result.failure_reason,
            summary=summary,
            gates=gates if failed and len(gates) == len(failed) else [],
            endpoints=[
                state["arguments"]["EndpointName"]
                for state in steps
                if state.get("type") == "Endpoint" and state.get("status") == "Succeeded"
            ],
        )

    def test_image(self, data_dir: Path | None) -> Path | None:
        """One test image of the data a run used, to show what its endpoint answers."""
        from pipeline.local.run import find_test_image

        return find_test_image(self.cfg, data_dir)

    def endpoint_url(self, endpoint: str) -> str:
        from pipeline.local.endpoint_records import EndpointError, read_endpoint

        try:
            return str(read_endpoint(self.root, endpoint)["url"])
        except EndpointError as error:
            raise DogpipeError(str(error)) from None

    # -- endpoints ----------------------------------------------------------------------------------

    def endpoints(self) -> Listing:
        from pipeline.local.endpoint_records import list_endpoints

        rows = [row.to_json() for row in list_endpoints(self.root)]
        return Listing(rows, ENDPOINT_COLUMNS, f"no local endpoints under {self.root / 'endpoints'}")

    def endpoint_choices(self) -> list[tuple[str, str]]:
        from pipeline.local.endpoint_records import known_endpoints

        return [(name, "local") for name in known_endpoints(self.root)]

    def serving(self, endpoints: list[str]) -> dict[str, str | None]:
        from pipeline.local.endpoint_records import list_endpoints

        alive = {row.name: row.model_package_arn for row in list_endpoints(self.root) if row.alive}
        return {name: alive.get(name) for name in endpoints}

    def invoke(self, endpoint: str, data: bytes, content_type: str) -> dict[str, Any]:
        from pipeline.serving.client import invoke_http

        return invoke_http(self.endpoint_url(endpoint), data, content_type)

    def stop_endpoints(self, endpoint: str | None) -> list[tuple[str, bool]]:
        """Stop one endpoint's server (or every one when ``endpoint`` is None): (name, was running)."""
        from pipeline.local.endpoint_records import known_endpoints, stop_endpoint

        names = known_endpoints(self.root)
        if endpoint is not None:
            if endpoint not in names:
                self.endpoint_url(endpoint)  # raises, listing the known names
            names = [endpoint]
        return [(name, stop_endpoint(self.root, name)) for name in names]

    # -- monitoring ---------------------------------------------------------------------------------

    def monitor_run(
        self, endpoint: str | None, since: datetime | None, config_path: Path, echo: Callable[[str], None]
    ) -> MonitorReport:
        from pipeline.local.monitoring import run_monitor

        outcome = run_monitor(self.cfg, endpoint=endpoint, since=since, config_path=config_path, echo=echo)
        return MonitorReport(outcome.record, outcome.summary, outcome.folder)

    def monitor_status(self, endpoint: str | None) -> Listing:
        from pipeline.local.monitoring import monitor_runs, monitoring_folder

        rows = [
            {**run, "violated": ", ".join(run.get("violated") or []) or "-"}
            for run in monitor_runs(self.root, endpoint)
        ]
        return Listing(rows, MONITOR_COLUMNS, f"no monitoring runs under {monitoring_folder(self.root)}")

    def deploy(self, stage: str, package: ModelPackage, wait: bool) -> str:
        """Serve ``package`` on this machine, as the local engine's Endpoint step does (already
        serving when this returns, so ``wait`` changes nothing)."""
        from pipeline.config.deploy_names import data_capture_request, endpoint_name_for
        from pipeline.local.endpoint_capture import LocalCapture
        from pipeline.local.endpoint_servers import start_endpoint
        from pipeline.local.endpoint_smoke import smoke_prediction
        from pipeline.object_store import ObjectStore

        if not package.model_data_url:
            raise DogpipeError(f"model package {package.arn} has no model data to serve")
        store = ObjectStore(self.root)
        model_path = store.path_for(package.model_data_url)
        capture = self.cfg.deploy.data_capture
        local_capture = LocalCapture.from_request(
            data_capture_request(self.cfg), store.path_for, capture.max_file_bytes, capture.max_total_bytes
        )
        if not model_path.exists():
            raise DogpipeError(f"model data of {package.arn} is missing from the local store: {model_path}")
        record = start_endpoint(
            self.root,
            endpoint_name_for(self.cfg, stage),
            model_path,
            model_data=package.model_data_url,
            model_package_arn=package.arn,
            host=self.cfg.local.endpoint_host,
            port=self.cfg.local.endpoint_port,
            smoke=smoke_prediction,
            capture=local_capture,
        )
        return f"endpoint {record['name']} serving {record['model_package_arn']} at {record['url']}"

    def run_deploy_pipeline(self, package: ModelPackage, echo: Callable[[str], None]) -> str:
        from pipeline.approval import run_local_deploy
        from pipeline.config.deploy_names import deploy_pipeline_name, deploy_stage, stage_endpoint

        echo(f"deploying {package.arn} to {deploy_stage(self.cfg)} with {deploy_pipeline_name(self.cfg)} ...")
        result = run_local_deploy(self.cfg, package.arn, echo=echo)
        if result.status != "Succeeded":
            raise DogpipeError(
                f"deploy execution {result.execution.id} {result.status}: {result.failure_reason}"
            )
        from pipeline.local.endpoint_records import read_endpoint

        name = stage_endpoint(self.cfg)
        record = read_endpoint(self.root, name)
        return (
            f"deploy execution {result.execution.id} Succeeded: {name} serves "
            f"{record.get('model_version')} at {record['url']}"
        )

    def after_approval(self, package: ModelPackage, echo: Callable[[str], None]) -> str:
        """No event bus here: the approval runs the deploy pipeline now."""
        return self.run_deploy_pipeline(package, echo)


def _execution_row(execution: Execution) -> dict[str, Any]:
    record = execution.load()  # one read of execution.json (and of the engine's liveness) per row
    return {
        "execution": execution.id,
        "status": record.status,
        "started": record.started_at,
        "failure": first_line(record.failure_reason),
        "pipeline": record.pipeline_name,
    }


def _status_record(execution: Execution) -> dict[str, Any]:
    from pipeline.local.summary import local_step_rows

    record = execution.load()
    return {
        "execution": execution.id,
        "pipeline": record.pipeline_name,
        "status": record.status,
        "started": record.started_at,
        "ended": record.ended_at,
        "folder": str(execution.folder),
        "failure": record.failure_reason,
        "steps": local_step_rows(execution.step_states(record), execution.definition),
    }
