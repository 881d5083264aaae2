"""The AWS names dogpipe derives from the config, each against the limit of the service that takes it.

Each config name passes its own pattern, but the names built from it can still be too long: a
50-character project gives a 69-character EventBridge rule name (limit 64), an endpoint name over 50
characters an EndpointConfigName over 63 (the config name is ``<endpoint>-<execution id>``). AWS would
refuse those only at ``upsert`` or, worse, in the middle of a run; ``dogpipe validate`` says so first.
"""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import alarm_names, approval_rule_name, deploy_pipeline_name, schedule_name
from pipeline.definition.run_time_length import EXECUTION_ID_LENGTH  # every endpoint config's suffix


def derived_names(cfg: PipelineConfig) -> list[tuple[str, str, int]]:
    """(what, name, limit) for every name built from the config."""
    deploy = cfg.deploy
    execution = "x" * EXECUTION_ID_LENGTH
    names = [
        ("build pipeline name", cfg.project.name, 256),
        ("deploy pipeline name", deploy_pipeline_name(cfg), 256),
        ("staging model name", f"{deploy.staging_endpoint}-model", 63),
        ("staging endpoint config name", f"{deploy.staging_endpoint}-{execution}", 63),
        ("production endpoint config name", f"{deploy.production_endpoint}-{execution}", 63),
        *[("CloudWatch alarm name", name, 255) for name in alarm_names(cfg)],
    ]
    if deploy.on_approval != "off":
        names.append(("EventBridge rule name", approval_rule_name(cfg), 64))
    if cfg.schedule:
        names.append(("Scheduler schedule name", schedule_name(cfg), 64))
    return names


def name_length_problems(cfg: PipelineConfig) -> list[str]:
    """One line per derived name over its limit, naming the config key to shorten."""
    return [
        f"{what} {name!r} is {len(name)} characters, over AWS's {limit}: shorten "
        f"{'project.name' if cfg.project.name in name else 'the deploy endpoint names'}"
        for what, name, limit in derived_names(cfg)
        if len(name) > limit
    ]
