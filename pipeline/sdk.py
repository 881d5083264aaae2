"""The one place that knows the SageMaker Python SDK v3 quirks met while *building* a pipeline.

Building a definition must make zero AWS calls and give the same bytes every time. The SDK, left to
itself, validates the role against IAM, looks up (and creates) a default bucket with ``s3:ListBuckets``,
sends telemetry (``sts:GetCallerIdentity`` plus an HTTPS GET), and needs a region at import time. This
module turns each of those off *without* a SageMaker config file: a config file makes the SDK re-run its
jsonschema validation dozens of times per build (most of a 14 s build). Everything else in ``steps/`` and
``pipeline/build.py`` gets its session from :func:`pipeline_session` and never touches AWS settings.
"""

from __future__ import annotations

import os
from functools import cache
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
