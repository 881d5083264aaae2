"""Options, config loading and error handling shared by every ``dogpipe`` command module.

They live apart from ``pipeline/cli.py`` so the command modules import them without importing the
command group that registers those modules (which made ``python -m pipeline.cli`` circular).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipeline.config import DEFAULT_CONFIG, ConfigError, PipelineConfig, load_config

if TYPE_CHECKING:
    from pipeline.code import CodeArchive


class FileErrorsAsMessages(click.Group):
    """Every command's file errors (an ``-o`` into a missing folder, a read-only ``OUT_DIR``) end with one
    line naming the file and exit 1, instead of a traceback; each command need not guard each write.
    OSErrors that name no file (sockets, broken pipes) are not the user's paths and propagate."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as error:
            if error.filename is None:
                raise
            raise click.ClickException(f"{error.filename}: {error.strerror or error}") from None


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Pipeline YAML (default: config/pipeline.yaml; config/local.yaml for local-engine commands).",
)


definition_option = click.option(
    "--definition",
    "definition_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A definition JSON file (from `dogpipe definition -o`) instead of building one from the config.",
)


def definition_text(
    cfg: PipelineConfig,
    definition_path: Path | None,
    *,
    role_arn: str | None = None,
    code: CodeArchive | None = None,
) -> str:
    """The definition a command works on: the ``--definition`` file when given, else built from ``cfg``
    (no AWS calls; ``role_arn`` and ``code`` as ``build_definition`` takes them)."""
    if definition_path is not None:
        return read_definition_file(definition_path)
    from pipeline.definition import build_definition

    return build_definition(cfg, role_arn=role_arn, code=code)


def read_definition_file(path: Path) -> str:
    """A definition JSON file given with ``--definition``, refused before use when it cannot be read or
    is not a pipeline definition (every command that takes one reads it through here)."""
    from pipeline.dag import DefinitionFormatError, parse_definition

    try:
        text = path.read_text()
        parse_definition(text)
    except OSError as error:
        raise click.ClickException(f"cannot read definition {path}: {error.strerror}") from None
    except (DefinitionFormatError, UnicodeDecodeError) as error:
        raise click.ClickException(f"definition {path}: {error}") from None
    return text


def read_config(config_path: Path | None, default: Path = DEFAULT_CONFIG) -> PipelineConfig:
    """Load the config or exit with the validation errors, before anything runs."""
    try:
        return load_config(config_path or default)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def require_known_architecture(cfg: PipelineConfig) -> None:
    """Exit naming the problem when the config's model cannot be built (checked with torchvision)."""
    from pipeline.model_check import architecture_problem

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
local_option = click.option(
    "--local",
    "use_local",
    is_flag=True,
    help="Act on the local engine (default when the config's engine is local).",
)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Expected failures as one clear line (exit 1); nothing else is caught."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.aws import AwsError, translate
    from pipeline.deploy import DeployError
    from pipeline.registry import RegistryError
    from pipeline.remote import PipelineError

    try:
        yield
    except (AwsError, DeployError, PipelineError, RegistryError) as error:
        raise click.ClickException(str(error)) from None
    except (BotoCoreError, ClientError) as error:
        raise click.ClickException(str(translate(error))) from None


def aws_config(
    config_path: Path | None, region: str | None, bucket: str | None, role_arn: str | None = None
) -> PipelineConfig:
    from pipeline.aws import with_aws_settings

    with friendly_errors():
        return with_aws_settings(read_config(config_path), region=region, bucket=bucket, role_arn=role_arn)


def clients_for(cfg: PipelineConfig) -> Any:
    from pipeline.aws import AwsClients

    with friendly_errors():
        return AwsClients.for_config(cfg)
