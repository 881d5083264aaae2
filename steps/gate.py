"""The quality gates: ``CheckRules`` (no blocking Debugger issue), then ``CheckAccuracy``, then
(``evaluation.must_not_be_worse_than_production``) ``CheckProduction``.

One condition step per gate, so each failure has its own ``FailStep`` whose message carries the
offending values: ``DebugRulesFailed`` with the count, ``AccuracyTooLow`` with accuracy and threshold,
``WorseThanProduction`` with both accuracies, the delta and McNemar's p (the Compare job words it, as
only it knows whether a comparison was made).
"""

from __future__ import annotations

from sagemaker.core.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.steps import ProcessingStep, Step

from steps.common import BuildContext
from steps.compare import GATE_MESSAGE_PATH, GATE_PASSED_PATH
from steps.debug_rules import BLOCKING_ISSUES_PATH
from steps.evaluate import ACCURACY_PATH


def build_check_accuracy(
    ctx: BuildContext, evaluate: ProcessingStep, report: PropertyFile, on_pass: list[Step]
) -> ConditionStep:
    accuracy = JsonGet(step_name=evaluate.name, property_file=report, json_path=ACCURACY_PATH)
    threshold = ctx.params.accuracy_threshold
    too_low = FailStep(
        name="AccuracyTooLow",
        error_message=Join(
            on=" ", values=["Test accuracy", accuracy, "is below AccuracyThreshold", threshold]
        ),
    )
    return ConditionStep(
        name="CheckAccuracy",
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=threshold)],
        if_steps=on_pass,
        else_steps=[too_low],
    )


def build_check_rules(rules: ProcessingStep, report: PropertyFile, on_pass: list[Step]) -> ConditionStep:
    blocking = JsonGet(step_name=rules.name, property_file=report, json_path=BLOCKING_ISSUES_PATH)
    failed = FailStep(
        name="DebugRulesFailed",
        error_message=Join(
            on=" ", values=["Debugger rules marked fail_pipeline found issues:", blocking, "(see rules.json)"]
        ),
    )
    return ConditionStep(
        name="CheckRules",
        conditions=[ConditionEquals(left=blocking, right=0)],
        if_steps=on_pass,
        else_steps=[failed],
    )


def build_check_production(
    compare: ProcessingStep, report: PropertyFile, on_pass: list[Step]
) -> ConditionStep:
    """A candidate the Compare job found clearly worse than production stops here; one it could not
    compare (no production model, other classes) passes, as its verdict says."""
    passed = JsonGet(step_name=compare.name, property_file=report, json_path=GATE_PASSED_PATH)
    message = JsonGet(step_name=compare.name, property_file=report, json_path=GATE_MESSAGE_PATH)
    worse = FailStep(
        name="WorseThanProduction",
        error_message=Join(on=" ", values=[message, "(see comparison.json)"]),
    )
    return ConditionStep(
        name="CheckProduction",
        conditions=[ConditionEquals(left=passed, right=True)],
        if_steps=on_pass,
        else_steps=[worse],
    )
