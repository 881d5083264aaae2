"""``dogpipe endpoints list|stop|delete``: what serves where, and how to stop it.

Locally an endpoint is a server process with a record; on SageMaker it is an endpoint that bills until
deleted. ``list`` asks the config's engine (``pipeline.engines``); ``stop`` exists locally and ``delete``
on SageMaker, each declared by its engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from pipeline.cli.complete import complete_endpoint
from pipeline.cli.options import checked, config_option, examples, open_engine
from pipeline.cli.output import Output, Page, output_option, paging_options
from pipeline.names import ENDPOINT

if TYPE_CHECKING:
    from pipeline.engines import LocalVerbs, SageMakerVerbs


@click.group("endpoints", epilog=examples("dogpipe endpoints list", "dogpipe endpoints stop dogpipe-staging"))
def endpoints() -> None:
    """Endpoints: list what serves where, stop local servers, delete SageMaker endpoints."""


@endpoints.command("list", epilog=examples("dogpipe endpoints list", "dogpipe endpoints list -o json"))
@config_option
@output_option
@paging_options
def endpoints_list(config_path: Path | None, output: Output, page: Page) -> None:
    """Endpoints with the model version each serves and where: locally its URL, server pid and whether
    it is alive; on SageMaker its status, instance type and traffic split."""
    listing = open_engine(config_path).endpoints()
    click.echo(output.rows(page.apply(listing.rows), listing.columns, listing.empty))


@endpoints.command(
    "stop", epilog=examples("dogpipe endpoints stop dogpipe-staging", "dogpipe endpoints stop --all")
)
@click.argument("name", required=False, shell_complete=complete_endpoint, callback=checked(ENDPOINT))
@click.option("--all", "stop_all", is_flag=True, help="Stop every local endpoint.")
@config_option
def endpoints_stop(name: str | None, stop_all: bool, config_path: Path | None) -> None:
    """Stop the local server of endpoint NAME (or --all) and forget its record."""
    if bool(name) == stop_all:
        raise click.UsageError("give one endpoint NAME or --all")
    engine = cast("LocalVerbs", open_engine(config_path, verb="endpoints stop"))
    stopped = engine.stop_endpoints(None if stop_all else name)
    for item, was_running in stopped:
        click.echo(f"{item}: {'stopped' if was_running else 'was not running; record removed'}")
    if not stopped:
        click.echo("no local endpoints to stop")


@endpoints.command(
    "delete", epilog=examples("dogpipe endpoints delete dogpipe-prod --yes --config config/pipeline.yaml")
)
@click.argument("name", shell_complete=complete_endpoint, callback=checked(ENDPOINT))
@click.option("--yes", is_flag=True, help="Really delete: the endpoint stops serving at once.")
@config_option
def endpoints_delete(name: str, yes: bool, config_path: Path | None) -> None:
    """Delete SageMaker endpoint NAME (it stops billing); its config and model stay for a redeploy."""
    engine = cast("SageMakerVerbs", open_engine(config_path, verb="endpoints delete"))
    if not yes:
        raise click.ClickException(f"deleting {name} stops it serving at once: add --yes to confirm")
    engine.delete_endpoint(name)
    click.echo(f"endpoint {name}: deleting")
