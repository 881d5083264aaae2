"""Starting local endpoint servers: detached ``python -m pipeline.serving`` processes, blue/green.

Everything that changes a name's server happens under the name's lock
(:mod:`pipeline.local.endpoint_records`): start the new server beside the old one, check it (``/ping``
and a smoke prediction), promote it, write the record, then stop the old server. Two deploys of one name
at once therefore leave exactly one tracked server, a new server that fails its check is stopped while
the old one keeps serving, and an interrupt (Ctrl-C, SIGTERM, SIGHUP) during a start stops the
half-started server.

A deployer killed outright (SIGKILL) cleans nothing up, so a start is made safe in two ways:

- the new server holds a lifeline (:mod:`pipeline.serving.lifeline`): a pipe whose write end only the
  deployer holds. The server ends itself when the pipe reads end of file before the deployer promoted
  it (just before it writes the record), so a start cut short leaves no server behind by itself;
- ``<name>.starting`` names the start's launch token, its new server and the server it replaces, from
  before the launch until the old server is stopped, for the next lock holder to settle: a server
  promoted but not yet recorded, or a replaced one whose stop was cut short.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from pipeline.local.endpoint_capture import LocalCapture
from pipeline.local.endpoint_records import (
    TOKEN_VARIABLE,
    EndpointError,
    endpoint_file,
    endpoint_lock,
    model_version_of,
    note_start,
    read_endpoint,
    record_path,
    recorded_identity,
    recorded_process,
    settle_pending,
    stop_server,
    stop_unlocked,
    write_endpoint,
)
from pipeline.local.interrupt import terminating_signals_interrupt
from pipeline.processes import ProcessIdentity
from pipeline.serving.lifeline import LIFELINE_VARIABLE, PROMOTED

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0

#: A check of a freshly started server (``url``); raises with the reason when the server is unfit.
SmokeCheck = Callable[[str], None]


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _log_tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def wait_for_ping(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = STARTUP_TIMEOUT_S
) -> None:
    """Return once ``/ping`` answers 200; an exited server or the timeout is an :class:`EndpointError`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(f"endpoint server exited with code {process.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise EndpointError(f"endpoint at {url} did not answer /ping within {timeout:.0f} s (log: {log})")


class Lifeline:
    """The deployer's end of a starting server's lifeline (:mod:`pipeline.serving.lifeline`).

    Both ends are made here; :meth:`launched` closes the server's end in this process once the server
    holds it. Only this process has the write end (it is close-on-exec, and every child the engine
    starts gets only the descriptors it names), so it reads end of file exactly when this process ends
    or :meth:`close` runs before :meth:`promote`.
    """

    def __init__(self) -> None:
        self.server_end, self._deployer_end = os.pipe()

    def launched(self) -> None:
        """The server holds its end now: this process must not, or the pipe would never read EOF."""
        if self.server_end >= 0:
            os.close(self.server_end)
            self.server_end = -1

    def promote(self) -> None:
        """Tell the server it is the endpoint's now, so that it outlives this process."""
        try:
            os.write(self._deployer_end, PROMOTED)
        except BrokenPipeError:
            raise EndpointError("the endpoint server exited before it could be promoted") from None
        finally:
            self.close()

    def close(self) -> None:
        self.launched()  # a launch that failed left the server's end here
        if self._deployer_end >= 0:
            os.close(self._deployer_end)
            self._deployer_end = -1


def _launch(
    root: Path | str,
    name: str,
    model_path: Path,
    host: str,
    port: int,
    version: str | None,
    token: str,
    lifeline: Lifeline,
    capture: LocalCapture | None = None,
) -> tuple[subprocess.Popen[bytes], str, Path]:
    url = f"http://{host}:{port}"
    log = endpoint_file(root, name, f".{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}.log")
    env = dict(os.environ)
    env[TOKEN_VARIABLE] = token
    env[LIFELINE_VARIABLE] = str(lifeline.server_end)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pipeline.serving", str(model_path), "--host", host, "--port", str(port)]
    if version:
        command += ["--model-version", version]
    if capture is not None:
        command += capture.arguments(name)
    with log.open("ab") as stream:
        process = subprocess.Popen(
            command,
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=PACKAGE_ROOT,
            pass_fds=(lifeline.server_end,),
            start_new_session=True,  # outlives the command that started it, and its Ctrl-C
        )
    return process, url, log


def _kill_started(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        stop_server(psutil.Process(process.pid), grace_s=5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def start_endpoint(
    root: Path | str,
    name: str,
    model_path: Path,
    *,
    model_data: str,
    model_package_arn: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    smoke: SmokeCheck | None = None,
    capture: LocalCapture | None = None,
) -> dict[str, Any]:
    """Serve ``model_path`` (model.tar.gz or folder) as endpoint ``name``; returns its new record.
    ``capture``: record its traffic in SageMaker's capture format (``pipeline.serving.capture_format``).

    Blue/green under the name's lock: the new server starts beside the old one, must answer ``/ping``
    and pass ``smoke``, and only then is it promoted, replaces the record and the old server is stopped.
    If anything fails (or the caller is interrupted or killed) before the promotion, the new server
    ends and the old one keeps serving. A fixed ``port`` cannot hold two servers, so there the old one
    is stopped first.
    """
    version = model_version_of(model_package_arn)
    details = {
        "model_data": model_data,
        "model_package_arn": model_package_arn,
        "model_version": version,
        "capture_folder": str(capture.folder) if capture is not None else None,
    }
    with endpoint_lock(root, name), terminating_signals_interrupt():
        settle_pending(root, name, keep=recorded_identity(root, name))
        if port:
            stop_unlocked(root, name)
        previous = recorded_process(read_endpoint(root, name)) if record_path(root, name).is_file() else None
        return _start_checked(
            root, name, model_path, host, port or _free_port(host), smoke, details, previous, capture
        )


def _start_checked(
    root: Path | str,
    name: str,
    model_path: Path,
    host: str,
    port: int,
    smoke: SmokeCheck | None,
    details: dict[str, Any],
    previous: psutil.Process | None,
    capture: LocalCapture | None = None,
) -> dict[str, Any]:
    """Launch, wait for ``/ping``, smoke-check, promote and record the new server, then stop
    ``previous`` (the caller holds the lock). Anything failing before the record stops the new server.
    The pending file names the start all along: its token first, then the new server's pid."""
    token = secrets.token_hex(8)
    replaced = ProcessIdentity(previous.pid, previous.create_time()) if previous is not None else None
    pending = note_start(root, name, token, None, replaced)  # before the server exists
    lifeline, process, recorded = Lifeline(), None, False
    try:
        process, url, log = _launch(
            root, name, model_path, host, port, details["model_version"], token, lifeline, capture
        )
        lifeline.launched()
        identity = ProcessIdentity(process.pid, psutil.Process(process.pid).create_time())
        note_start(root, name, token, identity, replaced)
        wait_for_ping(url, process, log)
        if smoke is not None:
            smoke(url)
        lifeline.promote()  # from here the server outlives this process; the pending file names it
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record = {**identity.to_json(), "name": name, "url": url, "log": str(log), "started_at": started}
        write_endpoint(root, {**record, **details})
        recorded = True
        if previous is not None and previous.pid != identity.pid:
            stop_server(previous)
    except BaseException:
        if not recorded:
            if process is not None:
                _kill_started(process)
            pending.unlink(missing_ok=True)
        # else: the replaced server may still run; the pending file names it for the next lock holder
        raise
    finally:
        lifeline.close()
    pending.unlink(missing_ok=True)
    return {**record, **details}
