"""``Evaluate``: test-set metrics of the trained model, published as the ``EvaluationReport`` file."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep

from steps.common import BuildContext, cache_config, job_retry_policies
from steps.preprocess import PreparedData
from steps.processing import processing_job_arguments, s3_input, s3_output

EVALUATION_OUTPUT = "evaluation"
EVALUATION_FILE = "evaluation.json"
#: JSON path of the accuracy inside evaluation.json (SageMaker model-quality metrics layout).
ACCURACY_PATH = "multiclass_classification_metrics.accuracy.value"


def build_evaluate(
    ctx: BuildContext, prepared: PreparedData, train: TrainingStep
) -> tuple[ProcessingStep, PropertyFile]:
    report = PropertyFile(name="EvaluationReport", output_name=EVALUATION_OUTPUT, path=EVALUATION_FILE)
    step_args = processing_job_arguments(
        ctx,
        step="evaluate",
        script="evaluate.py",
        resources=ctx.cfg.evaluation.resources,
        inputs=[
            s3_input(
                "model", train.properties.ModelArtifacts.S3ModelArtifacts, "/opt/ml/processing/input/model"
            ),
            s3_input(
                "test",
                Join(on="/", values=[prepared.data_uri, "test"]),
                "/opt/ml/processing/input/test",
            ),
        ],
        outputs=[
            s3_output(
                EVALUATION_OUTPUT, ctx.execution_uri("evaluation"), "/opt/ml/processing/output/evaluation"
            )
        ],
    )
    step = ProcessingStep(
        name="Evaluate",
        step_args=step_args,
        property_files=[report],
        cache_config=cache_config(ctx.cfg),
        retry_policies=job_retry_policies(ctx.cfg),
    )
    return step, report
