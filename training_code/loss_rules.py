"""The loss rules: Overfit, Overtraining and LossNotDecreasing (AWS's documented behaviour and defaults).

Each reads the trial's loss tensors through :class:`rule_base.DogRule`; where AWS's wording is ambiguous
the choice is written on the class and in the README ("Debugger rules: semantics").
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from smdebug.core.modes import ModeKeys

if __package__:  # imported as training_code.loss_rules (tests, the local engine's in-process runs)
    from .rule_base import DogRule, RuleDataError, evaluation_passes, mean_loss, span
else:  # inside the processing container: the source dir is the working directory
    from rule_base import DogRule, RuleDataError, evaluation_passes, mean_loss, span  # type: ignore[no-redef]


class Overfit(DogRule):
    """Fires when ratio = (valid loss − train loss) / train loss exceeds ``ratio_threshold`` for
    ``patience`` consecutive evaluation passes starting at or after ``start_step``. The valid loss is the
    mean of one evaluation pass; the train loss is the mean of the training losses saved since the
    previous pass (AWS: "mean validation loss and mean training loss")."""

    name = "overfit"
    defaults: ClassVar[dict[str, Any]] = {
        "start_step": 0,
        "patience": 1,
        "ratio_threshold": 0.1,
        "tensor_regex": None,
        "use_losses_collection": True,
    }

    def __init__(self, base_trial: Any, **parameters: Any) -> None:
        super().__init__(base_trial, **parameters)
        self._verdicts: dict[int, bool] = {}
        history = []
        for tensor in self.loss_tensor_names():
            passes = [(t, e) for t, e in evaluation_passes(self.loss_points(tensor)) if t]
            if not passes:
                continue
            streak = 0
            for train, evals in passes:
                if evals[0].global_step < self.parameters["start_step"]:
                    continue
                train_loss, valid_loss = mean_loss(train), mean_loss(evals)
                ratio = (valid_loss - train_loss) / train_loss if train_loss > 0 else math.inf
                streak = streak + 1 if ratio > self.parameters["ratio_threshold"] else 0
                step = evals[-1].global_step
                history.append(
                    {
                        "tensor": tensor,
                        "step": step,
                        "train_loss": train_loss,
                        "valid_loss": valid_loss,
                        "ratio": ratio,
                    }
                )
                if streak >= self.parameters["patience"]:
                    self._verdicts.setdefault(step, True)
        if not history:
            raise RuleDataError("the trace has no evaluation pass with training losses before it")
        self.evidence = {"evaluations": history}

    def invoke_at_step(self, step: int) -> bool:
        return self._verdicts.get(step, False)


class Overtraining(DogRule):
    """Fires when the validation loss has not reached a new optimum for ``patience_validation``
    consecutive evaluation passes while the training loss still reached one within its last
    ``patience_train`` saved steps — training goes on improving the fit to the training data after the
    model stopped generalising better. A new optimum must beat the best so far by at least ``delta``
    (absolute, in loss units). When *both* losses stall, that is LossNotDecreasing, not this rule."""

    name = "overtraining"
    defaults: ClassVar[dict[str, Any]] = {
        "patience_train": 5,
        "patience_validation": 10,
        "delta": 0.1,
        "tensor_regex": None,
        "use_losses_collection": True,
    }

    def __init__(self, base_trial: Any, **parameters: Any) -> None:
        super().__init__(base_trial, **parameters)
        delta = self.parameters["delta"]
        self._verdicts: dict[int, bool] = {}
        evidence = []
        for tensor in self.loss_tensor_names():
            passes = evaluation_passes(self.loss_points(tensor))
            if not passes:
                continue
            best_train, train_since_optimum = math.inf, 0
            best_valid, evals_since_optimum = math.inf, 0
            for train, evals in passes:
                for point in train:
                    if point.value < best_train - delta:
                        best_train, train_since_optimum = point.value, 0
                    else:
                        train_since_optimum += 1
                valid_loss = mean_loss(evals)
                if valid_loss < best_valid - delta:
                    best_valid, evals_since_optimum = valid_loss, 0
                else:
                    evals_since_optimum += 1
                step = evals[-1].global_step
                fired = (
                    evals_since_optimum >= self.parameters["patience_validation"]
                    and train_since_optimum < self.parameters["patience_train"]
                )
                evidence.append(
                    {
                        "tensor": tensor,
                        "step": step,
                        "valid_loss": valid_loss,
                        "best_valid_loss": best_valid,
                        "evaluations_without_valid_optimum": evals_since_optimum,
                        "train_steps_since_train_optimum": train_since_optimum,
                    }
                )
                if fired:
                    self._verdicts.setdefault(step, True)
        if not evidence:
            raise RuleDataError("the trace has no evaluation (EVAL mode) losses")
        self.evidence = {"evaluations": evidence}

    def invoke_at_step(self, step: int) -> bool:
        return self._verdicts.get(step, False)


class LossNotDecreasing(DogRule):
    """AWS's documented check: every ``num_steps`` (mode steps), the loss at the current saved step must
    be below the loss at the latest saved step at least ``num_steps`` earlier — by ``diff_percent`` % when
    set, by any amount when not. In EVAL mode a step's loss is the mean of its evaluation pass and is
    compared with an earlier pass (batches of one pass hold different images). ``mode`` unset tries EVAL,
    then TRAIN, then GLOBAL: the first mode whose saved losses span at least ``num_steps`` steps, so a
    short evaluation does not leave the rule blind."""

    name = "loss_not_decreasing"
    defaults: ClassVar[dict[str, Any]] = {
        "num_steps": 10,
        "diff_percent": 0.0,
        "mode": None,
        "tensor_regex": None,
        "use_losses_collection": True,
    }

    def __init__(self, base_trial: Any, **parameters: Any) -> None:
        super().__init__(base_trial, **parameters)
        if self.parameters["mode"] and self.parameters["mode"].upper() not in {"EVAL", "TRAIN", "GLOBAL"}:
            raise ValueError(
                f"rule {self.name}: mode must be EVAL, TRAIN or GLOBAL, got {self.parameters['mode']!r}"
            )
        modes = (
            [ModeKeys[self.parameters["mode"].upper()]]
            if self.parameters["mode"]
            else [ModeKeys.EVAL, ModeKeys.TRAIN, ModeKeys.GLOBAL]
        )
        self._verdicts: dict[int, bool] = {}
        checks = []
        for tensor_name in self.loss_tensor_names():
            tensor = base_trial.tensor(tensor_name)
            mode = next(
                (m for m in modes if span(tensor.steps(mode=m)) >= self.parameters["num_steps"]), None
            )
            if mode is None:
                continue
            checks += self._check(tensor_name, tensor, mode)
        if not checks:
            raise RuleDataError(
                f"no mode among {[m.name for m in modes]} has saved losses "
                f"{self.parameters['num_steps']} steps apart"
            )
        self.evidence = {"checks": checks}

    def _check(self, name: str, tensor: Any, mode: ModeKeys) -> list[dict[str, Any]]:
        num_steps, factor = self.parameters["num_steps"], 1 - self.parameters["diff_percent"] / 100
        steps = tensor.steps(mode=mode)
        values = {s: float(np.asarray(tensor.value(s, mode=mode)).mean()) for s in steps}
        group = dict.fromkeys(steps, 0)
        if mode == ModeKeys.EVAL:  # a batch's loss stands for its whole evaluation pass (see Overfit)
            for index, (_, evals) in enumerate(evaluation_passes(self.loss_points(name))):
                for point in evals:
                    mode_step = self.base_trial.mode_step(point.global_step)
                    group[mode_step], values[mode_step] = index, mean_loss(evals)
        checks, next_check = [], steps[0] + num_steps
        for step in steps:
            candidates = [
                s
                for s in steps
                if s <= step - num_steps and (mode != ModeKeys.EVAL or group[s] != group[step])
            ]
            if step < next_check or not candidates:
                continue
            earlier = max(candidates)
            decreased = values[step] < values[earlier] * factor
            checks.append(
                {
                    "tensor": name,
                    "mode": mode.name,
                    "step": step,
                    "loss": values[step],
                    "compared_step": earlier,
                    "compared_loss": values[earlier],
                    "decreased": decreased,
                }
            )
            if not decreased:
                global_step = step if mode == ModeKeys.GLOBAL else self.base_trial.global_step(mode, step)
                self._verdicts.setdefault(global_step, True)
            next_check = step + num_steps
        return checks

    def invoke_at_step(self, step: int) -> bool:
        return self._verdicts.get(step, False)
