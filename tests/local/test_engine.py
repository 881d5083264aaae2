"""The engine on hand-written definitions: order, conditions, Fail, parameters, cache, resume."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner

from pipeline.config import LOCAL_CONFIG
from pipeline.definition.parameters import ParameterError
from pipeline.local.context import EngineSettings
from pipeline.local.engine import LocalEngine
from pipeline.local.errors import DefinitionError
from pipeline.local.interrupt import ExecutionInterrupted
from pipeline.object_store import ObjectStore

from .definitions import BUCKET, definition, get, join, processing_step, stage_script

MAKE = """
    import json, os, pathlib
    ROOT = os.environ["DOGPIPE_OPT_ML"]
    data = pathlib.Path(ROOT + "/processing/input/data")
    files = sorted(p.name for p in data.rglob("*") if p.is_file())
    with open(os.environ["COUNTER"], "a") as counter:
        counter.write("make\\n")
    out = pathlib.Path(ROOT + "/processing/output/report")
    report = {"metrics": {"score": {"value": len(files) / 10}}, "files": files}
    (out / "report.json").write_text(json.dumps(report))
    print("made", len(files))
"""
USE = """
    import json, os, pathlib, sys
    ROOT = os.environ["DOGPIPE_OPT_ML"]
    report = json.loads(pathlib.Path(ROOT + "/processing/input/report/report.json").read_text())
    summary = pathlib.Path(ROOT + "/processing/output/final/summary.txt")
    summary.write_text(sys.argv[1] + ":" + str(report["files"]))
