"""Executions recorded on disk, one folder each, so runs can be listed, inspected and resumed.

``<root>/executions/<id>/``: ``execution.json`` (status, parameters, times, failure),
``definition.json`` (exactly what ran), and ``steps/<step>/`` with ``state.json`` (status,
resolved arguments, properties, cache source) and ``logs/``. Files are replaced atomically, so a run
killed at any moment leaves readable state behind for ``--resume``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TERMINAL_STEP_STATUSES = ("Succeeded", "Failed", "NotExecuted")


class ExecutionNotFound(LookupError):
    """No recorded execution has the requested id."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    temp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    temp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def new_execution_id() -> str:
    """Sortable by start time, unique across concurrent runs: ``20250101-120000-a1b2c3``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class Execution:
    """One execution's folder and its top-level record."""

    folder: Path

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def record(self) -> dict[str, Any]:
        return read_json(self.folder / "execution.json")

    def update(self, **fields: Any) -> dict[str, Any]:
        record = {**self.record, **fields}
        write_json(self.folder / "execution.json", record)
        return record

    @property
    def definition(self) -> dict[str, Any]:
        return read_json(self.folder / "definition.json")

    def step_dir(self, step: str) -> Path:
        return self.folder / "steps" / step

    def step_state(self, step: str) -> dict[str, Any] | None:
        path = self.step_dir(step) / "state.json"
        return read_json(path) if path.is_file() else None

    def write_step_state(self, step: str, state: Mapping[str, Any]) -> None:
        write_json(self.step_dir(step) / "state.json", dict(state))

    def step_states(self) -> dict[str, dict[str, Any]]:
        steps = self.folder / "steps"
        if not steps.is_dir():
            return {}
        states = {}
        for folder in sorted(steps.iterdir()):
            state = self.step_state(folder.name)
            if state is not None:
                states[folder.name] = state
        return states


class ExecutionStore:
    """All executions under ``<root>/executions``."""

    def __init__(self, root: Path | str) -> None:
        self.folder = Path(root) / "executions"

    def create(
        self, pipeline_name: str, definition: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> Execution:
        folder = self.folder / new_execution_id()
        folder.mkdir(parents=True)
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
                "pid": os.getpid(),
            },
        )
        return Execution(folder)

    def get(self, execution_id: str) -> Execution:
        folder = self.folder / execution_id
        if not (folder / "execution.json").is_file():
            known = ", ".join(item.id for item in self.list()[-5:]) or "none recorded"
            raise ExecutionNotFound(f"no execution {execution_id!r} under {self.folder} (latest: {known})")
        return Execution(folder)

    def list(self) -> list[Execution]:
        """Executions oldest first (ids sort by start time)."""
        if not self.folder.is_dir():
            return []
        return [
            Execution(item) for item in sorted(self.folder.iterdir()) if (item / "execution.json").is_file()
        ]

    def latest(self) -> Execution | None:
        executions = self.list()
        return executions[-1] if executions else None
