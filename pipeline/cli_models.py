"""The model commands: ``models list|approve|reject`` (the registry) and ``deploy`` (an approved version
to an endpoint), on SageMaker or on the local registry and endpoints, as the config's engine says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli_options import (
    aws_config,
    aws_options,
    clients_for,
    config_option,
    friendly_errors,
    local_option,
    role_option,
)
from pipeline.config import PipelineConfig


def registry_for(cfg: PipelineConfig) -> Any:
    """The registry of the config's engine: the local one for engine: local, else SageMaker's."""
    from pipeline.registry import LocalRegistry, SageMakerRegistry

    if cfg.engine == "local":
        return LocalRegistry(cfg.local.root)
    clients = clients_for(cfg)
    with friendly_errors():
        clients.check_credentials()
    return SageMakerRegistry(clients.sagemaker, clients.s3)


@click.group("models")
def models() -> None:
    """The model registry: list packages, approve or reject a version."""


@models.command("list")
@config_option
@aws_options
@local_option
def models_list(config_path: Path | None, region: str | None, bucket: str | None) -> None:
    """Versions of the model package group: status, creation time, accuracy."""
    cfg = aws_config(config_path, region, bucket)
    group = cfg.registry.model_package_group
    with friendly_errors():
        packages = registry_for(cfg).list_packages(group)
    if not packages:
        click.echo(f"no model packages in group {group}")
        return
    click.echo(f"{'VERSION':>7}  {'STATUS':<22} {'CREATED':<20} ACCURACY")
    for package in packages:
        accuracy = "-" if package.accuracy is None else f"{package.accuracy:.4f}"
        created = f"{package.created:%Y-%m-%d %H:%M:%S}"
        click.echo(f"{package.version:>7}  {package.approval_status:<22} {created:<20} {accuracy}")


def _set_status(cfg: PipelineConfig, version: str, status: str, note: str | None) -> Any:
    from pipeline.registry import parse_version

    with friendly_errors():
        package = registry_for(cfg).set_approval(
            cfg.registry.model_package_group, parse_version(version), status, note
        )
    click.echo(f"{package.group} version {package.version}: {package.approval_status}")
    return package


@models.command("approve")
@click.argument("version")
@click.option("--note", default=None, help="Why (stored as the ApprovalDescription).")
@config_option
@aws_options
@local_option
def models_approve(
    version: str,
    note: str | None,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
) -> None:
    """Mark VERSION Approved; with deploy.on_approval set, the deploy pipeline puts it on that stage."""
    from pipeline.cli_approval import deploy_after_approval

    cfg = aws_config(config_path, region, bucket)
    deploy_after_approval(cfg, _set_status(cfg, version, "Approved", note))


@models.command("reject")
@click.argument("version")
@click.option("--note", default=None, help="Why (stored as the ApprovalDescription).")
@config_option
@aws_options
@local_option
def models_reject(
    version: str,
    note: str | None,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
) -> None:
    """Mark VERSION Rejected."""
    _set_status(aws_config(config_path, region, bucket), version, "Rejected", note)


@click.command("deploy")
@click.option("--stage", type=click.Choice(["prod", "staging"]), default="prod", show_default=True)
@config_option
@aws_options
@role_option
@local_option
@click.option("--wait", is_flag=True, help="Wait until the endpoint is InService.")
def deploy(
    stage: str,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    role_arn: str | None,
    wait: bool,
) -> None:
    """Deploy the latest Approved model package to the stage's endpoint; refuses when none is approved."""
    from pipeline.aws import require_role
    from pipeline.deploy import SageMakerDeployer, approved_package, deploy_locally

    cfg = aws_config(config_path, region, bucket, role_arn)
    if cfg.engine == "local":
        with friendly_errors():
            record = deploy_locally(cfg, stage, registry_for(cfg))
        click.echo(f"endpoint {record['name']} serving {record['model_package_arn']} at {record['url']}")
        return
    with friendly_errors():
        role = require_role(cfg)
        package = approved_package(registry_for(cfg), cfg.registry.model_package_group)
        clients = clients_for(cfg)
        result = SageMakerDeployer(clients.sagemaker, clients.autoscaling).deploy(
            cfg, stage, package, role, wait=wait
        )
    click.echo(
        f"endpoint {result.endpoint_name} {result.action}: version {package.version} ({package.arn}) "
        f"via {result.endpoint_config_name}" + (", autoscaling on" if result.autoscaling else "")
    )


MODEL_COMMANDS: tuple[click.Command, ...] = (models, deploy)
