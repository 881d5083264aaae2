"""Options, config loading and error handling shared by every ``dogpipe`` command module.

They live apart from ``pipeline/cli/main.py`` so the command modules import them without importing the
command group that registers those modules (which once made ``python -m pipeline.cli`` circular).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipeline.config import ConfigError, PipelineConfig, load_config

if TYPE_CHECKING:
    from pipeline.definition.code import CodeArchive
    from pipeline.engines import Engine
    from pipeline.names import NameKind


EXIT_CODES = (
    "Exit status: 0 success; 1 error (one line on stderr: bad config, AWS refusal, failed execution); "
    "2 usage error (unknown option, bad value); 130 interrupted (Ctrl-C)."
)
COMPLETION = (
    'Shell completion (commands, options, execution ids, model versions, endpoint names): add eval "$('
    '_DOGPIPE_COMPLETE=bash_source dogpipe)" to ~/.bashrc (zsh_source for ~/.zshrc, fish_source for fish).'
)


class BadValue(click.ClickException):
    """A value the user gave that is not of its kind (a name, a version): one line, usage exit status."""

    exit_code = 2


class FileErrorsAsMessages(click.Group):
    """Every error ends as one line on stderr with the README's exit status, instead of a traceback or
    click's three-line usage block; each command need not guard each write or each name.

    - File errors (an ``-o`` into a missing folder, a read-only ``OUT_DIR``) name the file and exit 1.
      OSErrors that name no file (sockets, broken pipes) are not the user's paths and propagate.
    - A name that is not of its kind (``pipeline.names``), a ``--param`` either engine refuses
      (``pipeline.definition.parameters``: one rule, one message for ``run`` and ``start``) or any
      usage error exits 2.
    - Ctrl-C exits 130 (click's own handling would print "Aborted!" and exit 1).
    """

    def invoke(self, ctx: click.Context) -> Any:
        from pipeline.definition.parameters import ParameterError
        from pipeline.names import InvalidName

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except (InvalidName, ParameterError) as error:
            raise BadValue(str(error)) from None
        except OSError as error:
            if error.filename is None:
                raise
            raise click.ClickException(f"{error.filename}: {error.strerror or error}") from None
        except click.ClickException:
            raise
        except Exception as error:  # an engine's expected failure (pipeline.errors), else re-raised
            from pipeline.engines import expected_error_message

            message = expected_error_message(error)
            if message is None:
                raise
            raise click.ClickException(message) from None

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        run: Any = super().main  # click's overloads type standalone_mode as a literal per overload
        if not standalone_mode:
            return run(*args, standalone_mode=False, **kwargs)
        try:
            result = run(*args, standalone_mode=False, **kwargs)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} -h')" if error.ctx is not None else ""
            click.echo(f"Error: {error.format_message()}{hint}", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def checked(kind: NameKind) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that refuses a value not of ``kind`` before the command opens any file."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        return value if value is None else kind.check(value)

    return check


def examples(*lines: str) -> str:
    """A command's ``--help`` epilog: example command lines, kept as written (click's ``\\b``)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log records to stderr at WARNING (``-v`` INFO, ``-vv`` DEBUG, ``-q`` ERROR).

    Done before any library is imported: the SageMaker SDK calls ``logging.basicConfig(level=INFO)``
    when one of its modules loads, which would print botocore's INFO lines ("Found endpoint for s3 via:
    environment_global", "Found credentials in environment variables") before every answer. A root
    logger that already has a handler makes that call a no-op.
    """
    import logging

    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


CONFIG_ENV = "DOGPIPE_CONFIG"
#: Relative to the working directory: after ``make demo`` (run in the checkout) every command acts on the
#: local engine and the store the demo filled, with nothing to type; SageMaker is one flag or variable away.
DEFAULT_CONFIG_PATH = Path("config/local.yaml")
CONFIG_RULE = (
    f"Every command reads one pipeline YAML: --config FILE, else ${CONFIG_ENV}, else "
    f"{DEFAULT_CONFIG_PATH} in the current directory (the local engine `make demo` ran). The config's "
    "`engine:` (local or sagemaker) alone decides where a command acts; e.g. "
    f"`export {CONFIG_ENV}=config/pipeline.yaml` for SageMaker."
)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG_PATH,
    envvar=CONFIG_ENV,
    show_envvar=True,
    show_default=True,
    help="Pipeline YAML; its `engine:` decides where the command acts.",
)


def _removed_local_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        raise click.UsageError(
            "--local was removed: the engine comes from the config alone (`engine: local` in "
            f"{DEFAULT_CONFIG_PATH}, the default); pass --config FILE or set {CONFIG_ENV}",
            ctx,
        )


#: ``--local`` used to pick the engine beside the config; it now fails naming the one rule (exit 2).
local_option = click.option(
    "--local", is_flag=True, hidden=True, expose_value=False, callback=_removed_local_flag
)


definition_option = click.option(
    "--definition",
    "definition_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A definition JSON file (from `dogpipe definition --output-file`) instead of building one.",
)


def definition_text(
    cfg: PipelineConfig,
    definition_path: Path | None,
    *,
    role_arn: str | None = None,
    code: CodeArchive | None = None,
) -> str:
    """The definition a command works on: the ``--definition`` file when given, else built from ``cfg``
    (no AWS calls; ``role_arn`` and ``code`` as ``build_definition`` takes them), or the same text from
    the cache when nothing that shapes it changed."""
    if definition_path is not None:
        return read_definition_file(definition_path)
    from pipeline.definition.document import cached_build_definition

    return cached_build_definition(cfg, role_arn=role_arn, code=code)


def deploy_definition_text(cfg: PipelineConfig, role_arn: str | None = None) -> str:
    """The deploy pipeline's definition built from ``cfg`` (cached like the main one; see
    ``pipeline.definition.document.cached_build_definition``)."""
    from pipeline.answer_cache import cached_text, digest
    from pipeline.definition.code import package_code
    from pipeline.definition.deploy_pipeline import build_deploy_definition
    from pipeline.definition.document import definition_cache_key

    code = package_code()
    key = digest({"deploy pipeline": definition_cache_key(cfg, role_arn, code)})
    return cached_text("definitions", key, lambda: build_deploy_definition(cfg, role_arn=role_arn, code=code))


#: The two pipelines one config makes: ``build`` (named ``project.name``: data to a registered model)
#: and ``deploy`` (``<project>-deploy``: an approved package to an endpoint).
PIPELINES = ("build", "deploy")

pipeline_option = click.option(
    "--pipeline",
    type=click.Choice(PIPELINES),
    default="build",
    show_default=True,
    help="build: data to a registered model; deploy: <project>-deploy, an approved model to an endpoint.",
)


def pipeline_definition_text(
    cfg: PipelineConfig, pipeline: str, definition_path: Path | None = None, *, role_arn: str | None = None
) -> str:
    """The definition of the ``--pipeline`` a command shows: the ``--definition`` file as it is, else
    built from ``cfg``. A file beside ``--pipeline deploy`` is refused: which one to show is unclear."""
    if pipeline == "build":
        return definition_text(cfg, definition_path, role_arn=role_arn)
    if definition_path is not None:
        raise click.UsageError(
            f"--definition {definition_path} is shown as it is and --pipeline {pipeline} would build "
            "the deploy pipeline: pass one of them"
        )
    return deploy_definition_text(cfg, role_arn=role_arn)


def read_definition_file(path: Path) -> str:
    """A definition JSON file given with ``--definition``, refused before use when it cannot be read or
    is not a pipeline definition (every command that takes one reads it through here)."""
    from pipeline.definition.reader import DefinitionFormatError, parse_definition

    try:
        text = path.read_text()
        parse_definition(text)
    except OSError as error:
        raise click.ClickException(f"cannot read definition {path}: {error.strerror}") from None
    except (DefinitionFormatError, UnicodeDecodeError) as error:
        raise click.ClickException(f"definition {path}: {error}") from None
    return text


def read_config(config_path: Path | None = None) -> PipelineConfig:
    """Load the config the one rule names (``CONFIG_RULE``) or exit with the validation errors, before
    anything runs. ``None`` (a caller outside click) means the rule's default."""
    path = config_path or DEFAULT_CONFIG_PATH
    if not path.exists() and not path.is_absolute() and path == DEFAULT_CONFIG_PATH:
        raise click.ClickException(
            f"no {DEFAULT_CONFIG_PATH} in {Path.cwd()}: run dogpipe from the checkout, "
            f"pass --config FILE or set {CONFIG_ENV}"
        )
    try:
        return load_config(path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def open_engine(
    config_path: Path | None,
    region: str | None = None,
    bucket: str | None = None,
    role_arn: str | None = None,
    *,
    verb: str | None = None,
) -> Engine:
    """The config's engine (``CONFIG_RULE``), with region, bucket and role from flags on SageMaker. With
    ``verb``, a command that exists on one engine only: refused naming the config to pass instead."""
    from pipeline.engines import engine_for

    def elsewhere(wanted: str, here: str) -> str:
        hint = "config/pipeline.yaml" if wanted == "sagemaker" else str(DEFAULT_CONFIG_PATH)
        return (
            f"{config_path or DEFAULT_CONFIG_PATH} has engine: {here}; "
            f"pass --config {hint} or set {CONFIG_ENV}={hint}"
        )

    return engine_for(
        read_config(config_path),
        region=region,
        bucket=bucket,
        role_arn=role_arn,
        verb=verb,
        elsewhere=elsewhere,
    )


def require_known_architecture(cfg: PipelineConfig) -> None:
    """Exit naming the problem when the config's model cannot be built (checked with torchvision)."""
    from pipeline.definition.model_check import architecture_problem

    problem = architecture_problem(cfg.model)
    if problem is not None:
        raise click.ClickException(problem)


F = TypeVar("F", bound=Callable[..., Any])


def aws_options(function: F) -> F:
    """--region and --bucket, which override DOGPIPE_REGION / DOGPIPE_BUCKET and the config file."""
    function = click.option("--bucket", default=None, help="S3 bucket (else DOGPIPE_BUCKET, else config).")(
        function
    )
    return click.option("--region", default=None, help="AWS region (else DOGPIPE_REGION, else config).")(
        function
    )


role_option = click.option(
    "--role-arn", default=None, help="SageMaker execution role (else DOGPIPE_ROLE_ARN, else config)."
)
