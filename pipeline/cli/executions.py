"""``dogpipe executions list|stop|retry``: either engine's executions, and what SageMaker can do to them.

The same fields on both engines (``pipeline.engines.EXECUTION_COLUMNS``), the pipeline among them, since
either engine holds two: the build pipeline and ``<project>-deploy``. ``stop`` and ``retry`` are
SageMaker's (locally: Ctrl-C, and ``dogpipe run --resume``), declared by its engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import checked, config_option, examples, open_engine
from pipeline.cli.output import Output, Page, output_option, paging_options
from pipeline.names import EXECUTION_REF

if TYPE_CHECKING:
    from pipeline.engines import SageMakerVerbs


@click.group("executions", epilog=examples("dogpipe executions list -o json"))
def executions() -> None:
    """Executions of both pipelines: list them; on SageMaker stop or retry one."""


@executions.command("list", epilog=examples("dogpipe executions list", "dogpipe executions list -o json"))
@config_option
@output_option
@paging_options
def list_executions(config_path: Path | None, output: Output, page: Page) -> None:
    """Executions, newest first: id, status, start time, failure, pipeline."""
    listing = open_engine(config_path).executions()
    click.echo(output.rows(page.apply(listing.rows), listing.columns, listing.empty))


@executions.command(
    "stop", epilog=examples("dogpipe executions stop 1a2b3c4d5e6f --config config/pipeline.yaml")
)
@click.argument("execution", shell_complete=complete_execution, callback=checked(EXECUTION_REF))
@config_option
def stop(execution: str, config_path: Path | None) -> None:
    """Stop a running SageMaker execution (EXECUTION: its ARN or id) of either pipeline."""
    engine = cast("SageMakerVerbs", open_engine(config_path, verb="executions stop"))
    row = engine.stop_execution(execution)
    click.echo(f"execution {row['execution']} of {row['pipeline']}: stop requested ({row['arn']})")


@executions.command(
    "retry", epilog=examples("dogpipe executions retry 1a2b3c4d5e6f --config config/pipeline.yaml")
)
@click.argument("execution", shell_complete=complete_execution, callback=checked(EXECUTION_REF))
@config_option
def retry(execution: str, config_path: Path | None) -> None:
    """Retry a Failed or Stopped SageMaker execution from its failed steps (EXECUTION: ARN or id)."""
    engine = cast("SageMakerVerbs", open_engine(config_path, verb="executions retry"))
    row = engine.retry_execution(execution)
    click.echo(f"execution {row['execution']} of {row['pipeline']}: retrying ({row['arn']})")
