"""The ``dogpipe`` command: thin wrappers that parse arguments, call the library, and print.

Each command imports what it needs lazily, so ``dogpipe --help`` and the quick commands do not pay for
importing torch or the SageMaker SDK.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pipeline.cli.complete import complete_endpoint, complete_execution
from pipeline.cli.endpoints import endpoints
from pipeline.cli.executions import executions
from pipeline.cli.iam import iam_policy
from pipeline.cli.logs import logs
from pipeline.cli.models import MODEL_COMMANDS
from pipeline.cli.monitor import monitor
from pipeline.cli.options import (
    COMPLETION,
    CONFIG_RULE,
    EXIT_CODES,
    FileErrorsAsMessages,
    checked,
    config_option,
    configure_logging,
    definition_option,
    definition_text,
    deploy_definition_text,
    examples,
    open_engine,
    pipeline_definition_text,
    pipeline_option,
    read_config,
    require_known_architecture,
)
from pipeline.cli.output import Output, output_option
from pipeline.cli.pipeline import PIPELINE_COMMANDS
from pipeline.cli.run import run
from pipeline.cli.serve import serve
from pipeline.names import ENDPOINT, EXECUTION_REF


@click.group(
    cls=FileErrorsAsMessages,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"{CONFIG_RULE}\n\n{EXIT_CODES}\n\n{COMPLETION}",
)
@click.version_option(package_name="dogpipe")
@click.option("-v", "--verbose", count=True, help="Show library log records: -v INFO, -vv DEBUG.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors from libraries (default: warnings).")
def cli(verbose: int, quiet: bool) -> None:
    """dogpipe: fine-tune a CNN on dog breeds as a SageMaker Pipeline, on SageMaker or on this machine."""
    configure_logging(verbose, quiet)


@cli.command("sample-data", epilog=examples("dogpipe sample-data data/sample --classes 5 --per-class 40"))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--classes", default=5, show_default=True, help="Number of breeds.")
@click.option("--per-class", default=40, show_default=True, help="Training images per breed.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same images.")
@click.option("--with-bad-files", is_flag=True, help="Add corrupt, truncated and non-image files.")
def sample_data(out_dir: Path, classes: int, per_class: int, seed: int, with_bad_files: bool) -> None:
    """Write a deterministic synthetic ImageFolder of dog 'breeds' (train/valid/test) to OUT_DIR."""
    from pipeline.sample_data import write_sample_data

    summary = write_sample_data(
        out_dir, classes=classes, per_class=per_class, seed=seed, with_bad_files=with_bad_files
    )
    click.echo(summary)


for _command in (
    *PIPELINE_COMMANDS,
    *MODEL_COMMANDS,
    run,
    serve,
    executions,
    endpoints,
    monitor,
    logs,
    iam_policy,
):
    cli.add_command(_command)


@cli.command(
    "predict",
    epilog=examples(
        "dogpipe predict dog.jpg --endpoint dogpipe-staging",
        "dogpipe predict dog.jpg --endpoint dogpipe-prod -o json",
    ),
)
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--endpoint",
    required=True,
    shell_complete=complete_endpoint,
    callback=checked(ENDPOINT),
    help="Endpoint name (a local endpoint for engine: local).",
)
@config_option
@output_option
def predict(image: Path, endpoint: str, config_path: Path | None, output: Output) -> None:
    """Send IMAGE to an endpoint and print its top-k breeds (HTTP locally, InvokeEndpoint on AWS)."""
    from pipeline.serving.client import format_reply, read_image

    engine = open_engine(config_path)
    data, content_type = read_image(image)
    reply = engine.invoke(endpoint, data, content_type)
    click.echo(output.document(reply, lambda: format_reply(reply)))


@cli.command(
    "definition",
    epilog=examples(
        "dogpipe definition --output-file definition.json",
        "dogpipe definition --config config/pipeline.yaml",
        "dogpipe definition --pipeline deploy",
    ),
)
@config_option
@pipeline_option
@click.option(
    "--output-file",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON to this file (default: stdout). -o is a format elsewhere, never a file.",
)
@click.option("--role-arn", envvar="DOGPIPE_ROLE_ARN", default=None, help="Execution role (else config).")
def definition(config_path: Path | None, pipeline: str, output: Path | None, role_arn: str | None) -> None:
    """Print (or write) a pipeline's definition JSON (build or deploy); same bytes on every build, no
    AWS calls."""
    text = pipeline_definition_text(read_config(config_path), pipeline, role_arn=role_arn)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)


@cli.command(
    "validate", epilog=examples("dogpipe validate", "dogpipe validate --definition definition.json -o json")
)
@config_option
@definition_option
@output_option
def validate(config_path: Path | None, definition_path: Path | None, output: Output) -> None:
    """Check the config and both pipelines' definitions, build and deploy (DAG and every step's API
    request shape), naming each pipeline checked; exit 1 on problems."""
    cfg = read_config(config_path)
    require_known_architecture(cfg)
    problems: list[Any] = []
    checked_pipelines = []  # what was checked, so a reader knows both pipelines were
    for which, name, text in _pipelines_to_validate(cfg, definition_path):
        found = _validated(text)
        problems += found
        checked_pipelines.append(
            {"pipeline": which, "name": name, "valid": not found, "problems": len(found)}
        )
    from pipeline.definition.name_limits import name_length_problems
    from pipeline.definition.validate import Problem
    from pipeline.engines import config_problems as engine_config_problems

    config_problems = [*name_length_problems(cfg), *engine_config_problems(cfg)]
    problems += [Problem("(config)", "", message) for message in config_problems]
    fields = [{"step": p.step, "path": p.path, "message": p.message} for p in problems]
    if output.format == "json" or output.query is not None:
        report = {"valid": not problems, "pipelines": checked_pipelines, "problems": fields}
        click.echo(output.document(report, str))
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        for checked_pipeline in checked_pipelines:
            click.echo(_checked_line(checked_pipeline, output.format))
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in the pipeline definition")
    if output.format == "table" and output.query is None:
        click.echo("config and definition are valid")


def _pipelines_to_validate(cfg: Any, definition_path: Path | None) -> list[tuple[str, str, str]]:
    """(which, name, definition text) of each pipeline ``validate`` checks: both that the config makes,
    or only the ``--definition`` file (named by its path: it may hold either)."""
    if definition_path is not None:
        return [("file", str(definition_path), definition_text(cfg, definition_path))]
    from pipeline.config.deploy_names import deploy_pipeline_name

    return [
        ("build", cfg.project.name, definition_text(cfg, None)),
        ("deploy", deploy_pipeline_name(cfg), deploy_definition_text(cfg)),
    ]


def _checked_line(checked: dict[str, Any], format: str) -> str:
    """``build pipeline dogpipe-local: ok`` (or its number of problems), one per checked pipeline;
    tab-separated cells for ``-o text``."""
    verdict = "ok" if checked["valid"] else f"{checked['problems']} problem(s)"
    if format == "text":
        return "\t".join((checked["pipeline"], checked["name"], verdict))
    which = "definition" if checked["pipeline"] == "file" else f"{checked['pipeline']} pipeline"
    return f"{which} {checked['name']}: {verdict}"


def _validated(text: str) -> list[Any]:
    """``validate_definition(text)``, kept in the answer cache under the definition's hash, botocore's
    version (its API shapes are the reference) and the validator's source: loading the SageMaker API
    model is most of a warm ``dogpipe validate``."""
    import json

    import pipeline.definition.reader
    import pipeline.definition.validate
    from pipeline.answer_cache import cached_text, digest, versions

    sources = [
        Path(str(module.__file__)).read_text()
        for module in (pipeline.definition.validate, pipeline.definition.reader)
    ]
    key = digest({"definition": text, "versions": versions("botocore"), "sources": sources})

    def problems() -> str:
        found = pipeline.definition.validate.validate_definition(text)
        return json.dumps([{"step": p.step, "path": p.path, "message": p.message} for p in found])

    return [
        pipeline.definition.validate.Problem(**item)
        for item in json.loads(cached_text("validation", key, problems))
    ]


@cli.command(
    "graph",
    epilog=examples(
        "dogpipe graph", "dogpipe graph --pipeline deploy", "dogpipe graph --definition definition.json"
    ),
)
@config_option
@pipeline_option
@definition_option
def graph(config_path: Path | None, pipeline: str, definition_path: Path | None) -> None:
    """Print a pipeline's DAG (build or deploy) as a Mermaid flowchart."""
    from pipeline.definition.graph import mermaid

    text = pipeline_definition_text(read_config(config_path), pipeline, definition_path)
    click.echo(mermaid(text), nl=False)


@cli.command(
    "report",
    epilog=examples(
        "dogpipe report", "dogpipe report EXECUTION --output-file report.html --screenshot report.png"
    ),
)
@click.argument(
    "execution_id",
    metavar="[EXECUTION]",
    required=False,
    shell_complete=complete_execution,
    callback=checked(EXECUTION_REF),
)
@config_option
@click.option(
    "--output-file",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write it (default: the execution's folder locally, ./report.html for SageMaker).",
)
@click.option(
    "--screenshot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also render the report in headless Chromium and save the whole page as this PNG.",
)
def report(
    execution_id: str | None, config_path: Path | None, output: Path | None, screenshot: Path | None
) -> None:
    """Write report.html for an execution (default: the build pipeline's latest): local, or fetched from
    SageMaker and S3 when the config's engine is sagemaker (EXECUTION_ID is then the execution ARN)."""
    written = open_engine(config_path).write_report(execution_id, output)
    click.echo(written)
    if screenshot is not None:
        from pipeline.report.screenshot import ScreenshotError
        from pipeline.report.screenshot import screenshot as render

        try:
            click.echo(render(written, screenshot))
        except ScreenshotError as error:
            raise click.ClickException(str(error)) from None


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["cli", "main"]
