"""Deploy the latest Approved model package to a SageMaker endpoint (``dogpipe deploy --stage prod``).

Production only ever runs a package a person approved in the registry: the pipeline's own Deploy step
serves staging, and this module is how a model reaches production. A deploy creates a model from the
package (``Containers=[{ModelPackageName: arn}]``, so the image and artefact are exactly the registered
ones), an endpoint config named after the package version and a hash of its settings, then creates the
endpoint or points the existing one at the new config. Names are deterministic, so running the same
deploy twice changes nothing. Autoscaling and data capture follow ``deploy:`` in the config.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import VARIANT, data_capture_request, deployment_config, endpoint_name_for
from pipeline.errors import DogpipeError
from pipeline.registry import ModelPackage
from pipeline.sagemaker.aws import aws_errors, is_not_found

Stage = Literal["prod", "staging"]
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
_NAME_LIMIT = 63


class DeployError(DogpipeError):
    """A deploy that must not go ahead (nothing approved) or that SageMaker reported as failed."""


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did, for the CLI to print."""

    stage: str
    endpoint_name: str
    model_name: str
    endpoint_config_name: str
    package: ModelPackage
    action: Literal["created", "updated", "unchanged"]
    autoscaling: bool


def _bounded_name(base: str, suffix: str) -> str:
    return f"{base[: _NAME_LIMIT - len(suffix)]}{suffix}"


def endpoint_config_request(cfg: PipelineConfig, endpoint: str, model_name: str) -> dict[str, Any]:
    """CreateEndpointConfig's request (without its name): one variant, data capture when enabled."""
    request: dict[str, Any] = {
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "ModelName": model_name,
                "InstanceType": cfg.deploy.instance_type,
                "InitialInstanceCount": cfg.deploy.initial_instance_count,
            }
        ]
    }
    capture = data_capture_request(cfg)
    if capture is not None:
        request["DataCaptureConfig"] = capture
    return request


class SageMakerDeployer:
    """Creates or updates one endpoint from a registered package, with optional autoscaling."""

    def __init__(
        self,
        sagemaker_client: Any,
        autoscaling_client: Any,
        *,
        wait_timeout_s: float = 1800.0,
        poll_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sagemaker = sagemaker_client
        self.autoscaling = autoscaling_client
        self.wait_timeout_s = wait_timeout_s
        self.poll_s = poll_s
        self.sleep = sleep

    def deploy(
        self, cfg: PipelineConfig, stage: str, package: ModelPackage, role_arn: str, wait: bool = False
    ) -> DeployResult:
        endpoint = endpoint_name_for(cfg, stage)
        model_name = _bounded_name(endpoint, f"-v{package.version}")
        request = endpoint_config_request(cfg, endpoint, model_name)
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:8]
        config_name = _bounded_name(endpoint, f"-v{package.version}-{digest}")
        with aws_errors():
            self._ensure_model(model_name, package.arn, role_arn)
            self._ensure_endpoint_config(config_name, request)
            action = self._create_or_update(cfg, endpoint, config_name)
            if wait or cfg.deploy.autoscaling is not None:
                self.wait_in_service(endpoint)
            self._apply_autoscaling(cfg, endpoint)
        return DeployResult(
            stage=stage,
            endpoint_name=endpoint,
            model_name=model_name,
            endpoint_config_name=config_name,
            package=package,
            action=action,
            autoscaling=cfg.deploy.autoscaling is not None,
        )

    def _exists(self, describe: Callable[..., Any], **name: str) -> bool:
        """Whether a named resource exists (:func:`pipeline.sagemaker.aws.is_not_found`)."""
        try:
            describe(**name)
        except ClientError as error:
            if is_not_found(error):
                return False
            raise
        return True

    def _ensure_model(self, model_name: str, package_arn: str, role_arn: str) -> None:
        if not self._exists(self.sagemaker.describe_model, ModelName=model_name):
            self.sagemaker.create_model(
                ModelName=model_name,
                ExecutionRoleArn=role_arn,
                Containers=[{"ModelPackageName": package_arn}],
            )

    def _ensure_endpoint_config(self, config_name: str, request: dict[str, Any]) -> None:
        if not self._exists(self.sagemaker.describe_endpoint_config, EndpointConfigName=config_name):
            self.sagemaker.create_endpoint_config(EndpointConfigName=config_name, **request)

    def _create_or_update(
        self, cfg: PipelineConfig, endpoint: str, config_name: str
    ) -> Literal["created", "updated", "unchanged"]:
        try:
            current = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        except ClientError as error:
            if not is_not_found(error):
                raise
            self.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
            return "created"
        if current.get("EndpointConfigName") == config_name:
            return "unchanged"
        # An endpoint whose variant is a scaling target cannot change instance type: release it first,
        # _apply_autoscaling registers it again once the update is in service.
        self._deregister_scaling(endpoint)
        # Blue/green with auto-rollback on the alarms `dogpipe upsert` made, as the deploy pipeline does.
        self.sagemaker.update_endpoint(
            EndpointName=endpoint, EndpointConfigName=config_name, DeploymentConfig=deployment_config(cfg)
        )
        return "updated"

    def wait_in_service(self, endpoint: str) -> None:
        """Poll until InService; a Failed endpoint or the timeout is a :class:`DeployError`."""
        deadline = time.monotonic() + self.wait_timeout_s
        while True:
            described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
            status = described.get("EndpointStatus")
            if status == "InService":
                return
            if status in {"Failed", "OutOfService"}:
                reason = described.get("FailureReason", "no reason given")
                raise DeployError(f"endpoint {endpoint!r} is {status}: {reason}")
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"endpoint {endpoint!r} still {status} after {self.wait_timeout_s:.0f} s; "
                    "check it in the SageMaker console"
                )
            self.sleep(self.poll_s)

    @staticmethod
    def _resource_id(endpoint: str) -> str:
        return f"endpoint/{endpoint}/variant/{VARIANT}"

    def _deregister_scaling(self, endpoint: str) -> None:
        resource_id = self._resource_id(endpoint)
        targets = self.autoscaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[resource_id], ScalableDimension=SCALABLE_DIMENSION
        ).get("ScalableTargets", [])
        if targets:
            self.autoscaling.deregister_scalable_target(
                ServiceNamespace="sagemaker", ResourceId=resource_id, ScalableDimension=SCALABLE_DIMENSION
            )

    def _apply_autoscaling(self, cfg: PipelineConfig, endpoint: str) -> None:
        scaling = cfg.deploy.autoscaling
        if scaling is None:
            return
        resource_id = self._resource_id(endpoint)
        self.autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=scaling.min,
            MaxCapacity=scaling.max,
        )
        self.autoscaling.put_scaling_policy(
            PolicyName=f"{endpoint}-invocations",
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": scaling.target_invocations,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
            },
        )
