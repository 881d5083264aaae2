"""Executions recorded on disk, one folder each, so runs can be listed, inspected and resumed.

``<root>/executions/<id>/``: ``execution.json`` (status, parameters, times, failure),
``definition.json`` (exactly what ran), and ``steps/<step>/`` with ``state.json`` (status,
resolved arguments, properties, cache source, attempts) and one ``attempt-<n>/`` folder per attempt
(its job's files and ``logs/``). Files are replaced atomically, so a run killed at any moment leaves
readable state behind for ``--resume``.

Liveness: the record names the engine process (pid and its start time, so a reused pid is not mistaken
for it). An execution recorded ``Executing`` whose engine is gone reads as ``Failed`` with that reason,
and its step that was running as ``Failed`` too: nothing is left claiming to run. The engine holds
``.lock`` in the folder while it runs, so two engines never run one execution.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pipeline.config.deploy_names import PACKAGE_PARAMETER
from pipeline.errors import DogpipeError
from pipeline.files import write_json_atomic
from pipeline.names import EXECUTION_ID, STEP, path_under
from pipeline.processes import ProcessIdentity, running_process

TERMINAL_STEP_STATUSES = ("Succeeded", "Failed", "NotExecuted")


class ExecutionNotFound(DogpipeError, LookupError):
    """No recorded execution has the requested id (or the id is not an execution id at all)."""


class ExecutionRunning(RuntimeError):
    """Another live engine process runs this execution."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Publish an engine record whole (:mod:`pipeline.files`); what JSON cannot hold is written as text."""
    write_json_atomic(path, data, default=str)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def this_process() -> dict[str, Any]:
    """What identifies the running engine in a record: pid and the process's start time."""
    me = ProcessIdentity.current()
    return {"pid": me.pid, "pid_started": me.started}


def engine_alive(record: Mapping[str, Any]) -> bool:
    """Whether the process that the record names still runs (:func:`pipeline.processes.running_process`:
    same pid *and* same start time; a record without a start time names none)."""
    return running_process(record.get("pid"), record.get("pid_started")) is not None


def engine_gone_reason(record: Mapping[str, Any]) -> str:
    """The failure reason of an execution whose engine died, saying what ``--resume`` would do."""
    package = (record.get("parameters") or {}).get(PACKAGE_PARAMETER)
    then = (
        f"--resume first checks that {package} is still the newest approval for its stage (else it ends "
        "Failed, leaving the endpoint as it is), then finishes the deploy"
        if package
        else "--resume finishes it"
    )
    gone = f"the engine process (pid {record.get('pid')}) ended without finishing the execution"
    return f"{gone} (killed or crashed); {then}"


def new_execution_id() -> str:
    """Sortable by start time to the microsecond, unique across concurrent runs: ``20250101-120000-
    0a1b2c``, the microseconds in five hex digits and one random one (ids made within the same second
    used to sort at random, so ``latest`` could pick the older)."""
    now = time.time()
    microseconds = int(now % 1 * 1_000_000)
    return (
        f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{microseconds:05x}{secrets.token_hex(1)[0]}"
    )


@dataclass(frozen=True)
class ExecutionRecord:
    """``execution.json`` as it stood when :meth:`Execution.load` read it (once, with the one liveness
    check of its engine): an ``Executing`` record whose engine is gone reads ``Failed`` with the reason."""

    id: str
    pipeline_name: str
    status: str
    parameters: dict[str, Any]
    started_at: str
    ended_at: str | None
    failure_reason: str | None
    pid: int | None
    pid_started: float | None
    #: Recorded ``Executing`` by an engine that no longer runs (its running step reads Failed too).
    engine_gone: bool = False

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> ExecutionRecord:
        gone = stored.get("status") == "Executing" and not engine_alive(stored)
        return cls(
            id=str(stored.get("id", "")),
            pipeline_name=str(stored.get("pipeline_name", "")),
            status="Failed" if gone else str(stored.get("status", "")),
            parameters=dict(stored.get("parameters") or {}),
            started_at=str(stored.get("started_at", "")),
            ended_at=stored.get("ended_at"),
            failure_reason=engine_gone_reason(stored) if gone else stored.get("failure_reason"),
            pid=stored.get("pid"),
            pid_started=stored.get("pid_started"),
            engine_gone=gone,
        )

    def to_json(self) -> dict[str, Any]:
        fields = dict(self.__dict__)
        del fields["engine_gone"]
        return fields


