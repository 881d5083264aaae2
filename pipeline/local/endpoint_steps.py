"""CreateModel, CreateEndpointConfig and CreateEndpoint steps on this machine.

Models and endpoint configs are records under ``<root>/control/`` (what the SageMaker control plane
would hold); an Endpoint step follows config → model → model data (or the registered package's) and
starts a local server via :mod:`pipeline.local.endpoint_servers`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.local.container import job_name
from pipeline.local.context import StepContext, arn
from pipeline.local.endpoint_capture import LocalCapture
from pipeline.local.endpoint_servers import start_endpoint
from pipeline.local.endpoint_smoke import smoke_prediction
from pipeline.local.executions import read_json, write_json
from pipeline.names import RESOURCE, path_under
from pipeline.registry import LocalRegistry


class EndpointArgumentError(ValueError):
    """Model/EndpointConfig/Endpoint arguments SageMaker would reject (unknown model, config…)."""


def _control(ctx: StepContext, kind: str, name: str) -> Path:
    """The record of a model or endpoint config: names come from the definition, so they are checked."""
    return path_under(ctx.settings.root / "control" / kind, f"{RESOURCE.check(name)}.json")


def _read_control(ctx: StepContext, kind: str, name: str, what: str) -> dict[str, Any]:
    path = _control(ctx, kind, name)
    if not path.is_file():
        raise EndpointArgumentError(f"Could not find {what} {name!r}")
    return read_json(path)


def run_create_model(ctx: StepContext) -> dict[str, Any]:
    arguments = dict(ctx.arguments)
    container = arguments.get("PrimaryContainer") or (arguments.get("Containers") or [None])[0]
    if not container or not (container.get("ModelDataUrl") or container.get("ModelPackageName")):
        raise EndpointArgumentError(
            "CreateModel needs PrimaryContainer with ModelDataUrl or ModelPackageName"
        )
    name = arguments.get("ModelName") or job_name(ctx.name)
    record = {**arguments, "ModelName": name, "PrimaryContainer": container}
    write_json(_control(ctx, "models", name), record)
    return {**record, "ModelArn": arn("model", name)}


def run_endpoint_config(ctx: StepContext) -> dict[str, Any]:
    arguments = dict(ctx.arguments)
    variants = arguments.get("ProductionVariants") or []
    if not variants:
        raise EndpointArgumentError("CreateEndpointConfig needs at least one ProductionVariants entry")
    for variant in variants:
        _read_control(ctx, "models", str(variant.get("ModelName")), "model")
    name = arguments.get("EndpointConfigName") or job_name(ctx.name)
    record = {**arguments, "EndpointConfigName": name}
    write_json(_control(ctx, "endpoint-configs", name), record)
    return {**record, "EndpointConfigArn": arn("endpoint-config", name)}


def _model_data(ctx: StepContext, container: dict[str, Any]) -> tuple[str, str | None]:
    """(model data URI, model package ARN or None) of a model's container."""
    package_arn = container.get("ModelPackageName")
    if container.get("ModelDataUrl"):
        return container["ModelDataUrl"], package_arn
    match = re.search(r"model-package/([^/]+)/(\d+)$", str(package_arn))
    if not match:
        raise EndpointArgumentError(f"cannot resolve model package {package_arn!r}")
    package = LocalRegistry(ctx.settings.root).get(match.group(1), int(match.group(2)))
    if not package.model_data_url:
        raise EndpointArgumentError(f"model package {package_arn} has no model data")
    return package.model_data_url, package_arn


def run_endpoint(ctx: StepContext) -> dict[str, Any]:
    arguments = dict(ctx.arguments)
    name = arguments.get("EndpointName")
    config_name = arguments.get("EndpointConfigName")
    if not name or not config_name:
        raise EndpointArgumentError("CreateEndpoint needs EndpointName and EndpointConfigName")
    serve_endpoint_config(ctx, str(name), str(config_name))
    return {**arguments, "EndpointArn": arn("endpoint", str(name)), "EndpointStatus": "InService"}


def serve_endpoint_config(ctx: StepContext, name: str, config_name: str) -> dict[str, Any]:
    """CreateEndpoint or UpdateEndpoint on this machine: serve the config's model as endpoint ``name``,
    blue/green (the new server must pass a smoke prediction before it takes the name)."""
    config = _read_control(ctx, "endpoint-configs", config_name, "endpoint configuration")
    model = _read_control(ctx, "models", str(config["ProductionVariants"][0]["ModelName"]), "model")
    model_data, package_arn = _model_data(ctx, model["PrimaryContainer"])
    capture = LocalCapture.from_request(
        config.get("DataCaptureConfig"),
        ctx.store.path_for,
        ctx.settings.capture_max_file_bytes,
        ctx.settings.capture_max_total_bytes,
    )
    ctx.echo(f"  [{ctx.name}] starting local endpoint {name} for {model_data}")
    record = start_endpoint(
        ctx.settings.root,
        name,
        ctx.store.path_for(model_data),
        model_data=model_data,
        model_package_arn=package_arn,
        host=ctx.settings.endpoint_host,
        port=ctx.settings.endpoint_port,
        smoke=smoke_prediction,
        capture=capture,
    )
    note = f", capturing {capture.sampling_percentage}% under {capture.folder}" if capture else ""
    ctx.echo(f"  [{ctx.name}] {name} serving at {record['url']}{note}")
    return record
