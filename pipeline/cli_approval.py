"""``dogpipe models approve``'s second half: say (or, locally, do) what the approval deploys."""

from __future__ import annotations

import click

from pipeline.config import PipelineConfig
from pipeline.registry import ModelPackage


def deploy_after_approval(cfg: PipelineConfig, package: ModelPackage) -> None:
    """Locally run the deploy pipeline for ``package``; on SageMaker name the rule that will.

    A failed deploy exits 1 with its reason: the approval stands, the endpoint keeps what it served.
    """
    from pipeline.approval import deploys_on_approval

    if not deploys_on_approval(cfg, package):
        if cfg.deploy.on_approval == "off":
            click.echo("deploy.on_approval is off: deploy it with `dogpipe deploy --stage prod`")
        return
    from pipeline.deploy_names import deploy_pipeline_name

    pipeline = deploy_pipeline_name(cfg)
    if cfg.engine != "local":
        from pipeline.deploy_names import approval_rule_name

        click.echo(
            f"EventBridge rule {approval_rule_name(cfg)} starts {pipeline} for this approval "
            f"(stage {cfg.deploy.on_approval}); follow it with `dogpipe executions list`"
        )
        return
    from pipeline.approval import run_local_deploy
    from pipeline.local.endpoint_servers import EndpointError, read_endpoint
    from pipeline.local.engine import DefinitionError

    click.echo(f"deploying {package.arn} to {cfg.deploy.on_approval} with {pipeline} ...")
    try:
        result = run_local_deploy(cfg, package.arn, echo=click.echo)
    except DefinitionError as error:
        raise click.ClickException(str(error)) from None
    if result.status != "Succeeded":
        raise click.ClickException(
            f"deploy execution {result.execution.id} {result.status}: {result.failure_reason}"
        )
    from pipeline.deploy_names import stage_endpoint

    name = stage_endpoint(cfg)
    try:
        record = read_endpoint(cfg.local.root, name)
    except EndpointError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"deploy execution {result.execution.id} Succeeded: {name} serves "
        f"{record.get('model_version')} at {record['url']}"
    )