"""


def gated_definition(store: ObjectStore, counter: Path) -> dict[str, Any]:
    make = processing_step(
        "Make",
        stage_script(store, "make.py", MAKE),
        inputs={"data": get("Parameters.InputData")},
        outputs={"report": join(BUCKET, "reports", get("Execution.PipelineExecutionId"))},
        environment={"COUNTER": str(counter)},
        cache=True,
        property_files=[{"PropertyFileName": "Report", "OutputName": "report", "FilePath": "report.json"}],
    )
    use = processing_step(
        "Use",
        stage_script(store, "use.py", USE),
        inputs={"report": get("Steps.Make.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri")},
        outputs={"final": f"{BUCKET}/final"},
        arguments=["ok"],
    )
    score = {
        "Std:JsonGet": {"PropertyFile": get("Steps.Make.PropertyFiles.Report"), "Path": "metrics.score.value"}
    }
    fail = {
        "Name": "TooLow",
        "Type": "Fail",
        "Arguments": {"ErrorMessage": join("score below ", get("Parameters.Threshold"), on="")},
    }
    check = {
        "Name": "Check",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {
                    "Type": "GreaterThanOrEqualTo",
                    "LeftValue": score,
                    "RightValue": get("Parameters.Threshold"),
                }
            ],
            "IfSteps": [use],
            "ElseSteps": [fail],
        },
    }
    return definition(
        check,  # listed first on purpose: its data dependency on Make decides the order
        make,
        parameters=[
            {"Name": "InputData", "Type": "String", "DefaultValue": f"{BUCKET}/data"},
            {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.2},
        ],
    )


@pytest.fixture
def engine(tmp_path: Path) -> LocalEngine:
    engine = LocalEngine(EngineSettings(root=tmp_path / "root"), echo=lambda line: None)
    for name in ("a.txt", "b.txt", "c.txt"):
        engine.store.put_bytes(f"{BUCKET}/data/{name}", name.encode())
    return engine


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_condition_true_runs_the_if_branch(engine: LocalEngine, tmp_path: Path) -> None:
    result = engine.start(gated_definition(engine.store, tmp_path / "counter"), "test")
    assert result.status == "Succeeded", result.failure_reason
    assert [result.steps[name]["status"] for name in ("Make", "Check", "Use", "TooLow")] == [
        "Succeeded",
        "Succeeded",
        "Succeeded",
        "NotExecuted",
    ]
    assert result.steps["Check"]["properties"] == {"Outcome": True}
    summary = engine.store.path_for(f"{BUCKET}/final/summary.txt").read_text()
    assert summary == "ok:['a.txt', 'b.txt', 'c.txt']"
    recorded = json.loads((result.execution.folder / "execution.json").read_text())
    assert recorded["status"] == "Succeeded" and recorded["parameters"] == {
        "InputData": f"{BUCKET}/data",
        "Threshold": 0.2,
    }


def test_condition_false_fails_with_the_fail_step_message(engine: LocalEngine, tmp_path: Path) -> None:
    result = engine.start(gated_definition(engine.store, tmp_path / "counter"), "test", {"Threshold": "0.5"})
    assert result.status == "Failed"
    assert result.failure_reason == "score below 0.5"
    assert result.steps["Use"]["status"] == "NotExecuted"
    assert result.steps["TooLow"]["status"] == "Failed"
    assert not engine.store.exists(f"{BUCKET}/final")


def test_parameters_are_type_checked(engine: LocalEngine, tmp_path: Path) -> None:
    gated = gated_definition(engine.store, tmp_path / "counter")
    with pytest.raises(ParameterError, match="'Threshold' is Float; 'high' is not a valid Float"):
        engine.start(gated, "test", {"Threshold": "high"})
    with pytest.raises(ParameterError, match=r"parameter.*: Treshold; .*declares: InputData, Threshold"):
        engine.start(gated, "test", {"Treshold": "1"})


def test_unknown_property_fails_the_step_naming_it(engine: LocalEngine, tmp_path: Path) -> None:
    gated = gated_definition(engine.store, tmp_path / "counter")
    use = gated["Steps"][0]["Arguments"]["IfSteps"][0]
    use["Arguments"]["ProcessingInputs"][1]["S3Input"]["S3Uri"] = get(
        "Steps.Make.ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri"
    )
    result = engine.start(gated, "test")
    assert result.status == "Failed"
    assert "step 'Use' failed" in result.failure_reason
    assert (
        "step 'Make' has no property \"ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri\""
        in result.failure_reason
    )


def test_unknown_step_and_cycles_are_rejected_before_running(engine: LocalEngine, tmp_path: Path) -> None:
    a = processing_step("A", f"{BUCKET}/code/x.py", inputs={"i": get("Steps.B.ProcessingJobName")})
    b = processing_step("B", f"{BUCKET}/code/x.py", depends_on=["A"])
    with pytest.raises(DefinitionError, match=r"dependency cycle: (A -> B -> A|B -> A -> B)"):
        engine.start(definition(a, b), "test")
    with pytest.raises(DefinitionError, match=r"step 'A': unknown step 'B' in 'Steps.B.ProcessingJobName'"):
        engine.start(definition(a), "test")
    assert engine.executions.list() == []


def test_cache_hits_on_same_inputs_and_misses_when_data_changes(engine: LocalEngine, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    gated = gated_definition(engine.store, counter)
    first = engine.start(gated, "test")
    second = engine.start(gated, "test")
    assert (first.steps["Make"]["cache_hit"], second.steps["Make"]["cache_hit"]) == (None, first.execution.id)
    assert runs(counter) == 1 and second.status == "Succeeded"
    # Output locations are not part of the key (as on SageMaker): the hit hands on the first run's outputs.
    assert second.steps["Make"]["properties"] == first.steps["Make"]["properties"]
    assert first.execution.id in second.steps["Use"]["arguments"]["ProcessingInputs"][1]["S3Input"]["S3Uri"]

    time.sleep(0.01)
    engine.store.put_bytes(f"{BUCKET}/data/d.txt", b"new file behind the same URI")
    third = engine.start(gated, "test")
    assert third.steps["Make"]["cache_hit"] is None and runs(counter) == 2
    assert "d.txt" in engine.store.path_for(f"{BUCKET}/final/summary.txt").read_text()

    changed = copy.deepcopy(gated)
    changed["Steps"][1]["Arguments"]["Environment"]["EXTRA"] = "1"
    fourth = engine.start(changed, "test")
    assert fourth.steps["Make"]["cache_hit"] is None and runs(counter) == 3


FLAKY = """
    import os, pathlib, sys, time
    ROOT = os.environ["DOGPIPE_OPT_ML"]
    with open(os.environ["COUNTER"], "a") as counter:
        counter.write("flaky\\n")
    print("about to work", flush=True)
    if pathlib.Path(os.environ["BLOCK"]).exists():
        time.sleep(120)
    if pathlib.Path(os.environ["BREAK"]).exists():
        sys.exit("broken input, see above")
    pathlib.Path(ROOT + "/processing/output/out/done.txt").write_text("done")
