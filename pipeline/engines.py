"""The one interface both engines offer the commands, and the one place that reads ``cfg.engine``.

dogpipe runs the same definition on two engines: SageMaker (``pipeline/sagemaker/facade.py``) and this
machine (``pipeline/local/facade.py``). Each command asks ``engine_for(cfg)`` for the config's engine and
calls the operations below, so a capability is written once per engine, behind one name, instead of as
an ``if cfg.engine`` branch in every command (KFP's task handler interface, Metaflow's datastore
storages). Operations that exist on one engine only (``run`` locally; ``upsert``, ``start``, ``diff``,
``executions stop|retry``, ``endpoints delete`` on SageMaker) are declared by that engine in ``verbs``;
``engine_for(cfg, verb=...)`` refuses them elsewhere with the fix (``instead``: what does the job here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import STAGES, endpoint_name_for
from pipeline.errors import DogpipeError

if TYPE_CHECKING:
    from pipeline.definition.code import CodeArchive
    from pipeline.registry import ModelPackage, ModelRegistry

#: Execution statuses that will still change, on either engine (SageMaker's names; the local engine's too).
RUNNING_STATUSES = frozenset({"Executing", "Stopping"})
#: Either engine's executions: each holds the build pipeline's and ``<project>-deploy``'s.
EXECUTION_COLUMNS = ("execution", "status", "started", "failure", "pipeline")


@dataclass(frozen=True)
class Listing:
    """Rows for a table (or ``-o json``), the columns a table shows and what to say when there are none."""

    rows: list[dict[str, Any]]
    columns: tuple[str, ...]
    empty: str


@dataclass(frozen=True)
class StatusProbe:
    """How to look at one execution again and again (``status --watch``): ``look()`` returns its record,
    whose ``steps`` a table shows with ``step_columns``."""

    look: Callable[[], dict[str, Any]]
    step_columns: tuple[str, ...]


@dataclass(frozen=True)
class LogFeed:
    """An execution's job logs: ``lines(final)`` yields the lines not yet printed, ``running()`` says
    whether more may come, ``poll_s`` how long a follower waits between looks by default."""

    lines: Callable[[bool], Iterator[str]]
    running: Callable[[], bool]
    poll_s: float


@dataclass(frozen=True)
class RunOutcome:
    """How a ``dogpipe run`` ended, for the command to print: the step table and highlights
    (``summary``), the Fail steps that stopped it on purpose when only they failed (``gates``: a resume
    would decide the same), the endpoints it serves, or a ``note`` when there was nothing to do."""

    execution_id: str | None
    status: str
    failure_reason: str | None = None
    summary: list[str] = field(default_factory=list)
    gates: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class EndpointSample:
    """One image sent to an endpoint and its reply, shown after a run and kept in its report."""

    image: Path
    reply: dict[str, Any]


@dataclass(frozen=True)
class MonitorReport:
    """One monitoring run of an endpoint's captured traffic: its record (window, status, violations,
    the retraining it started), the job's human summary and the folder of its reports."""

    record: dict[str, Any]
    summary: str
    folder: Path


#: Columns of ``dogpipe monitor status``.
MONITOR_COLUMNS = ("run", "endpoint", "status", "images", "violations", "violated")


class VerbNotHere(DogpipeError):
    """A verb the config's engine does not offer."""


