"""``dogpipe run``: the whole pipeline on this machine (the local engine's own verb).

Thin: parse, ask the local engine (``pipeline.engines.LocalVerbs``) to run, print what it did, show the
endpoint's answer, write the report. Failures exit 1 with one clear message (a bad ``--param``, a usage
error, exits 2); Ctrl-C exits 130.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from pipeline.cli.complete import complete_execution
from pipeline.cli.options import config_option, examples, open_engine

if TYPE_CHECKING:
    from pipeline.engines import EndpointSample, LocalVerbs, RunOutcome


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
    from pipeline.errors import ExecutionInterrupted

    engine = cast("LocalVerbs", open_engine(config_path, verb="run"))
    try:
        outcome = engine.run(data_dir=data_dir, params=params, resume=resume, echo=click.echo)
    except ExecutionInterrupted as stop:
        click.echo(
            f"\nexecution {stop.execution_id} Stopped: {stop.reason}; its finished steps are kept.\n"
            f"resume with: {_resume_command(config_path, stop.execution_id)}",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    if outcome.note is not None or outcome.execution_id is None:
        click.echo(outcome.note or "nothing to run")
        return
    click.echo("")
    for line in outcome.summary:
        click.echo(line)
    sample = None
    if outcome.status == "Succeeded":
        sample = _show_endpoints(engine, outcome, engine.test_image(data_dir), config_path)
    _write_report(engine, outcome.execution_id, sample)
    if outcome.status != "Succeeded":
        click.echo(f"\nexecution {outcome.execution_id} {outcome.status}: {outcome.failure_reason}", err=True)
        click.echo(f"logs: dogpipe logs {outcome.execution_id}{_config_flag(config_path)} [STEP]", err=True)
        click.echo(_next_step(outcome, config_path), err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"\nexecution {outcome.execution_id} Succeeded")


def _next_step(outcome: RunOutcome, config_path: Path | None) -> str:
    """What can help after a failure: resuming reruns failed jobs, but a Fail step (a gate such as
    AccuracyTooLow) decides the same again on the same outputs."""
    if outcome.gates:
        return (
            f"{', '.join(outcome.gates)} stopped it on purpose: resuming would decide the same; change the "
            "data, the config or a parameter (dogpipe run --param NAME=VALUE) and run again"
        )
    return f"retry with: {_resume_command(config_path, str(outcome.execution_id))}"


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


def _write_report(engine: LocalVerbs, execution_id: str, sample: EndpointSample | None) -> None:
    """Every run, succeeded or failed, leaves ``report.html`` in its execution folder; a report that cannot
    be written is said, never allowed to hide the run's own outcome."""
    try:
        path = engine.write_report(execution_id, None, sample=sample)
    except Exception as error:  # the run's result matters more than its report
        click.echo(f"report not written: {type(error).__name__}: {error}", err=True)
        return
    click.echo(f"report: {path}")
    uri = engine.tracking_uri
    if uri is not None:
        from pipeline.tracking import ui_command

        click.echo(f"tracking: {ui_command(uri)}")


def _show_endpoints(
    engine: LocalVerbs, outcome: RunOutcome, image: Path | None, config_path: Path | None
) -> EndpointSample | None:
    """Print each endpoint the run serves and its answer for ``image``; the last answer, for the report."""
    from pipeline.engines import EndpointSample
    from pipeline.errors import DogpipeError
    from pipeline.serving.client import format_reply, read_image

    sample = None
    for name in outcome.endpoints:
        try:
            url = engine.endpoint_url(name)
        except DogpipeError as error:
            click.echo(f"endpoint {name}: {error}")
            continue
        hint = f"dogpipe predict IMAGE --endpoint {name}{_config_flag(config_path)}"
        click.echo(f"endpoint: {name} at {url} ({hint})")
        if image is None:
            continue
        try:
            data, content_type = read_image(image)
            reply = engine.invoke(name, data, content_type)
            click.echo(f"prediction for {image}:\n{format_reply(reply)}")
            sample = EndpointSample(image, reply)
        except DogpipeError as error:
            click.echo(f"prediction failed: {error}")
    return sample
