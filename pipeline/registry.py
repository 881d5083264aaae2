"""The model registry: model package versions in a group, their approval status, and their metrics.

Two implementations share one protocol so the CLI (`dogpipe models …`, `dogpipe deploy`) reads the same
on SageMaker and on this machine:

- ``SageMakerRegistry`` talks to the SageMaker Model Registry through boto3 (packages are created there
  by the pipeline's Register step).
- ``LocalRegistry`` keeps each package as ``<root>/registry/<group>/<version>.json``; the local engine's
  RegisterModel step calls ``LocalRegistry.register``. Versions are claimed by an atomic hard link of a
  fully written file, so two registrations at once never get the same number and a reader never sees
  half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pipeline.config import ApprovalStatus
from pipeline.errors import DogpipeError
from pipeline.files import create_exclusively, json_text, write_json_atomic
from pipeline.names import PACKAGE_GROUP, InvalidName, check_version, local_arn, path_under
from training_code.resolve_model_package import newest_approval

APPROVAL_STATUSES: tuple[str, ...] = ("PendingManualApproval", "Approved", "Rejected")


#: The customer-metadata key holding who set a SageMaker package's current approval status.
APPROVED_BY = "approved_by"


class RegistryError(DogpipeError):
    """A registry request that cannot be served: unknown group or version, bad status, unreadable file."""


@dataclass(frozen=True)
class ModelPackage:
    """One version of a model in a model package group, as both registries describe it."""

    group: str
    version: int
    arn: str
    approval_status: str
    created: datetime
    model_data_url: str | None = None
    image: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    approval_description: str | None = None
    #: When the approval status last changed and by whom (SageMaker: LastModifiedTime / LastModifiedBy).
    approval_time: datetime | None = None
    approved_by: str | None = None

    @property
    def accuracy(self) -> float | None:
        return accuracy_of(self.metrics)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created"] = self.created.isoformat()
        data["approval_time"] = self.approval_time.isoformat() if self.approval_time else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelPackage:
        values = dict(data)
        values["created"] = datetime.fromisoformat(values["created"])
        if values.get("approval_time"):
            values["approval_time"] = datetime.fromisoformat(values["approval_time"])
        return cls(**values)


def accuracy_of(metrics: Mapping[str, Any] | None) -> float | None:
    """The accuracy in a metrics report, wherever the usual layouts put it.

    Accepts a flat ``{"accuracy": 0.9}``, SageMaker's model-quality layout
    ``{"multiclass_classification_metrics": {"accuracy": {"value": 0.9}}}``, or ``{"metrics": {...}}``.
    """
    if not isinstance(metrics, Mapping):
        return None
    candidates: list[Any] = [metrics.get("accuracy")]
    for section in ("multiclass_classification_metrics", "binary_classification_metrics", "metrics"):
        inner = metrics.get(section)
        if isinstance(inner, Mapping):
            candidates.append(inner.get("accuracy"))
    for value in candidates:
        if isinstance(value, Mapping):
            value = value.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def parse_version(text: str | int) -> int:
    """A model package version as the user typed it (``3``), or :class:`InvalidName` (a usage error)."""
    try:
        return check_version(text)
    except InvalidName:
        raise InvalidName(f"model package version must be a positive integer, got {text!r}") from None


def check_status(status: str) -> str:
    if status not in APPROVAL_STATUSES:
        raise RegistryError(f"approval status must be one of {', '.join(APPROVAL_STATUSES)}; got {status!r}")
    return status


def local_user() -> str:
    """Who acts on this machine, for the approval record (the local stand-in for the caller identity)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def version_not_found(group: str, version: int, packages: list[ModelPackage]) -> RegistryError:
    """The error for a version the group lacks, listing the ones it has so the fix is obvious."""
    known = ", ".join(str(package.version) for package in packages) or "none"
    return RegistryError(f"model package version {version} not found in group {group!r} (versions: {known})")


def latest_approved_of(packages: list[ModelPackage]) -> ModelPackage | None:
    """The most recently approved package: what the stage should serve (the deploy pipeline's ``latest``
    and its freshness check use the same rule, ``training_code/resolve_model_package.newest_approval``)."""
    chosen = newest_approval([package.to_json() for package in packages])
    return next((package for package in packages if chosen and package.arn == chosen["arn"]), None)


