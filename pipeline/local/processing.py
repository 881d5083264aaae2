"""Processing steps: CreateProcessingJob run as subprocesses under the container contract.

Inputs are copied from the store to their (remapped) ``LocalPath``, the container's entrypoint and
arguments run with ``Environment``, and after success each output folder is uploaded to its S3Uri.
A failed job uploads nothing, so outputs of earlier runs stay as they were.

``ClusterConfig.InstanceCount`` N runs N processes at once, one container each (``algo-1``…, named in
``/opt/ml/config/resourceconfig.json`` as SageMaker does): a ``FullyReplicated`` input is copied whole
to every one, a ``ShardedByS3Key`` input's objects are dealt out (:func:`shard_keys`), and each output
uploads every instance's folder to the one S3Uri. The job completes when every instance exits 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipeline.console_progress import JobLines
from pipeline.local.container import Container, job_name, max_runtime_seconds, run_on_every_host
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


def instance_count(arguments: dict[str, Any]) -> int:
    count = int(
        ((arguments.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("InstanceCount", 1)
    )
    if count < 1:
        raise ProcessingArgumentError(
            f"ProcessingResources.ClusterConfig.InstanceCount must be ≥ 1, got {count}"
        )
    return count


def shard_keys(keys: list[str], count: int) -> list[list[str]]:
    """``ShardedByS3Key``: every object goes to exactly one of ``count`` instances, about 1/count each.

    SageMaker does not document which instance gets which key, and the scripts rely on none; dealing
    the sorted keys round-robin spreads every split and class over the instances.
    """
    return [keys[index::count] for index in range(count)]


def _hosts(count: int) -> list[str]:
    return [f"algo-{index + 1}" for index in range(count)]


def _containers(ctx: StepContext, hosts: list[str]) -> list[Container]:
    """One fresh container per instance; a one-instance job keeps its folder at ``job/`` as always."""
    if len(hosts) == 1:
        return [Container(ctx.work_dir / "job")]
    return [Container(ctx.work_dir / f"job-{host}") for host in hosts]


def _copy_inputs(ctx: StepContext, arguments: dict[str, Any], containers: list[Container]) -> None:
    for item in arguments.get("ProcessingInputs", []):
        s3 = item.get("S3Input")
        if not s3:
            raise ProcessingArgumentError(
                f"input {item.get('InputName')!r}: only S3Input is supported locally"
            )
        distribution = s3.get("S3DataDistributionType") or "FullyReplicated"
        if distribution == "ShardedByS3Key" and len(containers) > 1:
            shares = shard_keys(ctx.store.keys(s3["S3Uri"]), len(containers))
            for container, keys in zip(containers, shares, strict=True):
                ctx.store.get_keys(s3["S3Uri"], keys, container.path(s3["LocalPath"]))
        elif distribution in ("FullyReplicated", "ShardedByS3Key"):
            for container in containers:
                ctx.store.get(s3["S3Uri"], container.path(s3["LocalPath"]))
        else:
            raise ProcessingArgumentError(
                f"input {item.get('InputName')!r}: S3DataDistributionType {distribution!r} is not "
                "FullyReplicated or ShardedByS3Key"
            )


def _write_config(
    container: Container, arguments: dict[str, Any], name: str, host: str, hosts: list[str]
) -> None:
    """``/opt/ml/config/``: the cluster (``resourceconfig.json``) and the request, as SageMaker does."""
    config = container.path("/opt/ml/config")
    config.mkdir(parents=True, exist_ok=True)
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
    (config / "processingjobconfig.json").write_text(
        json.dumps({**arguments, "ProcessingJobName": name}, indent=2, default=str)
    )


def run_processing(ctx: StepContext) -> dict[str, Any]:
    """Run the job on every instance; returns the DescribeProcessingJob-shaped properties."""
    arguments = dict(ctx.arguments)
    app = _require(arguments, "AppSpecification")
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    if not entrypoint:
        raise ProcessingArgumentError("AppSpecification.ContainerEntrypoint is required by the local engine")
    if is_deploy_job(entrypoint):
        return run_deploy_job(ctx, list(app.get("ContainerArguments") or []))
    name = job_name(ctx.name)
    hosts = _hosts(instance_count(arguments))
    containers = _containers(ctx, hosts)
    _copy_inputs(ctx, arguments, containers)
    outputs = arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for container, host in zip(containers, hosts, strict=True):
        _write_config(container, arguments, name, host, hosts)
        for item in outputs:
            container.path(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    command = entrypoint + list(app.get("ContainerArguments") or [])
    ctx.echo(f"  [{ctx.name}] {' '.join(containers[0].command(command)[1:])}")
    if len(hosts) > 1:
        ctx.echo(f"  [{ctx.name}] job {name} on {len(hosts)} instances")
    _run_instances(ctx, arguments, name, command, containers, hosts)
    for item in outputs:
        folders = [container.path(item["S3Output"]["LocalPath"]) for container in containers]
        if len(folders) == 1:
            ctx.store.put_tree(folders[0], item["S3Output"]["S3Uri"])
        else:
            ctx.store.put_merged_trees(folders, item["S3Output"]["S3Uri"])
    return {
        **arguments,
        "ProcessingJobName": name,
        "ProcessingJobArn": arn("processing-job", name),
        "ProcessingJobStatus": "Completed",
        "ExitMessage": "",
    }


def _run_instances(
    ctx: StepContext,
    arguments: dict[str, Any],
    name: str,
    command: list[str],
    containers: list[Container],
    hosts: list[str],
) -> None:
    """Every instance's process at once, each with its own log; raises the first failure after all end."""

    def run_host(index: int) -> None:
        container = containers[index]
        env = _job_environment(ctx, container, arguments)
        tag = f"  [{ctx.name}] " if len(hosts) == 1 else f"  [{ctx.name} {hosts[index]}] "
        shown = JobLines(ctx.echo, tag)
        try:
            run_logged(
                container.command(command),
                env,
                container.job_dir,
                ctx.log_dir / (f"{name}.log" if len(hosts) == 1 else f"{name}-{hosts[index]}.log"),
                on_line=_echo_prefixed(shown),
                max_runtime_s=max_runtime_seconds(arguments),
            )
        finally:
            shown.close()

    run_on_every_host(len(hosts), run_host)


def _job_environment(ctx: StepContext, container: Container, arguments: dict[str, Any]) -> dict[str, str]:
    """The job's ``Environment`` in the container, plus the folders that stand in for the registry API,
    the endpoints and S3, for the jobs that ask AWS themselves (ResolvePackage, Compare:
    ``training_code/production_model.py``)."""
    env = container.environment(arguments.get("Environment") or {})
    env["DOGPIPE_LOCAL_REGISTRY"] = str(ctx.settings.root / "registry")
    env["DOGPIPE_LOCAL_ENDPOINTS"] = str(endpoints_folder(ctx.settings.root))
    env["DOGPIPE_LOCAL_S3"] = str(ctx.store.root)
    return env


def _echo_prefixed(shown: JobLines) -> Callable[[str], None]:
    def echo(line: str) -> None:
        if line.startswith(("epoch=", "WARNING", "ERROR", "error")) or "quarantin" in line:
            shown.show(line)

    return echo
