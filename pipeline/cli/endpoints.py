"""``dogpipe endpoints list|stop|delete``: what serves where, and how to stop it.

Locally an endpoint is a server process with a record (``pipeline.local.endpoint_servers``); on
SageMaker it is an endpoint that bills until deleted (``pipeline.sagemaker.endpoints``). ``list`` shows
both with the same columns; the config's ``engine`` decides which.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.complete import complete_endpoint
from pipeline.cli.options import checked, config_option, examples, friendly_errors, read_config
from pipeline.cli.output import Output, Page, output_option, paging_options
from pipeline.names import ENDPOINT

ENDPOINT_COLUMNS = ("name", "model_version", "url", "pid", "alive")
#: SageMaker runs the servers: what an operator watches is the status, the fleet and the traffic split.
SAGEMAKER_ENDPOINT_COLUMNS = ("name", "status", "model_version", "instance_type", "variants", "created")


@click.group("endpoints", epilog=examples("dogpipe endpoints list", "dogpipe endpoints stop dogpipe-staging"))
def endpoints() -> None:
    """Endpoints: list what serves where, stop local servers, delete SageMaker endpoints."""


@endpoints.command("list", epilog=examples("dogpipe endpoints list", "dogpipe endpoints list -o json"))
@config_option
@output_option
@paging_options
def endpoints_list(config_path: Path | None, output: Output, page: Page) -> None:
    """Endpoints with the model version each serves, its URL, its server pid and whether it is alive."""
    cfg = read_config(config_path)
    if cfg.engine == "local":
        from pipeline.local.endpoint_servers import list_endpoints

        rows = [row.to_json() for row in list_endpoints(cfg.local.root)]
        empty = f"no local endpoints under {cfg.local.root / 'endpoints'}"
        columns = ENDPOINT_COLUMNS
    else:
        from pipeline.cli.options import aws_config, clients_for
        from pipeline.sagemaker.endpoints import list_sagemaker_endpoints

        cfg = aws_config(config_path, None, None)
        with friendly_errors():
            rows = list_sagemaker_endpoints(clients_for(cfg).sagemaker, cfg.project.region)
        empty = f"no SageMaker endpoints in {cfg.project.region}"
        columns = SAGEMAKER_ENDPOINT_COLUMNS
    click.echo(output.rows(page.apply(rows), columns, empty))


@endpoints.command(
    "stop", epilog=examples("dogpipe endpoints stop dogpipe-staging", "dogpipe endpoints stop --all")
)
@click.argument("name", required=False, shell_complete=complete_endpoint, callback=checked(ENDPOINT))
@click.option("--all", "stop_all", is_flag=True, help="Stop every local endpoint.")
@config_option
def endpoints_stop(name: str | None, stop_all: bool, config_path: Path | None) -> None:
    """Stop the local server of endpoint NAME (or --all) and forget its record."""
    from pipeline.local.endpoint_servers import known_endpoints, read_endpoint, stop_endpoint

    if bool(name) == stop_all:
        raise click.UsageError("give one endpoint NAME or --all")
    cfg = read_config(config_path)
    if cfg.engine != "local":
        raise click.ClickException(
            "`endpoints stop` stops local servers; on SageMaker use `dogpipe endpoints delete NAME --yes`"
        )
    root = cfg.local.root
    names = known_endpoints(root) if stop_all else [str(name)]
    if not stop_all and name not in known_endpoints(root):
        from pipeline.local.endpoint_servers import EndpointError

        try:
            read_endpoint(root, str(name))  # raises, listing the known names
        except EndpointError as error:
            raise click.ClickException(str(error)) from None
    for item in names:
        stopped = stop_endpoint(root, item)
        click.echo(f"{item}: {'stopped' if stopped else 'was not running; record removed'}")
    if not names:
        click.echo("no local endpoints to stop")


@endpoints.command(
    "delete", epilog=examples("dogpipe endpoints delete dogpipe-prod --yes --config config/pipeline.yaml")
)
@click.argument("name", shell_complete=complete_endpoint, callback=checked(ENDPOINT))
@click.option("--yes", is_flag=True, help="Really delete: the endpoint stops serving at once.")
@config_option
def endpoints_delete(name: str, yes: bool, config_path: Path | None) -> None:
    """Delete SageMaker endpoint NAME (it stops billing); its config and model stay for a redeploy."""
    from pipeline.cli.options import aws_config, clients_for

    cfg = read_config(config_path)
    if cfg.engine == "local":
        raise click.ClickException("local endpoints are servers: use `dogpipe endpoints stop NAME`")
    if not yes:
        raise click.ClickException(f"deleting {name} stops it serving at once: add --yes to confirm")
    from pipeline.sagemaker.endpoints import delete_sagemaker_endpoint

    cfg = aws_config(config_path, None, None)
    with friendly_errors():
        delete_sagemaker_endpoint(clients_for(cfg).sagemaker, name)
    click.echo(f"endpoint {name}: deleting")
