"""A template process that has imported torch and torchvision once and forks each local job from there.

Every local job used to pay ``import torch, torchvision`` (about 3 s on 2 cores) before any work: most
of a tuning trial, two thirds of the demo. This server is started once per engine (by
:mod:`pipeline.local.forked_jobs`), imports the heavy third-party libraries and nothing of the jobs'
own code, and answers each request on a Unix socket by forking:

- a **waiter** W, which reports the job's pid, waits for it and reports its exit code (negative for a
  signal, as ``subprocess`` does), then exits;
- the **job** J, W's child: a new session (its own process group, as a plain start gives), the job's
  stdout/stderr on the pipe the engine sent, its working folder, exactly its environment, ``sys.argv``
  and ``sys.path`` as ``python SCRIPT ARGS`` would set them, then the script as ``__main__``.

Each of server, W and J dies with its parent (``PR_SET_PDEATHSIG``), so SIGKILL of the engine still ends
every job. This file is run as a script and uses the standard library only (plus what it pre-imports):
the engine's checkout must not be on a job's path.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import importlib
import io
import json
import os
import runpy
import signal
import socket
import sys
import threading
import traceback

#: What every job imports and a fresh interpreter spends its start on; nothing that reads the job's
#: environment at import time beyond what the engine compares (see forked_jobs.START_TIME_PREFIXES).
PRELOAD = ("numpy", "PIL.Image", "torch", "torchvision", "torchvision.models", "torchvision.transforms")
#: Optional extras the engine asks for (``mlflow.tracking`` when the jobs track), comma-separated; one
#: that is not installed is skipped (the job then says so itself).
EXTRA_PRELOAD_ENV = "DOGPIPE_FORK_PRELOAD"
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent ends; exit now if it already has."""
    prctl = getattr(_LIBC, "prctl", None)
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(137)


def _receive(conn: socket.socket) -> tuple[dict, int]:
    """One request: a JSON line (argv, env, cwd) and the pipe's write end as SCM_RIGHTS."""
    data = b""
    fds: list[int] = []
    while not data.endswith(b"\n"):
        chunk, received, _flags, _addr = socket.recv_fds(conn, 1 << 20, 1)
        if not chunk:
            raise EOFError("the engine closed the request")
        data += chunk
        fds += received
    if len(fds) != 1:
        raise ValueError(f"expected one file descriptor, got {len(fds)}")
    return json.loads(data), fds[0]


def _text_stream(fd: int, unbuffered: bool) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.FileIO(fd, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=unbuffered,
    )


def _run_job(request: dict, output: int) -> None:
    """In J: become the job, as ``python SCRIPT ARGS`` in its folder would be, run it, exit with its code."""
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
    sys.stdout = _text_stream(1, unbuffered)
    sys.stderr = _text_stream(2, True)
    sys.stdin = open(0)  # noqa: SIM115 (the job's stdin for its whole life)
    script = request["argv"][1]
    sys.argv = [script, *request["argv"][2:]]
    sys.path[:] = [os.path.dirname(os.path.abspath(script)), *request["base_path"]]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
        code = 1
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]  # non-daemon threads, as at a normal exit
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code & 0xFF if code >= 0 else 1)


def _serve_one(conn: socket.socket, base_path: list[str]) -> None:
    """In W: fork the job, tell the engine its pid, wait, tell its exit code."""
    server = os.getppid()
    die_with_parent(server)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    request, output = _receive(conn)
    request["base_path"] = base_path
    waiter = os.getpid()
    in_session, session_told = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setsid()  # before the engine learns the pid: its killpg(pid) must always find the group
        os.close(in_session)
        os.write(session_told, b".")
        os.close(session_told)
        conn.close()
        die_with_parent(waiter)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _run_job(request, output)
    os.close(output)
    os.close(session_told)
    os.read(in_session, 1)  # J leads its own process group now (or died, which reads as EOF)
    os.close(in_session)
    conn.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    os._exit(0)


def main(path: str, engine: int) -> None:
    die_with_parent(engine)
    base_path = [entry for entry in sys.path[1:]]  # the interpreter's own path, without this folder
    for name in PRELOAD:
        importlib.import_module(name)
    for name in filter(None, os.environ.get(EXTRA_PRELOAD_ENV, "").split(",")):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            try:
                _serve_one(conn, base_path)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
        conn.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
