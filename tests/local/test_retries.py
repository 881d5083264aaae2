"""Step RetryPolicies applied locally, each attempt in a fresh folder, attempts recorded in the state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.local.context import EngineSettings
from pipeline.local.engine import LocalEngine
from pipeline.local.retry import RetryPlan, RetryPolicyError
from pipeline.report.collect import write_local_report

from .definitions import BUCKET, definition, processing_step, stage_script
from .test_engine import local_config

# First attempt: leaves a half-written output, then dies of SIGKILL (as an instance failing under a
# job would); any later attempt must start with an empty output folder.
DIES_ONCE = """
    import os, pathlib, signal, sys
    out = pathlib.Path(os.environ["DOGPIPE_OPT_ML"] + "/processing/output/out")
    counter = pathlib.Path(os.environ["COUNTER"])
    attempt = len(counter.read_text().splitlines()) + 1 if counter.exists() else 1
    with counter.open("a") as stream:
        stream.write(f"{attempt} {sorted(p.name for p in out.iterdir())}\\n")
    if attempt == 1:
        (out / "partial.txt").write_text("from the dead attempt")
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("EXIT_CODE"):
        sys.exit(int(os.environ["EXIT_CODE"]))
    (out / "result.txt").write_text(f"attempt {attempt}")
"""
INTERNAL_ERROR_RETRY = {
    "ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"],
    "IntervalSeconds": 1,
    "BackoffRate": 2.0,
    "MaxAttempts": 2,
}


@pytest.fixture
def engine(tmp_path: Path) -> LocalEngine:
    return LocalEngine(EngineSettings(root=tmp_path / "root"), echo=lambda line: None)


def dies_once(engine: LocalEngine, counter: Path, policies: list[dict[str, Any]] | None, **env: str) -> dict:
    step = processing_step(
        "Flaky",
        stage_script(engine.store, "dies_once.py", DIES_ONCE),
        outputs={"out": f"{BUCKET}/out"},
        environment={"COUNTER": str(counter), **env},
    )
    if policies is not None:
        step["RetryPolicies"] = policies
    return definition(step)


def test_a_job_killed_once_is_retried_in_a_fresh_folder_and_succeeds(
    engine: LocalEngine, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    result = engine.start(dies_once(engine, counter, [INTERNAL_ERROR_RETRY]), "test")
    assert result.status == "Succeeded", result.failure_reason
    # The retry saw an empty output folder, and only its own output was published.
    assert counter.read_text().splitlines() == ["1 []", "2 []"]
    published = engine.store.path_for(f"{BUCKET}/out")
    assert sorted(path.name for path in published.iterdir()) == ["result.txt"]
    attempts = result.steps["Flaky"]["attempts"]
    assert [(item["attempt"], item["status"]) for item in attempts] == [(1, "Failed"), (2, "Succeeded")]
    assert attempts[0]["exception_type"] == "SageMaker.JOB_INTERNAL_ERROR"
    assert "SIGKILL" in attempts[0]["failure_reason"] and attempts[0]["retry_in_s"] == 1.0
    config = local_config(tmp_path, engine.settings.root)
    status = CliRunner().invoke(cli, ["status", result.execution.id, "--config", str(config)]).output
    assert "1 Failed [JOB_INTERNAL_ERROR], 2 Succeeded" in status, status
    report = write_local_report(engine.settings.root, result.execution.id).read_text()
    assert "retried: <b>Flaky</b>" in report and "1 Failed [JOB_INTERNAL_ERROR], 2 Succeeded" in report
    step_dir = result.execution.step_dir("Flaky")
    assert (step_dir / "attempt-1" / "logs").is_dir() and not (step_dir / "attempt-1" / "job").exists()
    # The attempt that succeeded published its outputs and dropped its job files; its logs stay.
    assert (step_dir / "attempt-2" / "logs").is_dir() and not (step_dir / "attempt-2" / "job").exists()


def test_without_a_policy_the_same_failure_fails_the_step_at_once(
    engine: LocalEngine, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    result = engine.start(dies_once(engine, counter, None), "test")
    assert result.status == "Failed"
    assert "ended by SIGKILL, which the engine did not send" in result.failure_reason
    assert counter.read_text().splitlines() == ["1 []"]
    assert [item["status"] for item in result.steps["Flaky"]["attempts"]] == ["Failed"]
    assert not engine.store.exists(f"{BUCKET}/out")  # the dead attempt published nothing


def test_a_script_error_is_not_retried_even_with_a_policy(engine: LocalEngine, tmp_path: Path) -> None:
    """A non-zero exit is SageMaker's AlgorithmError: no exception type matches it."""
    counter = tmp_path / "counter"
    policies = [{**INTERNAL_ERROR_RETRY, "MaxAttempts": 5, "IntervalSeconds": 0}]
    result = engine.start(dies_once(engine, counter, policies, EXIT_CODE="3"), "test")
    assert result.status == "Failed" and "exited with code 3" in result.failure_reason
    attempts = result.steps["Flaky"]["attempts"]
    assert [item.get("exception_type") for item in attempts] == ["SageMaker.JOB_INTERNAL_ERROR", None]


def test_retry_plan_follows_max_attempts_backoff_and_step_type() -> None:
    step = {
        "Name": "S",
        "Type": "Training",
        "RetryPolicies": [{**INTERNAL_ERROR_RETRY, "IntervalSeconds": 3}],
    }
    plan = RetryPlan(step)
    assert [plan.delay_after("SageMaker.JOB_INTERNAL_ERROR") for _ in range(3)] == [3.0, 6.0, None]
    assert RetryPlan(step).delay_after("SageMaker.CAPACITY_ERROR") is None
    assert RetryPlan(step).delay_after(None) is None
    # Tuning jobs retry their trials themselves; SageMaker does not retry JOB_INTERNAL_ERROR for them.
    assert RetryPlan({**step, "Type": "Tuning"}).delay_after("SageMaker.JOB_INTERNAL_ERROR") is None
    with pytest.raises(RetryPolicyError, match="exactly one of MaxAttempts, ExpireAfterMin"):
        RetryPlan({**step, "RetryPolicies": [{**INTERNAL_ERROR_RETRY, "ExpireAfterMin": 5}]})
    with pytest.raises(RetryPolicyError, match=r"unknown: SageMaker\.TYPO"):
        RetryPlan({**step, "RetryPolicies": [{**INTERNAL_ERROR_RETRY, "ExceptionType": ["SageMaker.TYPO"]}]})
