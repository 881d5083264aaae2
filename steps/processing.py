"""Processing jobs that run one ``training_code/`` script through ``launch.py``.

The SDK's script processors upload the script to a timestamped key at build time; a plain ``Processor``
with the content-addressed sources as one more input keeps the definition stable. ``launch.py`` installs
``requirements.txt`` when the container lacks a package, then runs the named script with its arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sagemaker.core.processing import Processor
from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output

from pipeline.config import JobResources
from steps.common import PROCESSING_CODE_DIR, BuildContext, framework_image

if TYPE_CHECKING:
    from sagemaker.core.workflow.entities import PipelineVariable
    from sagemaker.core.workflow.pipeline_context import _JobStepArguments


def s3_input(
    name: str, uri: str | PipelineVariable, local_path: str, *, sharded: bool = False
) -> ProcessingInput:
    """A File-mode S3 prefix input (a single object is also a prefix of itself), copied whole to every
    instance, or ``sharded``: each instance gets about 1/N of its objects (``ShardedByS3Key``)."""
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri,
            local_path=local_path,
            s3_data_type="S3Prefix",
            s3_input_mode="File",
            s3_data_distribution_type="ShardedByS3Key" if sharded else "FullyReplicated",
        ),
    )


def s3_output(name: str, uri: str | PipelineVariable, local_path: str) -> ProcessingOutput:
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=uri, local_path=local_path, s3_upload_mode="EndOfJob"),
    )


def processing_job_arguments(
    ctx: BuildContext,
    *,
    step: str,
    script: str,
    resources: JobResources,
    inputs: list[ProcessingInput],
    outputs: list[ProcessingOutput],
    arguments: list[str | PipelineVariable] | None = None,
    env: dict[str, str] | None = None,
) -> _JobStepArguments:
    """The step arguments (nothing runs) of a processing job that runs ``training_code/<script>``
    through ``launch.py`` in the PyTorch image (``env``: the job's environment, e.g. the region for a
    script that calls AWS itself)."""
    processor = Processor(
        role=ctx.role_arn,
        image_uri=framework_image(ctx.cfg, resources, "training"),
        instance_count=resources.instance_count,
        instance_type=resources.instance_type,
        volume_size_in_gb=resources.volume_size_gb,
        max_runtime_in_seconds=resources.max_runtime_seconds,
        entrypoint=["python3", f"{PROCESSING_CODE_DIR}/launch.py", script],
        base_job_name=ctx.base_job_name(step),
        env=env,
        sagemaker_session=ctx.session,
    )
    code = s3_input("code", ctx.code.source_prefix_uri(ctx.cfg), PROCESSING_CODE_DIR)
    return processor.run(inputs=[*inputs, code], outputs=outputs, arguments=arguments)


def output_uri(step: Any, output: str) -> Any:
    """The S3 URI a processing step wrote ``output`` to, as a property reference."""
    return step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri
