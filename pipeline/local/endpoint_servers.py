"""Local endpoints: detached ``python -m pipeline.serving`` processes, one record file each.

``<root>/endpoints/<name>.json`` (``name``, ``url``, ``pid``, ``create_time``, ``model_data``,
``model_package_arn``, ``model_version``, ``log``, ``started_at``) is how ``dogpipe predict``,
``dogpipe endpoints list|stop`` and a later deploy find a server that outlived the command that
started it. A pid alone is not an identity (pids are reused), so liveness is the pid *and* the
process's start time, as psutil reports it.

Everything that changes a name's server happens under one lock per name (``fcntl.flock`` on
``<name>.lock``): start the new server beside the old one, check it (``/ping`` and a smoke prediction),
write the record, then stop the old server. Two deploys of one name at once therefore leave exactly one
tracked server, a new server that fails its check is stopped while the old one keeps serving, and an
interrupt (Ctrl-C, SIGTERM, SIGHUP) during a start stops the half-started server before it propagates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from pipeline.errors import DogpipeError
from pipeline.local.endpoint_capture import LocalCapture
from pipeline.local.interrupt import terminating_signals_interrupt
from pipeline.names import ENDPOINT, path_under

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
#: Set in a server's environment at launch, so a start cut short can still find its server.
TOKEN_VARIABLE = "DOGPIPE_ENDPOINT_TOKEN"

#: A check of a freshly started server (``url``); raises with the reason when the server is unfit.
SmokeCheck = Callable[[str], None]


class EndpointError(DogpipeError):
    """An endpoint that is unknown, or a server that did not come up or failed its check."""


def endpoints_folder(root: Path | str) -> Path:
    return Path(root) / "endpoints"


def endpoint_file(root: Path | str, name: str, suffix: str) -> Path:
    """``<root>/endpoints/<name><suffix>`` for a valid endpoint name only, and never outside that folder
    (``dogpipe endpoints stop ../registry/group/1`` used to delete a registry record)."""
    return path_under(endpoints_folder(root), f"{ENDPOINT.check(name)}{suffix}")


def _record_path(root: Path | str, name: str) -> Path:
    return endpoint_file(root, name, ".json")


@contextlib.contextmanager
def endpoint_lock(root: Path | str, name: str) -> Iterator[None]:
    """Exclusive hold on endpoint ``name`` across processes (released when the holder dies)."""
    lock = endpoint_file(root, name, ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_endpoint(root: Path | str, record: dict[str, Any]) -> Path:
    path = _record_path(root, record["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    temp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    temp.replace(path)
    return path


def _pending_path(root: Path | str, name: str) -> Path:
    """A server being started: written before its ``/ping``, removed once it is recorded or stopped."""
    return endpoint_file(root, name, ".starting")


def known_endpoints(root: Path | str) -> list[str]:
    """Names with a record, or with a server whose start was cut short (its deployer was SIGKILLed)."""
    folder = endpoints_folder(root)
    if not folder.is_dir():
        return []
    return sorted({path.stem for path in folder.glob("*.json")} | {p.stem for p in folder.glob("*.starting")})


def read_endpoint(root: Path | str, name: str) -> dict[str, Any]:
    """The record of endpoint ``name``; raises :class:`EndpointError` listing the known ones."""
    path = _record_path(root, name)
    if not path.is_file():
        known = ", ".join(known_endpoints(root)) or "none"
        raise EndpointError(f"no local endpoint {name!r} under {endpoints_folder(root)} (known: {known})")
    return json.loads(path.read_text())


def _process(record: dict[str, Any]) -> psutil.Process | None:
    """The record's server process if it still runs: same pid *and* same start time."""
    pid = int(record.get("pid") or 0)
    if pid <= 0:
        return None
    try:
        process = psutil.Process(pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    expected = record.get("create_time")
    if expected is None or abs(started - float(expected)) > 0.01:
        return None  # the pid now belongs to another process
    return process


def server_alive(record: dict[str, Any]) -> bool:
    return _process(record) is not None


def _stop_process(process: psutil.Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the server's process group (it leads its own session), SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except psutil.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.TimeoutExpired):
            process.wait(timeout=grace_s)
    except psutil.NoSuchProcess:
        pass


def _stop_recorded(path: Path) -> bool:
    """Stop the server a record or pending file names, then remove the file; True if one was alive."""
    if not path.is_file():
        return False
    recorded = json.loads(path.read_text())
    process = _process(recorded) or _process_with_token(recorded.get("token"))
    if process is not None:
        _stop_process(process)
    path.unlink(missing_ok=True)
    return process is not None


def _process_with_token(token: str | None) -> psutil.Process | None:
    """The server launched with ``token`` in its environment: a start whose deployer was killed before
    it could write the server's pid into the pending file."""
    if not token:
        return None
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(TOKEN_VARIABLE) == token:
                return process
    return None


def reap_orphans(root: Path | str) -> list[str]:
    """Stop the servers of starts whose deployer died (SIGKILL mid-deploy): a pending file whose
    endpoint lock nobody holds. Such a server would otherwise run, unlisted, until the next deploy."""
    reaped = []
    for pending in sorted(endpoints_folder(root).glob("*.starting")):
        with open(pending.with_suffix(".lock"), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a deployer holds it: the start is under way
            try:
                if _stop_recorded(pending):
                    reaped.append(pending.stem)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return reaped


def _stop_unlocked(root: Path | str, name: str) -> bool:
    orphan = _stop_recorded(_pending_path(root, name))  # a start whose deployer died without cleaning up
    return _stop_recorded(_record_path(root, name)) or orphan


def stop_endpoint(root: Path | str, name: str) -> bool:
    """Stop the server of ``name`` and forget it; True when a live server was stopped."""
    with endpoint_lock(root, name):
        return _stop_unlocked(root, name)


@dataclass(frozen=True)
class EndpointStatus:
    """One row of ``dogpipe endpoints list``."""

    name: str
    model_version: str
    url: str
    pid: int
    alive: bool
    model_package_arn: str | None
    started_at: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_endpoints(root: Path | str) -> list[EndpointStatus]:
    reap_orphans(root)
    rows = []
    for name in known_endpoints(root):
        try:
            record = read_endpoint(root, name)
        except (EndpointError, ValueError):
            continue  # removed or being replaced while we listed
        rows.append(
            EndpointStatus(
                name=name,
                model_version=str(record.get("model_version") or "-"),
                url=str(record.get("url", "")),
                pid=int(record.get("pid") or 0),
                alive=server_alive(record),
                model_package_arn=record.get("model_package_arn"),
                started_at=str(record.get("started_at", "")),
            )
        )
    return rows


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


def model_version_of(model_package_arn: str | None) -> str | None:
    """``group/N`` of a package ARN, which servers put in their replies instead of a weights hash."""
    if not model_package_arn:
        return None
    return model_package_arn.partition("model-package/")[2] or model_package_arn


def _launch(
    root: Path | str,
    name: str,
    model_path: Path,
    host: str,
    port: int,
    version: str | None,
    token: str,
    capture: LocalCapture | None = None,
):
    url = f"http://{host}:{port}"
    log = endpoint_file(root, name, f".{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}.log")
    env = dict(os.environ)
    env[TOKEN_VARIABLE] = token
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
            start_new_session=True,  # outlives the command that started it, and its Ctrl-C
        )
    return process, url, log


def _kill_started(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        _stop_process(psutil.Process(process.pid), grace_s=5.0)
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
    ``capture``: record its traffic in SageMaker's capture format (``pipeline.serving.capture``).

    Blue/green under the name's lock: the new server starts beside the old one, must answer ``/ping``
    and pass ``smoke``, and only then replaces the record and the old server is stopped. If anything
    fails (or the caller is interrupted) the new server is stopped and the old one keeps serving.
    A fixed ``port`` cannot hold two servers, so there the old one is stopped first.
    """
    version = model_version_of(model_package_arn)
    details = {
        "model_data": model_data,
        "model_package_arn": model_package_arn,
        "model_version": version,
        "capture_folder": str(capture.folder) if capture is not None else None,
    }
    with endpoint_lock(root, name), terminating_signals_interrupt():
        _stop_recorded(_pending_path(root, name))
        if port:
            _stop_unlocked(root, name)
        previous = _process(read_endpoint(root, name)) if _record_path(root, name).is_file() else None
        record = _start_checked(
            root, name, model_path, host, port or _free_port(host), smoke, details, capture
        )
        if previous is not None and previous.pid != record["pid"]:
            _stop_process(previous)
        return record


def _start_checked(
    root: Path | str,
    name: str,
    model_path: Path,
    host: str,
    port: int,
    smoke: SmokeCheck | None,
    details: dict[str, Any],
    capture: LocalCapture | None = None,
) -> dict[str, Any]:
    """Launch, wait for ``/ping``, smoke-check and record the new server (the caller holds the lock);
    anything failing stops it. The pending file names it all along, first by a launch token."""
    process = None
    token = secrets.token_hex(8)
    pending = _pending_path(root, name)
    try:
        pending.write_text(json.dumps({"token": token}))  # before the server exists
        process, url, log = _launch(
            root, name, model_path, host, port, details["model_version"], token, capture
        )
        identity = {"pid": process.pid, "create_time": psutil.Process(process.pid).create_time()}
        pending.write_text(json.dumps({**identity, "token": token}))
        wait_for_ping(url, process, log)
        if smoke is not None:
            smoke(url)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record = {**identity, "name": name, "url": url, "log": str(log), "started_at": started, **details}
        write_endpoint(root, record)
        return record
    except BaseException:
        if process is not None:
            _kill_started(process)
        raise
    finally:
        pending.unlink(missing_ok=True)
