"""RegisterModel steps: CreateModelPackage into the local model registry (``pipeline.registry``).

The metrics attached to the package are read from the ``ModelMetrics`` statistics' S3 URIs (the
evaluation), so ``dogpipe models list`` shows the accuracy without opening another file, as the
SageMaker registry reads ``ModelQuality.Statistics``. The other reports (the comparison with production
as ``ModelQuality.Constraints``) must be readable but stay files, reached through the customer metadata
that names them.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.local.context import StepContext
from pipeline.object_store import StoreError
from pipeline.registry import LocalRegistry


class RegisterArgumentError(ValueError):
    """RegisterModel arguments SageMaker would reject."""


def _metrics(ctx: StepContext) -> dict[str, Any]:
    reports: dict[str, Any] = {}
    for section, entries in (ctx.arguments.get("ModelMetrics") or {}).items():
        for kind, report in (entries or {}).items():
            uri = (report or {}).get("S3Uri")
            if not uri:
                continue
            try:
                report = json.loads(ctx.store.read_text(uri))
            except (StoreError, json.JSONDecodeError) as error:
                raise RegisterArgumentError(
                    f"ModelMetrics.{section}.{kind}: cannot read {uri}: {error}"
                ) from None
            if kind == "Statistics":
                reports.update(report)
    return reports


def run_register(ctx: StepContext) -> dict[str, Any]:
    arguments = dict(ctx.arguments)
    group = arguments.get("ModelPackageGroupName")
    if not group:
        raise RegisterArgumentError("RegisterModel needs ModelPackageGroupName")
    containers = (arguments.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers or not containers[0].get("ModelDataUrl"):
        raise RegisterArgumentError("InferenceSpecification.Containers[0].ModelDataUrl is required")
    container = containers[0]
    if not ctx.store.exists(container["ModelDataUrl"]):
        raise RegisterArgumentError(f"ModelDataUrl does not exist in the store: {container['ModelDataUrl']}")
    registry = LocalRegistry(ctx.settings.root)
    package = registry.registered_artifact(group, container["ModelDataUrl"])
    if package is not None:  # a re-run whose Train came from the cache: the same model, once
        ctx.echo(
            f"  [{ctx.name}] {container['ModelDataUrl']} is already {group} version {package.version} "
            f"({package.approval_status}); nothing registered"
        )
    else:
        package = registry.register(
            group=group,
            model_data_url=container["ModelDataUrl"],
            image=container.get("Image", ""),
            environment=container.get("Environment") or {},
            metrics={**(arguments.get("CustomerMetadataProperties") or {}), **_metrics(ctx)},
            approval_status=arguments.get("ModelApprovalStatus", "PendingManualApproval"),
            description=arguments.get("ModelPackageDescription"),
        )
        ctx.echo(f"  [{ctx.name}] registered {group} version {package.version} ({package.approval_status})")
    return {
        **arguments,
        "ModelPackageArn": package.arn,
        "ModelPackageName": f"{group}/{package.version}",
        "ModelPackageVersion": package.version,
        "ModelApprovalStatus": package.approval_status,
        "ModelPackageStatus": "Completed",
    }
