"""``Preprocess``: clean the raw ImageFolder data set and compute its normalisation statistics.

With ``processing.instance_count: N`` > 1 the job scales out: its data input is ``ShardedByS3Key``, each
instance cleans its share and writes a part with exact integer pixel counts, and a ``MergeStats`` step
(``preprocess_merge.py``, one instance) merges the parts into the stats a one-instance run writes, bit
for bit. The clean files of every instance land under the one data prefix. One instance needs no merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.common import BuildContext, cache_config, job_retry_policies
from steps.processing import output_uri, processing_job_arguments, s3_input, s3_output

DATA_OUTPUT = "data"
STATS_OUTPUT = "stats"
PARTS_INPUT = "parts"


@dataclass(frozen=True)
class PreparedData:
    """Where the clean data set and its stats are (property references), and the steps making them."""

    steps: list[ProcessingStep]
    data_uri: Any
    stats_uri: Any


def build_preprocess(ctx: BuildContext) -> PreparedData:
    """``preprocess.py``: data (``InputDataUrl``: a prefix or a .zip) in; clean splits and stats out."""
    sharded = ctx.cfg.processing.instance_count > 1
    step_args = processing_job_arguments(
        ctx,
        step="preprocess",
        script="preprocess.py",
        resources=ctx.cfg.processing,
        inputs=[
            s3_input("data", ctx.params.input_data_url, "/opt/ml/processing/input/data", sharded=sharded)
        ],
        outputs=[
            s3_output(DATA_OUTPUT, ctx.execution_uri("data"), "/opt/ml/processing/output/data"),
            s3_output(STATS_OUTPUT, ctx.execution_uri("stats"), "/opt/ml/processing/output/stats"),
        ],
        arguments=["--image-size", str(ctx.cfg.data.image_size)],
    )
    preprocess = ProcessingStep(
        name="Preprocess",
        step_args=step_args,
        cache_config=cache_config(ctx.cfg),
        retry_policies=job_retry_policies(ctx.cfg),
    )
    data_uri = output_uri(preprocess, DATA_OUTPUT)
    if not sharded:
        return PreparedData([preprocess], data_uri, output_uri(preprocess, STATS_OUTPUT))
    merge = build_merge_stats(ctx, preprocess)
    return PreparedData([preprocess, merge], data_uri, output_uri(merge, STATS_OUTPUT))


def build_merge_stats(ctx: BuildContext, preprocess: ProcessingStep) -> ProcessingStep:
    """``preprocess_merge.py`` on one instance: the instances' parts in; the one-instance stats out."""
    step_args = processing_job_arguments(
        ctx,
        step="merge-stats",
        script="preprocess_merge.py",
        resources=ctx.cfg.processing.model_copy(update={"instance_count": 1}),
        inputs=[
            s3_input(PARTS_INPUT, output_uri(preprocess, STATS_OUTPUT), "/opt/ml/processing/input/parts")
        ],
        outputs=[
            s3_output(STATS_OUTPUT, ctx.execution_uri("merged-stats"), "/opt/ml/processing/output/stats")
        ],
    )
    return ProcessingStep(
        name="MergeStats",
        step_args=step_args,
        cache_config=cache_config(ctx.cfg),
        retry_policies=job_retry_policies(ctx.cfg),
    )
