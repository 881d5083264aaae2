"""``Compare``: the candidate against the model production serves, on the same test images.

A processing job (``training_code/compare.py``) with Evaluate's container contract: the candidate's
``model.tar.gz`` and the test split are inputs; the production model is found and fetched by the job
itself (the stage's endpoint, else the newest approval; none on a first run), since which one it is is
known only at run time. It publishes ``comparison.json`` as the ``ComparisonReport`` property file: the
``CheckProduction`` gate (``steps/gate.py``) reads ``gate.passed``, the ``CheckNewModel`` condition
``registered.already`` (the Train step's artifact is already a version of the group: a cached re-run)
and the Register step copies ``registry_metadata`` into the package's customer metadata.

The step is never cached: its answer depends on the registry, which no input of the job captures (a
cache hit after an approval would compare against the production of an earlier day).
"""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep

from pipeline.config.deploy_names import stage_endpoint
from steps.common import BuildContext, job_retry_policies
from steps.preprocess import PreparedData
from steps.processing import output_uri, processing_job_arguments, s3_input, s3_output
from training_code.compare import COMPARISON_FILE

COMPARISON_OUTPUT = "comparison"
#: JSON paths inside comparison.json that the gates and the Register step read.
GATE_PASSED_PATH = "gate.passed"
GATE_MESSAGE_PATH = "gate.message"
REGISTERED_PATH = "registered.already"
METADATA_PATH = "registry_metadata"


def build_compare(
    ctx: BuildContext, prepared: PreparedData, train: TrainingStep, evaluate: ProcessingStep
) -> tuple[ProcessingStep, PropertyFile]:
    evaluation = ctx.cfg.evaluation
    report = PropertyFile(name="ComparisonReport", output_name=COMPARISON_OUTPUT, path=COMPARISON_FILE)
    test_uri = Join(on="/", values=[prepared.data_uri, "test"])
    step_args = processing_job_arguments(
        ctx,
        step="compare",
        script="compare.py",
        resources=evaluation.resources,
        inputs=[
            s3_input(
                "model", train.properties.ModelArtifacts.S3ModelArtifacts, "/opt/ml/processing/input/model"
            ),
            s3_input("test", test_uri, "/opt/ml/processing/input/test"),
        ],
        outputs=[
            s3_output(
                COMPARISON_OUTPUT, ctx.execution_uri("comparison"), "/opt/ml/processing/output/comparison"
            )
        ],
        arguments=[
            "--group",
            ctx.cfg.registry.model_package_group,
            "--production-endpoint",
            stage_endpoint(ctx.cfg),
            "--gate",
            "true" if evaluation.must_not_be_worse_than_production else "false",
            "--tolerance",
            str(evaluation.production_tolerance),
            "--alpha",
            str(evaluation.significance_alpha),
            "--test-data-uri",  # recorded, so `dogpipe models compare` can score on the same images
            test_uri,
            "--candidate-model-uri",  # the URI Register would record, looked up in the group
            train.properties.ModelArtifacts.S3ModelArtifacts,
        ],
        env={"AWS_DEFAULT_REGION": ctx.cfg.project.region},
    )
    step = ProcessingStep(
        name="Compare",
        step_args=step_args,
        property_files=[report],
        depends_on=[evaluate],
        retry_policies=job_retry_policies(ctx.cfg),
    )
    return step, report


def comparison_uri(compare: ProcessingStep) -> Join:
    """Where the step wrote ``comparison.json`` (the registry entry points to it)."""
    return Join(on="/", values=[output_uri(compare, COMPARISON_OUTPUT), COMPARISON_FILE])