"""


def two_step_definition(store: ObjectStore, tmp_path: Path) -> dict[str, Any]:
    env = {
        "COUNTER": str(tmp_path / "counter"),
        "BLOCK": str(tmp_path / "block"),
        "BREAK": str(tmp_path / "break"),
    }
    first = processing_step(
        "First",
        stage_script(store, "make.py", MAKE),
        inputs={"data": f"{BUCKET}/data"},
        outputs={"report": f"{BUCKET}/first"},
        environment=env,
    )
    second = processing_step(
        "Second",
        stage_script(store, "flaky.py", FLAKY),
        outputs={"out": f"{BUCKET}/second"},
        environment=env,
        depends_on=["First"],
    )
    return definition(first, second)


def test_failed_step_fails_execution_with_log_tail_and_resume_skips_finished_steps(
    engine: LocalEngine, tmp_path: Path
) -> None:
    (tmp_path / "break").touch()
    failed = engine.start(two_step_definition(engine.store, tmp_path), "test")
    assert failed.status == "Failed"
    assert (
        "step 'Second' failed" in failed.failure_reason and "broken input, see above" in failed.failure_reason
    )
    assert engine.store.exists(f"{BUCKET}/first/report.json")  # finished outputs stay
    assert not engine.store.exists(f"{BUCKET}/second")

    (tmp_path / "break").unlink()
    resumed = engine.resume(failed.execution.id)
    assert resumed.status == "Succeeded" and resumed.execution.id == failed.execution.id
    assert (tmp_path / "counter").read_text().splitlines() == ["make", "flaky", "flaky"]
    assert engine.store.exists(f"{BUCKET}/second/done.txt")


def start_engine_process(root: Path, definition_path: Path) -> subprocess.Popen[str]:
    """``LocalEngine.start`` in a process of its own (not its own session: the test kills it alone)."""
    program = (
        "import json, sys; from pathlib import Path; from pipeline.local.context import EngineSettings; "
        "from pipeline.local.engine import LocalEngine; "
        f"LocalEngine(EngineSettings(root=Path({str(root)!r})))"
        f".start(json.loads(Path({str(definition_path)!r}).read_text()), 't')"
    )
    return subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def local_config(tmp_path: Path, root: Path) -> Path:
    import yaml

    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["local"] = {"root": str(root)}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_sigkill_of_the_engine_shows_failed_kills_its_job_and_resume_finishes_in_a_fresh_folder(
    engine: LocalEngine, tmp_path: Path
) -> None:
    """SIGKILL to the engine alone: its job dies with it (PR_SET_PDEATHSIG), the very next `status` says
    the execution is not running, and --resume runs the step again in a new attempt folder."""
    from pipeline.cli.main import cli

    root = engine.settings.root
    definition_path = tmp_path / "definition.json"
    definition_path.write_text(json.dumps(two_step_definition(engine.store, tmp_path)))
    block = tmp_path / "block"
    block.touch()
    process = start_engine_process(root, definition_path)
    try:
        deadline = time.monotonic() + 60
        while not _processes_with_env("BLOCK", str(block)) or "flaky" not in _read(tmp_path / "counter"):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the engine never reached step Second"
            time.sleep(0.1)
        job = _processes_with_env("BLOCK", str(block))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    killed = engine.executions.latest()
    config = local_config(tmp_path, root)
    status = CliRunner().invoke(cli, ["status", killed.id, "--config", str(config)])
    assert status.exit_code == 0, status.output
    assert "status:    Failed" in status.output and "Executing" not in status.output, status.output
    assert f"engine process (pid {process.pid}) ended without finishing" in status.output
    psutil.wait_procs(job, timeout=10)
    assert _processes_with_env("BLOCK", str(block)) == []  # the job did not outlive the engine
    assert killed.step_state("First")["status"] == "Succeeded"

    block.unlink()
    resumed = engine.resume(killed.id)
    assert resumed.status == "Succeeded"
    assert (tmp_path / "counter").read_text().splitlines() == ["make", "flaky", "flaky"]
    attempts = resumed.steps["Second"]["attempts"]
    assert [(item["attempt"], item["status"]) for item in attempts] == [(1, "Failed"), (2, "Succeeded")]
    assert attempts[1]["folder"] == "steps/Second/attempt-2"


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _processes_with_env(name: str, value: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(name) == value:
                found.append(process)
    return found


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_sigterm_stops_the_execution_and_its_job_and_resume_finishes_it(
    engine: LocalEngine, tmp_path: Path
) -> None:
    """``kill`` of the engine alone (SIGTERM, not its process group) takes Ctrl-C's path: the running job
    (its own session) is terminated too, the execution reads Stopped, and --resume keeps First."""
    root = engine.settings.root
    definition_path = tmp_path / "definition.json"
    definition_path.write_text(json.dumps(two_step_definition(engine.store, tmp_path)))
    block = tmp_path / "block"
    block.touch()
    program = (
        "import json, sys; from pathlib import Path; from pipeline.local.context import EngineSettings; "
        "from pipeline.local.engine import LocalEngine; "
        "from pipeline.local.interrupt import ExecutionInterrupted\n"
        "try:\n"
        f"    LocalEngine(EngineSettings(root=Path({str(root)!r})))"
        f".start(json.loads(Path({str(definition_path)!r}).read_text()), 't')\n"
        "except ExecutionInterrupted as stop:\n"
        "    print('STOPPED', stop.execution_id, stop.reason); sys.exit(130)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _processes_with_env("BLOCK", str(block)) or "flaky" not in (
            (tmp_path / "counter").read_text() if (tmp_path / "counter").exists() else ""
        ):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the engine never reached step Second"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    stopped = engine.executions.latest()
    assert process.returncode == 130 and f"STOPPED {stopped.id} interrupted (SIGTERM)" in output, output
    assert stopped.load().status == "Stopped"
    assert stopped.step_state("First")["status"] == "Succeeded"
    assert stopped.step_state("Second")["failure_reason"] == "interrupted (SIGTERM)"
    assert _processes_with_env("BLOCK", str(block)) == []  # the job did not outlive the engine

    block.unlink()
    resumed = engine.resume(stopped.id)
    assert resumed.status == "Succeeded"
    assert (tmp_path / "counter").read_text().splitlines() == ["make", "flaky", "flaky"]


def test_an_interrupted_run_exits_130_naming_the_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint names the same --config: executions live under that config's local.root."""
    import pipeline.local.run
    from pipeline.cli.main import cli

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise ExecutionInterrupted("20260101-000000-abcdef", "interrupted (Ctrl-C)")

    monkeypatch.setattr(pipeline.local.run, "run_local", interrupted)
    config = tmp_path / "my config.yaml"
    config.write_text(LOCAL_CONFIG.read_text())
    result = CliRunner().invoke(cli, ["run", "--config", str(config)])
    assert result.exit_code == 130, result.output
    assert "execution 20260101-000000-abcdef Stopped: interrupted (Ctrl-C)" in result.output
    assert f"dogpipe run --config '{config}' --resume 20260101-000000-abcdef" in result.output


