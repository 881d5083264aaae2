"""``Register``: a model package version in the Model Package Group, with evaluation.json as metrics.

``ModelBuilder.register()`` would add a RepackModel training job (and a local path in the definition) to
inject ``inference.py``; ``train.py`` already puts ``code/inference.py`` into the model directory, so the
CreateModelPackage request is built with the SDK's registry helper under the pipeline context instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.model_registry import create_model_package_from_containers
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep, TuningStep

from pipeline.config import JobResources
from steps.common import BuildContext, api_retry_policies, framework_image
from steps.compare import METADATA_PATH, comparison_uri
from steps.debug_rules import RULES_FILE, RULES_OUTPUT
from steps.evaluate import EVALUATION_FILE, EVALUATION_OUTPUT
from steps.processing import output_uri
from steps.train import tuned_hyperparameters
from training_code.compare import REGISTRY_METADATA_KEYS
from training_code.contract import BASELINE_FILE, DRIFT_BASELINE_KEY

#: The inference toolkit loads ``code/inference.py`` from the unpacked model.tar.gz.
SERVING_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}


@dataclass(frozen=True)
class ModelStepOwner:
    """What ModelStep requires of the object its request came from: a PipelineSession."""

    sagemaker_session: PipelineSession


def model_step_arguments(session: PipelineSession, create: Any) -> Any:
    """Capture a CreateModel/CreateModelPackage request as ModelStep arguments.

    The session's pipeline context intercepts the create call; this is what ``ModelBuilder`` does inside,
    minus its repack and default-bucket lookups.
    """
    session.init_model_step_arguments(ModelStepOwner(session))
    try:
        create()
        return session.context
    finally:
        session.context = None


def inference_image(ctx: BuildContext) -> str:
    resources = ctx.cfg.training.resources
    serving = JobResources(
        instance_type=ctx.cfg.deploy.instance_type,
        framework_version=resources.framework_version,
        py_version=resources.py_version,
    )
    return framework_image(ctx.cfg, serving, "inference")


def comparison_metadata(compare: ProcessingStep, report: PropertyFile) -> dict[str, Any]:
    """The comparison with production as CustomerMetadataProperties: where ``comparison.json`` is
    (``comparison_report``), plus its verdict in strings (``comparison_status``, ``delta_accuracy``...,
    ``registry_metadata`` of the file, read with JsonGet), so a listing needs no file."""
    metadata: dict[str, Any] = {"comparison_report": comparison_uri(compare)}
    for key in REGISTRY_METADATA_KEYS:
        metadata[key] = JsonGet(
            step_name=compare.name, property_file=report, json_path=f"{METADATA_PATH}.{key}"
        )
    return metadata


def lineage_metadata(
    ctx: BuildContext, train: TrainingStep, debug_rules: ProcessingStep | None, tune: TuningStep | None
) -> dict[str, Any]:
    """Where a version came from, as CustomerMetadataProperties (strings, resolved at run time on both
    engines): the execution, the data, the code, the training job, the best trial and the hyperparameters
    it chose, and the Debugger rules' report. ``dogpipe models show`` reads them back."""
    metadata: dict[str, Any] = {
        "source_execution": ExecutionVariables.PIPELINE_EXECUTION_ARN,
        "code_sha256": ctx.code.sha256,
        "data_uri": ctx.params.input_data_url,
        "training_job": train.properties.TrainingJobName,
    }
    for name, value in tuned_hyperparameters(ctx, tune).items():
        metadata[f"hp_{name}"] = value
    if tune is not None:
        metadata["best_trial"] = tune.properties.BestTrainingJob.TrainingJobName
    if debug_rules is not None:
        metadata["rules_report"] = Join(on="/", values=[output_uri(debug_rules, RULES_OUTPUT), RULES_FILE])
    return metadata


def _model_metrics(
    evaluate: ProcessingStep, comparison: tuple[ProcessingStep, PropertyFile] | None
) -> ModelMetrics:
    """evaluation.json as the model-quality statistics; comparison.json, where Compare ran, as its
    constraints (the check against production this version passed)."""
    evaluation_uri = Join(on="/", values=[output_uri(evaluate, EVALUATION_OUTPUT), EVALUATION_FILE])
    return ModelMetrics(
        model_statistics=MetricsSource(s3_uri=evaluation_uri, content_type="application/json"),
        model_constraints=(
            MetricsSource(s3_uri=comparison_uri(comparison[0]), content_type="application/json")
            if comparison
            else None
        ),
    )


def _drift_baselines(baseline_uri: Join) -> dict[str, Any]:
    """The version's drift baseline (Evaluate writes it beside evaluation.json) as the registry's
    DriftCheckBaselines, for Studio; the monitoring job and `dogpipe monitor` read the metadata key."""
    return {"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": baseline_uri}}}


def build_register(
    ctx: BuildContext,
    train: TrainingStep,
    evaluate: ProcessingStep,
    debug_rules: ProcessingStep | None = None,
    tune: TuningStep | None = None,
    comparison: tuple[ProcessingStep, PropertyFile] | None = None,
) -> ModelStep:
    """The package: evaluation.json as the model-quality statistics and, with ``comparison`` (the
    Compare step and its property file), comparison.json as the model-quality constraints: the check
    against production this version passed (botocore's ModelMetrics has no freer slot that Studio shows
    beside the statistics), with its verdict in the customer metadata."""
    metrics = _model_metrics(evaluate, comparison)
    metadata = lineage_metadata(ctx, train, debug_rules, tune)
    if comparison:
        metadata.update(comparison_metadata(*comparison))
    baseline_uri = Join(on="/", values=[output_uri(evaluate, EVALUATION_OUTPUT), BASELINE_FILE])
    metadata[DRIFT_BASELINE_KEY] = baseline_uri
    container = {
        "Image": inference_image(ctx),
        "ModelDataUrl": train.properties.ModelArtifacts.S3ModelArtifacts,
        "Environment": {**SERVING_ENVIRONMENT, "SAGEMAKER_REGION": ctx.cfg.project.region},
    }
    registry = ctx.cfg.registry
    step_args = model_step_arguments(
        ctx.session,
        lambda: create_model_package_from_containers(
            ctx.session,
            containers=[container],
            content_types=["image/jpeg", "image/png", "application/x-image"],
            response_types=["application/json"],
            inference_instances=list(registry.inference_instance_types),
            transform_instances=list(registry.inference_instance_types),
            model_package_group_name=registry.model_package_group,
            model_metrics=metrics._to_request_dict(),
            approval_status=ctx.params.model_approval_status,
            customer_metadata_properties=metadata,
            drift_check_baselines=_drift_baselines(baseline_uri),
        ),
    )
    return ModelStep(name="Register", step_args=step_args, retry_policies=api_retry_policies(ctx.cfg))
