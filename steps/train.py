"""``Train``: retrain with the best trial's hyperparameters, under SageMaker Debugger and the profiler."""

from __future__ import annotations

from typing import Any

from sagemaker.mlops.workflow.steps import TrainingStep, TuningStep

from steps.common import BuildContext, as_hyperparameter, cache_config, job_retry_policies
from steps.debugger import debugger_request_fields
from steps.preprocess import PreparedData
from steps.trainer import TUNED, channels, make_trainer, static_hyperparameters
from training_code.hyperparameters import HYPERPARAMETERS


def tuned_hyperparameters(ctx: BuildContext, tune: TuningStep | None) -> dict[str, Any]:
    """lr/batch_size/optimizer: the best trial's values (property references) or, untuned, the config's."""
    if tune is not None:
        best = tune.properties.BestTrainingJob.TunedHyperParameters
        return {name: best[name] for name in TUNED}
    return {name: as_hyperparameter(ctx.cfg.value_at(HYPERPARAMETERS[name].config)) for name in TUNED}


def build_train(ctx: BuildContext, prepared: PreparedData, tune: TuningStep | None) -> TrainingStep:
    debugger = ctx.cfg.debugger
    hyperparameters = static_hyperparameters(
        ctx,
        epochs=ctx.cfg.training.hyperparameters.epochs,
        debug_hook=debugger.hook,
        profiler=debugger.profiler,
    )
    hyperparameters.update(tuned_hyperparameters(ctx, tune))
    trainer = make_trainer(
        ctx,
        step="train",
        hyperparameters=hyperparameters,
        output_uri=ctx.execution_uri("train"),
        tracking_kind="train",
    ).with_request_fields(debugger_request_fields(ctx.cfg))
    step_args = trainer.train(input_data_config=channels(ctx, prepared.data_uri, prepared.stats_uri))
    return TrainingStep(
        name="Train",
        step_args=step_args,
        cache_config=cache_config(ctx.cfg),
        retry_policies=job_retry_policies(ctx.cfg),
    )
