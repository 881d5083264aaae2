"""boto3 sessions for the AWS-facing commands, and the checks that run before anything is written.

Region, bucket and role come from a flag, else ``DOGPIPE_REGION`` / ``DOGPIPE_BUCKET`` /
``DOGPIPE_ROLE_ARN``, else the config file; nothing is hard-coded. botocore's own errors
(``NoCredentialsError``, an expired token, a 403…) are turned into :class:`AwsError`, one sentence
that says what to set, because a traceback from deep inside botocore does not tell a user which
variable is missing. boto3 itself honours ``AWS_ENDPOINT_URL`` (tests point it at a moto server) and the
retry settings ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
)

from pipeline.config import PipelineConfig
from pipeline.errors import DogpipeError
from pipeline.names import path_under

REGION_ENV = "DOGPIPE_REGION"
BUCKET_ENV = "DOGPIPE_BUCKET"
ROLE_ENV = "DOGPIPE_ROLE_ARN"
ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]+$")
CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or run `aws configure`"


class AwsError(DogpipeError):
    """An AWS request cannot be made or failed; the message says what to set or fix."""


def with_aws_settings(
    cfg: PipelineConfig,
    region: str | None = None,
    bucket: str | None = None,
    role_arn: str | None = None,
) -> PipelineConfig:
    """The config with region, bucket and role taken from flags, else the environment, else the file.

    Returns a new config so everything downstream (the definition, staging URIs) reads one source.
    """
    project = cfg.project
    resolved = {
        "region": region or os.environ.get(REGION_ENV) or project.region,
        "bucket": bucket or os.environ.get(BUCKET_ENV) or project.bucket,
        "role_arn": role_arn or os.environ.get(ROLE_ENV) or project.role_arn,
    }
    if not resolved["region"]:
        raise AwsError(f"no AWS region: pass --region, set {REGION_ENV}, or set project.region")
    if not resolved["bucket"]:
        raise AwsError(f"no S3 bucket: pass --bucket, set {BUCKET_ENV}, or set project.bucket")
    return cfg.model_copy(update={"project": project.model_copy(update=resolved)})


def require_role(cfg: PipelineConfig) -> str:
    """The execution role ARN, or a clear error naming the three places it can come from."""
    role = cfg.project.role_arn
    if not role:
        raise AwsError(
            f"no SageMaker execution role: pass --role-arn, set {ROLE_ENV}, or set project.role_arn"
        )
    if not ROLE_ARN_PATTERN.match(role):
        raise AwsError(f"not an IAM role ARN (arn:aws:iam::<account>:role/<name>): {role!r}")
    return role


@dataclass
class AwsClients:
    """The boto3 clients one command needs, created from one session."""

    session: boto3.Session
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def for_config(cls, cfg: PipelineConfig) -> AwsClients:
        return cls(boto3.Session(region_name=cfg.project.region))

    def client(self, service: str) -> Any:
        if service not in self._clients:
            with aws_errors():
                self._clients[service] = self.session.client(service)
        return self._clients[service]

    @property
    def sagemaker(self) -> Any:
        return self.client("sagemaker")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def autoscaling(self) -> Any:
        return self.client("application-autoscaling")

    def check_credentials(self) -> str:
        """The caller's ARN; fails before any write when credentials are absent, partial or rejected."""
        if self.session.get_credentials() is None:
            raise AwsError(f"no AWS credentials found: {CREDENTIALS_HINT}")
        with aws_errors():
            return self.client("sts").get_caller_identity()["Arn"]

    def check_bucket(self, bucket: str) -> None:
        """The bucket exists and we may use it; a 404 and a 403 get different advice."""
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            code = error_code(error)
            if is_not_found(error):
                raise AwsError(
                    f"S3 bucket {bucket!r} does not exist: create it, or pass --bucket / set {BUCKET_ENV}"
                ) from None
            if code in {"403", "AccessDenied", "Forbidden"}:
                raise AwsError(f"access to S3 bucket {bucket!r} is denied for these credentials") from None
            raise AwsError(f"cannot use S3 bucket {bucket!r}: {error}") from None
        except (BotoCoreError, NoCredentialsError) as error:
            raise translate(error) from None

    def check_role(self, role_arn: str, trusts: tuple[str, ...] = (), why: str = "") -> None:
        """The role exists and its trust policy lets each service in ``trusts`` assume it (a role the
        service cannot assume fails only later, silently: an approval that deploys nothing). Without
        iam:GetRole permission we cannot tell, so that case passes."""
        name = role_arn.rsplit("/", 1)[-1]
        try:
            role = self.client("iam").get_role(RoleName=name)["Role"]
        except ClientError as error:
            code = error_code(error)
            if code == "NoSuchEntity":
                raise AwsError(f"IAM role {role_arn!r} does not exist: pass an existing --role-arn") from None
            if code not in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
                raise translate(error) from None
        except BotoCoreError as error:
            raise translate(error) from None
        else:
            missing = [service for service in trusts if service not in trusted_services(role)]
            if missing:
                raise AwsError(
                    f"IAM role {role_arn!r} does not trust {', '.join(missing)}{why}: add "
                    "them to its trust policy (`dogpipe iam-policy` prints one) or set deploy.events_role_arn"
                )


