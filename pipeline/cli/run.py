"""The local engine's commands: ``dogpipe run``, ``dogpipe executions list`` and local ``status``.

Thin: parse, call :mod:`pipeline.local.run`, print. Failures exit 1 with one clear message.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import config_option, examples, read_config, require_engine
from pipeline.cli.output import Output, Page, output_option, paging_options
from pipeline.config import PipelineConfig


def _config(config_path: Path | None, command: str) -> PipelineConfig:
    cfg = read_config(config_path)
    require_engine(cfg, config_path, "local", command)
    return cfg


@click.command(
    "run",
    epilog=examples("dogpipe run --data data/sample", "dogpipe run --resume EXECUTION"),
)
@config_option
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Local ImageFolder (train/valid/test) to upload to data.s3_uri first.",
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a pipeline parameter.")
@click.option(
    "--resume",
    metavar="EXECUTION",
    shell_complete=complete_execution,
    help="Finish an interrupted or failed execution.",
)
def run(config_path: Path | None, data_dir: Path | None, params: tuple[str, ...], resume: str | None) -> None:
    """Run the whole pipeline on this machine: no AWS account, no Docker (engine: local)."""
    from pipeline.definition.parameters import parse_param_pairs
    from pipeline.local.errors import DefinitionError, NothingToResume
    from pipeline.local.executions import ExecutionNotFound
    from pipeline.local.interrupt import ExecutionInterrupted
    from pipeline.local.run import RunError, find_test_image, run_local
    from pipeline.local.summary import highlights, steps_table
    from pipeline.object_store import ObjectStore

    cfg = _config(config_path, "run")
    try:
        result = run_local(
            cfg, data_dir=data_dir, params=parse_param_pairs(params), resume=resume, echo=click.echo
        )
    except NothingToResume as nothing:
        click.echo(str(nothing))
        return
    except (RunError, DefinitionError, ExecutionNotFound) as error:
        raise click.ClickException(str(error)) from None
    except ExecutionInterrupted as stop:
        click.echo(
            f"\nexecution {stop.execution_id} Stopped: {stop.reason}; its finished steps are kept.\n"
            f"resume with: {_resume_command(config_path, stop.execution_id)}",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    click.echo("")
    click.echo(steps_table(result.steps, result.execution.definition))
    for line in highlights(result.execution, ObjectStore(cfg.local.root)):
        click.echo(line)
    sample = None
    if result.status == "Succeeded":
        sample = _show_endpoint(cfg, result, find_test_image(cfg, data_dir), config_path)
    _write_report(cfg, result.execution.id, sample)
    if result.status != "Succeeded":
        click.echo(f"\nexecution {result.execution.id} {result.status}: {result.failure_reason}", err=True)
        click.echo(f"logs: dogpipe logs {result.execution.id}{_config_flag(config_path)} [STEP]", err=True)
        click.echo(_next_step(result, config_path), err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"\nexecution {result.execution.id} Succeeded")


def _next_step(result, config_path: Path | None) -> str:  # type: ignore[no-untyped-def]
    """What can help after a failure: resuming reruns failed jobs, but a Fail step (a gate such as
    AccuracyTooLow) decides the same again on the same outputs."""
    failed = [state for state in result.steps.values() if state.get("status") == "Failed"]
    gates = [state["name"] for state in failed if state.get("type") == "Fail"]
    if failed and len(gates) == len(failed):
        return (
            f"{', '.join(gates)} stopped it on purpose: resuming would decide the same; change the data, "
            "the config or a parameter (dogpipe run --param NAME=VALUE) and run again"
        )
    return f"retry with: {_resume_command(config_path, result.execution.id)}"


def _config_flag(config_path: Path | None) -> str:
    """`` --config FILE`` for a printed follow-up command, unless the one rule's default finds it anyway."""
    import os

    from pipeline.cli.options import CONFIG_ENV, DEFAULT_CONFIG_PATH

    if config_path is None or (config_path == DEFAULT_CONFIG_PATH and not os.environ.get(CONFIG_ENV)):
        return ""
    return f" --config {shlex.quote(str(config_path))}"


def _resume_command(config_path: Path | None, execution_id: str) -> str:
    """The command that resumes ``execution_id``: with the same config, since executions live under
    that config's ``local.root``."""
    return f"dogpipe run{_config_flag(config_path)} --resume {execution_id}"


def _write_report(cfg: PipelineConfig, execution_id: str, sample: tuple[Path, dict] | None) -> None:
    """Every run, succeeded or failed, leaves ``report.html`` in its execution folder; a report that cannot
    be written is said, never allowed to hide the run's own outcome."""
    from pipeline.report.collect import write_local_report

    image, reply = sample if sample else (None, None)
    try:
        path = write_local_report(cfg.local.root, execution_id, prediction=reply, prediction_image=image)
    except Exception as error:  # the run's result matters more than its report
        click.echo(f"report not written: {type(error).__name__}: {error}", err=True)
        return
    click.echo(f"report: {path}")


def _show_endpoint(
    cfg: PipelineConfig, result, image: Path | None, config_path: Path | None
) -> tuple[Path, dict] | None:  # type: ignore[no-untyped-def]
    """Print the deployed endpoint and its answer for ``image``; returns (image, reply) for the report."""
    from pipeline.local.endpoint_servers import EndpointError, read_endpoint

    sample = None
    for state in result.steps.values():
        if state.get("type") != "Endpoint" or state.get("status") != "Succeeded":
            continue
        name = state["arguments"]["EndpointName"]
        try:
            url = read_endpoint(cfg.local.root, name)["url"]
        except EndpointError as error:
            click.echo(f"endpoint {name}: {error}")
            continue
        hint = f"dogpipe predict IMAGE --endpoint {name}{_config_flag(config_path)}"
        click.echo(f"endpoint: {name} at {url} ({hint})")
        if image is None:
            continue
        from pipeline.serving.client import PredictError, format_reply, invoke_http, read_image

        try:
            data, content_type = read_image(image)
            reply = invoke_http(url, data, content_type)
            click.echo(f"prediction for {image}:\n{format_reply(reply)}")
            sample = (image, reply)
        except PredictError as error:
            click.echo(f"prediction failed: {error}")
    return sample


@click.group("executions", epilog=examples("dogpipe executions list -o json"))
def executions() -> None:
    """Executions: local ones under local.root, or SageMaker's (list, stop, retry) for engine: sagemaker."""


@executions.command("list", epilog=examples("dogpipe executions list", "dogpipe executions list -o json"))
@config_option
@output_option
@paging_options
def list_executions(config_path: Path | None, output: Output, page: Page) -> None:
    """Executions, newest first: id, status, start time, failure."""
    from pipeline.cli.listings import EXECUTION_COLUMNS, execution_rows
    from pipeline.local.executions import ExecutionStore

    if read_config(config_path).engine == "sagemaker":  # both pipelines' executions (cli_executions.py)
        from pipeline.cli.executions import sagemaker_executions_text

        click.echo(sagemaker_executions_text(config_path, output, page))
        return
    store = ExecutionStore(_config(config_path, "executions list").local.root)
    rows = execution_rows(page.apply(list(reversed(store.list()))))
    click.echo(output.rows(rows, EXECUTION_COLUMNS, f"no executions under {store.folder}"))


LOCAL_COMMANDS: tuple[click.Command, ...] = (run, executions)
