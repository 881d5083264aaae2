"""The one place that knows the SageMaker Python SDK v3 quirks met while *building* a pipeline.

Building a definition must make zero AWS calls and give the same bytes every time. The SDK, left to
itself, validates the role against IAM, looks up (and creates) a default bucket with ``s3:ListBuckets``,
sends telemetry (``sts:GetCallerIdentity`` plus an HTTPS GET), and needs a region at import time. This
module turns each of those off *without* a SageMaker config file: a config file makes the SDK re-run its
jsonschema validation dozens of times per build (most of a 14 s build). Everything else in ``steps/`` and
``pipeline/definition/build.py`` gets its session from :func:`pipeline_session` and never touches AWS
settings.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagemaker.core.workflow.pipeline_context import PipelineSession

#: The SDK's defaults-config document with only the telemetry opt-out. It is assigned to the session's
#: ``sagemaker_config`` attribute directly, which skips the per-lookup schema validation a file causes.
TELEMETRY_OPT_OUT_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}

#: Credentials that can sign nothing useful; they stop botocore from probing the instance metadata
#: service or the user's profile while the SDK builds clients it never calls.
_OFFLINE_CREDENTIALS = {"aws_access_key_id": "OFFLINE", "aws_secret_access_key": "OFFLINE"}


class AwsCallBlocked(RuntimeError):
    """Raised when something tries to call AWS while a pipeline is being built (a bug to report)."""


def prepare_sdk_environment(region: str) -> None:
    """Set what the SDK reads from the environment *before* it is imported.

    ``import sagemaker.mlops`` creates a boto3 client at import time and fails without a region;
    role validation is switched off by an environment variable only.
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"


def _validate_config_without_rechecking_schema() -> None:
    """Make the SDK's per-lookup config validation cheap, keeping what it checks.

    ``get_sagemaker_config_value`` calls ``jsonschema.validate(config, SCHEMA)`` on every config lookup
    (70+ per build), and ``jsonschema.validate`` first re-checks the SDK's large schema against the
    JSON-Schema metaschema: ~1 s a call, most of a build. The schema is checked once, and each distinct
    config document once (the SDK asks about the same one 70+ times; ~0.3 s of a cold build).
    """
    import jsonschema
    from sagemaker.core.config.config_manager import SageMakerConfig
    from sagemaker.core.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA

    validator_class = jsonschema.validators.validator_for(SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)
    validator_class.check_schema(SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)
    validator = validator_class(SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)

    passed: set[str] = set()  # configs already valid, by content: the same document, the same answer

    def validate(sagemaker_config: dict | None = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=repr)
        if key not in passed:
            validator.validate(sagemaker_config)
            passed.add(key)

    SageMakerConfig.validate_sagemaker_config = staticmethod(validate)


def _skip_repeated_setup() -> None:
    """Spare the SDK work it repeats per step and whose answer never changes (~2/3 of a warm-import build).

    - ``image_uris.retrieve`` re-reads botocore's whole ``endpoints.json`` on every call (one per job
      step), only to find ECR's DNS suffix: the resolver is built once.
    - ``ProcessingStep.__init__`` creates a ``LocalSagemakerClient()`` only to read the *name* of its
      ``create_processing_job`` method; that client builds a ``LocalSession`` with a fresh boto3 session
      and S3 clients each time. A subclass that skips its session answers the same name.
    """
    from sagemaker.core import common_utils
    from sagemaker.core.local.local_session import LocalSagemakerClient
    from sagemaker.mlops.workflow import steps

    if not hasattr(common_utils._botocore_resolver, "cache_info"):
        common_utils._botocore_resolver = cache(common_utils._botocore_resolver)

    class NameOnlyLocalClient(LocalSagemakerClient):
        def __init__(self, sagemaker_session: Any = None) -> None:
            self.sagemaker_session = sagemaker_session

    steps.LocalSagemakerClient = NameOnlyLocalClient


#: Imported by the SDK while building (``sagemaker.serve`` -> docker -> docker's SSH transport) yet never
#: used there; docker skips its SSH adapter when paramiko cannot be imported. ~8% of a cold build's CPU.
UNUSED_WHILE_BUILDING = ("paramiko",)