SLOW = """
    import os, pathlib, signal, sys, time
    def save_and_exit(signum, frame):
        pathlib.Path(os.environ["MARKER"]).write_text("saved on SIGTERM")
        sys.exit(0)
    signal.signal(signal.SIGTERM, save_and_exit)
    print("working", flush=True)
    time.sleep(60)
"""


def test_a_job_past_its_max_runtime_is_stopped_and_fails_the_step(
    engine: LocalEngine, tmp_path: Path
) -> None:
    """StoppingCondition.MaxRuntimeInSeconds as SageMaker applies it: SIGTERM, time to save, then failed."""
    marker = tmp_path / "marker"
    step = processing_step(
        "Slow", stage_script(engine.store, "slow.py", SLOW), environment={"MARKER": str(marker)}
    )
    step["Arguments"]["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    started = time.monotonic()
    result = engine.start(definition(step), "test")
    assert time.monotonic() - started < 30  # not the script's 60 s
    assert result.status == "Failed"
    assert "MaxRuntimeInSeconds=1" in result.failure_reason and "working" in result.failure_reason
    assert marker.read_text() == "saved on SIGTERM"  # the grace period let the script save


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    from pipeline.local.job_process import JobTimedOut, run_logged

    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
        "time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(JobTimedOut, match=r"MaxRuntimeInSeconds=0\.5"):
        run_logged(
            [sys.executable, "-c", script], dict(os.environ), tmp_path, tmp_path / "job.log",
            max_runtime_s=0.5, grace_s=0.5,
        )  # fmt: skip
    assert time.monotonic() - started < 20
    assert "up" in (tmp_path / "job.log").read_text()
