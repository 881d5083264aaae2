"""Processing steps: CreateProcessingJob run as a subprocess under the container contract.

Inputs are copied from the store to their (remapped) ``LocalPath``, the container's entrypoint and
arguments run with ``Environment``, and after success each output folder is uploaded to its S3Uri.
A failed job uploads nothing, so outputs of earlier runs stay as they were.
"""

from __future__ import annotations

from typing import Any

from pipeline.console_progress import JobLines
from pipeline.local.container import Container, job_name, max_runtime_seconds
from pipeline.local.context import StepContext, arn
from pipeline.local.deploy_job import is_deploy_job, run_deploy_job
from pipeline.local.endpoint_records import endpoints_folder
from pipeline.local.job_process import run_logged


class ProcessingArgumentError(ValueError):
    """Processing arguments SageMaker would reject (CreateProcessingJob validation)."""


def _require(arguments: dict[str, Any], *path: str) -> Any:
    value: Any = arguments
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise ProcessingArgumentError(f"processing job arguments lack {'.'.join(path)}")
        value = value[key]
    return value


def run_processing(ctx: StepContext) -> dict[str, Any]:
    """Run the job; returns the DescribeProcessingJob-shaped properties."""
    arguments = dict(ctx.arguments)
    app = _require(arguments, "AppSpecification")
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    if not entrypoint:
        raise ProcessingArgumentError("AppSpecification.ContainerEntrypoint is required by the local engine")
    if is_deploy_job(entrypoint):
        return run_deploy_job(ctx, list(app.get("ContainerArguments") or []))
    name = job_name(ctx.name)
    container = Container(ctx.work_dir / "job")

    for item in arguments.get("ProcessingInputs", []):
        s3 = item.get("S3Input")
        if not s3:
            raise ProcessingArgumentError(
                f"input {item.get('InputName')!r}: only S3Input is supported locally"
            )
        ctx.store.get(s3["S3Uri"], container.path(s3["LocalPath"]))
    outputs = arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in outputs:
        container.path(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    argv = container.command(entrypoint + list(app.get("ContainerArguments") or []))
    env = _job_environment(ctx, container, arguments)
    ctx.echo(f"  [{ctx.name}] {' '.join(argv[1:])}")
    shown = JobLines(ctx.echo, f"  [{ctx.name}] ")
    try:
        run_logged(
            argv,
            env,
            container.job_dir,
            ctx.log_dir / f"{name}.log",
            on_line=_echo_prefixed(shown),
            max_runtime_s=max_runtime_seconds(arguments),
        )
    finally:
        shown.close()

    for item in outputs:
        ctx.store.put_tree(container.path(item["S3Output"]["LocalPath"]), item["S3Output"]["S3Uri"])
    return {
        **arguments,
        "ProcessingJobName": name,
        "ProcessingJobArn": arn("processing-job", name),
        "ProcessingJobStatus": "Completed",
        "ExitMessage": "",
    }


def _job_environment(ctx: StepContext, container: Container, arguments: dict[str, Any]) -> dict[str, str]:
    """The job's ``Environment`` in the container, plus the folders that stand in for the registry API,
    the endpoints and S3, for the jobs that ask AWS themselves (ResolvePackage, Compare:
    ``training_code/production_model.py``)."""
    env = container.environment(arguments.get("Environment") or {})
    env["DOGPIPE_LOCAL_REGISTRY"] = str(ctx.settings.root / "registry")
    env["DOGPIPE_LOCAL_ENDPOINTS"] = str(endpoints_folder(ctx.settings.root))
    env["DOGPIPE_LOCAL_S3"] = str(ctx.store.root)
    return env


def _echo_prefixed(shown: JobLines):
    def echo(line: str) -> None:
        if line.startswith(("epoch=", "WARNING", "ERROR", "error")) or "quarantin" in line:
            shown.show(line)

    return echo
