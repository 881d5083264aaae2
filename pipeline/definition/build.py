"""``get_pipeline(cfg)``: the dogpipe DAG in one function, read top to bottom.

    Preprocess → Tune → Train → Evaluate → Compare ─┐
                          └──→ DebugRules ───────────┴→ CheckRules → CheckAccuracy → [CheckProduction]
                       → CheckNewModel → Register → CreateModel → EndpointConfig → Deploy
Each step's details live in ``steps/<name>.py``; this module only wires outputs to inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config import PipelineConfig
from pipeline.definition.code import CodeArchive, package_code
from pipeline.definition.sdk import pipeline_session

if TYPE_CHECKING:
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import Step

    from steps.common import BuildContext


def resolve_role_arn(cfg: PipelineConfig, role_arn: str | None = None) -> str:
    """The execution role: the argument, else the config, else a visible placeholder."""
    from steps.common import PLACEHOLDER_ROLE_ARN

    return role_arn or cfg.project.role_arn or PLACEHOLDER_ROLE_ARN


def build_context(
    cfg: PipelineConfig, role_arn: str | None = None, code: CodeArchive | None = None
) -> BuildContext:
    """What every step builder of either pipeline reads: config, session, code archive, parameters, role."""
    session = pipeline_session(cfg.project.region, cfg.project.bucket, cfg.project.prefix)
    # Step modules import the SDK, so they load only after pipeline_session() prepared the environment.
    from steps.common import BuildContext, PipelineParameters

    return BuildContext(
        cfg=cfg,
        session=session,
        code=code or package_code(),
        params=PipelineParameters.from_config(cfg),
        role_arn=resolve_role_arn(cfg, role_arn),
    )


def get_pipeline(
    cfg: PipelineConfig, role_arn: str | None = None, code: CodeArchive | None = None
) -> Pipeline:
    """Build the SDK ``Pipeline`` object; makes no AWS call (see ``pipeline/definition/sdk.py``)."""
    ctx = build_context(cfg, role_arn, code)
    from sagemaker.mlops.workflow.pipeline import Pipeline

    from steps.compare import build_compare
    from steps.debug_rules import build_debug_rules
    from steps.deploy import build_deploy
    from steps.evaluate import build_evaluate
    from steps.gate import (
        build_check_accuracy,
        build_check_new_model,
        build_check_production,
        build_check_rules,
    )
    from steps.preprocess import build_preprocess
    from steps.register import build_register
    from steps.train import build_train
    from steps.tune import build_tune

    prepared = build_preprocess(ctx)  # Preprocess, and MergeStats when it runs on several instances
    tune = build_tune(ctx, prepared) if cfg.tuning.enabled else None
    train = build_train(ctx, prepared, tune)
    evaluate, evaluation_report = build_evaluate(ctx, prepared, train)
    compare, comparison_report = build_compare(ctx, prepared, train, evaluate)
    debug_rules, rules_report = build_debug_rules(ctx, train)

    register = build_register(ctx, train, evaluate, debug_rules, tune, (compare, comparison_report))
    deploy = build_deploy(ctx, register) if cfg.deploy.enabled else []
    new_model = build_check_new_model(ctx, compare, comparison_report, on_new=[register, *deploy])
    accepted: list[Step] = [new_model]
    if cfg.evaluation.must_not_be_worse_than_production:
        accepted = [build_check_production(compare, comparison_report, on_pass=accepted)]
    check_accuracy = build_check_accuracy(ctx, evaluate, evaluation_report, on_pass=accepted)
    check_rules = build_check_rules(debug_rules, rules_report, on_pass=[check_accuracy])

    steps = [*prepared.steps, *([tune] if tune else []), train, evaluate, compare, debug_rules, check_rules]
    return Pipeline(
        name=cfg.project.name,
        parameters=ctx.params.as_list(),
        steps=steps,
        sagemaker_session=ctx.session,
    )
