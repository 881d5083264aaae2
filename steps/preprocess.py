"""``Preprocess``: clean the raw ImageFolder data set and compute its normalisation statistics."""

from __future__ import annotations

from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.common import BuildContext, cache_config, job_retry_policies
from steps.processing import processing_job_arguments, s3_input, s3_output

DATA_OUTPUT = "data"
STATS_OUTPUT = "stats"


def build_preprocess(ctx: BuildContext) -> ProcessingStep:
    """``preprocess.py``: data (``InputDataUrl``: a prefix or a .zip) in; clean splits and stats out."""
    step_args = processing_job_arguments(
        ctx,
        step="preprocess",
        script="preprocess.py",
        resources=ctx.cfg.processing,
        inputs=[s3_input("data", ctx.params.input_data_url, "/opt/ml/processing/input/data")],
        outputs=[
            s3_output(DATA_OUTPUT, ctx.execution_uri("data"), "/opt/ml/processing/output/data"),
            s3_output(STATS_OUTPUT, ctx.execution_uri("stats"), "/opt/ml/processing/output/stats"),
        ],
        arguments=["--image-size", str(ctx.cfg.data.image_size)],
    )
    return ProcessingStep(
        name="Preprocess",
        step_args=step_args,
        cache_config=cache_config(ctx.cfg),
        retry_policies=job_retry_policies(ctx.cfg),
    )
