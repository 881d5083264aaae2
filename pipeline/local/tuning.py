"""Tuning steps: CreateHyperParameterTuningJob as Optuna trials of the training job definition.

Strategy mapping: Bayesian → TPE, Random → random sampling, Grid → exhaustive grid (categorical and
integer ranges only, as on SageMaker), Hyperband → TPE with a Hyperband pruner fed the objective
metric each time a trial logs it (once per epoch). ``TrainingJobEarlyStoppingType: Auto`` adds a
median pruner to the other strategies. Trials run ``MaxParallelTrainingJobs`` at a time, never more
than the engine's trial slots (cores). Each trial is a full :class:`TrainingJob`, so its artifacts
land where SageMaker puts them (``<S3OutputPath>/<trial>/output/model.tar.gz``).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Mapping
from typing import Any

import optuna

from pipeline.console_progress import StepProgress
from pipeline.local.context import StepContext, arn
from pipeline.local.job_process import JobFailed, JobStopped
from pipeline.local.training import TrainingJob


class TuningArgumentError(ValueError):
    """Tuning arguments SageMaker would reject."""


def _float(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TuningArgumentError(f"{what} is not a number: {value!r}") from None


class SearchSpace:
    """The ParameterRanges of a tuning job, able to suggest a trial's hyperparameters."""

    def __init__(self, ranges: Mapping[str, Any]) -> None:
        self.continuous = list(ranges.get("ContinuousParameterRanges") or [])
        self.integer = list(ranges.get("IntegerParameterRanges") or [])
        self.categorical = list(ranges.get("CategoricalParameterRanges") or [])
        if not (self.continuous or self.integer or self.categorical):
            raise TuningArgumentError("ParameterRanges is empty: nothing to tune")
        for item in self.continuous + self.integer:
            low, high = (
                _float(item["MinValue"], f"{item['Name']}.MinValue"),
                _float(item["MaxValue"], f"{item['Name']}.MaxValue"),
            )
            if low > high:
                raise TuningArgumentError(f"range {item['Name']}: MinValue {low} is above MaxValue {high}")
            if item.get("ScalingType") == "Logarithmic" and low <= 0:
                raise TuningArgumentError(f"range {item['Name']}: Logarithmic scaling needs MinValue > 0")

    def suggest(self, trial: optuna.Trial) -> dict[str, str]:
        """Hyperparameter values as SageMaker passes them: strings."""
        values: dict[str, str] = {}
        for item in self.continuous:
            log = item.get("ScalingType") == "Logarithmic"
            values[item["Name"]] = repr(
                trial.suggest_float(item["Name"], float(item["MinValue"]), float(item["MaxValue"]), log=log)
            )
        for item in self.integer:
            log = item.get("ScalingType") == "Logarithmic"
            values[item["Name"]] = str(
                trial.suggest_int(item["Name"], int(item["MinValue"]), int(item["MaxValue"]), log=log)
            )
        for item in self.categorical:
            values[item["Name"]] = str(
                trial.suggest_categorical(item["Name"], [str(value) for value in item["Values"]])
            )
        return values

    def grid(self) -> dict[str, list[Any]]:
        if self.continuous:
            names = ", ".join(item["Name"] for item in self.continuous)
            raise TuningArgumentError(f"Grid strategy does not support continuous ranges ({names})")
        grid: dict[str, list[Any]] = {
            item["Name"]: [str(value) for value in item["Values"]] for item in self.categorical
        }
        for item in self.integer:
            grid[item["Name"]] = list(range(int(item["MinValue"]), int(item["MaxValue"]) + 1))
        return grid


def make_sampler_and_pruner(
    config: Mapping[str, Any], space: SearchSpace
) -> tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]:
    strategy = config.get("Strategy", "Bayesian")
    early_stopping = config.get("TrainingJobEarlyStoppingType", "Off") == "Auto"
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_warmup_steps=1) if early_stopping else optuna.pruners.NopPruner()
    )
    if strategy == "Bayesian":
        return optuna.samplers.TPESampler(seed=0), pruner
    if strategy == "Random":
        return optuna.samplers.RandomSampler(seed=0), pruner
    if strategy == "Grid":
        return optuna.samplers.GridSampler(space.grid(), seed=0), pruner
    if strategy == "Hyperband":
        hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {}
        max_resource = hyperband.get("MaxResource")
        return optuna.samplers.TPESampler(seed=0), optuna.pruners.HyperbandPruner(
            min_resource=int(hyperband.get("MinResource", 1)),
            max_resource=int(max_resource) if max_resource else "auto",
        )
    raise TuningArgumentError(f"unknown tuning Strategy {strategy!r} (Bayesian, Random, Grid, Hyperband)")


