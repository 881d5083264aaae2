"""Jobs forked from the pre-imported template (pipeline/local/fork_server.py) are the jobs a plain start
gives: same argv, folder, environment, path, streams, exit codes; they die with the engine on SIGKILL;
where the fork would differ (a start-time variable) the engine starts them plainly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pipeline.local.job_process import JobFailed, JobInternalError, run_logged

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux-only")

PROBE = textwrap.dedent(
    """
    import json, os, sys
    import helper  # beside the script, as in a job's code folder
    sys.stdout.write("partial ")
    print("line", flush=True)
    print("to stderr", file=sys.stderr)
    report = {
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path0": sys.path[0],
        "path_rest": sys.path[1:],
        "name": __name__,
        "helper": helper.VALUE,
        "stdin": sys.stdin.read(),
        "own_group": os.getpgid(0) == os.getpid(),
        "session_leader": os.getsid(0) == os.getpid(),
        "parent": " ".join(open(f"/proc/{os.getppid()}/cmdline").read().split("\\0")),
    }
    open("report.json", "w").write(json.dumps(report))
    sys.exit(int(sys.argv[1]))
    """
)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(PROBE)
    (code / "helper.py").write_text("VALUE = 'the job\\'s own module'\n")
    return code / "probe.py"


def _run(job: Path, folder: Path, fork: bool, code: int = 0, extra: dict[str, str] | None = None) -> dict:
    folder.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        {"SM_CURRENT_HOST": "algo-1", "PYTHONUNBUFFERED": "1", "DOGPIPE_FORK_SERVER": "1" if fork else "0"}
    )
    env.update(extra or {})
    os.environ["DOGPIPE_FORK_SERVER"] = env["DOGPIPE_FORK_SERVER"]
    lines: list[str] = []
    try:
        run_logged(
            [sys.executable, str(job), str(code)], env, folder, folder / "job.log", on_line=lines.append
        )
        failure = None
    except JobFailed as error:
        failure = type(error).__name__
    finally:
        os.environ.pop("DOGPIPE_FORK_SERVER", None)
    report = json.loads((folder / "report.json").read_text())
    return {
        **report,
        "lines": sorted(lines),
        "log": sorted((folder / "job.log").read_text().splitlines()),
        "failure": failure,
    }


def test_a_forked_job_sees_what_a_plain_start_gives_it(job: Path, tmp_path: Path) -> None:
    forked = _run(job, tmp_path / "forked", fork=True)
    plain = _run(job, tmp_path / "plain", fork=False)
    assert "fork_server.py" in forked["parent"] and "fork_server.py" not in plain["parent"]
    for name, report in (("forked", forked), ("plain", plain)):
        report.pop("parent")
        assert report.pop("cwd") == str(tmp_path / name)
        report["env"].pop("DOGPIPE_FORK_SERVER")
    assert forked == plain
    assert forked["lines"] == ["partial line", "to stderr"] and forked["name"] == "__main__"
    assert forked["own_group"] and forked["session_leader"] and forked["stdin"] == ""
    assert forked["helper"] == "the job's own module" and "PYTHONPATH" not in forked["env"]


def test_exit_codes_and_signals_read_as_for_a_plain_job(job: Path, tmp_path: Path) -> None:
    assert _run(job, tmp_path / "three", fork=True, code=3)["failure"] == "JobFailed"
    killer = job.with_name("killer.py")
    killer.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    os.environ["DOGPIPE_FORK_SERVER"] = "1"
    try:
        with pytest.raises(JobInternalError, match="ended by SIGKILL"):
            run_logged([sys.executable, str(killer)], dict(os.environ), tmp_path, tmp_path / "k.log")
    finally:
        os.environ.pop("DOGPIPE_FORK_SERVER")


def test_a_different_start_time_variable_means_a_plain_start(job: Path, tmp_path: Path) -> None:
    threads = str((os.cpu_count() or 2) + 7)
    report = _run(job, tmp_path / "omp", fork=True, extra={"OMP_NUM_THREADS": threads})
    assert "fork_server.py" not in report["parent"] and report["env"]["OMP_NUM_THREADS"] == threads


ENGINE = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pipeline.local.job_process import run_logged
    os.environ["DOGPIPE_FORK_SERVER"] = "1"
    folder = Path(sys.argv[1])
    run_logged([sys.executable, str(folder / "sleeper.py")], dict(os.environ), folder, folder / "s.log")
    """
)


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_a_forked_job_dies_with_the_engine_on_sigkill(tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text(
        "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(600)\n"
    )
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, str(tmp_path)], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "pid").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        job = psutil.Process(int((tmp_path / "pid").read_text()))
        assert "fork_server.py" in " ".join(job.parent().cmdline())  # really forked
        server = job.parent().parent()
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait(timeout=30)
        _, alive = psutil.wait_procs([job, server], timeout=30)
        assert not alive, f"still running after the engine's SIGKILL: {alive}"
    finally:  # a failed check must not leave the engine and its sleeping job behind
        if engine.poll() is None:
            engine.kill()
            engine.wait()
