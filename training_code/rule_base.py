"""What dogpipe's Debugger rules share: verdicts, typed parameters, reading losses from a trial.

See ``dogrules.py`` for how the rules are run and ``loss_rules.py``/``tensor_rules.py`` for the rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.rules.rule import Rule

if __package__:  # imported as training_code.rule_base (tests, the local engine's in-process runs)
    from .contract import str2bool
else:  # inside the processing container: the source dir is the working directory
    from contract import str2bool  # type: ignore[no-redef]

ISSUES_FOUND = "IssuesFound"
NO_ISSUES_FOUND = "NoIssuesFound"
ERROR = "Error"
NOT_RUN = "NotRun"


class RuleDataError(Exception):
    """The trace lacks what a rule needs (e.g. no gradients saved); the rule's status is ``Error``."""


@dataclass(frozen=True)
class LossPoint:
    """One saved loss value, with both step numberings (segments need global order, patience mode steps)."""

    global_step: int
    mode: ModeKeys
    value: float


class DogRule(Rule):
    """Base: typed, documented parameters; unknown names or bad values fail with the rule's name."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, base_trial: Any, **parameters: Any) -> None:
        super().__init__(base_trial, action_str="")
        unknown = sorted(set(parameters) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"rule {self.name}: unknown parameter(s) {unknown}; known: {sorted(self.defaults)}"
            )
        self.parameters = {
            key: self._coerce(key, parameters.get(key, default)) for key, default in self.defaults.items()
        }
        self.evidence: dict[str, Any] = {}

    def _coerce(self, key: str, value: Any) -> Any:
        default = self.defaults[key]
        try:
            if value is None:
                return None
            if default is None:  # optional text parameters: mode, tensor_regex
                return str(value)
            if isinstance(default, bool):
                return str2bool(value)
            if isinstance(default, int):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(f"expected an integer, got {value!r}")
                return int(value)
            if isinstance(default, float):
                result = float(value)
                if math.isnan(result):
                    raise ValueError("NaN")
                return result
            return str(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"rule {self.name}: parameter {key}={value!r} is invalid: {error}") from None

    # helpers shared by the loss rules ----------------------------------------------------------------
    def loss_tensor_names(self) -> list[str]:
        names = set(self.base_trial.tensor_names(collection="losses")) if self._use_losses() else set()
        regex = self.parameters.get("tensor_regex")
        if regex:
            names |= set(self.base_trial.tensor_names(regex=regex_list(regex)))
        if not names:
            raise RuleDataError("no loss tensors in the trace (collection 'losses' is empty)")
        return sorted(names)

    def _use_losses(self) -> bool:
        return bool(self.parameters.get("use_losses_collection", True))

    def loss_points(self, tensor_name: str) -> list[LossPoint]:
        """Every saved value of a loss tensor in TRAIN and EVAL mode, in global step order."""
        tensor = self.base_trial.tensor(tensor_name)
        points = []
        for mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            for mode_step in tensor.steps(mode=mode):
                value = float(np.asarray(tensor.value(mode_step, mode=mode)).mean())
                points.append(LossPoint(self.base_trial.global_step(mode, mode_step), mode, value))
        return sorted(points, key=lambda point: point.global_step)


def regex_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def evaluation_passes(points: list[LossPoint]) -> list[tuple[list[LossPoint], list[LossPoint]]]:
    """Pair each evaluation pass (a run of EVAL losses) with the training losses saved since the previous
    one. The validation loss *of a pass* is the mean of its batches: batches of one pass hold different
    images, so comparing them with each other would measure the batches, not the model."""
    passes: list[tuple[list[LossPoint], list[LossPoint]]] = []
    train: list[LossPoint] = []
    evals: list[LossPoint] = []
    for point in points:
        if point.mode == ModeKeys.EVAL:
            evals.append(point)
            continue
        if evals:
            passes.append((train, evals))
            train, evals = [], []
        train.append(point)
    if evals:
        passes.append((train, evals))
    return passes


def span(steps: list[int]) -> int:
    return steps[-1] - steps[0] if steps else -1


def mean_loss(points: Iterable[LossPoint]) -> float:
    values = [point.value for point in points]
    return float(np.mean(values)) if values else math.nan