class TuningJob:
    """Trials of a training job definition, searched with Optuna."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.config = dict(ctx.arguments.get("HyperParameterTuningJobConfig") or {})
        self.definition = dict(ctx.arguments.get("TrainingJobDefinition") or {})
        if not self.config or not self.definition:
            raise TuningArgumentError(
                "tuning needs HyperParameterTuningJobConfig and TrainingJobDefinition (one definition)"
            )
        objective = self.config.get("HyperParameterTuningJobObjective") or {}
        self.metric = str(objective.get("MetricName"))
        self.direction = objective.get("Type", "Maximize")
        if self.direction not in ("Maximize", "Minimize"):
            raise TuningArgumentError(f"objective Type must be Maximize or Minimize, got {self.direction!r}")
        known = [
            item["Name"]
            for item in (self.definition.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
        ]
        if self.metric not in known:
            raise TuningArgumentError(
                f"objective metric {self.metric!r} has no MetricDefinitions regex (defined: {known})"
            )
        limits = self.config.get("ResourceLimits") or {}
        self.max_jobs = int(limits.get("MaxNumberOfTrainingJobs", 1))
        self.parallel = max(
            1, min(int(limits.get("MaxParallelTrainingJobs", 1)), ctx.settings.trial_slots, self.max_jobs)
        )
        self.space = SearchSpace(self.config.get("ParameterRanges") or {})
        self.name = f"{ctx.name.lower()[:18]}-{secrets.token_hex(4)}".replace("_", "-")
        self.summaries: list[dict[str, Any]] = []
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def _trial_request(self, tuned: Mapping[str, str]) -> dict[str, Any]:
        request = {
            key: value
            for key, value in self.definition.items()
            if key
            not in ("StaticHyperParameters", "DefinitionName", "TuningObjective", "HyperParameterRanges")
        }
        request["HyperParameters"] = {**(self.definition.get("StaticHyperParameters") or {}), **tuned}
        return request

    def _trial_job(self, tuned: Mapping[str, str], name: str) -> TrainingJob:
        folder = self.ctx.work_dir / "trials" / name
        return TrainingJob(
            self._trial_request(tuned), name, folder, self.ctx.store, self.ctx.settings.tracking_uri
        )

    def objective(self, trial: optuna.Trial) -> float:
        tuned = self.space.suggest(trial)
        with self._lock:
            number = next(self._counter)
        name = f"{self.name}-{number:03d}-{secrets.token_hex(4)}"
        job = self._trial_job(tuned, name)
        shown = " ".join(f"{key}={value}" for key, value in tuned.items())
        self.console.say(f"  [{self.ctx.name}] trial {number}/{self.max_jobs} {shown}")
        reports = itertools.count(1)

        def report(values: dict[str, float]) -> bool:
            if self.metric not in values:
                return False
            step = next(reports)
            self.console.status(
                f"  [{self.ctx.name}]   trial {number} "
                f"{self.metric}={values[self.metric]:.4g} (report {step})"
            )
            trial.report(values[self.metric], step)
            return trial.should_prune()

        summary: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": arn("training-job", name),
            "TunedHyperParameters": dict(tuned),
        }
        try:
            properties = job.run(self.ctx.log_dir, on_metrics=report)
        except JobStopped:
            self._record(summary, "Stopped", job.final_metrics.get(self.metric))
            self.console.advance(None)
            raise optuna.TrialPruned() from None
        except JobFailed as error:
            self._record(summary, "Failed", None, str(error))
            self.console.advance(
                f"  [{self.ctx.name}] trial {number} failed: {(str(error).splitlines() or [''])[0]}"
            )
            raise
        value = job.final_metrics.get(self.metric)
        if value is None:
            self._record(
                summary, "Failed", None, f"the job never logged the objective metric {self.metric!r}"
            )
            raise JobFailed(f"trial {name} never logged the objective metric {self.metric!r}")
        summary["ModelArtifacts"] = properties["ModelArtifacts"]
        self._record(summary, "Completed", value)
        self.console.advance(f"  [{self.ctx.name}] trial {number} done: {self.metric}={value:.4g}")
        return value

    def _record(
        self, summary: dict[str, Any], status: str, value: float | None, reason: str | None = None
    ) -> None:
        summary["TrainingJobStatus"] = status
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": self.direction,
                "MetricName": self.metric,
                "Value": value,
            }
        if reason:
            summary["FailureReason"] = reason
        with self._lock:
            self.summaries.append(summary)

    def run(self) -> dict[str, Any]:
        sampler, pruner = make_sampler_and_pruner(self.config, self.space)
        # Optuna logs a failed or interrupted trial as a WARNING with its traceback; the engine says what
        # happened to each trial itself (one line), so only Optuna's errors are let through.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(direction=self.direction.lower(), sampler=sampler, pruner=pruner)
        self.ctx.echo(
            f"  [{self.ctx.name}] {self.config.get('Strategy', 'Bayesian')} search: "
            f"{self.max_jobs} trials, {self.parallel} at a time"
        )
        self.console = StepProgress(self.ctx.echo, self.max_jobs, f"  [{self.ctx.name}] trials", "trial")
        try:
            study.optimize(self.objective, n_trials=self.max_jobs, n_jobs=self.parallel, catch=(JobFailed,))
        finally:
            self.console.close()
        completed = [item for item in self.summaries if item["TrainingJobStatus"] == "Completed"]
        if not completed:
            failures = [item.get("FailureReason", item["TrainingJobStatus"]) for item in self.summaries]
            raise JobFailed(
                f"tuning job {self.name}: no trial completed. "
                f"First failure:\n{failures[0] if failures else 'none ran'}"
            )
        sign = -1 if self.direction == "Maximize" else 1

        def rank(item: dict[str, Any]) -> tuple[int, float]:
            metric = item.get("FinalHyperParameterTuningJobObjectiveMetric")
            return (0, sign * metric["Value"]) if metric else (1, 0.0)

        summaries = sorted(self.summaries, key=rank)
        best = min(completed, key=rank)
        counters = {
            status: sum(1 for item in self.summaries if item["TrainingJobStatus"] == status)
            for status in ("Completed", "Failed", "Stopped")
        }
        return {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", self.name),
            "HyperParameterTuningJobStatus": "Completed",
            "HyperParameterTuningJobConfig": self.config,
            "TrainingJobDefinition": self.definition,
            "TrainingJobStatusCounters": counters,
            "BestTrainingJob": best,
            "TrainingJobSummaries": summaries,
        }


def run_tuning(ctx: StepContext) -> dict[str, Any]:
    return TuningJob(ctx).run()
