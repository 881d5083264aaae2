"""``dogpipe executions list|stop|retry`` on SageMaker (the local ``list`` lives in ``cli_local.py``).

The same fields as the local listing (``listings.EXECUTION_COLUMNS``), the pipeline among them, since
either engine holds two: the build pipeline and ``<project>-deploy``.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import (
    aws_config,
    checked,
    clients_for,
    config_option,
    examples,
    friendly_errors,
    read_config,
)
from pipeline.cli.output import Output, Page
from pipeline.config import PipelineConfig
from pipeline.names import EXECUTION_REF


def sagemaker_executions_text(config_path: Path | None, output: Output, page: Page) -> str:
    """The listing ``executions list`` prints for engine: sagemaker."""
    from pipeline.cli.listings import EXECUTION_COLUMNS
    from pipeline.sagemaker.executions import list_sagemaker_executions, pipeline_names

    cfg = aws_config(config_path, None, None)
    with friendly_errors():
        rows = list_sagemaker_executions(clients_for(cfg).sagemaker, cfg)
    empty = f"no executions of {' or '.join(pipeline_names(cfg))} on SageMaker"
    return output.rows(page.apply(rows), EXECUTION_COLUMNS, empty)


def _sagemaker_only(cfg: PipelineConfig, verb: str) -> None:
    if cfg.engine == "local":
        hint = "Ctrl-C or kill the `dogpipe run`" if verb == "stop" else "`dogpipe run --resume EXECUTION`"
        raise click.ClickException(f"`executions {verb}` acts on SageMaker; locally use {hint}")


@click.command("stop", epilog=examples("dogpipe executions stop 1a2b3c4d5e6f --config config/pipeline.yaml"))
@click.argument("execution", shell_complete=complete_execution, callback=checked(EXECUTION_REF))
@config_option
def stop(execution: str, config_path: Path | None) -> None:
    """Stop a running SageMaker execution (EXECUTION: its ARN or id) of either pipeline."""
    from pipeline.sagemaker.executions import stop_execution

    _sagemaker_only(read_config(config_path), "stop")
    cfg = aws_config(config_path, None, None)
    with friendly_errors():
        row = stop_execution(clients_for(cfg).sagemaker, cfg, execution)
    click.echo(f"execution {row['execution']} of {row['pipeline']}: stop requested ({row['arn']})")


@click.command(
    "retry", epilog=examples("dogpipe executions retry 1a2b3c4d5e6f --config config/pipeline.yaml")
)
@click.argument("execution", shell_complete=complete_execution, callback=checked(EXECUTION_REF))
@config_option
def retry(execution: str, config_path: Path | None) -> None:
    """Retry a Failed or Stopped SageMaker execution from its failed steps (EXECUTION: ARN or id)."""
    from pipeline.sagemaker.executions import retry_execution

    _sagemaker_only(read_config(config_path), "retry")
    cfg = aws_config(config_path, None, None)
    with friendly_errors():
        row = retry_execution(clients_for(cfg).sagemaker, cfg, execution)
    click.echo(f"execution {row['execution']} of {row['pipeline']}: retrying ({row['arn']})")


def attach_execution_commands(group: click.Group) -> None:
    """Add ``stop`` and ``retry`` to the ``executions`` group (whose ``list`` is the engines' shared one)."""
    group.add_command(stop)
    group.add_command(retry)
