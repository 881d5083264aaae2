"""The deploy pipeline's steps: one model package to one stage's endpoint.

    ResolvePackage → CheckPackage ─if→ CreateModel → EndpointConfig → Deploy (job)
                                  └else→ PackageNotDeployable (Fail)

``ResolvePackage`` is a small processing job (``training_code/resolve_model_package.py``) because no
pipeline step can read the registry: it describes the package and writes ``package.json``, which
``CheckPackage`` reads as a property file. Only an ``Approved`` package of the configured group goes on;
anything else ends at the Fail step with its status and group in the message. ``Deploy`` is a job too
(``training_code/deploy_endpoint.py``): Pipelines' Endpoint step takes no ``DeploymentConfig``. It checks
again that the package is still the one the stage should serve (a retried or resumed deploy must not
undo a later approval), then creates the endpoint or updates it with deployment guardrails: blue/green
traffic shifting that rolls back by itself when the CloudWatch alarms ``dogpipe upsert`` made go into
ALARM. The jobs get ``AWS_DEFAULT_REGION``, so boto3 finds the region in any environment.
"""

from __future__ import annotations

import json
from typing import Any

from sagemaker.core.processing import Processor
from sagemaker.core.workflow.conditions import ConditionEquals
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterString
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.endpoint_step import EndpointConfigStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.steps import ProcessingStep

from pipeline.config import JobResources, PipelineConfig
from pipeline.config.deploy_names import (
    LATEST_PACKAGE,
    PACKAGE_PARAMETER,
    VARIANT,
    data_capture_request,
    deploy_stage,
    deployment_config,
    stage_endpoint,
)
from steps.common import PROCESSING_CODE_DIR, BuildContext, api_retry_policies, framework_image
from steps.processing import s3_input, s3_output
from steps.register import model_step_arguments
from training_code.deploy_endpoint import SCRIPT as DEPLOY_SCRIPT

PACKAGE_OUTPUT = "package"
PACKAGE_FILE = "package.json"
PACKAGE_OUTPUT_DIR = "/opt/ml/processing/output/package"
#: The smallest processing instance: the job makes one or two API calls.
RESOLVE_RESOURCES = JobResources(instance_type="ml.t3.medium", max_runtime_seconds=600)
#: The Deploy job waits through the blue/green shift (baking time included) and the rollback window.
DEPLOY_RESOURCES = JobResources(instance_type="ml.t3.medium", max_runtime_seconds=4 * 3600)


def model_package_parameter() -> ParameterString:
    return ParameterString(PACKAGE_PARAMETER, default_value=LATEST_PACKAGE)


def _api_job(
    ctx: BuildContext,
    script: str,
    job: str,
    resources: JobResources,
    arguments: list[Any],
    outputs: list[Any],
) -> Any:
    """The step arguments of a job whose work is a few SageMaker API calls (boto3 is in every framework
    image: no launcher, nothing to install)."""
    processor = Processor(
        role=ctx.role_arn,
        image_uri=framework_image(ctx.cfg, resources, "training"),
        instance_count=1,
        instance_type=resources.instance_type,
        volume_size_in_gb=resources.volume_size_gb,
        max_runtime_in_seconds=resources.max_runtime_seconds,
        entrypoint=["python3", f"{PROCESSING_CODE_DIR}/{script}"],
        env={"AWS_DEFAULT_REGION": ctx.cfg.project.region},
        base_job_name=ctx.base_job_name(job),
        sagemaker_session=ctx.session,
    )
    return processor.run(
        inputs=[s3_input("code", ctx.code.source_prefix_uri(ctx.cfg), PROCESSING_CODE_DIR)],
        outputs=outputs,
        arguments=arguments,
    )


def build_resolve(ctx: BuildContext, package_arn: ParameterString) -> tuple[ProcessingStep, PropertyFile]:
    step_args = _api_job(
        ctx,
        "resolve_model_package.py",
        "resolve",
        RESOLVE_RESOURCES,
        outputs=[s3_output(PACKAGE_OUTPUT, ctx.execution_uri("package"), PACKAGE_OUTPUT_DIR)],
        arguments=[
            "--model-package-arn",
            package_arn,
            "--group",
            ctx.cfg.registry.model_package_group,
            "--output-dir",
            PACKAGE_OUTPUT_DIR,
        ],
    )
    facts = PropertyFile(name="PackageFacts", output_name=PACKAGE_OUTPUT, path=PACKAGE_FILE)
    step = ProcessingStep(
        name="ResolvePackage",
        step_args=step_args,
        property_files=[facts],
        retry_policies=api_retry_policies(ctx.cfg),
    )
    return step, facts


