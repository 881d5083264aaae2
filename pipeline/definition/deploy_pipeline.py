"""``<project>-deploy``: the second pipeline, which puts one approved model package on one endpoint.

Built from the same YAML as the build pipeline, with the same guarantees: no AWS call while building,
the same bytes on every build (``canonical_json``), checked by ``dogpipe validate``. SageMaker runs it
when EventBridge sees a package of the group become Approved (``pipeline/sagemaker/triggers.py``); the local
engine runs it when ``dogpipe models approve`` approves one (``deploy.on_approval``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import deploy_pipeline_name
from pipeline.definition.code import CodeArchive
from pipeline.definition.sdk import offline, skipping_unused_imports

if TYPE_CHECKING:
    from sagemaker.mlops.workflow.pipeline import Pipeline


def get_deploy_pipeline(
    cfg: PipelineConfig, role_arn: str | None = None, code: CodeArchive | None = None
) -> Pipeline:
    """The SDK ``Pipeline`` of the deploy pipeline; makes no AWS call."""
    from pipeline.definition.build import build_context

    ctx = build_context(cfg, role_arn, code)
    from sagemaker.mlops.workflow.pipeline import Pipeline

    from steps.deploy_stage import build_check, build_resolve, model_package_parameter

    package_arn = model_package_parameter()
    resolve, facts = build_resolve(ctx, package_arn)
    check = build_check(ctx, resolve, facts)
    return Pipeline(
        name=deploy_pipeline_name(cfg),
        parameters=[package_arn],
        steps=[resolve, check],
        sagemaker_session=ctx.session,
    )


def build_deploy_definition(
    cfg: PipelineConfig, role_arn: str | None = None, code: CodeArchive | None = None
) -> str:
    """The deploy pipeline's definition as canonical JSON text."""
    from pipeline.definition.document import canonical_json, quiet_sdk

    with quiet_sdk(), offline(), skipping_unused_imports():
        raw = get_deploy_pipeline(cfg, role_arn=role_arn, code=code).definition()
    return canonical_json(json.loads(raw))
