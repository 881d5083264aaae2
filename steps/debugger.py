"""SageMaker Debugger fields of the ``Train`` request, built with the SDK's own Debugger classes.

``ModelTrainer`` (SDK v3) has no Debugger parameters, so :mod:`steps.trainer` appends what these
functions return to the CreateTrainingJob request. Built-in rules carry the placeholder image
``DEFAULT_RULE_EVALUATOR_IMAGE`` that v3 never resolves; it is replaced with the regional rule image.
"""

from __future__ import annotations

from typing import Any

from sagemaker.core.debugger import (
    CollectionConfig,
    DebuggerHookConfig,
    ProfilerConfig,
    ProfilerRule,
    Rule,
    get_rule_container_image_uri,
    rule_configs,
)

from pipeline.config import PipelineConfig

#: Where ``train.py`` writes the smdebug trace inside the container (training_code/README.md).
HOOK_LOCAL_PATH = "/opt/ml/output/tensors"


def debug_output_uri(cfg: PipelineConfig) -> str:
    """Static on purpose: DebugHookConfig is part of the training cache key; the job name separates runs."""
    return f"{cfg.project.s3_root}/debug-output"


def profiler_output_uri(cfg: PipelineConfig) -> str:
    return f"{cfg.project.s3_root}/profiler-output"


def debug_hook_config(cfg: PipelineConfig) -> dict[str, Any]:
    """``DebugHookConfig``: collections and save intervals from ``debugger.hook_config``."""
    hook = cfg.debugger.hook_config
    config = DebuggerHookConfig(
        s3_output_path=debug_output_uri(cfg),
        container_local_output_path=HOOK_LOCAL_PATH,
        hook_parameters={
            "save_interval": str(hook.save_interval),
            "eval.save_interval": str(hook.eval_save_interval),
        },
        collection_configs=[CollectionConfig(name=name) for name in hook.collections],
    )
    return config._to_request_dict()


def _rule_image(region: str) -> str:
    return get_rule_container_image_uri(None, region)


def debug_rule_configurations(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """``DebugRuleConfigurations`` for each enabled built-in rule, with its parameter overrides."""
    image = _rule_image(cfg.project.region)
    configurations = []
    for name, setting in cfg.debugger.rules.items():
        if not setting.enabled:
            continue
        parameters = {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in sorted(setting.parameters.items())
        }
        rule = Rule.sagemaker(getattr(rule_configs, name)(), rule_parameters=parameters or None)
        rule.image_uri = image
        configurations.append(rule.to_debugger_rule_config_dict())
    return configurations


def profiler_config(cfg: PipelineConfig) -> dict[str, Any]:
    config = ProfilerConfig(
        s3_output_path=profiler_output_uri(cfg),
        system_monitor_interval_millis=cfg.debugger.profiler_interval_ms,
    )
    return config._to_request_dict()


def profiler_rule_configurations(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The ``ProfilerReport`` rule: SageMaker's HTML/JSON report on the system and framework metrics."""
    rule = ProfilerRule.sagemaker(rule_configs.ProfilerReport())
    rule.image_uri = _rule_image(cfg.project.region)
    return [rule.to_profiler_rule_config_dict()]


def debugger_request_fields(cfg: PipelineConfig) -> dict[str, Any]:
    """The CreateTrainingJob fields for the ``platform_*`` switches in ``cfg.debugger``.

    With every platform switch off (the default, what a new account can use) the request carries only
    ``ProfilerConfig: {DisableProfiler: true}``: SageMaker would otherwise start its own system
    monitoring. train.py's hook and profiler run either way (hyperparameters ``debug_hook``/``profiler``)."""
    debugger = cfg.debugger
    fields: dict[str, Any] = {}
    if debugger.hook and debugger.platform_hook:
        fields["DebugHookConfig"] = debug_hook_config(cfg)
        if debugger.platform_rules:
            fields["DebugRuleConfigurations"] = debug_rule_configurations(cfg)
    if debugger.profiler and debugger.platform_profiler:
        fields["ProfilerConfig"] = profiler_config(cfg)
        fields["ProfilerRuleConfigurations"] = profiler_rule_configurations(cfg)
    else:
        fields["ProfilerConfig"] = {"DisableProfiler": True}
    return fields
