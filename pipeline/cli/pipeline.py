"""The pipeline commands: upsert, start, status (of an execution), diff.

``upsert``, ``start`` and ``diff`` act on SageMaker; ``status`` on the engine the config names. Each
command parses, calls one library function (``pipeline.sagemaker.pipelines``,
``pipeline.definition.diff``), and prints; every
expected failure becomes one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import (
    aws_config,
    aws_options,
    checked,
    clients_for,
    config_option,
    definition_option,
    definition_text,
    examples,
    friendly_errors,
    local_option,
    require_engine,
    require_known_architecture,
    role_option,
)
from pipeline.cli.output import Output, output_option
from pipeline.config import PipelineConfig
from pipeline.names import EXECUTION_REF


@click.command(
    "upsert",
    epilog=examples(
        "dogpipe upsert --config config/pipeline.yaml --role-arn arn:aws:iam::123456789012:role/sm"
    ),
)
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
    from pipeline.definition.code import package_code
    from pipeline.sagemaker.pipelines import upsert_pipeline

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
    for line in result.triggers:  # approval rule, schedule, rollback alarms (pipeline/sagemaker/triggers.py)
        click.echo(line)


@click.command(
    "start",
    epilog=examples("dogpipe start --param AccuracyThreshold=0.8 --wait --config config/pipeline.yaml"),
)
@config_option
@aws_options
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a pipeline parameter.")
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the execution, printing each step's status change; exit 1 unless it succeeded.",
)
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
    from pipeline.definition.parameters import parse_param_pairs
    from pipeline.sagemaker.pipelines import start_execution
    from pipeline.sagemaker.watch import watch_execution

    cfg = aws_config(config_path, region, bucket)
    require_engine(cfg, config_path, "sagemaker", "start")
    with friendly_errors():
        clients = clients_for(cfg)
        arn = start_execution(clients, cfg, parse_param_pairs(params))
        click.echo(arn)
        if wait:
            status = watch_execution(clients.sagemaker, arn, click.echo, timeout_s=timeout, poll_s=poll)
            click.echo(f"status: {status}")
            if status != "Succeeded":
                raise click.exceptions.Exit(1)


@click.command(
    "status", epilog=examples("dogpipe status", "dogpipe status EXECUTION -o json", "dogpipe status --watch")
)
@click.argument(
    "execution_arn",
    metavar="[EXECUTION]",
    required=False,
    shell_complete=complete_execution,
    callback=checked(EXECUTION_REF),
)
@config_option
@aws_options
@local_option
@output_option
@click.option(
    "--watch",
    is_flag=True,
    help="Print it again whenever it changes until the execution ends; exit 1 unless it succeeded.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between looks (--watch).",
)
def status(
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    execution_arn: str | None,
    output: Output,
    watch: bool,
    poll: float,
) -> None:
    """Status of an execution and of its steps (default: the build pipeline's latest): a local execution
    id, or a pipeline execution ARN on SageMaker."""
    import time

    from pipeline.cli import listings
    from pipeline.local.summary import LOCAL_STEP_COLUMNS
    from pipeline.sagemaker.pipelines import RUNNING_STATUSES

    cfg = aws_config(config_path, region, bucket)
    if cfg.engine == "local":
        execution = _local_execution(cfg, execution_arn)

        def look() -> tuple[dict[str, Any], str]:
            record = listings.local_status(execution)
            return record, output.record(record, "steps", LOCAL_STEP_COLUMNS)
    else:
        from pipeline.sagemaker.pipelines import execution_report

        clients = clients_for(cfg)

        def look() -> tuple[dict[str, Any], str]:
            with friendly_errors():
                record = listings.remote_status(execution_report(clients, cfg, execution_arn))
            return record, output.record(record, "steps", listings.REMOTE_STEP_COLUMNS)

    record, text = look()
    click.echo(text)
    while watch and record["status"] in RUNNING_STATUSES:
        execution_arn = execution_arn or str(record["execution"])  # follow this one, not a newer one
        time.sleep(poll)
        record, again = look()
        if again != text:
            click.echo(again)
            text = again
    if watch and record["status"] != "Succeeded":
        raise click.exceptions.Exit(1)


def _local_execution(cfg: PipelineConfig, execution_id: str | None) -> Any:
    """The local execution ``execution_id`` (when None, the build pipeline's latest, as on SageMaker),
    or exit naming what is missing."""
    from pipeline.local.executions import ExecutionNotFound, ExecutionStore

    try:
        return ExecutionStore(cfg.local.root).resolve(execution_id, cfg.project.name)
    except ExecutionNotFound as error:
        raise click.ClickException(str(error)) from None


@click.command("diff", epilog=examples("dogpipe diff --config config/pipeline.yaml"))
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
    from pipeline.sagemaker.pipelines import deployed_definition

    cfg = aws_config(config_path, region, bucket, role_arn)
    require_engine(cfg, config_path, "sagemaker", "diff")
    local = definition_text(cfg, definition_path, role_arn=cfg.project.role_arn)
    from pipeline.config.deploy_names import deploy_pipeline_name
    from pipeline.definition.deploy_pipeline import build_deploy_definition

    deploy_local = build_deploy_definition(cfg, role_arn=cfg.project.role_arn)
    with friendly_errors():
        clients = clients_for(cfg)
        clients.check_credentials()
        for name, wanted in ((cfg.project.name, local), (deploy_pipeline_name(cfg), deploy_local)):
            deployed = deployed_definition(clients.sagemaker, name)
            for line in _pipeline_diff(name, deployed, wanted):
                click.echo(line)
    from pipeline.sagemaker.triggers import (
        trigger_diff,  # the approval rule and the schedule (pipeline/sagemaker/triggers.py)
    )

    with friendly_errors():
        for line in trigger_diff(clients.client("events"), clients.client("scheduler"), cfg):
            click.echo(line)


def _pipeline_diff(name: str, deployed: str | None, wanted: str) -> list[str]:
    """``diff``'s lines for one pipeline: all of it as to-be-created before its first upsert."""
    from pipeline.definition.diff import diff_definitions

    if deployed is None:
        lines = diff_definitions({"Steps": [], "Parameters": []}, wanted).lines()
        return [f"pipeline {name}: would be created", *(f"  {line}" for line in lines)]
    found = diff_definitions(deployed, wanted)
    if found.empty:
        return [f"pipeline {name}: unchanged"]
    return [f"pipeline {name}: would be updated", *(f"  {line}" for line in found.lines())]


PIPELINE_COMMANDS: tuple[click.Command, ...] = (upsert, start, status, diff)
