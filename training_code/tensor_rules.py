"""The tensor rules: VanishingGradient (gradients) and PoorWeightInitialization (activation inputs,
gradients and the first losses), with AWS's documented parameters and defaults.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from smdebug.core.modes import ModeKeys

if __package__:  # imported as training_code.tensor_rules (tests, the local engine's in-process runs)
    from .rule_base import DogRule, RuleDataError, regex_list
else:  # inside the processing container: the source dir is the working directory
    from rule_base import DogRule, RuleDataError, regex_list  # type: ignore[no-redef]


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
        names = set(base_trial.tensor_names(regex=regex_list(self.parameters["activation_inputs_regex"])))
        known = {collection.name for collection in base_trial.collections().values()}
        for collection in regex_list(self.parameters["activation_collections"]):
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
