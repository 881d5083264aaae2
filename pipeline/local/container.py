"""What a SageMaker container gives a job, recreated in a folder: ``/opt/ml`` remapped, ``python3``
on PATH, logs captured line by line.

Every job gets its own ``<job dir>/opt/ml`` and every ``/opt/ml`` in its command line, environment
and config files is rewritten to point there, so scripts that follow the container contract run
unchanged and two jobs never share a folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

OPT_ML = "/opt/ml"
# Python the container would run; the engine's own interpreter has the same packages.
_PYTHON_NAMES = ("python3", "python")
_LOG_TAIL_LINES = 30


class JobFailed(RuntimeError):
    """A job failed; the message carries its log tail. ``exception_type`` is the SageMaker exception type
    a retry policy can match (see :mod:`pipeline.local.retry`); None for the script's own failure
    (SageMaker's AlgorithmError), which is never retried."""

    exception_type: str | None = None


class JobInternalError(JobFailed):
    """The job's process was ended by a signal the engine did not send: its "instance" failed."""

    exception_type = "SageMaker.JOB_INTERNAL_ERROR"


class JobCapacityError(JobFailed):
    """The job's process could not be started for lack of resources (no capacity for it)."""

    exception_type = "SageMaker.CAPACITY_ERROR"


class JobStopped(RuntimeError):
    """A job was stopped on request (a pruned tuning trial)."""


class JobTimedOut(JobFailed):
    """A job ran past its ``StoppingCondition.MaxRuntimeInSeconds`` and was ended as SageMaker ends one."""


_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()
#: Set while the engine stops (a signal arrived): jobs that end now were stopped, not failed.
ENGINE_STOPPING = threading.Event()


def stop_running_jobs(grace_s: float = 10.0) -> None:
    """SIGTERM every job this engine runs, in any thread; SIGKILL those still there ``grace_s`` later.

    Called from the engine's signal handler: jobs of parallel tuning trials run in worker threads that
    the interrupted main thread would otherwise wait for (Optuna's thread pool) until they finished.
    """
    ENGINE_STOPPING.set()
    with _RUNNING_LOCK:
        running = [process for process in _RUNNING if process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    def kill_stragglers() -> None:
        for process in running:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

    if running:
        timer = threading.Timer(grace_s, kill_stragglers)
        timer.daemon = True
        timer.start()


#: Seconds SageMaker leaves a job between SIGTERM and the end when it reaches MaxRuntimeInSeconds, so the
#: script can save what it has (AWS StoppingCondition docs); the local engine gives the same.
STOP_GRACE_S = 120.0


def max_runtime_seconds(request: Mapping[str, Any]) -> float | None:
    """``StoppingCondition.MaxRuntimeInSeconds`` of a Create*Job request, or None when it sets none."""
    value = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return float(value) if value is not None else None


def job_name(step: str, suffix: str | None = None) -> str:
    """A SageMaker-valid job name (≤ 63 chars, ``[a-zA-Z0-9-]``) derived from the step name."""
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", step).strip("-").lower()[:40] or "job"
    return f"{base}-{suffix or secrets.token_hex(4)}"


class Container:
    """One job's stand-in for a container: ``opt_ml`` is what ``/opt/ml`` means inside it."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.opt_ml = job_dir / "opt" / "ml"
        # A fresh folder, as a fresh instance: a folder left by another attempt is an engine bug.
        job_dir.mkdir(parents=True, exist_ok=False)
        self.opt_ml.mkdir(parents=True)
        self.bin_dir = job_dir / "bin"
        self._install_python_shims()

    def _install_python_shims(self) -> None:
        """``python3``/``python`` on PATH run this interpreter, as the container's Python would."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for name in _PYTHON_NAMES:
            link = self.bin_dir / name
            if not link.exists():
                link.symlink_to(sys.executable)

    def path(self, container_path: str) -> Path:
        """The local folder for an absolute container path under ``/opt/ml``."""
        return Path(self.remap(container_path))

    def remap(self, value: Any) -> Any:
        """Rewrite every ``/opt/ml`` inside strings (recursively through lists and dicts)."""
        if isinstance(value, str):
            return re.sub(r"(?<![\w.])/opt/ml(?=/|$|\s|['\"])", str(self.opt_ml), value)
        if isinstance(value, list):
            return [self.remap(item) for item in value]
        if isinstance(value, Mapping):
            return {key: self.remap(inner) for key, inner in value.items()}
        return value

    def command(self, argv: Sequence[str]) -> list[str]:
        """Remapped argv; a bare ``python3``/``python`` becomes this interpreter."""
        remapped = [self.remap(str(part)) for part in argv]
        if remapped and remapped[0] in _PYTHON_NAMES:
            remapped[0] = sys.executable
        return remapped

    def environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        """This process's environment plus the job's, remapped, with the shims first on PATH."""
        env = dict(os.environ)
        env.update({key: self.remap(str(value)) for key, value in extra.items()})
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        # The job runs in its own folder; the engine's checkout must not shadow the job's code.
        env.pop("PYTHONPATH", None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["DOGPIPE_OPT_ML"] = str(self.opt_ml)
        return env


def run_logged(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    on_line: Callable[[str], bool | None] | None = None,
    max_runtime_s: float | None = None,
    grace_s: float = STOP_GRACE_S,
) -> None:
    """Run ``argv``, copying stdout+stderr to ``log_path`` and to ``on_line`` as lines arrive.

    ``on_line`` returning True stops the job (SIGTERM to its process group) and raises
    :class:`JobStopped`. After ``max_runtime_s`` the job gets SIGTERM, ``grace_s`` seconds to save and
    exit, then SIGKILL, and :class:`JobTimedOut` is raised. A non-zero exit raises :class:`JobFailed`
    with the log tail.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stop_requested = threading.Event()
    timed_out = threading.Event()
    with log_path.open("a", buffering=1) as log:
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        except OSError as error:
            failure = JobCapacityError if error.errno in (errno.EAGAIN, errno.ENOMEM) else JobFailed
            raise failure(f"cannot start {argv[0]!r}: {error}") from None

        def end_overdue_job() -> None:
            if process.poll() is None:  # a job that finished at the deadline did not time out
                timed_out.set()
                _terminate(process, grace_s)

        with _RUNNING_LOCK:
            _RUNNING.add(process)
        deadline = threading.Timer(max_runtime_s, end_overdue_job) if max_runtime_s is not None else None
        if deadline is not None:
            deadline.daemon = True
            deadline.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if on_line is not None and not stop_requested.is_set() and on_line(line.rstrip("\n")):
                    stop_requested.set()
                    _terminate(process)
            code = process.wait()
        except BaseException:
            _terminate(process)
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
            with _RUNNING_LOCK:
                _RUNNING.discard(process)
    if timed_out.is_set():
        raise JobTimedOut(
            f"ran past MaxRuntimeInSeconds={max_runtime_s:g} and was stopped (SIGTERM, then up to "
            f"{grace_s:g} s to exit, as SageMaker does); last lines of {log_path}:\n{log_tail(log_path)}"
        )
    if stop_requested.is_set():
        raise JobStopped(f"stopped on request: {' '.join(argv[:2])}")
    if code != 0 and ENGINE_STOPPING.is_set():
        raise JobStopped(f"stopped with the engine: {' '.join(argv[:2])}")
    if code < 0:
        raise JobInternalError(
            f"ended by {_signal_name(-code)}, which the engine did not send (killed from outside or out of "
            f"memory); last lines of {log_path}:\n{log_tail(log_path)}"
        )
    if code != 0:
        raise JobFailed(f"exited with code {code}; last lines of {log_path}:\n{log_tail(log_path)}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the job die (SIGKILL) with the engine thread that started it.

    Jobs run in their own session so that a Ctrl-C reaches the engine first; without this, an engine
    killed outright (SIGKILL, OOM) would leave its job running beside a resumed attempt. Linux's
    ``PR_SET_PDEATHSIG`` fires when the starting *thread* ends; every thread that starts a job waits for
    it, so that is never earlier than the engine's end. The check of the parent's pid closes the race
    of an engine that died between fork and prctl. Elsewhere (no prctl) this does nothing.
    """
    parent = os.getpid()
    prctl = getattr(_LIBC, "prctl", None)

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent:
                os._exit(137)

    return preexec


def _terminate(process: subprocess.Popen[str], grace_s: float = 10.0) -> None:
    """SIGTERM to the job's process group, SIGKILL if it has not exited ``grace_s`` seconds later."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def metric_values(line: str, definitions: Sequence[Mapping[str, str]]) -> dict[str, float]:
    """Values of the job's MetricDefinitions (``{"Name", "Regex"}``) found in one log line."""
    found: dict[str, float] = {}
    for definition in definitions:
        match = re.search(definition["Regex"], line)
        if match:
            try:
                found[definition["Name"]] = float(match.group(1) if match.groups() else match.group(0))
            except ValueError:
                continue
    return found
