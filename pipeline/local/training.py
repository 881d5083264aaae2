"""Training steps: CreateTrainingJob run as the SageMaker script-mode launcher would run it.

The launcher (sagemaker-training-toolkit) unpacks ``sagemaker_submit_directory`` into
``/opt/ml/code``, sets the ``SM_*`` variables, writes ``/opt/ml/input/config/*.json`` and runs
``sagemaker_program`` with the other hyperparameters as sorted ``--name value`` arguments (values
JSON-decoded first). Afterwards the platform tars ``/opt/ml/model`` into ``model.tar.gz`` and
``/opt/ml/output/data`` into ``output.tar.gz`` under ``<S3OutputPath>/<job>/output/``, and uploads the
Debugger hook's folder to ``<DebugHookConfig.S3OutputPath>/<job>/debug-output/``. All of that is done
here, for ``InstanceCount`` hosts (``algo-1``…) run as parallel processes joined by torch.distributed
environment variables. Only ``algo-1``'s model and logs count, as on SageMaker.
"""

from __future__ import annotations

import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.console_progress import StepProgress
from pipeline.local.container import (
    Container,
    job_name,
    max_runtime_seconds,
    metric_values,
    run_on_every_host,
)
from pipeline.local.context import StepContext, arn
from pipeline.local.job_process import JobFailed, run_logged
from pipeline.object_store import ObjectStore

DEFAULT_HOOK_PATH = "/opt/ml/output/tensors"
MetricCallback = Callable[[dict[str, float]], bool | None]


class TrainingArgumentError(ValueError):
    """Training arguments SageMaker would reject, or the launcher could not use."""


def decode_hyperparameter(value: Any) -> Any:
    """The toolkit's decoding: JSON when it parses (``"3"`` → 3, ``"\\"adam\\""`` → adam), else the text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def command_line_arguments(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``--name value`` pairs in sorted order, formatted as the toolkit's ``to_cmd_args``."""
    argv: list[str] = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        if isinstance(value, Mapping):
            value = ",".join(f"{key}={inner}" for key, inner in sorted(value.items()))
        argv += [f"--{name}", str(value)]
    return argv