def _fact(step: ProcessingStep, facts: PropertyFile, key: str) -> JsonGet:
    return JsonGet(step_name=step.name, property_file=facts, json_path=key)


def _production_variant(cfg: PipelineConfig, model_name: Any) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
    if cfg.deploy.serverless is not None:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": cfg.deploy.serverless.memory_mb,
            "MaxConcurrency": cfg.deploy.serverless.max_concurrency,
        }
    else:
        variant["InstanceType"] = cfg.deploy.instance_type
        variant["InitialInstanceCount"] = cfg.deploy.initial_instance_count
    return variant


def _async_inference(cfg: PipelineConfig) -> dict[str, Any] | None:
    options = cfg.deploy.async_inference
    if options is None:
        return None
    return {
        "OutputConfig": {"S3OutputPath": options.output_s3_uri},
        "ClientConfig": {
            "MaxConcurrentInvocationsPerInstance": options.max_concurrent_invocations_per_instance
        },
    }


def build_serving(ctx: BuildContext, package_arn: JsonGet) -> list[Any]:
    """CreateModel (from the package) → EndpointConfig (named per execution) → Deploy."""
    cfg = ctx.cfg
    endpoint = stage_endpoint(cfg)
    session = ctx.session
    create_args = model_step_arguments(
        session,
        lambda: session.create_model(
            name=None, role=ctx.role_arn, container_defs=[{"ModelPackageName": package_arn}]
        ),
    )
    model = ModelStep(name="CreateModel", step_args=create_args, retry_policies=api_retry_policies(cfg))
    config_args = session.create_endpoint_config(
        name=Join(on="-", values=[endpoint, ExecutionVariables.PIPELINE_EXECUTION_ID]),
        production_variants=[_production_variant(cfg, model.properties.ModelName)],
        data_capture_config_dict=data_capture_request(cfg),
        async_inference_config_dict=_async_inference(cfg),
    )
    # No RetryPolicies: the pipeline schema's EndpointConfig step has none.
    endpoint_config = EndpointConfigStep(name="EndpointConfig", step_args=config_args)
    return [model, endpoint_config, build_deploy_job(ctx, endpoint_config, package_arn)]


def build_deploy_job(
    ctx: BuildContext, endpoint_config: EndpointConfigStep, package_arn: JsonGet
) -> ProcessingStep:
    """``Deploy``: the job that re-checks the package and switches the endpoint (see the module doc)."""
    cfg = ctx.cfg
    arguments: list[Any] = [
        "--endpoint-name",
        stage_endpoint(cfg),
        "--endpoint-config-name",
        endpoint_config.properties.EndpointConfigName,
        "--model-package-arn",
        package_arn,
        "--group",
        cfg.registry.model_package_group,
        "--stage",
        deploy_stage(cfg),
    ]
    if cfg.deploy.serverless is None:  # serverless endpoints take no blue/green policy
        # Two arguments, not one DeploymentConfig: CreateProcessingJob caps each at 256 characters.
        guards = deployment_config(cfg)
        alarms = [alarm["AlarmName"] for alarm in guards["AutoRollbackConfiguration"]["Alarms"]]
        compact = json.dumps(guards["BlueGreenUpdatePolicy"], sort_keys=True, separators=(",", ":"))
        arguments += ["--blue-green", compact, "--rollback-alarms", ",".join(alarms)]
    step_args = _api_job(ctx, DEPLOY_SCRIPT, "deploy", DEPLOY_RESOURCES, arguments=arguments, outputs=[])
    # No retry policy: a retried switch would be judged against an endpoint already mid-update.
    return ProcessingStep(name="Deploy", step_args=step_args)


def build_check(ctx: BuildContext, resolve: ProcessingStep, facts: PropertyFile) -> ConditionStep:
    group = ctx.cfg.registry.model_package_group
    status = _fact(resolve, facts, "ModelApprovalStatus")
    found_group = _fact(resolve, facts, "ModelPackageGroupName")
    refused = FailStep(
        name="PackageNotDeployable",
        error_message=Join(
            on=" ",
            values=[
                "refusing to deploy model package",
                _fact(resolve, facts, "ModelPackageArn"),
                "(status",
                status,
                "in group",
                found_group,
                f"): only Approved packages of group {group} are deployed.",
                _fact(resolve, facts, "Reason"),
            ],
        ),
    )
    return ConditionStep(
        name="CheckPackage",
        conditions=[
            ConditionEquals(left=status, right="Approved"),
            ConditionEquals(left=found_group, right=group),
        ],
        if_steps=build_serving(ctx, _fact(resolve, facts, "ModelPackageArn")),
        else_steps=[refused],
    )