class Engine(Protocol):
    """What a command may ask of an engine (one implementation per engine)."""

    name: ClassVar[str]
    #: Verbs only this engine offers (``dogpipe <verb>``), e.g. ``run`` or ``executions stop``.
    verbs: ClassVar[frozenset[str]]
    #: For a verb of the other engine: what does its job here.
    instead: ClassVar[Mapping[str, str]]
    cfg: PipelineConfig

    @classmethod
    def config_problems(cls, cfg: PipelineConfig) -> list[str]:
        """What in ``cfg`` this engine would refuse, found offline without opening it (``validate``)."""
        ...

    def registry(self) -> ModelRegistry: ...

    def read_json(self, uri: str) -> Any:
        """A JSON document a package's metadata points to (None when it cannot be read)."""
        ...

    def fetch(self, uri: str, destination: Path) -> Path | None:
        """Copy the object or prefix ``uri`` (a model artifact, a test split) into ``destination``
        as ``ObjectStore.get`` lays it out; None when it cannot be read."""
        ...

    @property
    def tracking_uri(self) -> str | None:
        """Where executions are recorded in MLflow: ``tracking.uri``, else this engine's own store
        (locally SQLite under ``local.root``; none on SageMaker); None when tracking is off."""
        ...

    def serving(self, endpoints: list[str]) -> dict[str, str | None]:
        """Endpoint name → the model package ARN it serves now (None: not serving)."""
        ...

    def executions(self) -> Listing:
        """Both pipelines' executions, newest first (``listings.EXECUTION_COLUMNS``)."""
        ...

    def execution_status(self, execution: str | None) -> StatusProbe:
        """An execution (default: the build pipeline's latest) and its steps."""
        ...

    def endpoints(self) -> Listing: ...

    def invoke(self, endpoint: str, data: bytes, content_type: str) -> dict[str, Any]:
        """The endpoint's reply to one image (the serving protocol's JSON)."""
        ...

    def deploy(self, stage: str, package: ModelPackage, wait: bool) -> str:
        """Serve ``package`` on ``stage``'s endpoint directly (a stage no approval gates); one line."""
        ...

    def run_deploy_pipeline(self, package: ModelPackage, echo: Callable[[str], None]) -> str:
        """Run (locally) or start (SageMaker) ``<project>-deploy`` for ``package``; a closing line."""
        ...

    def after_approval(self, package: ModelPackage, echo: Callable[[str], None]) -> str:
        """What an approval sets off with ``deploy.on_approval`` on: the deploy pipeline, run here or by
        the EventBridge rule; a closing line."""
        ...

    def logs(self, execution: str, step: str | None) -> LogFeed: ...

    def write_report(self, execution: str | None, output: Path | None) -> Path: ...

    def execution_choices(self) -> list[tuple[str, str]]:
        """(execution, help) pairs for shell completion, newest first."""
        ...

    def endpoint_choices(self) -> list[tuple[str, str]]:
        """(endpoint, help) pairs for shell completion."""
        ...

    def version_choices(self) -> list[tuple[str, str]]:
        """(model version, approval status) pairs for shell completion."""
        ...


class LocalVerbs(Engine, Protocol):
    """What only the local engine offers: ``run`` and stopping its endpoint servers."""

    def run(
        self,
        *,
        data_dir: Path | None,
        params: Sequence[str],
        resume: str | None,
        echo: Callable[[str], None],
    ) -> RunOutcome: ...

    def test_image(self, data_dir: Path | None) -> Path | None: ...

    def endpoint_url(self, endpoint: str) -> str: ...

    def stop_endpoints(self, endpoint: str | None) -> list[tuple[str, bool]]: ...

    def monitor_run(
        self, endpoint: str | None, since: datetime | None, config_path: Path, echo: Callable[[str], None]
    ) -> MonitorReport:
        """Judge the endpoint's captured traffic since ``since`` (default: ``monitor.window_hours``)
        against its version's baseline; with ``on_drift: retrain`` a violation starts ``dogpipe run``
        with ``config_path``."""
        ...

    def monitor_status(self, endpoint: str | None) -> Listing:
        """The monitoring runs, newest first (``MONITOR_COLUMNS``)."""
        ...

    def write_report(
        self, execution: str | None, output: Path | None, *, sample: EndpointSample | None = None
    ) -> Path: ...


class SageMakerVerbs(Engine, Protocol):
    """What only SageMaker offers: deployed pipelines and their executions, endpoints to delete."""

    def upsert(self, definition: str, code: CodeArchive) -> Any: ...

    def start(self, params: Sequence[str]) -> str: ...

    def watch(self, arn: str, echo: Callable[[str], None], timeout_s: float, poll_s: float) -> str: ...

    def record_run(self, execution: str) -> str | None:
        """The ended execution's MLflow run id (its report an artifact); None when tracking is off."""
        ...

    def diff_lines(self, build: str, deploy: str) -> list[str]: ...

    def stop_execution(self, execution: str) -> dict[str, Any]: ...

    def retry_execution(self, execution: str) -> dict[str, Any]: ...

    def delete_endpoint(self, endpoint: str) -> None: ...

    def iam_policies(self, definitions: list[str], role: str, events_role: str) -> dict[str, Any]: ...


