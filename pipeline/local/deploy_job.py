"""The deploy pipeline's ``Deploy`` job on this machine.

On SageMaker ``training_code/deploy_endpoint.py`` runs as a processing job and calls UpdateEndpoint.
Locally an endpoint is a server process of this machine, which a job in its own folder cannot switch,
so the engine runs the step itself, as it runs the Model/EndpointConfig/Endpoint API steps: with the
script's own argument parser and freshness rule (:func:`deploy_endpoint.stale_reason` against the
registry folder the ResolvePackage job reads), then the same blue/green start as an Endpoint step.
A resumed or retried deploy therefore re-checks the registry before it touches the endpoint.
"""

from __future__ import annotations

from typing import Any

from pipeline.local.context import StepContext, arn
from pipeline.local.endpoint_steps import serve_endpoint_config
from training_code.deploy_endpoint import SCRIPT, DeployRefused, parse_args, stale_reason
from training_code.resolve_model_package import LATEST, describe_local


def is_deploy_job(entrypoint: list[Any]) -> bool:
    """Whether a processing step runs the Deploy job (its script is the entrypoint's last word)."""
    return bool(entrypoint) and str(entrypoint[-1]).rsplit("/", 1)[-1] == SCRIPT


def run_deploy_job(ctx: StepContext, container_arguments: list[Any]) -> dict[str, Any]:
    """Re-check the package, then serve the endpoint config; DescribeProcessingJob-shaped properties."""
    args = parse_args([str(item) for item in container_arguments])
    registry = ctx.settings.root / "registry"
    target = describe_local(registry, args.model_package_arn, args.group)
    reason = stale_reason(target, describe_local(registry, LATEST, args.group), args.stage)
    if reason:
        raise DeployRefused(reason)
    serve_endpoint_config(ctx, args.endpoint_name, args.endpoint_config_name)
    name = f"deploy-{ctx.execution_id}"
    return {
        **ctx.arguments,
        "ProcessingJobName": name,
        "ProcessingJobArn": arn("processing-job", name),
        "ProcessingJobStatus": "Completed",
        "ExitMessage": f"{args.endpoint_name}: InService with {args.endpoint_config_name}",
    }
