"""Local endpoints' records: ``<root>/endpoints/<name>.json``, the per-name lock, pending starts,
and stopping and listing what they name.

``<name>.json`` (``name``, ``url``, ``pid``, ``create_time``, ``model_data``, ``model_package_arn``,
``model_version``, ``log``, ``started_at``) is how ``dogpipe predict``, ``dogpipe endpoints list|stop``
and a later deploy find a server that outlived the command that started it. Liveness is the pid *and*
the process's start time (:mod:`pipeline.processes`).

``<name>.starting`` names a start under way (:mod:`pipeline.local.endpoint_servers`): its launch token,
its new server and the server it replaces. A deployer killed outright leaves it behind; the next holder
of the name's lock (a deploy, ``endpoints stop``) or ``endpoints list`` then stops every server it names
that the record does not, so no server runs that ``endpoints list`` does not show.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from pipeline.errors import DogpipeError
from pipeline.files import write_json_atomic
from pipeline.names import ENDPOINT, path_under
from pipeline.processes import ProcessIdentity, running_process, stop_group

STOP_GRACE_S = 10.0
#: Set in a server's environment at launch, so a start cut short can still find its server.
TOKEN_VARIABLE = "DOGPIPE_ENDPOINT_TOKEN"


class EndpointError(DogpipeError):
    """An endpoint that is unknown, or a server that did not come up or failed its check."""


def endpoints_folder(root: Path | str) -> Path:
    return Path(root) / "endpoints"


def endpoint_file(root: Path | str, name: str, suffix: str) -> Path:
    """``<root>/endpoints/<name><suffix>`` for a valid endpoint name only, and never outside that folder
    (``dogpipe endpoints stop ../registry/group/1`` used to delete a registry record)."""
    return path_under(endpoints_folder(root), f"{ENDPOINT.check(name)}{suffix}")


def record_path(root: Path | str, name: str) -> Path:
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
    return write_json_atomic(record_path(root, record["name"]), record)


def pending_path(root: Path | str, name: str) -> Path:
    """A start under way (or cut short): written before the launch, removed once the old server is
    stopped or the new one given up."""
    return endpoint_file(root, name, ".starting")


def note_start(
    root: Path | str, name: str, token: str, server: ProcessIdentity | None, replaced: ProcessIdentity | None
) -> Path:
    """Write what a start of ``name`` may leave running: its launch token, its new server (None
    before the launch) and the server it replaces; returns the pending file."""
    entries = {"server": server, "replaced": replaced}
    noted = {key: value.to_json() if value else None for key, value in entries.items()}
    return write_json_atomic(pending_path(root, name), {"token": token, **noted})


def known_endpoints(root: Path | str) -> list[str]:
    """Names with a record, or with a server whose start was cut short (its deployer was SIGKILLed)."""
    folder = endpoints_folder(root)
    if not folder.is_dir():
        return []
    return sorted({path.stem for path in folder.glob("*.json")} | {p.stem for p in folder.glob("*.starting")})


def read_endpoint(root: Path | str, name: str) -> dict[str, Any]:
    """The record of endpoint ``name``; raises :class:`EndpointError` listing the known ones."""
    path = record_path(root, name)
    if not path.is_file():
        known = ", ".join(known_endpoints(root)) or "none"
        raise EndpointError(f"no local endpoint {name!r} under {endpoints_folder(root)} (known: {known})")
    return json.loads(path.read_text())


def _identity(entry: dict[str, Any] | None) -> ProcessIdentity | None:
    """The server a record (or an entry of a pending file) names, if it names one."""
    if not entry or not entry.get("pid") or entry.get("create_time") is None:
        return None
    return ProcessIdentity(int(entry["pid"]), float(entry["create_time"]))


def recorded_process(record: dict[str, Any]) -> psutil.Process | None:
    """The record's server process if it still runs: same pid *and* same start time."""
    return running_process(record.get("pid"), record.get("create_time"))


def server_alive(record: dict[str, Any]) -> bool:
    return recorded_process(record) is not None


def stop_server(process: psutil.Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the server's process group (it leads its own session), SIGKILL what is left."""
    stop_group(process, grace_s)


def recorded_identity(root: Path | str, name: str) -> ProcessIdentity | None:
    path = record_path(root, name)
    if not path.is_file():
        return None
    with contextlib.suppress(OSError, ValueError):
        return _identity(json.loads(path.read_text()))
    return None


def settle_pending(root: Path | str, name: str, keep: ProcessIdentity | None) -> bool:
    """Stop every server the pending file of ``name`` names but ``keep`` (the recorded server), then
    remove the file; True if one was alive. The caller holds the name's lock, so no start is under way."""
    pending = pending_path(root, name)
    if not pending.is_file():
        return False
    try:
        noted = json.loads(pending.read_text())
    except (OSError, ValueError):
        noted = {}  # unreadable (written atomically, so not by a start of this code): nothing to stop
    named = [_identity(noted.get("server")), _identity(noted.get("replaced"))]
    processes = [identity.process() for identity in named if identity is not None and identity != keep]
    if noted.get("server") is None:
        processes.append(_process_with_token(noted.get("token")))  # launched, pid never written
    stopped = False
    for process in processes:
        if process is not None:
            stop_server(process)
            stopped = True
    pending.unlink(missing_ok=True)
    return stopped


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
    """Settle the starts whose deployer died (SIGKILL mid-deploy): a pending file whose endpoint lock
    nobody holds. Its servers that the record does not name are stopped; the names with one are returned."""
    reaped = []
    for pending in sorted(endpoints_folder(root).glob("*.starting")):
        with open(pending.with_suffix(".lock"), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a deployer holds it: the start is under way
            try:
                if settle_pending(root, pending.stem, recorded_identity(root, pending.stem)):
                    reaped.append(pending.stem)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return reaped


def _stop_recorded(root: Path | str, name: str) -> bool:
    """Stop the recorded server of ``name`` and remove its record; True if it was alive."""
    path = record_path(root, name)
    if not path.is_file():
        return False
    process = recorded_process(json.loads(path.read_text()))
    if process is not None:
        stop_server(process)
    path.unlink(missing_ok=True)
    return process is not None


def stop_unlocked(root: Path | str, name: str) -> bool:
    orphan = settle_pending(root, name, keep=None)  # a start whose deployer died: all its servers
    return _stop_recorded(root, name) or orphan


def stop_endpoint(root: Path | str, name: str) -> bool:
    """Stop the server of ``name`` and forget it; True when a live server was stopped."""
    with endpoint_lock(root, name):
        return stop_unlocked(root, name)


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


def model_version_of(model_package_arn: str | None) -> str | None:
    """``group/N`` of a package ARN, which servers put in their replies instead of a weights hash."""
    if not model_package_arn:
        return None
    return model_package_arn.partition("model-package/")[2] or model_package_arn
