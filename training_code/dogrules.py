"""The five Debugger rules dogpipe evaluates itself, written on ``smdebug.rules.rule.Rule``.

SageMaker's built-in rule containers are closed to new customers and their code is not public, so these
re-implement the documented behaviour with the documented parameters and defaults (AWS, "List of
Debugger built-in rules"). Where the documentation is ambiguous, the choice is written on the class and
in the README ("Debugger rules: semantics").

Each rule reads a finished trial. ``invoke_at_step(step)`` answers "is the condition met at this global
step?" using only data up to that step, so smdebug's ``invoke_rule`` reports the *first* step at which a
rule fires, and ``self.evidence`` holds the figures behind the verdict. ``evaluate_rule`` runs one rule
and returns a plain dict for ``rules.json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.exceptions import RuleEvaluationConditionMet
from smdebug.rules.rule import Rule
from smdebug.rules.rule_invoker import invoke_rule

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


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ValueError(f"expected true/false, got {value!r}")


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
                return _parse_bool(value)
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
            names |= set(self.base_trial.tensor_names(regex=_regex_list(regex)))
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


def _regex_list(value: str) -> list[str]:
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


def _span(steps: list[int]) -> int:
    return steps[-1] - steps[0] if steps else -1


def _mean(points: Iterable[LossPoint]) -> float:
    values = [point.value for point in points]
    return float(np.mean(values)) if values else math.nan


class VanishingGradient(DogRule):
    """Fires at the first step where the mean |gradient| of any saved gradient tensor is below
    ``threshold``. Per tensor (one layer's weights or biases), because a single vanishing layer stops that
    layer learning even when the pooled mean over the network looks healthy."""

    name = "vanishing_gradient"
    defaults: ClassVar[dict[str, Any]] = {"threshold": 1e-7}

    def __init__(self, base_trial: Any, **parameters: Any) -> None:
        super().__init__(base_trial, **parameters)
        self._gradients = base_trial.tensor_names(collection="gradients")
        if not self._gradients:
            raise RuleDataError("no gradients in the trace (collection 'gradients' was not saved)")
        self.evidence = {"tensors_checked": len(self._gradients), "smallest": None}

    def invoke_at_step(self, step: int) -> bool:
        threshold = self.parameters["threshold"]
        vanishing = {}
        for name in self._gradients:
            tensor = self.base_trial.tensor(name)
            if step not in tensor.steps():
                continue
            mean_abs = float(tensor.reduction_value(step, "mean", abs=True))
            smallest = self.evidence["smallest"]
            if smallest is None or mean_abs < smallest["mean_abs"]:
                self.evidence["smallest"] = {"tensor": name, "step": step, "mean_abs": mean_abs}
            if mean_abs < threshold:
                vanishing[name] = mean_abs
        if vanishing:
            self.evidence["vanishing_tensors"] = vanishing
        return bool(vanishing)


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
                train_loss, valid_loss = _mean(train), _mean(evals)
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
                valid_loss = _mean(evals)
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
                (m for m in modes if _span(tensor.steps(mode=m)) >= self.parameters["num_steps"]), None
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
                    group[mode_step], values[mode_step] = index, _mean(evals)
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


class PoorWeightInitialization(DogRule):
    """Looks at the first ``steps`` saved steps and fires at the first step where any of AWS's three
    documented checks holds: (1) the activation-input variances of the layers are not commensurate;
    (2) the 5th–95th percentile spread of all gradients (pooled) < ``distribution_range``; (3) the training
    loss set no new minimum for ``patience`` consecutive saved steps.

    Activations are ReLU *inputs* (``activation_inputs_regex``, AWS's ``.*relu_input``, plus the
    ``activation_collections``), one variance per layer. AWS words check (1) as "max/min variance across
    layers > ``threshold``"; on torchvision's own initialisation that ratio is 4–37 (squeeze-excitation
    ReLUs act on pooled features, squeezenet's classifier is initialised small on purpose, tiny feature
    maps), so every healthy CNN would fire. dogpipe compares each layer with the *median* layer:
    max(largest/median, median/smallest) > ``threshold`` — 3–8 on those networks, while a poor
    initialisation shrinks or grows the variance geometrically with depth (weights ×1e-3: 1e6 per layer).
    The hook saves ``relu_input`` only for layers the run initialised (none in a pretrained backbone)."""

    name = "poor_weight_initialization"
    defaults: ClassVar[dict[str, Any]] = {
        "activation_inputs_regex": ".*relu_input",
        "activation_collections": "relu_input",
        "threshold": 10.0,
        "distribution_range": 0.001,
        "patience": 5,
        "steps": 10,
    }

    def __init__(self, base_trial: Any, **parameters: Any) -> None:
        super().__init__(base_trial, **parameters)
        names = set(base_trial.tensor_names(regex=_regex_list(self.parameters["activation_inputs_regex"])))
        known = {collection.name for collection in base_trial.collections().values()}
        for collection in _regex_list(self.parameters["activation_collections"]):
            if collection in known:
                names |= set(base_trial.tensor_names(collection=collection))
        self._activations = sorted(names)
        self._gradients = base_trial.tensor_names(collection="gradients")
        if len(self._activations) < 2 and not self._gradients:
            raise RuleDataError("need activations of two or more layers or gradients; the trace has neither")
        self._window = base_trial.steps()[: self.parameters["steps"]]
        self._loss_best, self._loss_stall = math.inf, 0
        self._loss_tensors = base_trial.tensor_names(collection="losses")
        self.evidence = {
            "steps_analysed": self._window,
            "activation_layers": len(self._activations),
            "findings": [],
        }
        if len(self._activations) < 2:
            self.evidence["activation_check"] = (
                "skipped: fewer than two layers' activation inputs in the trace (a pretrained backbone's "
                "are not an initialisation, so the hook does not save them)"
            )

    def invoke_at_step(self, step: int) -> bool:
        if step not in self._window:
            return False
        findings = [
            f for f in (self._variance_ratio(step), self._gradient_spread(step), self._loss(step)) if f
        ]
        self.evidence["findings"].extend(findings)
        return any(finding["fires"] for finding in findings)

    def _values(self, names: list[str], step: int) -> list[np.ndarray]:
        arrays = []
        for name in names:
            tensor = self.base_trial.tensor(name)
            if step in tensor.steps():
                arrays.append(np.asarray(tensor.value(step), dtype=np.float64))
        return arrays

    def _variance_ratio(self, step: int) -> dict[str, Any] | None:
        variances = {}
        for name in self._activations:
            tensor = self.base_trial.tensor(name)
            if step in tensor.steps():
                variances[name] = float(np.asarray(tensor.value(step), dtype=np.float64).var())
        if len(variances) < 2:
            return None
        median = float(np.median(list(variances.values())))
        smallest = min(variances, key=variances.__getitem__)
        largest = max(variances, key=variances.__getitem__)
        low, high = variances[smallest], variances[largest]
        ratio = max(high / median, median / low) if low > 0 and median > 0 else math.inf
        return {
            "check": "activation_variance_vs_median",
            "step": step,
            "ratio": ratio,
            "median_variance": median,
            "min_variance": low,
            "min_layer": smallest,
            "max_variance": high,
            "max_layer": largest,
            "max_over_min": high / low if low > 0 else math.inf,
            "fires": ratio > self.parameters["threshold"],
        }

    def _gradient_spread(self, step: int) -> dict[str, Any] | None:
        arrays = self._values(self._gradients, step)
        if not arrays:
            return None
        pooled = np.concatenate([a.ravel() for a in arrays])
        p5, p95 = np.percentile(pooled, [5, 95])
        spread = float(p95 - p5)
        return {
            "check": "gradient_p5_p95_spread",
            "step": step,
            "spread": spread,
            "fires": spread < self.parameters["distribution_range"],
        }

    def _loss(self, step: int) -> dict[str, Any] | None:
        values = [float(a.mean()) for a in self._values(self._loss_tensors, step)]
        if not values or self.base_trial.mode(step) == ModeKeys.EVAL:
            return None
        if values[0] < self._loss_best:
            self._loss_best, self._loss_stall = values[0], 0
        else:
            self._loss_stall += 1
        return {
            "check": "loss_stalled_steps",
            "step": step,
            "loss": values[0],
            "stalled_steps": self._loss_stall,
            "fires": self._loss_stall >= self.parameters["patience"],
        }


RULES: dict[str, type[DogRule]] = {
    rule.name: rule
    for rule in (VanishingGradient, Overfit, Overtraining, PoorWeightInitialization, LossNotDecreasing)
}


def evaluate_rule(trial: Any, name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one rule over a finished trial: status, first step it fired at, evidence, parameters used.
    A bad parameter raises ``ValueError`` (a configuration mistake must not pass as a rule verdict)."""
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; known: {sorted(RULES)}")
    try:
        rule = RULES[name](trial, **(parameters or {}))
    except RuleDataError as missing:
        return {
            "rule": name,
            "status": ERROR,
            "first_step": None,
            "evidence": {"reason": str(missing)},
            "parameters": {**RULES[name].defaults, **(parameters or {})},
        }
    steps = trial.steps()
    status, first_step = NO_ISSUES_FOUND, None
    if steps:
        try:
            invoke_rule(rule, start_step=steps[0], end_step=steps[-1] + 1, raise_eval_cond=True)
        except RuleEvaluationConditionMet as met:
            status, first_step = ISSUES_FOUND, int(met.step)
    return {
        "rule": name,
        "status": status,
        "first_step": first_step,
        "evidence": _jsonable(rule.evidence),
        "parameters": rule.parameters,
    }


def _jsonable(value: Any) -> Any:
    """Evidence as JSON: numpy scalars to Python, inf/nan to strings (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, np.integer):
        return int(value)
    return value
