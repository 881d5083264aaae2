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
    from pipeline.config.deploy_names import deploy_pipeline_name

    pipeline = deploy_pipeline_name(cfg)
    if cfg.engine != "local":
        from pipeline.config.deploy_names import approval_rule_name

        click.echo(
            f"EventBridge rule {approval_rule_name(cfg)} starts {pipeline} for this approval "
            f"(stage {cfg.deploy.on_approval}); follow it with `dogpipe executions list`"
        )
        return
    run_deploy_pipeline(cfg, package)


def run_deploy_pipeline(cfg: PipelineConfig, package: ModelPackage) -> None:
    """Run ``<project>-deploy`` for ``package``: on the local engine now, reporting what serves; on
    SageMaker start an execution (listed by `dogpipe executions list`). The road to an approval-gated
    stage for ``models approve`` and ``deploy --stage`` alike."""
    from pipeline.config.deploy_names import PACKAGE_PARAMETER, deploy_pipeline_name, deploy_stage

    pipeline = deploy_pipeline_name(cfg)
    if cfg.engine != "local":
        from pipeline.cli.options import clients_for, friendly_errors
        from pipeline.sagemaker.pipelines import start_execution

        with friendly_errors():
            arn = start_execution(clients_for(cfg), cfg, {PACKAGE_PARAMETER: package.arn}, pipeline)
        click.echo(f"{pipeline} started for {package.arn} (stage {deploy_stage(cfg)}): {arn}")
        return
    from pipeline.approval import run_local_deploy
    from pipeline.local.endpoint_servers import EndpointError, read_endpoint
    from pipeline.local.engine import DefinitionError

    click.echo(f"deploying {package.arn} to {deploy_stage(cfg)} with {pipeline} ...")
    try:
        result = run_local_deploy(cfg, package.arn, echo=click.echo)
    except DefinitionError as error:
        raise click.ClickException(str(error)) from None
    if result.status != "Succeeded":
        raise click.ClickException(
            f"deploy execution {result.execution.id} {result.status}: {result.failure_reason}"
        )
    from pipeline.config.deploy_names import stage_endpoint

    name = stage_endpoint(cfg)
    try:
        record = read_endpoint(cfg.local.root, name)
    except EndpointError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"deploy execution {result.execution.id} Succeeded: {name} serves "
        f"{record.get('model_version')} at {record['url']}"
    )
