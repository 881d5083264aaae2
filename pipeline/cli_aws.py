"""The AWS-facing commands: upsert, start, status, diff, models list|approve|reject, deploy.

Kept beside ``pipeline/cli.py`` (which registers them) so the command group stays one screen long.
Each command parses, calls one library function (``pipeline.remote``, ``pipeline.diff``,
``pipeline.registry``, ``pipeline.deploy``), and prints; every expected failure becomes one line on
stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.cli_options import (
    config_option,
    definition_option,
    definition_text,
    read_config,
    require_known_architecture,
)
from pipeline.config import PipelineConfig

F = TypeVar("F", bound=Callable[..., Any])


def aws_options(function: F) -> F:
    """--region and --bucket, which override DOGPIPE_REGION / DOGPIPE_BUCKET and the config file."""
    function = click.option("--bucket", default=None, help="S3 bucket (else DOGPIPE_BUCKET, else config).")(
        function
    )
    return click.option("--region", default=None, help="AWS region (else DOGPIPE_REGION, else config).")(
        function
    )


role_option = click.option(
    "--role-arn", default=None, help="SageMaker execution role (else DOGPIPE_ROLE_ARN, else config)."
)
local_option = click.option(
    "--local",
    "use_local",
    is_flag=True,
    help="Act on the local engine (default when the config's engine is local).",
)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Expected failures as one clear line (exit 1); nothing else is caught."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.aws import AwsError, translate
    from pipeline.deploy import DeployError
    from pipeline.registry import RegistryError
    from pipeline.remote import PipelineError

    try:
        yield
    except (AwsError, DeployError, PipelineError, RegistryError) as error:
        raise click.ClickException(str(error)) from None
    except (BotoCoreError, ClientError) as error:
        raise click.ClickException(str(translate(error))) from None


def aws_config(
    config_path: Path | None, region: str | None, bucket: str | None, role_arn: str | None = None
) -> PipelineConfig:
    from pipeline.aws import with_aws_settings

    with friendly_errors():
        return with_aws_settings(read_config(config_path), region=region, bucket=bucket, role_arn=role_arn)


def clients_for(cfg: PipelineConfig) -> Any:
    from pipeline.aws import AwsClients

    with friendly_errors():
        return AwsClients.for_config(cfg)


@click.command("upsert")
@config_option
@aws_options
@role_option
@definition_option
def upsert(
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    role_arn: str | None,
    definition_path: Path | None,
) -> None:
    """Stage the training code in S3 (only what is missing), then create or update the pipeline."""
    from pipeline.code import package_code
    from pipeline.remote import upsert_pipeline

    cfg = aws_config(config_path, region, bucket, role_arn)
    require_known_architecture(cfg)
    code = package_code()  # packed once: the definition refers to exactly what is staged
    definition = definition_text(cfg, definition_path, role_arn=cfg.project.role_arn, code=code)
    with friendly_errors():
        result = upsert_pipeline(clients_for(cfg), cfg, definition, code)
    click.echo(f"code: {len(result.staged)} object(s) uploaded, {result.already_staged} already in S3")
    click.echo(f"pipeline {result.action}: {result.pipeline_arn}")


@click.command("start")
@config_option
@aws_options
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a pipeline parameter.")
@click.option("--wait", is_flag=True, help="Poll until the execution finishes; exit 1 unless it succeeded.")
@click.option("--timeout", default=6 * 3600, show_default=True, help="Seconds --wait polls before giving up.")
@click.option("--poll", default=30.0, show_default=True, help="Seconds between polls.")
def start(
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    params: tuple[str, ...],
    wait: bool,
    timeout: int,
    poll: float,
) -> None:
    """Start an execution of the deployed pipeline and print its ARN."""
    from pipeline.remote import parse_overrides, start_execution, wait_for_execution

    cfg = aws_config(config_path, region, bucket)
    with friendly_errors():
        clients = clients_for(cfg)
        arn = start_execution(clients, cfg, parse_overrides(params))
        click.echo(arn)
        if wait:
            status = wait_for_execution(clients.sagemaker, arn, timeout_s=timeout, poll_s=poll)
            click.echo(f"status: {status}")
            if status != "Succeeded":
                raise click.exceptions.Exit(1)


@click.command("status")
@click.argument("execution_arn", required=False)
@config_option
@aws_options
@local_option
def status(
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    execution_arn: str | None,
    use_local: bool,
) -> None:
    """Status of an execution (the latest when none is given) and of its steps."""
    from pipeline.remote import execution_report

    cfg = aws_config(config_path, region, bucket)
    if use_local or cfg.engine == "local":
        from pipeline.local.cli import local_status

        local_status(cfg, execution_arn)
        return
    with friendly_errors():
        report = execution_report(clients_for(cfg), cfg, execution_arn)
    click.echo(f"execution: {report.arn}")
    click.echo(f"status:    {report.status}")
    if report.created:
        click.echo(f"started:   {report.created:%Y-%m-%d %H:%M:%S %Z}".rstrip())
    if report.failure_reason:
        click.echo(f"failure:   {report.failure_reason}")
    if report.steps_unavailable:
        click.echo(f"steps:     {report.steps_unavailable}")
    for step in report.steps:
        reason = f"  ({step.failure_reason})" if step.failure_reason else ""
        click.echo(f"  {step.name:<24} {step.status}{reason}")


@click.command("diff")
@config_option
@aws_options
@role_option
@definition_option
def diff(
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    role_arn: str | None,
    definition_path: Path | None,
) -> None:
    """What `dogpipe upsert` would change: per step and parameter, with the JSON paths that differ."""
    from pipeline.diff import diff_definitions
    from pipeline.remote import require_deployed_definition

    cfg = aws_config(config_path, region, bucket, role_arn)
    local = definition_text(cfg, definition_path, role_arn=cfg.project.role_arn)
    with friendly_errors():
        clients = clients_for(cfg)
        clients.check_credentials()
        deployed = require_deployed_definition(clients.sagemaker, cfg.project.name)
    for line in diff_definitions(deployed, local).lines():
        click.echo(line)


def registry_for(cfg: PipelineConfig, use_local: bool) -> Any:
    """The local registry for a local config or ``--local``, else SageMaker's."""
    from pipeline.registry import LocalRegistry, SageMakerRegistry

    if use_local or cfg.engine == "local":
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
def models_list(config_path: Path | None, region: str | None, bucket: str | None, use_local: bool) -> None:
    """Versions of the model package group: status, creation time, accuracy."""
    cfg = aws_config(config_path, region, bucket)
    group = cfg.registry.model_package_group
    with friendly_errors():
        packages = registry_for(cfg, use_local).list_packages(group)
    if not packages:
        click.echo(f"no model packages in group {group}")
        return
    click.echo(f"{'VERSION':>7}  {'STATUS':<22} {'CREATED':<20} ACCURACY")
    for package in packages:
        accuracy = "-" if package.accuracy is None else f"{package.accuracy:.4f}"
        created = f"{package.created:%Y-%m-%d %H:%M:%S}"
        click.echo(f"{package.version:>7}  {package.approval_status:<22} {created:<20} {accuracy}")


