"""What an approval sets off: the deploy pipeline for ``deploy.on_approval``'s stage, and only it.

On SageMaker, the EventBridge rule that ``dogpipe upsert`` creates starts ``<project>-deploy`` when a
package of the group becomes Approved; nothing runs here. On the local engine there is no event bus, so
``dogpipe models approve`` runs the same deploy definition on the local engine right away. A rejection,
or a status other than Approved, deploys nothing; ``on_approval: off`` leaves deploying to
``dogpipe deploy``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.config import PipelineConfig
from pipeline.registry import ModelPackage

if TYPE_CHECKING:
    from pipeline.local.engine import ExecutionResult


def deploys_on_approval(cfg: PipelineConfig, package: ModelPackage) -> bool:
    return cfg.deploy.on_approval != "off" and package.approval_status == "Approved"


def run_local_deploy(
    cfg: PipelineConfig, package_arn: str, echo: Callable[[str], None] = print
) -> ExecutionResult:
    """Run ``<project>-deploy`` on the local engine for ``package_arn`` (or ``latest``)."""
    from pipeline.config.deploy_names import PACKAGE_PARAMETER, deploy_pipeline_name
    from pipeline.definition.deploy_pipeline import build_deploy_definition
    from pipeline.local.run import executor_for, stage_code_in_store

    engine = executor_for(cfg, echo)
    code = stage_code_in_store(cfg, engine.store)
    definition = json.loads(build_deploy_definition(cfg, role_arn=cfg.project.role_arn, code=code))
    return engine.start(definition, deploy_pipeline_name(cfg), {PACKAGE_PARAMETER: package_arn})
