"""The ``dogpipe`` command: thin wrappers that parse arguments, call the library, and print.

Each command imports what it needs lazily, so ``dogpipe --help`` and the quick commands do not pay for
importing torch or the SageMaker SDK.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.config import DEFAULT_CONFIG, LOCAL_CONFIG, ConfigError, PipelineConfig, load_config

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Pipeline YAML (default: config/pipeline.yaml; config/local.yaml for local-engine commands).",
)


def read_config(config_path: Path | None, default: Path = DEFAULT_CONFIG) -> PipelineConfig:
    """Load the config or exit with the validation errors, before anything runs."""
    try:
        return load_config(config_path or default)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dogpipe")
def cli() -> None:
    """dogpipe: fine-tune a CNN on dog breeds as a SageMaker Pipeline, on SageMaker or on this machine."""


@cli.command("sample-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--classes", default=5, show_default=True, help="Number of breeds.")
@click.option("--per-class", default=40, show_default=True, help="Training images per breed.")
@click.option("--seed", default=0, show_default=True)
@click.option("--with-bad-files", is_flag=True, help="Add corrupt, truncated and non-image files.")
def sample_data(out_dir: Path, classes: int, per_class: int, seed: int, with_bad_files: bool) -> None:
    """Write a deterministic synthetic ImageFolder of dog 'breeds' (train/valid/test) to OUT_DIR."""
    from pipeline.sample_data import write_sample_data

    summary = write_sample_data(
        out_dir, classes=classes, per_class=per_class, seed=seed, with_bad_files=with_bad_files
    )
    click.echo(summary)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["LOCAL_CONFIG", "cli", "config_option", "main", "read_config"]
