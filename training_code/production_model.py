"""Which model production serves, and a copy of its artifact, for the Compare job.

Production is the package the stage's endpoint serves now (``source: stage``), else the group's most
recently approved version (``source: latest_approved``, the rule the deploy pipeline's ``latest``
follows), else none (a first run). No pipeline step can read the registry, so the job asks itself:

- on SageMaker with boto3 (in every framework image): DescribeEndpoint → DescribeEndpointConfig →
  DescribeModel gives the served ``ModelPackageName`` (how ``dogpipe endpoints list`` finds it too),
  then ``resolve_model_package``'s DescribeModelPackage / ListModelPackages; the artifact is an S3
  GetObject from the project's bucket.
- under the local engine, which names its folders in the job's environment: the registry
  (``DOGPIPE_LOCAL_REGISTRY``, as for ResolvePackage), the endpoint records (``DOGPIPE_LOCAL_ENDPOINTS``:
  ``<name>.json`` with ``model_package_arn``, written while a deploy serves it) and the store that stands
  in for S3 (``DOGPIPE_LOCAL_S3``: ``s3://bucket/key`` is ``<folder>/bucket/key``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

if __package__:  # imported as training_code.production_model (tests)
    from .resolve_model_package import LATEST, describe_local, describe_sagemaker, sagemaker_client
else:  # run from the job's code folder
    from resolve_model_package import (  # type: ignore[no-redef]
        LATEST,
        describe_local,
        describe_sagemaker,
        sagemaker_client,
    )

LOCAL_REGISTRY = "DOGPIPE_LOCAL_REGISTRY"
LOCAL_ENDPOINTS = "DOGPIPE_LOCAL_ENDPOINTS"
LOCAL_S3 = "DOGPIPE_LOCAL_S3"
#: Endpoint states in which it serves its config's model (a blue/green update still serves the old one
#: until it finishes, and describes the new config only then).
SERVING_STATES = frozenset({"InService", "Updating", "SystemUpdating"})


class ProductionUnavailable(RuntimeError):
    """A production package exists but its model cannot be read (deleted artifact, unreadable key)."""


def _served_local(endpoints: Path, endpoint: str) -> str | None:
    record = endpoints / f"{endpoint}.json"
    try:
        return json.loads(record.read_text()).get("model_package_arn") or None
    except (OSError, ValueError):
        return None


def _served_sagemaker(client: Any, endpoint: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        described = client.describe_endpoint(EndpointName=endpoint)
        if described.get("EndpointStatus") not in SERVING_STATES:
            return None
        config = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        variants = config.get("ProductionVariants") or [{}]
        model = client.describe_model(ModelName=variants[0].get("ModelName", ""))
    except ClientError:
        return None  # no such endpoint (yet), or its config or model was deleted
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    return containers[0].get("ModelPackageName") or None


def resolve_production(endpoint: str, group: str) -> dict[str, Any] | None:
    """``{"version", "package_arn", "source", "endpoint", "model_data_url"}`` of production, or None."""
    registry = os.environ.get(LOCAL_REGISTRY)
    if registry:
        served = _served_local(Path(os.environ.get(LOCAL_ENDPOINTS, "")), endpoint)

        def describe(arn: str) -> dict[str, Any]:
            return describe_local(Path(registry), arn, group)
    else:
        served = _served_sagemaker(sagemaker_client(), endpoint)

        def describe(arn: str) -> dict[str, Any]:
            return describe_sagemaker(arn, group)

    for arn, source in ((served, "stage"), (LATEST, "latest_approved")):
        if not arn:
            continue
        facts = describe(arn)
        if facts["ModelApprovalStatus"] != "NotFound" and facts["ModelDataUrl"]:
            return {
                "version": int(facts["ModelPackageVersion"]),
                "package_arn": facts["ModelPackageArn"],
                "source": source,
                "endpoint": endpoint if source == "stage" else None,
                "model_data_url": facts["ModelDataUrl"],
            }
    return None


def fetch_model(model_data_url: str, destination: Path) -> Path:
    """Copy the artifact (``model.tar.gz``) into ``destination``; returns the folder holding it."""
    parsed = urlparse(model_data_url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ProductionUnavailable(f"production model data is not an S3 URI: {model_data_url!r}")
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / "model.tar.gz"
    key = parsed.path.lstrip("/")
    store = os.environ.get(LOCAL_S3)
    if store:
        source = Path(store) / parsed.netloc / key
        if ".." in Path(key).parts or not source.is_file():
            raise ProductionUnavailable(f"production model {model_data_url} is not in the local store")
        shutil.copyfile(source, target)
        return destination
    import boto3
    from botocore.exceptions import ClientError

    try:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        boto3.client("s3", region_name=region).download_file(parsed.netloc, key, str(target))
    except ClientError as error:
        raise ProductionUnavailable(f"cannot read production model {model_data_url}: {error}") from None
    return destination