def trusted_services(role: dict[str, Any]) -> set[str]:
    """The service principals an IAM role's trust policy allows to sts:AssumeRole."""
    import json
    import urllib.parse

    document = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    statements = document.get("Statement") or []
    services: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        service = (statement.get("Principal") or {}).get("Service") or []
        services.update([service] if isinstance(service, str) else service)
    return services


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


#: The codes that mean "no such thing" across the services dogpipe calls: S3 objects and buckets (a
#: HEAD's bare 404 included), SageMaker Pipelines, EventBridge, Scheduler.
NOT_FOUND_CODES = frozenset(
    {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "ResourceNotFound", "ResourceNotFoundException"}
)
#: SageMaker's describe calls say "no such model/endpoint/package" as a ValidationException whose
#: message says so; any other ValidationException is a bad request and must not read as "missing".
_MISSING_MESSAGE = re.compile(r"could not find|does not exist|not found", re.IGNORECASE)


def is_not_found(error: BaseException) -> bool:
    """Whether an AWS error says that the thing asked for does not exist (and nothing else: a denied
    or throttled call is not a missing value)."""
    if not isinstance(error, ClientError):
        return False
    code = error_code(error)
    if code in NOT_FOUND_CODES:
        return True
    message = str(error.response.get("Error", {}).get("Message", ""))
    return code == "ValidationException" and bool(_MISSING_MESSAGE.search(message))


def translate(error: Exception) -> AwsError:
    """One sentence for a botocore error, saying what to set or fix."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return AwsError(f"no usable AWS credentials ({error}): {CREDENTIALS_HINT}")
    if isinstance(error, TokenRetrievalError):
        return AwsError(f"AWS login expired ({error}): run `aws sso login` or refresh the credentials")
    if isinstance(error, NoRegionError):
        return AwsError(f"no AWS region: pass --region, set {REGION_ENV}, or set project.region")
    if isinstance(error, EndpointConnectionError):
        return AwsError(f"cannot reach AWS ({error}): check the network, region and AWS_ENDPOINT_URL")
    if isinstance(error, ClientError):
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}:
            return AwsError(f"AWS rejected the credentials ({code}): {CREDENTIALS_HINT}")
        if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
            return AwsError(f"the AWS session token has expired ({code}): refresh the credentials")
        if code in {"AccessDenied", "AccessDeniedException"}:
            return AwsError(f"AWS denied the request: {message}")
        return AwsError(f"AWS error {code}: {message}")
    return AwsError(f"AWS error: {error}")


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore errors raised inside the block into :class:`AwsError`."""
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise translate(error) from None


def download_s3(s3: Any, uri: str, destination: Path) -> Path | None:
    """The object or prefix ``uri`` copied into ``destination`` (an object as ``<name>``, a prefix's
    objects by their path under it, as the local store lays them out), or None when nothing there can
    be read: the models ``dogpipe models compare`` scores may be gone."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    key = key.rstrip("/")
    try:
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            for item in page.get("Contents", [])
            if item["Key"] == key or item["Key"].startswith(f"{key}/")
        ]
        if not keys:
            return None
        for found in keys:
            relative = Path(found).name if found == key else found[len(key) + 1 :]
            target = path_under(destination, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, found, str(target))
    except Exception:  # any failure only means "not available to score"
        return None
    return destination
