"""``dogpipe logs EXECUTION [STEP] [--follow]``: the jobs' output, on either engine.

Locally the job logs under the execution's folder (``pipeline.local.job_logs``); on SageMaker the jobs'
CloudWatch Logs streams (``pipeline.sagemaker.logs``). Each line is prefixed with where it came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import aws_config, checked, clients_for, config_option, examples, friendly_errors
from pipeline.names import EXECUTION_REF, STEP
from pipeline.sagemaker.pipelines import RUNNING_STATUSES


@click.command(
    "logs",
    epilog=examples(
        "dogpipe logs 20261206-093205-a34e7a",
        "dogpipe logs 20261206-093205-a34e7a Train --follow",
        "dogpipe logs 1a2b3c4d5e6f Tune --config config/pipeline.yaml",
    ),
)
@click.argument("execution", shell_complete=complete_execution, callback=checked(EXECUTION_REF))
@click.argument("step", required=False, callback=checked(STEP))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the execution ends.")
@click.option(
    "--poll", type=click.FloatRange(min=0.1), default=None, help="Seconds between looks (--follow)."
)
@config_option
def logs(
    execution: str, step: str | None, follow: bool, poll: float | None, config_path: Path | None
) -> None:
    """Print the job logs of EXECUTION (one STEP's when given): the local job logs, or CloudWatch Logs
    on SageMaker. Steps that run no job (conditions, registration, endpoints) have none."""
    cfg = aws_config(config_path, None, None)
    if cfg.engine == "local":
        lines, running = _local(cfg.local.root, execution, step)
        interval = 0.5 if poll is None else poll
    else:
        with friendly_errors():
            lines, running = _sagemaker(cfg, execution, step)
        interval = 10.0 if poll is None else poll
    _print(lines, running, follow, interval)


def _print(
    lines: Callable[[bool], Iterator[str]], running: Callable[[], bool], follow: bool, poll: float
) -> None:
    """Everything so far; with ``follow``, what arrives until the execution ends (then a last drain)."""
    printed = 0
    for line in lines(not follow):
        click.echo(line)
        printed += 1
    while follow and running():
        time.sleep(poll)
        for line in lines(False):
            click.echo(line)
            printed += 1
    if follow:
        for line in lines(True):
            click.echo(line)
            printed += 1
    if not printed:
        click.echo("no log lines yet" + ("" if follow else " (--follow waits for them)"), err=True)


def _local(
    root: Path, execution_id: str, step: str | None
) -> tuple[Callable[[bool], Iterator[str]], Callable[[], bool]]:
    from pipeline.local.executions import ExecutionNotFound, ExecutionStore
    from pipeline.local.job_logs import LogTail, log_sources, step_names

    try:
        execution = ExecutionStore(root).get(execution_id)
    except ExecutionNotFound as error:
        raise click.ClickException(str(error)) from None
    if step and step not in step_names(execution):
        known = ", ".join(step_names(execution))
        raise click.ClickException(f"execution {execution.id} has no step {step!r} (steps: {known})")
    tail = LogTail()

    def lines(final: bool) -> Iterator[str]:
        return tail.new_lines(log_sources(execution, step), final)

    return lines, lambda: execution.record.get("status") in RUNNING_STATUSES


def _sagemaker(cfg, execution: str, step: str | None):  # type: ignore[no-untyped-def]
    from pipeline.sagemaker.executions import find_execution
    from pipeline.sagemaker.logs import CloudWatchTail, job_logs
    from pipeline.sagemaker.pipelines import PipelineError, list_execution_steps

    clients = clients_for(cfg)
    clients.check_credentials()
    sagemaker = clients.sagemaker
    arn = find_execution(sagemaker, cfg, execution)["arn"]
    first = list_execution_steps(sagemaker, arn)
    if step and step not in {state.name for state in first}:
        started = ", ".join(state.name for state in first) or "none yet"
        raise PipelineError(
            f"execution {arn.rsplit('/', 1)[-1]} has not run a step {step!r} (steps: {started})"
        )
    tail = CloudWatchTail(clients.client("logs"))
    steps = {"now": first}

    def lines(final: bool) -> Iterator[str]:
        return tail.new_lines(job_logs(sagemaker, steps["now"], step))

    def running() -> bool:
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        steps["now"] = list_execution_steps(sagemaker, arn)  # a step started since: its job's logs too
        return described.get("PipelineExecutionStatus") in RUNNING_STATUSES

    return lines, running
