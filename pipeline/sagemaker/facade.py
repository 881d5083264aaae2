"""SageMaker behind the ``Engine`` interface (``pipeline/engines.py``): pipelines and executions through
the SageMaker API, the Model Registry, endpoints that bill until deleted, CloudWatch job logs, and the
verbs only SageMaker has (``upsert``, ``start``, ``diff``, ``executions stop|retry``, ``endpoints delete``).

One facade holds one boto3 session (``AwsClients``), so a command opens one, whatever it asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline.config import PipelineConfig
from pipeline.engines import EXECUTION_COLUMNS, RUNNING_STATUSES, Listing, LogFeed, StatusProbe
from pipeline.sagemaker.aws import AwsClients, aws_errors, with_aws_settings
from pipeline.sagemaker.pipelines import PipelineError

if TYPE_CHECKING:
    from pipeline.definition.code import CodeArchive
    from pipeline.registry import ModelPackage, SageMakerRegistry
    from pipeline.sagemaker.pipelines import ExecutionReport, UpsertResult

REMOTE_STEP_COLUMNS = ("step", "status", "started", "ended", "failure")
#: SageMaker runs the servers: what an operator watches is the status, the fleet and the traffic split.
ENDPOINT_COLUMNS = ("name", "status", "model_version", "instance_type", "variants", "created")


class SageMakerFacade:
    """SageMaker as every command sees it."""

    name: ClassVar[str] = "sagemaker"
    verbs: ClassVar[frozenset[str]] = frozenset(
        {"upsert", "start", "diff", "iam-policy", "executions stop", "executions retry", "endpoints delete"}
    )
    instead: ClassVar[Mapping[str, str]] = {
        "endpoints stop": "`dogpipe endpoints delete NAME --yes` (SageMaker endpoints bill until deleted)",
        "monitor run": "the monitoring schedule `dogpipe upsert` creates (monitor.schedule), which runs the "
        "same training_code/monitor.py",
        "monitor status": "`aws sagemaker list-monitoring-executions` on the schedule `dogpipe upsert` "
        "created (its reports under <s3_root>/monitoring/)",
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
        self.cfg = with_aws_settings(cfg, region=region, bucket=bucket, role_arn=role_arn)

    @cached_property
    def clients(self) -> AwsClients:
        return AwsClients.for_config(self.cfg)

    @cached_property
    def _quick_sagemaker(self) -> Any:
        """A client that gives up fast, for shell completion (which must never hang the shell)."""
        from botocore.config import Config

        quick = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
        return self.clients.session.client("sagemaker", config=quick)

    # -- configuration and the registry -------------------------------------------------------------

    @classmethod
    def config_problems(cls, cfg: PipelineConfig) -> list[str]:
        from pipeline.sagemaker.triggers import events_role_problem

        problem = events_role_problem(cfg)
        return [problem] if problem else []

    def registry(self) -> SageMakerRegistry:
        from pipeline.registry import SageMakerRegistry

        caller = self.clients.check_credentials()
        return SageMakerRegistry(self.clients.sagemaker, self.clients.s3, caller)

    def read_json(self, uri: str) -> Any:
        from pipeline.registry import read_s3_json

        return read_s3_json(self.clients.s3, uri)

    def fetch(self, uri: str, destination: Path) -> Path | None:
        from pipeline.sagemaker.aws import download_s3

        return download_s3(self.clients.s3, uri, destination)

    @property
    def tracking_uri(self) -> str | None:
        from pipeline.config.tracking import store_uri

        return store_uri(self.cfg, None)  # SageMaker has no store of its own: tracking.uri names it

    def version_choices(self) -> list[tuple[str, str]]:
        from pipeline.registry import SageMakerRegistry

        registry = SageMakerRegistry(self._quick_sagemaker, None)
        packages = registry.list_packages(self.cfg.registry.model_package_group)
        return [(str(package.version), package.approval_status) for package in packages]

    # -- executions ---------------------------------------------------------------------------------

    def executions(self) -> Listing:
        from pipeline.sagemaker.executions import list_sagemaker_executions, pipeline_names

        rows = list_sagemaker_executions(self.clients.sagemaker, self.cfg)
        empty = f"no executions of {' or '.join(pipeline_names(self.cfg))} on SageMaker"
        return Listing(rows, EXECUTION_COLUMNS, empty)

    def execution_status(self, execution: str | None) -> StatusProbe:
        from pipeline.sagemaker.pipelines import execution_report

        followed = {"arn": execution}

        def look() -> dict[str, Any]:
            record = _status_record(execution_report(self.clients, self.cfg, followed["arn"]))
            followed["arn"] = str(record["execution"])  # the latest when first asked, not a newer one
            return record

        return StatusProbe(look, REMOTE_STEP_COLUMNS)

    def execution_choices(self) -> list[tuple[str, str]]:
        summaries = self._quick_sagemaker.list_pipeline_executions(
            PipelineName=self.cfg.project.name, SortBy="CreationTime", SortOrder="Descending", MaxResults=50
        )["PipelineExecutionSummaries"]
        return [(item["PipelineExecutionArn"], item.get("PipelineExecutionStatus", "")) for item in summaries]

    def stop_execution(self, execution: str) -> dict[str, Any]:
        from pipeline.sagemaker.executions import stop_execution

        return stop_execution(self.clients.sagemaker, self.cfg, execution)

    def retry_execution(self, execution: str) -> dict[str, Any]:
        from pipeline.sagemaker.executions import retry_execution

        return retry_execution(self.clients.sagemaker, self.cfg, execution)

    def logs(self, execution: str, step: str | None) -> LogFeed:
        from pipeline.sagemaker.executions import find_execution
        from pipeline.sagemaker.logs import CloudWatchTail, job_logs
        from pipeline.sagemaker.pipelines import list_execution_steps

        self.clients.check_credentials()
        sagemaker = self.clients.sagemaker
        arn = find_execution(sagemaker, self.cfg, execution)["arn"]
        first = list_execution_steps(sagemaker, arn)
        if step and step not in {state.name for state in first}:
            started = ", ".join(state.name for state in first) or "none yet"
            raise PipelineError(
                f"execution {arn.rsplit('/', 1)[-1]} has not run a step {step!r} (steps: {started})"
            )
        tail = CloudWatchTail(self.clients.client("logs"))
        steps = {"now": first}

        def lines(final: bool) -> Iterator[str]:
            return tail.new_lines(job_logs(sagemaker, steps["now"], step))

        def running() -> bool:
            with aws_errors():
                described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
            steps["now"] = list_execution_steps(sagemaker, arn)  # a step started since: its job's logs too
            return described.get("PipelineExecutionStatus") in RUNNING_STATUSES

        return LogFeed(lines, running, 10.0)

    def write_report(self, execution: str | None, output: Path | None) -> Path:
        """Fetch the execution's artifacts from SageMaker and S3 into a scratch folder and write the
        report (default ``./report.html``), and record the execution's MLflow run when tracking.uri
        names a store."""
        path = output or Path("report.html")
        self._tracked_report(execution, path)
        return path

    def record_run(self, execution: str) -> str | None:
        """The ended execution's MLflow run, with its report as an artifact (written to a scratch
        folder, not the caller's): what ``start --wait`` does when it sees the end, so an execution
        followed to its end is tracked without a ``dogpipe report``. None when tracking is off or the
        store failed (said in one warning line by the evidence)."""
        if self.tracking_uri is None:
            return None
        return self._tracked_report(execution, None)

    def _tracked_report(self, execution: str | None, output: Path | None) -> str | None:
        """Write the report to ``output`` (None: beside the fetched files, gone afterwards); the
        execution's run id (None: tracking off or failed)."""
        import tempfile

        from pipeline.report import build_report
        from pipeline.report.evidence import Evidence
        from pipeline.report.fetch import inputs_from_sagemaker_execution

        evidence = Evidence(self.cfg, self.registry(), self.read_json, self.tracking_uri)
        with tempfile.TemporaryDirectory(prefix="dogpipe-report-") as scratch:
            inputs = inputs_from_sagemaker_execution(self.clients, self.cfg, execution, Path(scratch))
            evidence.enrich(inputs)
            report = build_report(inputs, output or Path(scratch) / "report.html")
            return evidence.record(inputs, report)

    # -- pipelines (SageMaker only) -----------------------------------------------------------------

    def upsert(self, definition: str, code: CodeArchive) -> UpsertResult:
        from pipeline.sagemaker.pipelines import upsert_pipeline

        return upsert_pipeline(self.clients, self.cfg, definition, code)

    def start(self, params: Sequence[str]) -> str:
        """Start the deployed build pipeline with ``NAME=VALUE`` overrides; its execution ARN."""
        from pipeline.definition.parameters import parse_param_pairs
        from pipeline.sagemaker.pipelines import start_execution

        return start_execution(self.clients, self.cfg, parse_param_pairs(params))

    def watch(self, arn: str, echo: Callable[[str], None], timeout_s: float, poll_s: float) -> str:
        from pipeline.sagemaker.watch import watch_execution

        return watch_execution(self.clients.sagemaker, arn, echo, timeout_s=timeout_s, poll_s=poll_s)

    def diff_lines(self, build: str, deploy: str) -> list[str]:
        """What ``upsert`` would change in both pipelines and their triggers."""
        from pipeline.config.deploy_names import deploy_pipeline_name
        from pipeline.sagemaker.pipelines import deployed_definition
        from pipeline.sagemaker.triggers import trigger_diff

        self.clients.check_credentials()
        lines: list[str] = []
        for name, wanted in ((self.cfg.project.name, build), (deploy_pipeline_name(self.cfg), deploy)):
            lines += _pipeline_diff(name, deployed_definition(self.clients.sagemaker, name), wanted)
        from pipeline.definition.code import package_code
        from pipeline.sagemaker.aws import require_role
        from pipeline.sagemaker.monitoring import monitoring_diff

        events, scheduler = self.clients.client("events"), self.clients.client("scheduler")
        lines += trigger_diff(events, scheduler, self.cfg)
        role = self.cfg.project.role_arn or require_role(self.cfg)
        return lines + monitoring_diff(self.clients.sagemaker, events, self.cfg, package_code(), role)

    def iam_policies(self, definitions: list[str], role: str, events_role: str) -> dict[str, Any]:
        """The least-privilege policy documents by role (no AWS call)."""
        from pipeline.sagemaker.iam_policy import policies

        return policies(self.cfg, definitions, role, events_role)

    # -- endpoints ----------------------------------------------------------------------------------

    def endpoints(self) -> Listing:
        from pipeline.sagemaker.endpoints import list_sagemaker_endpoints

        rows = list_sagemaker_endpoints(self.clients.sagemaker, self.cfg.project.region)
        return Listing(rows, ENDPOINT_COLUMNS, f"no SageMaker endpoints in {self.cfg.project.region}")

    def endpoint_choices(self) -> list[tuple[str, str]]:
        endpoints = self._quick_sagemaker.list_endpoints(MaxResults=100)["Endpoints"]
        return [(item["EndpointName"], item.get("EndpointStatus", "")) for item in endpoints]

    def serving(self, endpoints: list[str]) -> dict[str, str | None]:
        from pipeline.sagemaker.endpoints import served_package_of

        return {name: served_package_of(self.clients.sagemaker, name) for name in endpoints}

    def invoke(self, endpoint: str, data: bytes, content_type: str) -> dict[str, Any]:
        from pipeline.serving.client import invoke_sagemaker

        with aws_errors():
            runtime = self.clients.client("sagemaker-runtime")
            return invoke_sagemaker(runtime, endpoint, data, content_type)

    def delete_endpoint(self, endpoint: str) -> None:
        from pipeline.sagemaker.endpoints import delete_sagemaker_endpoint

        delete_sagemaker_endpoint(self.clients.sagemaker, endpoint)

    def deploy(self, stage: str, package: ModelPackage, wait: bool) -> str:
        from pipeline.sagemaker.aws import require_role
        from pipeline.sagemaker.deploy import SageMakerDeployer

        role = require_role(self.cfg)
        deployer = SageMakerDeployer(self.clients.sagemaker, self.clients.autoscaling)
        result = deployer.deploy(self.cfg, stage, package, role, wait=wait)
        return (
            f"endpoint {result.endpoint_name} {result.action}: version {package.version} ({package.arn}) "
            f"via {result.endpoint_config_name}" + (", autoscaling on" if result.autoscaling else "")
        )

    def run_deploy_pipeline(self, package: ModelPackage, echo: Callable[[str], None]) -> str:
        from pipeline.config.deploy_names import PACKAGE_PARAMETER, deploy_pipeline_name, deploy_stage
        from pipeline.sagemaker.pipelines import start_execution

        pipeline = deploy_pipeline_name(self.cfg)
        arn = start_execution(self.clients, self.cfg, {PACKAGE_PARAMETER: package.arn}, pipeline)
        return f"{pipeline} started for {package.arn} (stage {deploy_stage(self.cfg)}): {arn}"

    def after_approval(self, package: ModelPackage, echo: Callable[[str], None]) -> str:
        """Nothing to start: the EventBridge rule ``upsert`` created starts the deploy pipeline."""
        from pipeline.config.deploy_names import approval_rule_name, deploy_pipeline_name

        return (
            f"EventBridge rule {approval_rule_name(self.cfg)} starts {deploy_pipeline_name(self.cfg)} for "
            f"this approval (stage {self.cfg.deploy.on_approval}); follow it with `dogpipe executions list`"
        )


def _status_record(report: ExecutionReport) -> dict[str, Any]:
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


def _pipeline_diff(name: str, deployed: str | None, wanted: str) -> list[str]:
    """``diff``'s lines for one pipeline: all of it as to-be-created before its first upsert."""
    from pipeline.definition.diff import diff_definitions

    if deployed is None:
        lines = diff_definitions({"Steps": [], "Parameters": []}, wanted).lines()
        return [f"pipeline {name}: would be created", *(f"  {line}" for line in lines)]
    found = diff_definitions(deployed, wanted)
    if found.empty:
        return [f"pipeline {name}: unchanged"]
    return [f"pipeline {name}: would be updated", *(f"  {line}" for line in found.lines())]
