"""``dogpipe models approve``'s second half: what the approval deploys, run or announced by the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pipeline.engines import Engine
    from pipeline.registry import ModelPackage


def deploy_after_approval(engine: Engine, package: ModelPackage) -> None:
    """With ``deploy.on_approval`` set, the deploy pipeline for ``package``: run now by the local engine,
    started on SageMaker by the EventBridge rule (``Engine.after_approval``). A failed deploy exits 1 with
    its reason: the approval stands, the endpoint keeps what it served."""
    from pipeline.approval import deploys_on_approval

    if not deploys_on_approval(engine.cfg, package):
        if engine.cfg.deploy.on_approval == "off":
            click.echo("deploy.on_approval is off: deploy it with `dogpipe deploy --stage prod`")
        return
    click.echo(engine.after_approval(package, click.echo))