def with_tracking_store(environment: Mapping[str, str], tracking_uri: str | None) -> dict[str, str]:
    """The job's environment, with the engine's MLflow store where the job asks for tracking
    (``DOGPIPE_TRACKING_EXPERIMENT``) and the definition names no ``MLFLOW_TRACKING_URI``."""
    env = dict(environment)
    if tracking_uri and env.get("DOGPIPE_TRACKING_EXPERIMENT") and not env.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TrainingJob:
    """One training job (a pipeline step or a tuning trial) from its CreateTrainingJob request."""

    def __init__(
        self,
        request: Mapping[str, Any],
        name: str,
        work_dir: Path,
        store: ObjectStore,
        tracking_uri: str | None = None,
    ) -> None:
        self.request = dict(request)
        self.tracking_uri = tracking_uri  # the engine's MLflow store, for a job that names none
        self.name = name
        self.work_dir = work_dir
        self.store = store
        raw = {key: str(value) for key, value in (self.request.get("HyperParameters") or {}).items()}
        self.raw_hyperparameters = raw
        decoded = {key: decode_hyperparameter(value) for key, value in raw.items()}
        self.program = decoded.get("sagemaker_program")
        self.submit_directory = decoded.get("sagemaker_submit_directory")
        self.user_hyperparameters = {
            key: value for key, value in decoded.items() if not key.startswith("sagemaker_")
        }
        resources = self.request.get("ResourceConfig") or {}
        self.instance_count = int(resources.get("InstanceCount", 1))
        if self.instance_count < 1:
            raise TrainingArgumentError(
                f"ResourceConfig.InstanceCount must be ≥ 1, got {self.instance_count}"
            )
        self.hosts = [f"algo-{index + 1}" for index in range(self.instance_count)]
        self.metric_definitions = (self.request.get("AlgorithmSpecification") or {}).get(
            "MetricDefinitions"
        ) or []
        self.final_metrics: dict[str, float] = {}
        self._metrics_lock = threading.Lock()

    @property
    def output_prefix(self) -> str:
        path = (self.request.get("OutputDataConfig") or {}).get("S3OutputPath")
        if not path:
            raise TrainingArgumentError("OutputDataConfig.S3OutputPath is required")
        return f"{path.rstrip('/')}/{self.name}/output"

    def _channels(self) -> list[tuple[str, str]]:
        channels = []
        for channel in self.request.get("InputDataConfig") or []:
            source = (channel.get("DataSource") or {}).get("S3DataSource")
            if not source:
                raise TrainingArgumentError(
                    f"channel {channel.get('ChannelName')!r}: only S3DataSource is supported"
                )
            channels.append((channel["ChannelName"], source["S3Uri"]))
        return channels

    def _prepare_host(
        self, host: str, rank: int, master_port: int
    ) -> tuple[Container, list[str], dict[str, str]]:
        """A fresh container for ``host`` with code, channels and config files; its argv and environment."""
        container = Container(self.work_dir / host)
        self._unpack_code(container)
        channels = self._channels()
        for channel, uri in channels:
            self.store.get(uri, container.path(f"/opt/ml/input/data/{channel}"))
        # The platform creates these before the script starts.
        for folder in ("/opt/ml/model", "/opt/ml/output/data", "/opt/ml/input/config"):
            container.path(folder).mkdir(parents=True, exist_ok=True)
        self._write_config(container, host, channels)
        env = {
            **with_tracking_store(self.request.get("Environment") or {}, self.tracking_uri),
            **self._sm_environment(host, channels),
            # torch.distributed's env:// rendezvous; one process per host on this machine.
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(master_port),
            "WORLD_SIZE": str(self.instance_count),
            "RANK": str(rank),
            "LOCAL_RANK": "0",
        }
        if self.request.get("DebugHookConfig"):
            env["SMDEBUG_CONFIG_FILE_PATH"] = "/opt/ml/input/config/debughookconfig.json"
        return container, container.command(self._argv()), container.environment(env)

    def _unpack_code(self, container: Container) -> None:
        if not self.submit_directory:
            return
        archive = self.store.path_for(str(self.submit_directory))
        if not archive.is_file():
            raise TrainingArgumentError(
                f"sagemaker_submit_directory not found in the store: {self.submit_directory}"
            )
        code_dir = container.path("/opt/ml/code")
        code_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(code_dir, filter="data")

    def _write_config(self, container: Container, host: str, channels: list[tuple[str, str]]) -> None:
        """``/opt/ml/input/config/*.json`` as the platform writes them (Debugger's hook config included)."""
        config_dir = container.path("/opt/ml/input/config")
        (config_dir / "hyperparameters.json").write_text(json.dumps(self.raw_hyperparameters))
        (config_dir / "inputdataconfig.json").write_text(
            json.dumps(
                {
                    name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
                    for name, _ in channels
                }
            )
        )
        (config_dir / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": self.hosts, "network_interface_name": "lo"})
        )
        hook = self.request.get("DebugHookConfig")
        if hook:
            hook_config = {**hook, "LocalPath": container.remap(hook.get("LocalPath") or DEFAULT_HOOK_PATH)}
            (config_dir / "debughookconfig.json").write_text(json.dumps(hook_config, indent=2))

    def _argv(self) -> list[str]:
        """Script mode (``sagemaker_program`` with the hyperparameters) or the container's entrypoint."""
        entry = self.request.get("AlgorithmSpecification") or {}
        if self.program:
            return [
                "python3",
                f"/opt/ml/code/{self.program}",
                *command_line_arguments(self.user_hyperparameters),
            ]
        if entry.get("ContainerEntrypoint"):
            return list(entry["ContainerEntrypoint"]) + list(entry.get("ContainerArguments") or [])
        raise TrainingArgumentError(
            "no script to run: set the hyperparameter sagemaker_program (script mode) "
            "or AlgorithmSpecification.ContainerEntrypoint"
        )

    def _sm_environment(self, host: str, channels: list[tuple[str, str]]) -> dict[str, str]:
        names = [name for name, _ in channels]
        env = {
            "TRAINING_JOB_NAME": self.name,  # SageMaker sets it in every training container
            "SM_MODEL_DIR": "/opt/ml/model",
            "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
            "SM_OUTPUT_DIR": "/opt/ml/output",
            "SM_INPUT_DIR": "/opt/ml/input",
            "SM_INPUT_CONFIG_DIR": "/opt/ml/input/config",
            "SM_INPUT_DATA_DIR": "/opt/ml/input/data",
            "SM_MODULE_DIR": str(self.submit_directory or ""),
            "SM_USER_ENTRY_POINT": str(self.program or ""),
            "SM_HPS": json.dumps(self.user_hyperparameters),
            "SM_USER_ARGS": json.dumps(command_line_arguments(self.user_hyperparameters)),
            "SM_CHANNELS": json.dumps(sorted(names)),
            "SM_HOSTS": json.dumps(self.hosts),
            "SM_CURRENT_HOST": host,
            "SM_NUM_GPUS": "0",
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_NETWORK_INTERFACE_NAME": "lo",
            "SM_LOG_LEVEL": "20",
            "SM_TRAINING_ENV": json.dumps(
                {
                    "job_name": self.name,
                    "hosts": self.hosts,
                    "current_host": host,
                    "hyperparameters": self.user_hyperparameters,
                }
            ),
        }
        for name in names:
            env[f"SM_CHANNEL_{name.upper()}"] = f"/opt/ml/input/data/{name}"
        for key, value in self.user_hyperparameters.items():
            env[f"SM_HP_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return env

    def _watch_metrics(self, on_metrics: MetricCallback | None) -> Callable[[str], bool | None]:
        def watch(line: str) -> bool | None:
            values = metric_values(line, self.metric_definitions)
            if not values:
                return None
            with self._metrics_lock:
                self.final_metrics.update(values)
            return on_metrics(values) if on_metrics else None

        return watch

    def run(self, log_dir: Path, on_metrics: MetricCallback | None = None) -> dict[str, Any]:
        """Run every host to completion, upload the artifacts, return DescribeTrainingJob properties."""
        master_port = _free_port()
        prepared = [self._prepare_host(host, rank, master_port) for rank, host in enumerate(self.hosts)]

        def run_host(index: int) -> None:
            container, argv, env = prepared[index]
            watch = self._watch_metrics(on_metrics) if index == 0 else None
            run_logged(
                argv,
                env,
                container.path("/opt/ml/code") if self.program else container.job_dir,
                log_dir / f"{self.name}-{self.hosts[index]}.log",
                on_line=watch,
                max_runtime_s=max_runtime_seconds(self.request),
            )

        run_on_every_host(len(prepared), run_host)
        return self._upload(prepared[0][0])

    def _upload(self, primary: Container) -> dict[str, Any]:
        model_uri = f"{self.output_prefix}/model.tar.gz"
        self.store.put_bytes(model_uri, _tar_gz(primary.path("/opt/ml/model")))
        self.store.put_bytes(
            f"{self.output_prefix}/output.tar.gz", _tar_gz(primary.path("/opt/ml/output/data"))
        )
        hook = self.request.get("DebugHookConfig")
        if hook and hook.get("S3OutputPath"):
            local = primary.path(hook.get("LocalPath") or DEFAULT_HOOK_PATH)
            if local.is_dir():
                self.store.put_tree(local, f"{hook['S3OutputPath'].rstrip('/')}/{self.name}/debug-output")
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {
            **self.request,
            "TrainingJobName": self.name,
            "TrainingJobArn": arn("training-job", self.name),
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
            "FinalMetricDataList": [
                {"MetricName": name, "Value": value, "Timestamp": timestamp}
                for name, value in sorted(self.final_metrics.items())
            ],
        }


def _tar_gz(folder: Path) -> bytes:
    """The folder's contents at the archive root, as SageMaker packs model.tar.gz."""
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if folder.is_dir():
            for child in sorted(folder.iterdir()):
                tar.add(child, arcname=child.name)
    return buffer.getvalue()


def run_training(ctx: StepContext) -> dict[str, Any]:
    """A pipeline Training step: one job, metric lines streamed to the console."""
    job = TrainingJob(
        ctx.arguments, job_name(ctx.name), ctx.work_dir / "job", ctx.store, ctx.settings.tracking_uri
    )
    ctx.echo(f"  [{ctx.name}] job {job.name} on {job.instance_count} instance(s)")
    epochs = job.user_hyperparameters.get("epochs")
    console = StepProgress(
        ctx.echo, epochs if isinstance(epochs, int) else None, f"  [{ctx.name}] epochs", "epoch"
    )

    def show(values: dict[str, float]) -> None:  # train.py prints one metric line per epoch
        console.advance(f"  [{ctx.name}] " + " ".join(f"{key}={value:.4g}" for key, value in values.items()))

    try:
        return job.run(ctx.log_dir, on_metrics=show)
    except JobFailed as error:
        raise JobFailed(f"training job {job.name} failed: {error}") from None
    finally:
        console.close()
