"""SageMaker endpoints as ``dogpipe endpoints list|delete`` shows them: SageMaker's own status, fleet
and traffic split, with the fields of the local list besides.

The model version an endpoint serves is not on the endpoint itself: it is followed from the endpoint
to its config, to the config's first variant's model, to that model's ``ModelPackageName``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from pipeline.local.endpoint_records import model_version_of
from pipeline.sagemaker.aws import AwsError, aws_errors, is_not_found


def _config_of(sagemaker: Any, config_name: str | None) -> tuple[dict[str, Any], str | None]:
    """The endpoint config's description and the model package ARN behind its first variant; empty
    and None where the config or its model was deleted, or the model is not from the registry."""
    if not config_name:
        return {}, None
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variants = config.get("ProductionVariants") or [{}]
        model = sagemaker.describe_model(ModelName=variants[0].get("ModelName", ""))
    except ClientError as error:
        if not is_not_found(error):
            raise
        return {}, None  # the endpoint still lists, without a version
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    return config, containers[0].get("ModelPackageName")


def _instance_types(config: dict[str, Any]) -> str | None:
    types = [
        variant.get("InstanceType") or ("serverless" if variant.get("ServerlessConfig") else None)
        for variant in config.get("ProductionVariants") or []
    ]
    return ",".join(dict.fromkeys(kind for kind in types if kind)) or None


def _variants(described: dict[str, Any]) -> str | None:
    """``name:weight×instances`` per live variant: the traffic split of a blue/green shift."""
    parts = [
        f"{variant.get('VariantName')}:{variant.get('CurrentWeight', variant.get('DesiredWeight', '-'))}"
        f"x{variant.get('CurrentInstanceCount', variant.get('DesiredInstanceCount', '-'))}"
        for variant in described.get("ProductionVariants") or []
    ]
    return " ".join(parts) or None


def served_package_of(sagemaker: Any, endpoint: str) -> str | None:
    """The model package an endpoint serves, or None where there is no such endpoint (yet)."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    if described.get("EndpointStatus") not in {"InService", "Updating", "SystemUpdating"}:
        return None
    return _config_of(sagemaker, described.get("EndpointConfigName"))[1]


def invocation_url(region: str, name: str) -> str:
    return f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{name}/invocations"


def list_sagemaker_endpoints(sagemaker: Any, region: str) -> list[dict[str, Any]]:
    """One row per endpoint: SageMaker's status (Creating, InService, Updating, Failed), the version
    served, the instance type and the variants' weights; the local list's fields too (pid None)."""
    rows = []
    with aws_errors():
        for page in sagemaker.get_paginator("list_endpoints").paginate():
            for summary in page.get("Endpoints", []):
                name = summary["EndpointName"]
                described = sagemaker.describe_endpoint(EndpointName=name)
                config, package = _config_of(sagemaker, described.get("EndpointConfigName"))
                rows.append(
                    {
                        "name": name,
                        "status": described.get("EndpointStatus"),
                        "model_version": model_version_of(package),
                        "instance_type": _instance_types(config),
                        "variants": _variants(described),
                        "created": described.get("CreationTime"),
                        "failure": described.get("FailureReason"),
                        "url": invocation_url(region, name),
                        "pid": None,
                        "alive": described.get("EndpointStatus") == "InService",
                        "model_package_arn": package,
                    }
                )
    return sorted(rows, key=lambda row: row["name"])


def delete_sagemaker_endpoint(sagemaker: Any, name: str) -> None:
    """DeleteEndpoint; an unknown name is a clear error, not a silent success."""
    with aws_errors():
        try:
            sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if is_not_found(error):
                raise AwsError(f"no SageMaker endpoint named {name!r}") from None
            raise
        sagemaker.delete_endpoint(EndpointName=name)
