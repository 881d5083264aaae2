"""``DebugRules``: dogpipe's own evaluation of the five Debugger rules on the training trace.

SageMaker's built-in rule containers are closed to new Debugger customers, so ``debug_rules.py`` runs
the same checks with smdebug in a processing job and writes ``rules.json`` (the ``RulesReport``
property file), whose ``blocking_issues`` counts fail_pipeline rules that found issues.
"""

from __future__ import annotations

import json

from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep

from pipeline.config import PipelineConfig
from steps.common import BuildContext, cache_config, job_retry_policies
from steps.processing import processing_job_arguments, s3_input, s3_output

RULES_OUTPUT = "rules"
RULES_FILE = "rules.json"
BLOCKING_ISSUES_PATH = "blocking_issues"
MAX_CONTAINER_ARGUMENT = 256


def rules_argument(cfg: PipelineConfig) -> str:
    """The ``--rules`` JSON: each enabled rule with its non-default settings.

    ``{"overfit":{},"vanishing_gradient":{"fail_pipeline":true,"parameters":{"threshold":1e-6}}}``: a
    missing ``parameters`` means none and a missing ``fail_pipeline`` means false. Compact because one
    container argument may hold at most 256 characters (CreateProcessingJob).
    """
    rules: dict[str, dict[str, object]] = {}
    for name, setting in cfg.debugger.rules.items():
        if not setting.enabled:
            continue
        rule: dict[str, object] = {}
        if setting.fail_pipeline:
            rule["fail_pipeline"] = True
        if setting.parameters:
            rule["parameters"] = dict(setting.parameters)
        rules[name] = rule
    text = json.dumps(rules, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_CONTAINER_ARGUMENT:
        raise ValueError(
            f"debugger.rules: the enabled rules and their parameters need {len(text)} characters, but a "
            f"processing job argument holds at most {MAX_CONTAINER_ARGUMENT}; shorten or drop parameters"
        )
    return text


def build_debug_rules(ctx: BuildContext, train: TrainingStep) -> tuple[ProcessingStep, PropertyFile]:
    report = PropertyFile(name="RulesReport", output_name=RULES_OUTPUT, path=RULES_FILE)
    job_name = train.properties.TrainingJobName
    inputs = [
        s3_input(
            "training_output",
            Join(
                on="/",
                values=[train.properties.OutputDataConfig.S3OutputPath, job_name, "output", "output.tar.gz"],
            ),
            "/opt/ml/processing/input/training_output",
        )
    ]
    if ctx.cfg.debugger.hook and ctx.cfg.debugger.platform_hook:  # else the trace is in output.tar.gz
        trace = Join(on="/", values=[train.properties.DebugHookConfig.S3OutputPath, job_name, "debug-output"])
        inputs.insert(0, s3_input("debug", trace, "/opt/ml/processing/input/debug"))
    step_args = processing_job_arguments(
        ctx,
        step="debug-rules",
        script="debug_rules.py",
        resources=ctx.cfg.processing,
        inputs=inputs,
        outputs=[s3_output(RULES_OUTPUT, ctx.execution_uri("rules"), "/opt/ml/processing/output/rules")],
        arguments=["--rules", rules_argument(ctx.cfg)],
    )
    step = ProcessingStep(
        name="DebugRules",
        step_args=step_args,
        property_files=[report],
        cache_config=cache_config(ctx.cfg),
        retry_policies=job_retry_policies(ctx.cfg),
    )
    return step, report