def _engine_classes() -> dict[str, type[Engine]]:
    """The engines by the name ``engine:`` gives them, imported only when asked (boto3 and torch are
    heavy, and a command needs one engine)."""
    from pipeline.local.facade import LocalFacade
    from pipeline.sagemaker.facade import SageMakerFacade

    return {LocalFacade.name: LocalFacade, SageMakerFacade.name: SageMakerFacade}


def _engine_class(cfg: PipelineConfig) -> type[Engine]:
    """The class of the engine ``cfg`` names: the one place that reads ``cfg.engine``."""
    return _engine_classes()[cfg.engine]


def config_problems(cfg: PipelineConfig) -> list[str]:
    """What the config's engine would refuse in it, found offline (``dogpipe validate``)."""
    return _engine_class(cfg).config_problems(cfg)


def engine_for(
    cfg: PipelineConfig,
    *,
    region: str | None = None,
    bucket: str | None = None,
    role_arn: str | None = None,
    verb: str | None = None,
    elsewhere: Callable[[str, str], str] | None = None,
) -> Engine:
    """The engine the config names (``_engine_class`` beside it reads ``cfg.engine``). Region, bucket and role
    override the config on SageMaker (then ``DOGPIPE_*``); the local engine needs none of them.

    With ``verb``, the engine must offer it (``Engine.verbs``), checked before the engine is opened: else
    the refusal says what does its job here (``Engine.instead``) or which engine has it, and
    ``elsewhere(that engine, this engine)`` how to reach it (a config to pass).
    """
    classes = _engine_classes()
    engine_class: Any = _engine_class(cfg)
    if verb is not None and verb not in engine_class.verbs:
        if verb in engine_class.instead:
            raise VerbNotHere(
                f"`dogpipe {verb}` acts on the other engine; on engine: {engine_class.name} use "
                f"{engine_class.instead[verb]}"
            )
        where = next((name for name, cls in classes.items() if verb in cls.verbs), "no engine")
        here = engine_class.name
        how = elsewhere(where, here) if elsewhere else f"the config has engine: {here}"
        raise VerbNotHere(f"`dogpipe {verb}` acts on engine: {where}, but {how}")
    engine: Engine = engine_class(cfg, region=region, bucket=bucket, role_arn=role_arn)
    return engine


def served_packages(engine: Engine) -> dict[str, list[str]]:
    """Model package ARN → the stages whose endpoint serves it now, staging before prod (what ``models
    list`` and ``show`` print, and how an approval finds production)."""
    stages = {endpoint_name_for(engine.cfg, stage): stage for stage in reversed(STAGES)}
    served: dict[str, list[str]] = {}
    for name, arn in engine.serving(list(stages)).items():
        if arn:
            served.setdefault(arn, []).append(stages[name])
    return served


def production_package(engine: Engine, packages: list[ModelPackage]) -> ModelPackage | None:
    """Of ``packages``, the version production serves (the prod endpoint's package), else the newest
    approval; None on a first approval."""
    from pipeline.registry import latest_approved_of

    serving = {arn for arn, stages in served_packages(engine).items() if "prod" in stages}
    served = [package for package in packages if package.arn in serving]
    return served[0] if served else latest_approved_of(packages)


def expected_error_message(error: BaseException) -> str | None:
    """The one line a command prints for an expected failure of either engine (None: not expected).
    botocore's own errors are translated as SageMaker's facade would."""
    if isinstance(error, DogpipeError):
        return str(error)
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, (BotoCoreError, ClientError)):
        from pipeline.sagemaker.aws import translate

        return str(translate(error))
    return None
