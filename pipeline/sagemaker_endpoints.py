"""SageMaker endpoints as ``dogpipe endpoints list|delete`` shows them: the rows the local list has.

The model version an endpoint serves is not on the endpoint itself: it is followed from the endpoint
to its config, to the config's first variant's model, to that model's ``ModelPackageName``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from pipeline.aws import AwsError, aws_errors
from pipeline.local.endpoint_servers import model_version_of


def _served_package(sagemaker: Any, config_name: str | None) -> str | None:
    """The model package ARN behind an endpoint config, or None where it is not from the registry."""
    if not config_name:
        return None
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variants = config.get("ProductionVariants") or [{}]
        model = sagemaker.describe_model(ModelName=variants[0].get("ModelName", ""))
    except ClientError:
        return None  # a deleted config or model: the endpoint still lists, without a version
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    return containers[0].get("ModelPackageName")


def invocation_url(region: str, name: str) -> str:
    return f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{name}/invocations"


def list_sagemaker_endpoints(sagemaker: Any, region: str) -> list[dict[str, Any]]:
    """One row per endpoint: the columns of the local list (pid is None: AWS runs the servers)."""
    rows = []
    with aws_errors():
        for page in sagemaker.get_paginator("list_endpoints").paginate():
            for summary in page.get("Endpoints", []):
                name = summary["EndpointName"]
                described = sagemaker.describe_endpoint(EndpointName=name)
                package = _served_package(sagemaker, described.get("EndpointConfigName"))
                rows.append(
                    {
                        "name": name,
                        "model_version": model_version_of(package),
                        "url": invocation_url(region, name),
                        "pid": None,
                        "alive": described.get("EndpointStatus") == "InService",
                        "status": described.get("EndpointStatus"),
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
            if error.response.get("Error", {}).get("Code") in {"ValidationException", "ResourceNotFound"}:
                raise AwsError(f"no SageMaker endpoint named {name!r}") from None
            raise
        sagemaker.delete_endpoint(EndpointName=name)
