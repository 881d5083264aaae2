"""The five Debugger rules dogpipe evaluates itself, written on ``smdebug.rules.rule.Rule``.

SageMaker's built-in rule containers are closed to new customers and their code is not public, so these
re-implement the documented behaviour with the documented parameters and defaults (AWS, "List of
Debugger built-in rules"). Where the documentation is ambiguous, the choice is written on the class and
in the README ("Debugger rules: semantics").

Each rule reads a finished trial. ``invoke_at_step(step)`` answers "is the condition met at this global
step?" using only data up to that step, so smdebug's ``invoke_rule`` reports the *first* step at which a
rule fires, and ``self.evidence`` holds the figures behind the verdict. ``evaluate_rule`` runs one rule
and returns a plain dict for ``rules.json``. The rules live in ``loss_rules.py`` and ``tensor_rules.py``,
what they share in ``rule_base.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from smdebug.exceptions import RuleEvaluationConditionMet
from smdebug.rules.rule_invoker import invoke_rule

if __package__:  # imported as training_code.dogrules (tests, the local engine's in-process runs)
    from .loss_rules import LossNotDecreasing, Overfit, Overtraining
    from .rule_base import ERROR, ISSUES_FOUND, NO_ISSUES_FOUND, NOT_RUN, DogRule, RuleDataError
    from .tensor_rules import PoorWeightInitialization, VanishingGradient
else:  # inside the processing container: the source dir is the working directory
    from loss_rules import LossNotDecreasing, Overfit, Overtraining  # type: ignore[no-redef]
    from rule_base import (  # type: ignore[no-redef]
        ERROR,
        ISSUES_FOUND,
        NO_ISSUES_FOUND,
        NOT_RUN,
        DogRule,
        RuleDataError,
    )
    from tensor_rules import PoorWeightInitialization, VanishingGradient  # type: ignore[no-redef]

__all__ = ["ERROR", "ISSUES_FOUND", "NOT_RUN", "NO_ISSUES_FOUND", "RULES", "evaluate_rule"]


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