def _set_status(cfg: PipelineConfig, use_local: bool, version: str, status: str, note: str | None) -> None:
    from pipeline.registry import parse_version

    with friendly_errors():
        package = registry_for(cfg, use_local).set_approval(
            cfg.registry.model_package_group, parse_version(version), status, note
        )
    click.echo(f"{package.group} version {package.version}: {package.approval_status}")


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
    use_local: bool,
) -> None:
    """Mark VERSION Approved: it becomes eligible for `dogpipe deploy --stage prod`."""
    _set_status(aws_config(config_path, region, bucket), use_local, version, "Approved", note)


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
    use_local: bool,
) -> None:
    """Mark VERSION Rejected."""
    _set_status(aws_config(config_path, region, bucket), use_local, version, "Rejected", note)


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
    use_local: bool,
    wait: bool,
) -> None:
    """Deploy the latest Approved model package to the stage's endpoint; refuses when none is approved."""
    from pipeline.aws import require_role
    from pipeline.deploy import SageMakerDeployer, approved_package, deploy_locally

    cfg = aws_config(config_path, region, bucket, role_arn)
    if use_local or cfg.engine == "local":
        with friendly_errors():
            record = deploy_locally(cfg, stage, registry_for(cfg, True))
        click.echo(f"endpoint {record['name']} serving {record['model_package_arn']} at {record['url']}")
        return
    with friendly_errors():
        role = require_role(cfg)
        package = approved_package(registry_for(cfg, False), cfg.registry.model_package_group)
        clients = clients_for(cfg)
        result = SageMakerDeployer(clients.sagemaker, clients.autoscaling).deploy(
            cfg, stage, package, role, wait=wait
        )
    click.echo(
        f"endpoint {result.endpoint_name} {result.action}: version {package.version} ({package.arn}) "
        f"via {result.endpoint_config_name}" + (", autoscaling on" if result.autoscaling else "")
    )


AWS_COMMANDS: tuple[click.Command, ...] = (upsert, start, status, diff, models, deploy)
