"""Names and choices derived from the config that both deploy halves share: the deploy pipeline (its
steps, built offline) and what triggers and guards it on AWS (rule, alarms). No SDK, no AWS client.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import ConfigError, PipelineConfig

#: The stages a model is served on, production first.
STAGES: tuple[str, ...] = ("prod", "staging")

#: The parameter the deploy pipeline takes: a model package ARN, or ``latest`` (highest Approved).
PACKAGE_PARAMETER = "ModelPackageArn"
#: The one production variant of every endpoint dogpipe makes (both deploy roads, the alarms, scaling).
VARIANT = "AllTraffic"
#: ``latest``: the group's highest Approved version (what an approval event starts the pipeline with).
LATEST_PACKAGE = "latest"


def deploy_pipeline_name(cfg: PipelineConfig) -> str:
    return f"{cfg.project.name}-deploy"


def approval_rule_name(cfg: PipelineConfig) -> str:
    """The EventBridge rule that starts the deploy pipeline on an approval."""
    return f"{cfg.project.name}-deploy-on-approval"


def schedule_name(cfg: PipelineConfig) -> str:
    """The EventBridge Scheduler schedule that starts the build pipeline."""
    return f"{cfg.project.name}-scheduled-build"


def deploy_stage(cfg: PipelineConfig) -> str:
    """The stage the deploy pipeline serves: ``deploy.on_approval``, or prod when approvals are manual."""
    return "prod" if cfg.deploy.on_approval == "off" else cfg.deploy.on_approval


def endpoint_name_for(cfg: PipelineConfig, stage: str) -> str:
    """The endpoint a stage serves on (one rule for both engines and both deploy roads)."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
    return cfg.deploy.production_endpoint if stage == "prod" else cfg.deploy.staging_endpoint


def stage_endpoint(cfg: PipelineConfig) -> str:
    """The endpoint the deploy pipeline serves."""
    return endpoint_name_for(cfg, deploy_stage(cfg))


def alarm_names(cfg: PipelineConfig) -> list[str]:
    """The CloudWatch alarms that roll an update back (created by ``dogpipe upsert``)."""
    endpoint = stage_endpoint(cfg)
    return [f"{endpoint}-5xx-errors", f"{endpoint}-model-latency"]


def deployment_config(cfg: PipelineConfig) -> dict[str, Any]:
    """UpdateEndpoint's guardrails: blue/green traffic shifting with auto-rollback on the alarms."""
    guard = cfg.deploy.guardrails
    routing: dict[str, Any] = {"Type": guard.traffic, "WaitIntervalInSeconds": guard.wait_seconds}
    if guard.traffic == "CANARY":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": guard.canary_percent}
    elif guard.traffic == "LINEAR":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": guard.linear_step_percent}
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": guard.termination_wait_seconds,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarm_names(cfg)]},
    }


def capture_prefix(cfg: PipelineConfig) -> str:
    """Where an endpoint's captured records go: ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``, the
    endpoint and variant added by SageMaker (and by the local capture writer)."""
    return (cfg.deploy.data_capture.s3_uri or f"{cfg.project.s3_root}/data-capture").rstrip("/")


def data_capture_request(cfg: PipelineConfig) -> dict[str, Any] | None:
    """CreateEndpointConfig's ``DataCaptureConfig`` (None when capture is off): the one declaration both
    pipelines, ``dogpipe deploy`` and the local endpoint servers read."""
    capture = cfg.deploy.data_capture
    if not capture.enabled or not capture.modes():
        return None
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": capture.sampling_percentage,
        "DestinationS3Uri": capture_prefix(cfg),
        "CaptureOptions": [{"CaptureMode": mode} for mode in capture.modes()],
        # Replies kept as JSON text, not base64 (SageMaker's default), as the local writer keeps them.
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }


def monitored_endpoint(cfg: PipelineConfig) -> str:
    """The endpoint ``monitor.stage`` serves on: the one the monitoring schedule watches."""
    return endpoint_name_for(cfg, cfg.monitor.stage)


def monitoring_schedule_name(cfg: PipelineConfig) -> str:
    return f"{monitored_endpoint(cfg)}-drift"


def drift_alarm_name(cfg: PipelineConfig) -> str:
    """The CloudWatch alarm on the monitoring job's ``drift_violations`` metric."""
    return f"{monitored_endpoint(cfg)}-drift"


def retrain_rule_name(cfg: PipelineConfig) -> str:
    """The EventBridge rule that starts the build pipeline when the drift alarm goes into ALARM."""
    return f"{cfg.project.name}-retrain-on-drift"


def monitoring_prefix(cfg: PipelineConfig) -> str:
    """``constraints.json`` and the monitoring job's reports (``<prefix>/<endpoint>/...``)."""
    return f"{cfg.project.s3_root}/monitoring"
