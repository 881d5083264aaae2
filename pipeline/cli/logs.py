"""``dogpipe logs EXECUTION [STEP] [--follow]``: the jobs' output, on either engine.

Locally the job logs under the execution's folder; on SageMaker the jobs' CloudWatch Logs streams: the
config's engine gives them as a ``LogFeed`` (``pipeline.engines``). Each line is prefixed with where it
came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import checked, config_option, examples, open_engine
from pipeline.names import EXECUTION_REF, STEP


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
    feed = open_engine(config_path).logs(execution, step)
    _print(feed.lines, feed.running, follow, feed.poll_s if poll is None else poll)


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
