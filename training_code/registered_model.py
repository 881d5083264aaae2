"""Whether the candidate's model artifact is already a version of the group, for the Compare job.

A re-run whose Train step was a cache hit hands on the artifact an earlier execution trained (the same
``S3ModelArtifacts`` URI), and SageMaker does not cache RegisterModel: without a look, every cached
re-run would register the same model again. The job looks, writes the answer into ``comparison.json``
(``registered``) and the build pipeline's ``CheckNewModel`` condition registers only a model the group
does not hold yet (or when the ``RegisterDuplicate`` parameter asks).

- on SageMaker: ListModelPackages of the group, newest first, every page, and DescribeModelPackage of
  each (the summaries carry no ``ModelDataUrl``) until one's ``InferenceSpecification.Containers[0]``
  holds the artifact: one Describe per version newer than the match, all of them for a new model.
- under the local engine: the registry folder it names in ``DOGPIPE_LOCAL_REGISTRY``
  (``<group>/<version>.json``, the files ``pipeline.registry.LocalRegistry`` writes).

Where several versions hold the artifact (registered again on purpose), the newest is named.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

if __package__:  # imported as training_code.registered_model (tests)
    from .resolve_model_package import sagemaker_client
else:  # run from the job's code folder
    from resolve_model_package import sagemaker_client  # type: ignore[no-redef]

LOCAL_REGISTRY = "DOGPIPE_LOCAL_REGISTRY"
#: ListModelPackages page size (the API's maximum is 100).
PAGE_SIZE = 100

log = logging.getLogger("compare")


def _found(group: str, version: int, arn: str, status: str) -> dict[str, Any]:
    return {
        "version": version,
        "package_arn": arn,
        "approval_status": status,
        "already": True,
        "message": f"already {group} version {version} ({status})",
    }


def _not_registered(message: str) -> dict[str, Any]:
    return {
        "version": None,
        "package_arn": None,
        "approval_status": None,
        "already": False,
        "message": message,
    }


def _local(registry: Path, group: str, model_data_url: str) -> dict[str, Any] | None:
    matches = []
    for path in (registry / group).glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a version being written; the registry claims numbers with complete files
        if record.get("model_data_url") == model_data_url:
            matches.append(record)
    newest = max(matches, key=lambda record: int(record["version"]), default=None)
    if newest is None:
        return None
    return _found(group, int(newest["version"]), newest["arn"], newest["approval_status"])


def _sagemaker(client: Any, group: str, model_data_url: str, page_size: int) -> dict[str, Any] | None:
    pages = client.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group,
        SortBy="CreationTime",
        SortOrder="Descending",
        PaginationConfig={"PageSize": page_size},
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            described = client.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            containers = (described.get("InferenceSpecification") or {}).get("Containers") or [{}]
            if containers[0].get("ModelDataUrl") == model_data_url:
                return _found(
                    group,
                    int(described.get("ModelPackageVersion", 0)),
                    described["ModelPackageArn"],
                    described.get("ModelApprovalStatus", ""),
                )
    return None


def find_registered(group: str, model_data_url: str | None, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """``{"version", "package_arn", "approval_status", "already", "message"}`` of the newest version of
    ``group`` holding ``model_data_url``; ``already`` false (the condition registers it) when none
    does, when no URI was given, or when the registry cannot be read (a warning says why: a duplicate
    is a lesser harm than a model never registered)."""
    if not model_data_url:
        return _not_registered("not looked up: no --candidate-model-uri")
    registry = os.environ.get(LOCAL_REGISTRY)
    if registry:
        found = _local(Path(registry), group, model_data_url)
    else:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            found = _sagemaker(sagemaker_client(), group, model_data_url, page_size)
        except (BotoCoreError, ClientError) as error:
            log.warning("cannot tell whether %s is already registered: %s", model_data_url, error)
            return _not_registered(f"unknown: the registry could not be read ({error})")
    return found or _not_registered(f"not yet a version of {group}")