@dataclass
class Execution:
    """One execution's folder. Reading its record is explicit (:meth:`load`, :meth:`read_stored`): each
    call reads ``execution.json`` (and the engine's liveness) once, so a listing reads it once per row
    and a caller that polls sees every change. ``definition.json`` never changes once written, so it is
    read once per object."""

    folder: Path

    @property
    def id(self) -> str:
        return self.folder.name

    def read_stored(self) -> dict[str, Any]:
        """execution.json as written, even when its engine is gone."""
        return read_json(self.folder / "execution.json")

    def load(self) -> ExecutionRecord:
        """execution.json as it stands now (typed): ``Executing`` with a dead engine reads ``Failed``."""
        return ExecutionRecord.of(self.read_stored())

    def update(self, **fields: Any) -> dict[str, Any]:
        record = {**self.read_stored(), **fields}
        write_json(self.folder / "execution.json", record)
        return record

    def lock(self) -> FileLock:
        """Held by the engine while it runs this execution; :meth:`claim` takes it without waiting."""
        return FileLock(self.folder / ".lock", thread_local=False)

    def claim(self) -> FileLock:
        """Take the execution's lock, or raise :class:`ExecutionRunning` naming the engine that holds it."""
        lock = self.lock()
        try:
            lock.acquire(timeout=0)
        except Timeout:
            pid = self.read_stored().get("pid")
            raise ExecutionRunning(f"execution {self.id} is still running (engine pid {pid})") from None
        return lock

    @cached_property
    def definition(self) -> dict[str, Any]:
        """definition.json: exactly what ran (written once, before the first step)."""
        return read_json(self.folder / "definition.json")

    def step_dir(self, step: str) -> Path:
        """A step's folder; its name comes from the definition, so it is checked like any name."""
        return path_under(self.folder / "steps", STEP.check(step))

    def step_state(self, step: str) -> dict[str, Any] | None:
        path = self.step_dir(step) / "state.json"
        return read_json(path) if path.is_file() else None

    def write_step_state(self, step: str, state: Mapping[str, Any]) -> None:
        write_json(self.step_dir(step) / "state.json", dict(state))

    def step_states(self, record: ExecutionRecord | None = None) -> dict[str, dict[str, Any]]:
        """Every step's state; a step still ``Executing`` under a dead engine reads ``Failed``.
        ``record``: the execution's record when the caller has loaded it already (else read here)."""
        steps = self.folder / "steps"
        if not steps.is_dir():
            return {}
        record = record or self.load()
        reason = record.failure_reason or ""
        states = {}
        for folder in sorted(steps.iterdir()):
            state = self.step_state(folder.name)
            if state is not None:
                states[folder.name] = mark_abandoned(state, reason) if record.engine_gone else state
        return states


def mark_abandoned(state: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """A step state (and its attempts) with what was ``Executing`` under a dead engine as ``Failed``."""
    if state.get("status") != "Executing":
        return dict(state)
    attempts = [
        {**attempt, "status": "Failed", "failure_reason": reason}
        if attempt.get("status") == "Executing"
        else attempt
        for attempt in state.get("attempts") or []
    ]
    return {**state, "status": "Failed", "failure_reason": reason, "attempts": attempts}


class ExecutionStore:
    """All executions under ``<root>/executions``."""

    def __init__(self, root: Path | str) -> None:
        self.folder = Path(root) / "executions"

    def create(
        self, pipeline_name: str, definition: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> Execution:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:  # two runs in the same microsecond draw the same id one time in sixteen
            folder = self.folder / new_execution_id()
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        write_json(folder / "definition.json", dict(definition))
        write_json(
            folder / "execution.json",
            {
                "id": folder.name,
                "pipeline_name": pipeline_name,
                "status": "Executing",
                "parameters": dict(parameters),
                "started_at": now_iso(),
                "ended_at": None,
                "failure_reason": None,
                **this_process(),
            },
        )
        return Execution(folder)

    def get(self, execution_id: str) -> Execution:
        folder = path_under(self.folder, EXECUTION_ID.check(execution_id))  # InvalidName: a usage error
        if not (folder / "execution.json").is_file():
            known = (
                ", ".join(item.id for item in reversed(self.list()[-5:])) or "none recorded"
            )  # newest first
            raise ExecutionNotFound(f"no execution {execution_id!r} under {self.folder} (latest: {known})")
        return Execution(folder)

    def list(self) -> list[Execution]:
        """Executions oldest first (ids sort by start time)."""
        if not self.folder.is_dir():
            return []
        return [
            Execution(item) for item in sorted(self.folder.iterdir()) if (item / "execution.json").is_file()
        ]

    def latest(self, pipeline_name: str | None = None) -> Execution | None:
        """The newest execution, of ``pipeline_name`` only when given (the store holds the build
        pipeline's and ``<project>-deploy``'s): newest first, reading records only until one matches."""
        for execution in reversed(self.list()):
            if pipeline_name is None or execution.read_stored().get("pipeline_name") == pipeline_name:
                return execution
        return None

    def resolve(self, execution_id: str | None, pipeline_name: str | None = None) -> Execution:
        """``execution_id``, or without one the latest (of ``pipeline_name`` when given), as ``status``
        and ``report`` pick it; ``ExecutionNotFound`` naming what is missing."""
        if execution_id:
            return self.get(execution_id)
        execution = self.latest(pipeline_name)
        if execution is None:
            of = f" of {pipeline_name}" if pipeline_name else ""
            raise ExecutionNotFound(f"no executions{of} under {self.folder}; start one with `dogpipe run`")
        return execution
