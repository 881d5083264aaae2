"""``Tune``: a hyperparameter tuning job over learning rate, batch size and optimizer."""

from __future__ import annotations

from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter
from sagemaker.mlops.workflow.steps import TuningStep
from sagemaker.train.tuner import HyperparameterTuner

from steps.common import BuildContext, cache_config, job_retry_policies
from steps.preprocess import PreparedData
from steps.trainer import METRIC_REGEXES, channels, make_trainer, static_hyperparameters


def build_tune(ctx: BuildContext, prepared: PreparedData) -> TuningStep:
    """Trials train without the Debugger hook: tuning job definitions cannot carry Debugger settings."""
    tuning = ctx.cfg.tuning
    epochs = tuning.epochs or ctx.cfg.training.hyperparameters.epochs
    trainer = make_trainer(
        ctx,
        step="tune",
        hyperparameters=static_hyperparameters(ctx, epochs=epochs, debug_hook=False, profiler=False),
        output_uri=ctx.execution_uri("tune"),
        tracking_kind="trial",
    )
    ranges = tuning.ranges
    tuner = HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=tuning.objective_metric,
        objective_type=tuning.objective_type,
        hyperparameter_ranges={
            "lr": ContinuousParameter(ranges.lr.min, ranges.lr.max, scaling_type=ranges.lr.scaling),
            "batch_size": CategoricalParameter(ranges.batch_size),
            "optimizer": CategoricalParameter(ranges.optimizer),
        },
        metric_definitions=[{"Name": name, "Regex": regex} for name, regex in METRIC_REGEXES.items()],
        strategy=tuning.strategy,
        max_jobs=tuning.max_jobs,
        max_parallel_jobs=tuning.max_parallel_jobs,
        early_stopping_type=tuning.early_stopping,
        base_tuning_job_name=ctx.base_job_name("tune")[:32],
    )
    step_args = tuner.tune(inputs=channels(ctx, prepared.data_uri, prepared.stats_uri))
    return TuningStep(
        name="Tune",
        step_args=step_args,
        cache_config=cache_config(ctx.cfg),
        retry_policies=job_retry_policies(ctx.cfg),
    )
