"""The pipeline commands: upsert, start, status (of an execution), diff.

``upsert``, ``start`` and ``diff`` are SageMaker's verbs (declared by its engine); ``status`` asks the
engine the config names. Each command parses, calls its engine (``pipeline.engines``) and prints; every
expected failure becomes one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import (
    aws_options,
    checked,
    config_option,
    definition_option,
    definition_text,
    examples,
    local_option,
    open_engine,
    require_known_architecture,
    role_option,
)
from pipeline.cli.output import Output, output_option
from pipeline.names import EXECUTION_REF

if TYPE_CHECKING:
    from pipeline.engines import SageMakerVerbs


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

    engine = cast("SageMakerVerbs", open_engine(config_path, region, bucket, role_arn, verb="upsert"))
    require_known_architecture(engine.cfg)
    code = package_code()  # packed once: the definition refers to exactly what is staged
    definition = definition_text(engine.cfg, definition_path, role_arn=engine.cfg.project.role_arn, code=code)
    result = engine.upsert(definition, code)
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
    engine = cast("SageMakerVerbs", open_engine(config_path, region, bucket, verb="start"))
    from pipeline.engines import RUNNING_STATUSES

    arn = engine.start(params)
    click.echo(arn)
    if wait:
        status = engine.watch(arn, click.echo, timeout_s=timeout, poll_s=poll)
        click.echo(f"status: {status}")
        if status not in RUNNING_STATUSES:  # ended (not a --timeout): its MLflow run, as `report` records it
            from pipeline.errors import DogpipeError

            try:
                run_id = engine.record_run(arn)
            except DogpipeError as error:  # the execution ended as it did; its record can come later
                click.echo(
                    f"tracking: execution run not recorded ({error}); `dogpipe report` records it", err=True
                )
            else:
                if run_id:
                    click.echo(f"tracking: execution run {run_id}")
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

    from pipeline.engines import RUNNING_STATUSES

    probe = open_engine(config_path, region, bucket).execution_status(execution_arn)

    def look() -> tuple[dict[str, Any], str]:
        record = probe.look()
        return record, output.record(record, "steps", probe.step_columns)

    record, text = look()
    click.echo(text)
    while watch and record["status"] in RUNNING_STATUSES:
        time.sleep(poll)
        record, again = look()
        if again != text:
            click.echo(again)
            text = again
    if watch and record["status"] != "Succeeded":
        raise click.exceptions.Exit(1)


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
    from pipeline.definition.deploy_pipeline import build_deploy_definition

    engine = cast("SageMakerVerbs", open_engine(config_path, region, bucket, role_arn, verb="diff"))
    role = engine.cfg.project.role_arn
    build = definition_text(engine.cfg, definition_path, role_arn=role)
    for line in engine.diff_lines(build, build_deploy_definition(engine.cfg, role_arn=role)):
        click.echo(line)


PIPELINE_COMMANDS: tuple[click.Command, ...] = (upsert, start, status, diff)
