"""The engine's side of the fork server (:mod:`pipeline.local.fork_server`): start it once, ask it for a
job, and hold the job as :mod:`pipeline.local.job_process` holds a ``subprocess.Popen``.

A job is forked only where that gives it exactly what a plain start would: ``python SCRIPT ARGS`` with
this interpreter, and the same values of every variable an interpreter or a native library reads at
start-up (``START_TIME_PREFIXES``) as the server had; anything else, or ``DOGPIPE_FORK_SERVER=0``, or
a server that cannot start, is a plain start. What differs per job (argv, ``SM_*``, ``PATH``, the
folder) is applied in the fork.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

#: Variables read when an interpreter or torch/OpenMP/MKL/CUDA/the allocator starts: a job whose values
#: differ from the server's starts plainly (the fork would already have applied the server's).
START_TIME_PREFIXES = (
    "PYTHON",
    "LD_",
    "MALLOC_",
    "OMP_",
    "MKL_",
    "KMP_",
    "CUDA_",
    "TORCH_",
    "GOMP_",
    "OPENBLAS_",
)
#: Read per job by the fork itself, so they may differ.
PER_JOB = frozenset({"PYTHONUNBUFFERED"})
SERVER_SCRIPT = Path(__file__).with_name("fork_server.py")
ENABLE_ENV = "DOGPIPE_FORK_SERVER"


def start_time_values(env: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value for key, value in env.items() if key.startswith(START_TIME_PREFIXES) and key not in PER_JOB
    }


class ForkedJob:
    """A forked job with the part of ``Popen``'s interface the engine uses: ``pid`` (also its process
    group), ``stdout`` (text lines), ``poll``, ``wait`` and ``returncode`` (negative for a signal)."""

    def __init__(self, conn: socket.socket, pid: int, stdout: IO[str]) -> None:
        self._conn = conn
        self._reply = conn.makefile("r")
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _, _ = select.select([self._conn], [], [], 0)
            if ready:
                self._read_code()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            ready, _, _ = select.select([self._conn], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired(f"forked job {self.pid}", timeout or 0)
            self._read_code()
        assert self.returncode is not None
        return self.returncode

    def _read_code(self) -> None:
        with self._lock:
            if self.returncode is not None:
                return
            line = self._reply.readline()
            # No line: the waiter died (the server was killed): the job died with it.
            self.returncode = int(line) if line.strip() else -9
            self._reply.close()
            self._conn.close()


class ForkServer:
    """One server per engine process, started on first use from a thread that lives as long as the
    engine (``PR_SET_PDEATHSIG`` follows the thread that started a process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket_path: str | None = None
        self._env: dict[str, str] = {}
        self._failed = False

    def warm(self, extra_preload: Sequence[str] = ()) -> None:
        """Start the server in the background (its imports overlap the engine's own start); it also
        imports ``extra_preload`` (``mlflow.tracking`` when the jobs track: 2-3 s a job otherwise)."""
        if os.environ.get(ENABLE_ENV, "1") != "0" and sys.platform.startswith("linux"):
            env = {**os.environ, "DOGPIPE_FORK_PRELOAD": ",".join(extra_preload)}
            threading.Thread(target=self._ensure, args=(env,), daemon=True).start()

    def start_job(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> ForkedJob | None:
        """The job forked from the server, or None where a plain start must be used."""
        if os.environ.get(ENABLE_ENV, "1") == "0" or not _forkable(argv):
            return None
        socket_path = self._ensure(env)
        if socket_path is None or start_time_values(env) != start_time_values(self._env):
            return None
        read_end, write_end = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(socket_path)
            request = {"argv": list(argv), "env": dict(env), "cwd": str(cwd)}
            socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [write_end])
            os.close(write_end)
            write_end = -1
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(64)
                if not chunk:
                    raise ConnectionError("the fork server closed the connection")
                line += chunk
            pid = int(line)
        except (OSError, ValueError):
            conn.close()
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
            return None
        stdout = os.fdopen(read_end, "r", errors="replace")
        return ForkedJob(conn, pid, stdout)

    def _ensure(self, env: Mapping[str, str]) -> str | None:
        with self._lock:
            if self._socket_path is None and not self._failed:
                try:
                    self._start(env)
                except (OSError, RuntimeError):
                    self._failed = True
            return self._socket_path

    def _start(self, env: Mapping[str, str]) -> None:
        folder = tempfile.mkdtemp(prefix="dogpipe-fork-")
        path = os.path.join(folder, "server.sock")
        started: dict[str, object] = {}
        done = threading.Event()

        def keeper() -> None:  # starts the server and stays, so PDEATHSIG fires only with the engine
            from pipeline.local.job_process import _die_with_parent

            server_env = {key: value for key, value in env.items() if key != "PYTHONPATH"}
            try:
                started["process"] = subprocess.Popen(
                    [sys.executable, str(SERVER_SCRIPT), path, str(os.getpid())],
                    env=server_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),
                )
            except OSError as error:
                started["error"] = error
            done.set()
            threading.Event().wait()

        threading.Thread(target=keeper, name="dogpipe-fork-server", daemon=True).start()
        done.wait()
        process = started.get("process")
        if not isinstance(process, subprocess.Popen):
            raise RuntimeError(f"fork server not started: {started.get('error')}")
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise RuntimeError("fork server did not start")
        self._env = {key: value for key, value in env.items() if key != "PYTHONPATH"}
        self._socket_path = path


def _forkable(argv: Sequence[str]) -> bool:
    """``python SCRIPT ...`` with this interpreter (the jobs' shape); not options, not ``-m``."""
    return (
        len(argv) >= 2
        and os.path.realpath(argv[0]) == os.path.realpath(sys.executable)
        and not argv[1].startswith("-")
        and argv[1].endswith(".py")
        and hasattr(socket, "send_fds")
        and sys.platform.startswith("linux")
    )


SERVER = ForkServer()