#: Modules the SDK's package ``__init__``s import on the way to what the build uses, never called while
#: building, with the names their importers take. While a build runs, an ``import`` of one of them *by
#: an SDK module* (``sagemaker.*``) gets a stand-in whose classes answer those imports (and
#: ``isinstance`` checks: no object of a build is one) and refuse to be instantiated; any other importer,
#: e.g. the thread that prepares the tracking store (mlflow imports pandas) meanwhile, gets the real
#: module. Measured on a cold build: ~0.5 s CPU each of about 3 s.
#:
#: - ``sagemaker.serve.model_builder``: ``sagemaker.mlops/__init__`` imports ``ModelBuilder`` (inference
#:   recommender, JumpStart, docker, an AI-registry module that creates two boto3 clients at import);
#:   ``ModelStep`` only asks ``isinstance(model, ModelBuilder)``, and Register passes model-package
#:   arguments, not a ModelBuilder.
#: - ``pandas``: ``sagemaker.core.serializers.base`` takes ``DataFrame`` for endpoint payloads.
STAND_INS: dict[str, tuple[str, ...]] = {
    "sagemaker.serve.model_builder": ("ModelBuilder",),
    "pandas": ("DataFrame",),
}


def _stand_in_module(name: str, attributes: tuple[str, ...]) -> ModuleType:
    module = ModuleType(name, f"dogpipe's stand-in for {name} while a definition is built")

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"{name} was not loaded: dogpipe stands in for it while building definitions")

    for attribute in attributes:
        setattr(module, attribute, type(attribute, (), {"__init__": refuse, "__module__": name}))
    return module


def _importing_with_stand_ins(real_import: Callable[..., Any], stand_ins: dict[str, ModuleType]) -> Any:
    """``builtins.__import__`` that hands an SDK module the stand-in of a module not loaded yet."""

    def importing(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        importer = (globals or {}).get("__name__") or ""
        if (
            level == 0
            and name in stand_ins
            and name not in sys.modules
            and (fromlist or "." not in name)
            and importer.startswith("sagemaker.")
        ):
            return stand_ins[name]
        return real_import(name, globals, locals, fromlist, level)

    return importing


@contextmanager
def skipping_unused_imports() -> Iterator[None]:
    """Load only what a build uses of the SDK; afterwards every import works as usual.

    - ``import paramiko`` fails (:data:`UNUSED_WHILE_BUILDING`), if it is not loaded yet.
    - SDK modules importing one of :data:`STAND_INS` get its stand-in; other importers the real module.
    - Pydantic models defined meanwhile (the SDK's ~1,000 API shapes) build their validators on first
      use (``defer_build``) instead of at import: a build uses about twenty. Same checks, later.
    """
    import builtins

    from pydantic import BaseModel

    absent = [name for name in UNUSED_WHILE_BUILDING if name not in sys.modules]
    for name in absent:
        sys.modules[name] = None  # type: ignore[assignment]  # Python's marker for "cannot import"
    stand_ins = {name: _stand_in_module(name, attributes) for name, attributes in STAND_INS.items()}
    real_import = builtins.__import__
    builtins.__import__ = _importing_with_stand_ins(real_import, stand_ins)
    deferred = "defer_build" not in BaseModel.model_config
    if deferred:
        BaseModel.model_config["defer_build"] = True
    try:
        yield
    finally:
        if deferred:
            BaseModel.model_config.pop("defer_build", None)
        builtins.__import__ = real_import
        for name in absent:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@contextmanager
def offline() -> Iterator[None]:
    """Keep SDK internals that make their own ``boto3.Session()`` from probing the network.

    ``ProcessingStep.__init__`` builds a throwaway ``LocalSession`` (only to read a method name), whose
    client creation resolves credentials and, with none in the environment, asks the EC2 instance
    metadata service: a network call and seconds of timeouts. The variable is restored afterwards, so
    later real AWS calls in the same process (``dogpipe upsert``) resolve credentials as usual.
    """
    previous = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = previous


def _refuse_request(request: Any = None, **_: Any) -> None:
    url = getattr(request, "url", "?")
    raise AwsCallBlocked(f"pipeline building must not call AWS, but a request to {url} was about to be sent")


@cache
def pipeline_session(region: str, bucket: str, prefix: str) -> PipelineSession:
    """A ``PipelineSession`` whose every AWS request raises :class:`AwsCallBlocked`.

    The bucket is given so the SDK never asks for ``default_bucket()``; the session is cached per
    (region, bucket, prefix) because creating boto clients is a large share of a build.
    """
    prepare_sdk_environment(region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    _validate_config_without_rechecking_schema()
    _skip_repeated_setup()
    boto_session = boto3.Session(region_name=region, **_OFFLINE_CREDENTIALS)
    boto_session.events.register("before-send", _refuse_request)
    session = PipelineSession(
        boto_session=boto_session,
        default_bucket=bucket,
        default_bucket_prefix=prefix or None,
        sagemaker_config=TELEMETRY_OPT_OUT_CONFIG,
    )
    # ``default_bucket()`` would call s3:ListBuckets/HeadBucket even with a bucket given; the bucket
    # comes from config, so pin it.
    session._default_bucket = bucket
    return session
