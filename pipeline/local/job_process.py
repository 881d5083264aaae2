"""A job's process: started in its own session, dying with the engine, logged line by line, stopped as
SageMaker stops a job, and its end told apart (success, script error, killed from outside, stopped).

Jobs run in their own session so that a Ctrl-C reaches the engine first, which then stops the job's
whole process group; ``PR_SET_PDEATHSIG`` ends them if the engine is killed outright. The engine's
signal handler stops every job it runs (:func:`stop_running_jobs`), in any thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pipeline.processes import signal_group

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
#: Re-entrant: the engine's signal handler takes it in the main thread, which may hold it already.
_RUNNING_LOCK = threading.RLock()
#: Set while the engine stops (a signal arrived): jobs that end now were stopped, not failed.
ENGINE_STOPPING = threading.Event()


def stop_running_jobs(grace_s: float = 10.0) -> None:
    """SIGTERM every job this engine runs, in any thread; SIGKILL those still there ``grace_s`` later.

    Called from the engine's signal handler: jobs of parallel tuning trials run in worker threads that
    the interrupted main thread would otherwise wait for (Optuna's thread pool) until they finished.
    """
    ENGINE_STOPPING.set()
    with _RUNNING_LOCK:  # returncode, not poll(): a handler must not wait on a lock a job's reader holds
        running = [process for process in _RUNNING if process.returncode is None]
    for process in running:
        signal_group(process.pid, signal.SIGTERM)

    def kill_stragglers() -> None:
        for process in running:
            if process.poll() is None:
                signal_group(process.pid, signal.SIGKILL)

    if running:
        timer = threading.Timer(grace_s, kill_stragglers)
        timer.daemon = True
        timer.start()


#: Seconds SageMaker leaves a job between SIGTERM and the end when it reaches MaxRuntimeInSeconds, so the
#: script can save what it has (AWS StoppingCondition docs); the local engine gives the same.
STOP_GRACE_S = 120.0


class _Watch:
    """Why the engine ended a job, when it did: stopped on request, or past its deadline."""

    def __init__(self, process: subprocess.Popen[str], grace_s: float) -> None:
        self.process = process
        self.grace_s = grace_s
        self.stop_requested = threading.Event()
        self.timed_out = threading.Event()

    def start_deadline(self, max_runtime_s: float | None) -> threading.Timer | None:
        if max_runtime_s is None:
            return None
        deadline = threading.Timer(max_runtime_s, self._end_overdue)
        deadline.daemon = True
        deadline.start()
        return deadline

    def _end_overdue(self) -> None:
        if self.process.poll() is None:  # a job that finished at the deadline did not time out
            self.timed_out.set()
            _terminate(self.process, self.grace_s)

    def stop(self) -> None:
        self.stop_requested.set()
        _terminate(self.process)


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
    (or :class:`JobInternalError` when a signal the engine did not send ended it) with the log tail.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", buffering=1) as log:
        process = _start(argv, env, cwd)
        watch = _Watch(process, grace_s)
        deadline = watch.start_deadline(max_runtime_s)
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if on_line is not None and not watch.stop_requested.is_set() and on_line(line.rstrip("\n")):
                    watch.stop()
            code = process.wait()
        except BaseException:
            _terminate(process)
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
            with _RUNNING_LOCK:
                _RUNNING.discard(process)
    _raise_for_outcome(code, watch, argv, log_path, max_runtime_s)


def _start(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    """The job's process: its own session, dying with the engine, known to :func:`stop_running_jobs`.
    Forked from the template that has torch imported where that is exactly a plain start
    (:mod:`pipeline.local.forked_jobs`), else started plainly."""
    from pipeline.local.forked_jobs import SERVER

    forked = SERVER.start_job(argv, env, cwd)
    if forked is not None:
        return _track(forked)  # type: ignore[arg-type]  # Popen's interface, as far as jobs use it
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
    return _track(process)


def _track(process: subprocess.Popen[str]) -> subprocess.Popen[str]:
    with _RUNNING_LOCK:
        _RUNNING.add(process)
    if ENGINE_STOPPING.is_set():  # started by a worker thread just after the engine began to stop
        signal_group(process.pid, signal.SIGTERM)
    return process


def _raise_for_outcome(
    code: int, watch: _Watch, argv: Sequence[str], log_path: Path, max_runtime_s: float | None
) -> None:
    if watch.timed_out.is_set():
        raise JobTimedOut(
            f"ran past MaxRuntimeInSeconds={max_runtime_s:g} and was stopped (SIGTERM, then up to "
            f"{watch.grace_s:g} s to exit, as SageMaker does); "
            f"last lines of {log_path}:\n{log_tail(log_path)}"
        )
    if watch.stop_requested.is_set():
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
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        process.wait()


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
