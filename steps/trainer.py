"""The ``ModelTrainer`` shared by ``Tune`` and ``Train``, and the one extension dogpipe makes to it.

Script mode without uploads: no ``source_code`` is given (it would be uploaded to a timestamped key at
build time); instead the hyperparameters ``sagemaker_program`` and ``sagemaker_submit_directory`` point
the PyTorch container's launcher at the content-addressed ``sourcedir.tar.gz``. Tuning jobs always go
through that launcher, which passes hyperparameters as ``--name value`` (``train.py`` accepts both).
"""

from __future__ import annotations

from typing import Any

from pydantic import PrivateAttr
from sagemaker.core.shapes import MetricDefinition
from sagemaker.train.configs import Compute, InputData, OutputDataConfig, StoppingCondition
from sagemaker.train.model_trainer import ModelTrainer

from pipeline.config import PipelineConfig
from steps.common import BuildContext, as_hyperparameter, framework_image, tracking_environment
from training_code.hyperparameters import HYPERPARAMETERS

#: The hyperparameters Tune searches; Train reads the best trial's values of exactly these.
TUNED = ("lr", "batch_size", "optimizer")

#: ``train.py`` prints ``epoch=3 train_loss=0.41 valid_loss=0.39 valid_accuracy=0.87`` per epoch.
METRIC_REGEXES: dict[str, str] = {
    "train_loss": r"train_loss=([0-9\.]+)",
    "valid_loss": r"valid_loss=([0-9\.]+)",
    "valid_accuracy": r"valid_accuracy=([0-9\.]+)",
}


class DebuggerModelTrainer(ModelTrainer):
    """A ``ModelTrainer`` whose CreateTrainingJob request also carries Debugger/Profiler fields.

    SDK v3 dropped ``debugger_hook_config``, ``rules`` and ``profiler_config`` from the trainer, but the
    CreateTrainingJob API still takes ``DebugHookConfig``, ``DebugRuleConfigurations``,
    ``ProfilerConfig`` and ``ProfilerRuleConfigurations``. This subclass merges a prepared dict of those
    fields into the request the SDK builds for a pipeline step; nothing else changes.
    """

    _extra_request_fields: dict[str, Any] = PrivateAttr(default_factory=dict)

    def with_request_fields(self, fields: dict[str, Any]) -> DebuggerModelTrainer:
        """Add top-level CreateTrainingJob fields (PascalCase, API shape) to the request."""
        self._extra_request_fields = dict(fields)
        return self

    def _create_training_job_args(self, input_data_config=None, boto3: bool = False) -> dict[str, Any]:
        request = super()._create_training_job_args(input_data_config=input_data_config, boto3=boto3)
        if self._extra_request_fields:
            if "AlgorithmSpecification" not in request:
                raise RuntimeError(
                    "Debugger fields need the API-shaped request; build Train under a PipelineSession"
                )
            request.update(self._extra_request_fields)
        return request


def static_hyperparameters(
    ctx: BuildContext, *, epochs: int, debug_hook: bool, profiler: bool
) -> dict[str, Any]:
    """Every declared hyperparameter except the tuned ones, from its config key
    (``training_code/hyperparameters.py``), plus the launcher's ``sagemaker_program`` and
    ``sagemaker_submit_directory``. ``epochs``, ``debug_hook`` and ``profiler`` differ per step."""
    cfg = ctx.cfg
    values: dict[str, Any] = {
        hp.name: cfg.value_at(hp.config) for hp in HYPERPARAMETERS.values() if hp.name not in TUNED
    }
    values.update(epochs=epochs, debug_hook=debug_hook, profiler=profiler)
    values.update(sagemaker_program="train.py", sagemaker_submit_directory=ctx.code.sourcedir_uri(cfg))
    return {name: as_hyperparameter(value) for name, value in values.items() if value is not None}


def channels(ctx: BuildContext, data_uri: Any, stats_uri: Any) -> list[InputData]:
    """The ``train``/``valid``/``stats`` channels from Preprocess's outputs."""
    from sagemaker.core.workflow.functions import Join

    return [
        InputData(channel_name="train", data_source=Join(on="/", values=[data_uri, "train"])),
        InputData(channel_name="valid", data_source=Join(on="/", values=[data_uri, "valid"])),
        InputData(channel_name="stats", data_source=stats_uri),
    ]


def make_trainer(
    ctx: BuildContext, *, step: str, hyperparameters: dict[str, Any], output_uri: Any, tracking_kind: str
) -> DebuggerModelTrainer:
    """A trainer on the PyTorch training image with dogpipe's compute, limits, metrics and output, and
    the environment its MLflow run needs (``tracking_kind``: ``trial`` or ``train``)."""
    cfg: PipelineConfig = ctx.cfg
    resources = cfg.training.resources
    trainer = DebuggerModelTrainer(
        sagemaker_session=ctx.session,
        role=ctx.role_arn,
        base_job_name=ctx.base_job_name(step),
        training_image=framework_image(cfg, resources, "training"),
        compute=Compute(
            instance_type=resources.instance_type,
            instance_count=resources.instance_count,
            volume_size_in_gb=resources.volume_size_gb,
        ),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=resources.max_runtime_seconds),
        output_data_config=OutputDataConfig(s3_output_path=output_uri),
        hyperparameters=hyperparameters,
        environment=tracking_environment(cfg, tracking_kind),
    )
    return trainer.with_metric_definitions(
        [MetricDefinition(name=name, regex=regex) for name, regex in METRIC_REGEXES.items()]
    )
