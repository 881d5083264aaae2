"""The model commands: ``models list|approve|reject`` (the registry) and ``deploy`` (an approved version
to an endpoint), on SageMaker or on the local registry and endpoints, as the config's engine says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipeline.cli_complete import complete_version
from pipeline.cli_options import (
    aws_config,
    aws_options,
    checked,
    clients_for,
    config_option,
    examples,
    friendly_errors,
    local_option,
    role_option,
)
from pipeline.cli_output import Output, Page, output_option, paging_options
from pipeline.config import PipelineConfig
from pipeline.names import VERSION


def registry_for(cfg: PipelineConfig) -> Any:
    """The registry of the config's engine: the local one for engine: local, else SageMaker's."""
    from pipeline.registry import LocalRegistry, SageMakerRegistry

    if cfg.engine == "local":
        return LocalRegistry(cfg.local.root)
    clients = clients_for(cfg)
    with friendly_errors():
        caller = clients.check_credentials()
    return SageMakerRegistry(clients.sagemaker, clients.s3, caller)


@click.group("models", epilog=examples("dogpipe models list", "dogpipe models approve 3 --note ok"))
def models() -> None:
    """The model registry: list packages, approve or reject a version."""


@models.command("list", epilog=examples("dogpipe models list", "dogpipe models list -o json"))
@config_option
@aws_options
@local_option
@output_option
@paging_options
def models_list(
    config_path: Path | None, region: str | None, bucket: str | None, output: Output, page: Page
) -> None:
    """Versions of the model package group: status, accuracy, the stage serving each, who approved it
    (-o json adds the note, approval time, source execution and model artifact)."""
    from pipeline.listings import PACKAGE_COLUMNS, package_rows

    cfg = aws_config(config_path, region, bucket)
    group = cfg.registry.model_package_group
    with friendly_errors():
        packages = registry_for(cfg).list_packages(group)
        serving = served_packages(cfg)
    empty = f"no model packages in group {group}"
    click.echo(output.rows(package_rows(page.apply(packages), serving), PACKAGE_COLUMNS, empty))


def served_packages(cfg: PipelineConfig) -> dict[str, list[str]]:
    """Model package ARN → the stages whose endpoint serves it now (a stopped local server serves nothing)."""
    from pipeline.deploy import endpoint_name_for

    stages = {endpoint_name_for(cfg, stage): stage for stage in ("staging", "prod")}
    served: dict[str, list[str]] = {}
    if cfg.engine == "local":
        from pipeline.local.endpoint_servers import list_endpoints

        arns = {row.name: row.model_package_arn for row in list_endpoints(cfg.local.root) if row.alive}
    else:
        from pipeline.sagemaker_endpoints import served_package_of

        sagemaker = clients_for(cfg).sagemaker
        arns = {name: served_package_of(sagemaker, name) for name in stages}
    for name, stage in stages.items():
        if arns.get(name):
            served.setdefault(str(arns[name]), []).append(stage)
    return served


def _set_status(cfg: PipelineConfig, version: str, status: str, note: str | None, force: bool = False) -> Any:
    """Set the status; approving a Rejected version needs ``force`` and a note, and says so in the
    stored ApprovalDescription (what `models list` and Studio show)."""
    from pipeline.registry import parse_version

    group = cfg.registry.model_package_group
    with friendly_errors():
        registry = registry_for(cfg)
        current = registry.get(group, parse_version(version))
        if status == "Approved" and current.approval_status == "Rejected":
            if not (force and note):
                raise click.ClickException(
                    f"version {current.version} was Rejected ({current.approval_description or 'no note'}): "
                    "approving it needs --force and a --note saying why"
                )
            note = f"approved over a rejection: {note}"
        package = registry.set_approval(group, current.version, status, note)
    click.echo(f"{package.group} version {package.version}: {package.approval_status}")
    return package


def _approval_arguments(command: Callable[..., None]) -> Callable[..., None]:
    """VERSION, --note and the config/AWS options that approve and reject both take."""
    for decorate in reversed(
        (
            click.argument("version", shell_complete=complete_version, callback=checked(VERSION)),
            click.option("--note", default=None, help="Why (stored as the ApprovalDescription)."),
            config_option,
            aws_options,
            local_option,
        )
    ):
        command = decorate(command)
    return command


@models.command("approve", epilog=examples('dogpipe models approve 3 --note "checked the report"'))
@_approval_arguments
@click.option("--force", is_flag=True, help="Approve a Rejected version (needs --note).")
def models_approve(
    version: str,
    note: str | None,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    force: bool,
) -> None:
    """Mark VERSION Approved; with deploy.on_approval set, the deploy pipeline puts it on that stage."""
    from pipeline.cli_approval import deploy_after_approval

    cfg = aws_config(config_path, region, bucket)
    deploy_after_approval(cfg, _set_status(cfg, version, "Approved", note, force))


@models.command("reject", epilog=examples('dogpipe models reject 2 --note "overfits"'))
@_approval_arguments
def models_reject(
    version: str,
    note: str | None,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
) -> None:
    """Mark VERSION Rejected."""
    _set_status(aws_config(config_path, region, bucket), version, "Rejected", note)


@click.command(
    "deploy", epilog=examples("dogpipe deploy --stage prod", "dogpipe deploy --stage staging --wait")
)
@click.option(
    "--stage",
    type=click.Choice(["prod", "staging"]),
    default="prod",
    show_default=True,
    help="Which endpoint: deploy.production_endpoint or deploy.staging_endpoint.",
)
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
    """Deploy the latest Approved model package to the stage's endpoint; refuses when none is approved.
    The stage ``deploy.on_approval`` names is served only through the deploy pipeline (a listed deploy
    execution, with its re-check of the approval); others are deployed directly."""
    from pipeline.aws import require_role
    from pipeline.deploy import SageMakerDeployer, approved_package, deploy_locally

    cfg = aws_config(config_path, region, bucket, role_arn)
    if cfg.deploy.on_approval == stage:  # production is reached only through an approval
        from pipeline.cli_approval import run_deploy_pipeline

        with friendly_errors():
            package = approved_package(registry_for(cfg), cfg.registry.model_package_group)
        run_deploy_pipeline(cfg, package)
        return
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
