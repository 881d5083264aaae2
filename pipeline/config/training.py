"""The training half of the config: model, hyperparameters, tuning and Debugger, as ``pipeline/config/``
uses them under ``model:``, ``training:``, ``tuning:`` and ``debugger:``.

Every hyperparameter field is :func:`declared` from ``training_code/hyperparameters.py`` (type, default,
range, description), so the YAML key, ``train.py``'s flag and the README table cannot drift apart.
Same rules as the rest of the config: unknown keys are errors, frozen models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training_code.hyperparameters import HYPERPARAMETERS, Hyperparameter

Optimizer = Literal[HYPERPARAMETERS["optimizer"].choices]
RuleName = Literal[
    "vanishing_gradient", "overfit", "overtraining", "poor_weight_initialization", "loss_not_decreasing"
]
ALL_RULES: tuple[RuleName, ...] = get_args(RuleName)


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo fails at load time, naming its key path); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _hyperparameter_type(hp: Hyperparameter) -> Any:
    kinds: dict[str, Any] = {"int": int, "float": float, "bool": bool, "str": str, "list": list[str]}
    base = Literal[hp.choices] if hp.choices else kinds[hp.kind]
    return base | None if hp.optional else base


def declared(name: str) -> Any:
    """The field of hyperparameter ``name`` exactly as ``training_code/hyperparameters.py`` declares it:
    type, default, range, pattern and description. Used as an annotation (``lr: declared("lr")``)."""
    if name not in HYPERPARAMETERS:
        raise KeyError(
            f"the config reads hyperparameter {name!r}, which training_code/hyperparameters.py "
            f"does not declare (it declares: {', '.join(HYPERPARAMETERS)})"
        )
    hp = HYPERPARAMETERS[name]
    default = list(hp.default) if isinstance(hp.default, tuple) else hp.default
    bounds: dict[str, Any] = {"ge": hp.ge, "gt": hp.gt, "le": hp.le, "lt": hp.lt, "pattern": hp.pattern}
    field = Field(
        default, description=hp.help, **{key: value for key, value in bounds.items() if value is not None}
    )
    return Annotated[_hyperparameter_type(hp), field]


class ModelConfig(StrictModel):
    """The torchvision classification model to fine-tune and where its pretrained weights come from."""

    architecture: declared("architecture")
    pretrained: declared("pretrained")
    weights_path: declared("weights_path")
    weights_sha256: declared("weights_sha256")
    freeze: declared("freeze")


class Hyperparameters(StrictModel):
    """Training hyperparameters; Tune overrides lr, batch_size and optimizer with its best trial.
    Type, default and range of each come from ``training_code/hyperparameters.py``."""

    epochs: declared("epochs")
    lr: declared("lr")
    batch_size: declared("batch_size")
    optimizer: declared("optimizer")
    weight_decay: declared("weight_decay")
    patience: declared("patience")
    num_workers: declared("num_workers")
    cache_mb: declared("cache_mb")
    seed: declared("seed")
    max_steps_per_epoch: declared("max_steps_per_epoch")


class ContinuousRange(StrictModel):
    min: float = Field(..., gt=0)
    max: float = Field(..., gt=0)
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Logarithmic"

    @model_validator(mode="after")
    def _ordered(self) -> ContinuousRange:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class TuningRanges(StrictModel):
    lr: ContinuousRange = ContinuousRange(min=1e-4, max=1e-2)
    batch_size: list[int] = Field([32, 64], min_length=1)
    optimizer: list[Optimizer] = Field(["adam", "sgd"], min_length=1)


class TuningConfig(StrictModel):
    """Hyperparameter tuning of lr, batch size and optimizer (the three the seed tuned)."""

    enabled: bool = True
    strategy: Literal["Bayesian", "Random", "Grid", "Hyperband"] = "Bayesian"
    max_jobs: int = Field(4, ge=1)
    max_parallel_jobs: int = Field(2, ge=1)
    early_stopping: Literal["Off", "Auto"] = "Off"
    objective_metric: str = "valid_accuracy"
    objective_type: Literal["Maximize", "Minimize"] = "Maximize"
    epochs: int | None = Field(None, ge=1, description="Epochs per trial; defaults to training.epochs.")
    ranges: TuningRanges = TuningRanges()

    @model_validator(mode="after")
    def _parallel_within_jobs(self) -> TuningConfig:
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError(
                f"max_parallel_jobs ({self.max_parallel_jobs}) exceeds max_jobs ({self.max_jobs})"
            )
        return self


class HookConfig(StrictModel):
    """What the smdebug hook saves and how often (steps)."""

    save_interval: declared("save_interval")
    eval_save_interval: declared("eval_save_interval")
    collections: declared("collections")


class RuleSetting(StrictModel):
    """One Debugger rule: on/off, whether an issue fails the pipeline, and parameter overrides."""

    enabled: bool = True
    fail_pipeline: bool = False
    parameters: dict[str, float | int | str | bool] = {}


class DebuggerConfig(StrictModel):
    """The smdebug hook, the five rules and the profiler, each evaluated by dogpipe itself (train.py's
    hook and profiler, the DebugRules step); the ``platform_*`` switches also hand them to SageMaker
    Debugger, which is closed to new AWS customers, so they are off unless asked for."""

    hook: declared("debug_hook")
    hook_config: HookConfig = HookConfig()
    platform_hook: bool = Field(
        False,
        description="Send DebugHookConfig (SageMaker uploads the trace); off: it travels in output.tar.gz.",
    )
    platform_rules: bool = Field(
        False, description="Send DebugRuleConfigurations (built-in rule containers); needs platform_hook."
    )
    platform_profiler: bool = Field(
        False, description="Send ProfilerConfig and the ProfilerReport rule; off: DisableProfiler."
    )
    rules: dict[RuleName, RuleSetting] = {name: RuleSetting() for name in ALL_RULES}
    profiler: declared("profiler")
    profiler_interval_ms: declared("profiler_interval_ms")

    @model_validator(mode="after")
    def _platform_rules_read_the_platform_trace(self) -> DebuggerConfig:
        if self.platform_rules and not (self.hook and self.platform_hook):
            raise ValueError("debugger.platform_rules needs hook: true and platform_hook: true")
        return self

    @field_validator("rules")
    @classmethod
    def _all_rules_known(cls, value: dict[str, RuleSetting]) -> dict[str, RuleSetting]:
        return {name: value.get(name, RuleSetting()) for name in ALL_RULES}
