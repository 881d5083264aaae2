"""The pipeline commands: upsert, start, status (of an execution), diff.

``upsert``, ``start`` and ``diff`` act on SageMaker; ``status`` on the engine the config names. Each
command parses, calls one library function (``pipeline.remote``, ``pipeline.diff``), and prints; every
expected failure becomes one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_options import (
    aws_config,
    aws_options,
    clients_for,
    config_option,
    definition_option,
    definition_text,
    friendly_errors,
    local_option,
    require_engine,
    require_known_architecture,
    role_option,
)


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
    require_engine(cfg, config_path, "sagemaker", "upsert")
    require_known_architecture(cfg)
    code = package_code()  # packed once: the definition refers to exactly what is staged
    definition = definition_text(cfg, definition_path, role_arn=cfg.project.role_arn, code=code)
    with friendly_errors():
        result = upsert_pipeline(clients_for(cfg), cfg, definition, code)
    click.echo(f"code: {len(result.staged)} object(s) uploaded, {result.already_staged} already in S3")
    click.echo(f"pipeline {result.action}: {result.pipeline_arn}")
    click.echo(f"deploy pipeline {result.deploy_action}: {result.deploy_pipeline_arn}")
    for line in result.triggers:  # approval rule, schedule, rollback alarms (pipeline/triggers.py)
        click.echo(line)


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
    require_engine(cfg, config_path, "sagemaker", "start")
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
) -> None:
    """Status of an execution (the latest when none is given) and of its steps."""
    from pipeline.remote import execution_report

    cfg = aws_config(config_path, region, bucket)
    if cfg.engine == "local":
        from pipeline.cli_local import local_status

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
    require_engine(cfg, config_path, "sagemaker", "diff")
    local = definition_text(cfg, definition_path, role_arn=cfg.project.role_arn)
    with friendly_errors():
        clients = clients_for(cfg)
        clients.check_credentials()
        deployed = require_deployed_definition(clients.sagemaker, cfg.project.name)
    for line in diff_definitions(deployed, local).lines():
        click.echo(line)


PIPELINE_COMMANDS: tuple[click.Command, ...] = (upsert, start, status, diff)
