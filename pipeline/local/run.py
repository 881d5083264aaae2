"""``dogpipe run``: stage data and code into the local store, build the definition, execute it.

Data goes to a prefix of its own content (:mod:`pipeline.local.data`) that this execution's data
parameter names, so runs side by side never read each other's data.

Staging mirrors ``upsert`` on AWS: the content-addressed code archive goes to the same URIs the
definition names, and is written only when absent, so unchanged code keeps its store fingerprint and
cached steps stay cached.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.errors import DogpipeError
from pipeline.local.context import EngineSettings
from pipeline.local.data import DataError, latest_data, stage_data
from pipeline.local.engine import ExecutionResult, LocalEngine
from pipeline.object_store import ObjectStore

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class RunError(DogpipeError, ValueError):
    """A run that cannot start: missing data, ``--data`` beside a data ``--param``, ``--resume`` with
    more. A bad ``--param`` is :class:`pipeline.definition.parameters.ParameterError`, as on SageMaker."""


def executor_for(cfg: PipelineConfig, echo: Callable[[str], None] = print) -> LocalEngine:
    """The local engine that executes definitions for ``cfg`` (what `pipeline.engines.engine_for` wraps)."""
    settings = EngineSettings(
        root=Path(cfg.local.root),
        endpoint_host=cfg.local.endpoint_host,
        endpoint_port=cfg.local.endpoint_port,
        max_parallel_trials=cfg.local.max_parallel_trials,
        capture_max_file_bytes=cfg.deploy.data_capture.max_file_bytes,
        capture_max_total_bytes=cfg.deploy.data_capture.max_total_bytes,
    )
    return LocalEngine(settings, echo=echo)


def stage_code_in_store(cfg: PipelineConfig, store: ObjectStore):
    """Pack the training code and put it in the local store where the definition expects it (what
    ``pipeline.sagemaker.pipelines.upload_code`` does on S3); returns the CodeArchive."""
    from pipeline.definition.code import package_code

    code = package_code()
    code.stage_missing(cfg, store.exists, store.put_bytes)
    return code


def run_local(
    cfg: PipelineConfig,
    *,
    data_dir: Path | None = None,
    params: Mapping[str, str] | None = None,
    resume: str | None = None,
    echo: Callable[[str], None] = print,
) -> ExecutionResult:
    """Start (or resume) an execution of the pipeline ``cfg`` describes."""
    engine = executor_for(cfg, echo)
    if resume is not None:
        if data_dir or params:
            raise RunError("--resume reruns an execution as it was recorded; drop --data and --param")
        return engine.resume(resume)
    root = Path(cfg.local.root)
    if data_dir is not None:
        try:
            data_uri, count, copied = stage_data(engine.store, root, data_dir, cfg.data.s3_uri)
        except DataError as error:
            raise RunError(str(error)) from None
        echo(
            f"{'uploaded' if copied else 'already in the store:'} {count} file(s) "
            f"from {data_dir} to {data_uri}"
        )
    else:
        data_uri = latest_data(engine.store, root, cfg.data.s3_uri)
    if not engine.store.exists(data_uri):
        raise RunError(
            f"no data at {data_uri} in the local store ({engine.store.path_for(data_uri)}); "
            "pass --data DIR (try: dogpipe sample-data data/sample)"
        )
    code = stage_code_in_store(cfg, engine.store)
    from pipeline.local.forked_jobs import SERVER

    # What each tracked job imports (the SQLite store alone is seconds of imports on 2 cores).
    tracked = ("mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store") if cfg.tracking.enabled else ()
    SERVER.warm(tracked)  # torch imported once, while the definition is built (local/fork_server.py)
    echo(f"code {code.sha256[:12]} staged; building the pipeline definition ...")
    from pipeline.definition.document import build_definition

    # The tracking store (mlflow's import, a fresh store's tables: seconds) is made while the
    # definition is built, and is ready before the first job starts.
    tracking = threading.Thread(target=_prepare_tracking, args=(cfg, echo), daemon=True)
    tracking.start()
    try:
        definition = json.loads(build_definition(cfg, role_arn=cfg.project.role_arn, code=code))
        overrides = _with_data(definition, cfg, dict(params or {}), data_uri)
    finally:
        tracking.join()
    return engine.start(definition, cfg.project.name, overrides)


def _prepare_tracking(cfg: PipelineConfig, echo: Callable[[str], None]) -> None:
    """The tracking store's tables and experiment, made once before jobs may start side by side; a
    store that fails is one warning line (the jobs then say so once each, and go on)."""
    from pipeline.config.tracking import experiment_name, local_tracking_uri, store_uri

    uri = store_uri(cfg, local_tracking_uri(cfg.local.root))
    if uri is not None:
        from pipeline.tracking import prepare_store

        prepare_store(uri, experiment_name(cfg), lambda line: echo(f"warning: {line}"))


def _with_data(
    definition: Mapping[str, Any], cfg: PipelineConfig, params: dict[str, str], data_uri: str
) -> dict[str, str]:
    """The parameters with the data parameter (the one defaulting to data.s3_uri) set to ``data_uri``."""
    names = [
        spec["Name"]
        for spec in definition.get("Parameters") or []
        if spec.get("DefaultValue") == cfg.data.s3_uri
    ]
    if not names or data_uri == cfg.data.s3_uri:
        return params
    if names[0] in params:
        raise RunError(f"--data and --param {names[0]} both choose the data; pass one of them")
    return {**params, names[0]: data_uri}


def find_test_image(cfg: PipelineConfig, data_dir: Path | None) -> Path | None:
    """One test image to send to the endpoint: from ``--data`` or from the store's data prefix."""
    roots = [data_dir] if data_dir else []
    store = ObjectStore(cfg.local.root)
    store_path = store.path_for(latest_data(store, Path(cfg.local.root), cfg.data.s3_uri))
    if store_path.is_dir():
        roots.append(store_path)
    for root in roots:
        for candidate in sorted((root / "test").rglob("*")):
            if candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file():
                return candidate
    return None