@runtime_checkable
class ModelRegistry(Protocol):
    """What the CLI needs from a registry, on SageMaker or on this machine."""

    def list_packages(self, group: str) -> list[ModelPackage]:
        """All versions of the group, oldest first; empty when the group has none."""
        ...

    def get(self, group: str, version: int) -> ModelPackage: ...

    def set_approval(
        self, group: str, version: int, status: str, note: str | None = None
    ) -> ModelPackage: ...

    def latest_approved(self, group: str) -> ModelPackage | None: ...

    def annotate(self, group: str, version: int, metadata: Mapping[str, str]) -> ModelPackage:
        """Add ``metadata`` to the version's customer metadata (the MLflow run id), keeping the rest."""
        ...


def approved_package(registry: ModelRegistry, group: str) -> ModelPackage:
    """The latest Approved package, or a refusal that shows what the group holds and how to approve."""
    package = registry.latest_approved(group)
    if package is not None:
        return package
    held = registry.list_packages(group)
    summary = ", ".join(f"v{p.version} {p.approval_status}" for p in held) or "no packages at all"
    raise RegistryError(
        f"refusing to deploy: no Approved model package in group {group!r} ({summary}); "
        "approve one with `dogpipe models approve VERSION`"
    )


class LocalRegistry:
    """Model packages as JSON files under ``<root>/registry/<group>/<version>.json``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def group_dir(self, group: str) -> Path:
        """``<root>/registry/<group>`` for a valid group name only (it comes from a definition too)."""
        return path_under(self.root / "registry", PACKAGE_GROUP.check(group))

    def arn(self, group: str, version: int) -> str:
        return local_arn(f"model-package/{group}/{version}")

    def register(
        self,
        group: str,
        model_data_url: str,
        image: str,
        environment: Mapping[str, str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        approval_status: ApprovalStatus | str = "PendingManualApproval",
        description: str | None = None,
    ) -> ModelPackage:
        """Add the next version of ``group``; safe when several processes register at once."""
        check_status(approval_status)
        directory = self.group_dir(group)
        directory.mkdir(parents=True, exist_ok=True)
        version = self._next_version(directory)
        while True:
            package = ModelPackage(
                group=group,
                version=version,
                arn=self.arn(group, version),
                approval_status=approval_status,
                created=datetime.now(timezone.utc),
                model_data_url=model_data_url,
                image=image,
                environment=dict(environment or {}),
                metrics=dict(metrics or {}),
                description=description,
            )
            if create_exclusively(directory / f"{version}.json", json_text(package.to_json())):
                return package
            version += 1

    def list_packages(self, group: str) -> list[ModelPackage]:
        directory = self.group_dir(group)
        if not directory.is_dir():
            return []
        versions = sorted(int(path.stem) for path in directory.glob("*.json") if path.stem.isdigit())
        return [self._read(directory / f"{version}.json") for version in versions]

    def get(self, group: str, version: int) -> ModelPackage:
        path = self.group_dir(group) / f"{parse_version(version)}.json"
        if not path.is_file():
            raise version_not_found(group, version, self.list_packages(group))
        return self._read(path)

    def set_approval(self, group: str, version: int, status: str, note: str | None = None) -> ModelPackage:
        check_status(status)
        updated = replace(
            self.get(group, version),
            approval_status=status,
            approval_description=note,
            approval_time=datetime.now(timezone.utc),
            approved_by=local_user(),
        )
        write_json_atomic(self.group_dir(group) / f"{updated.version}.json", updated.to_json())
        return updated

    def latest_approved(self, group: str) -> ModelPackage | None:
        return latest_approved_of(self.list_packages(group))

    def annotate(self, group: str, version: int, metadata: Mapping[str, str]) -> ModelPackage:
        current = self.get(group, version)
        updated = replace(current, metrics={**current.metrics, **metadata})
        write_json_atomic(self.group_dir(group) / f"{updated.version}.json", updated.to_json())
        return updated

    def registered_artifact(self, group: str, model_data_url: str) -> ModelPackage | None:
        """The version already holding ``model_data_url`` (a cached Train hands over the same artifact)."""
        return next((p for p in self.list_packages(group) if p.model_data_url == model_data_url), None)

    @staticmethod
    def _next_version(directory: Path) -> int:
        versions = [int(path.stem) for path in directory.glob("*.json") if path.stem.isdigit()]
        return max(versions, default=0) + 1

    @staticmethod
    def _read(path: Path) -> ModelPackage:
        try:
            return ModelPackage.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RegistryError(f"unreadable model package file {path}: {error}") from None


class SageMakerRegistry:
    """The SageMaker Model Registry through boto3; packages are created there by the Register step."""

    def __init__(
        self, sagemaker_client: Any, s3_client: Any | None = None, caller: str | None = None
    ) -> None:
        self.sagemaker = sagemaker_client
        self.s3 = s3_client
        self.caller = caller  # the AWS identity recorded as who approved or rejected

    def list_packages(self, group: str) -> list[ModelPackage]:
        summaries: list[dict[str, Any]] = []
        paginator = self.sagemaker.get_paginator("list_model_packages")
        for page in paginator.paginate(ModelPackageGroupName=group):
            summaries.extend(page.get("ModelPackageSummaryList", []))
        packages = [self._describe(summary["ModelPackageArn"]) for summary in summaries]
        return sorted(packages, key=lambda package: package.version)

    def get(self, group: str, version: int) -> ModelPackage:
        version = parse_version(version)
        packages = self.list_packages(group)
        for package in packages:
            if package.version == version:
                return package
        raise version_not_found(group, version, packages)

    def set_approval(self, group: str, version: int, status: str, note: str | None = None) -> ModelPackage:
        check_status(status)
        package = self.get(group, version)
        request: dict[str, Any] = {"ModelPackageArn": package.arn, "ModelApprovalStatus": status}
        if note:
            request["ApprovalDescription"] = note
        if self.caller:  # LastModifiedBy names Studio users only; the metadata names any caller
            described = self.sagemaker.describe_model_package(ModelPackageName=package.arn)
            metadata = dict(described.get("CustomerMetadataProperties") or {})
            request["CustomerMetadataProperties"] = {**metadata, APPROVED_BY: self.caller}
        self.sagemaker.update_model_package(**request)
        return self._describe(package.arn)

    def latest_approved(self, group: str) -> ModelPackage | None:
        return latest_approved_of(self.list_packages(group))

    def annotate(self, group: str, version: int, metadata: Mapping[str, str]) -> ModelPackage:
        """UpdateModelPackage with the merged CustomerMetadataProperties (the call replaces them all)."""
        package = self.get(group, version)
        described = self.sagemaker.describe_model_package(ModelPackageName=package.arn)
        merged = {**(described.get("CustomerMetadataProperties") or {}), **metadata}
        self.sagemaker.update_model_package(ModelPackageArn=package.arn, CustomerMetadataProperties=merged)
        return self._describe(package.arn)

    def _describe(self, arn: str) -> ModelPackage:
        response = self.sagemaker.describe_model_package(ModelPackageName=arn)
        containers = response.get("InferenceSpecification", {}).get("Containers") or [{}]
        container = containers[0]
        pending = response.get("ModelApprovalStatus", "PendingManualApproval") == "PendingManualApproval"
        return ModelPackage(
            group=response.get("ModelPackageGroupName", ""),
            version=int(response.get("ModelPackageVersion", 0)),
            arn=response["ModelPackageArn"],
            approval_status=response.get("ModelApprovalStatus", "PendingManualApproval"),
            created=response.get("CreationTime") or datetime.fromtimestamp(0, timezone.utc),
            model_data_url=container.get("ModelDataUrl"),
            image=container.get("Image"),
            environment=dict(container.get("Environment") or {}),
            metrics=self._metrics(response),
            description=response.get("ModelPackageDescription"),
            approval_description=response.get("ApprovalDescription"),
            approval_time=None if pending else response.get("LastModifiedTime"),
            approved_by=(response.get("CustomerMetadataProperties") or {}).get(APPROVED_BY)
            or _user_of(response.get("LastModifiedBy")),
        )

    def _metrics(self, response: Mapping[str, Any]) -> dict[str, Any]:
        """Customer metadata first (cheap), then the model-quality statistics file when one is linked."""
        metrics: dict[str, Any] = dict(response.get("CustomerMetadataProperties") or {})
        if accuracy_of(metrics) is not None or self.s3 is None:
            return metrics
        uri = response.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
        report = read_s3_json(self.s3, uri) if uri else None
        if isinstance(report, dict):
            metrics.update(report)
        return metrics


def read_s3_json(s3: Any, uri: str) -> Any:
    """A JSON file in S3 a package points to (metrics, rules report), or None when there is none (or
    it holds no JSON): a missing file must not hide the package. Any other failure (access denied,
    throttling, no network) raises :class:`RegistryError`: it is not the same as "no accuracy"."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.sagemaker.aws import is_not_found, translate

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as error:
        if is_not_found(error):
            return None
        raise RegistryError(f"cannot read {uri}: {translate(error)}") from None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _user_of(context: Mapping[str, Any] | None) -> str | None:
    """A UserContext (LastModifiedBy) as one name: the Studio user, else the IAM identity."""
    if not context:
        return None
    identity = context.get("IamIdentity") or {}
    return context.get("UserProfileName") or identity.get("Arn") or context.get("UserProfileArn")
