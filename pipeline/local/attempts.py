"""Attempts of a job step: each one a fresh folder, each one recorded in the step's state.

SageMaker runs every job on a clean instance, so a retry or a resumed step never sees what an earlier
attempt left. Here each attempt gets ``steps/<step>/attempt-<n>/`` (``job/`` or ``trials/`` for the
job's files, ``logs/``), created new; starting an attempt deletes the earlier attempts' files but keeps
their logs, and an attempt that succeeds deletes its own once its outputs are in the store. The step's
``state.json`` lists the attempts (status, times, failure, SageMaker exception type, wait before the
retry), which ``dogpipe status`` and the report show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.local.executions import Execution, now_iso
from pipeline.local.interrupt import interrupt_reason
from pipeline.local.retry import exception_type
from pipeline.object_store import remove

_ATTEMPT = re.compile(r"^attempt-(\d+)$")


def attempt_folders(step_dir: Path) -> dict[int, Path]:
    if not step_dir.is_dir():
        return {}
    found = {}
    for child in step_dir.iterdir():
        match = _ATTEMPT.match(child.name)
        if match:
            found[int(match.group(1))] = child
    return found


def drop_job_files(folder: Path) -> None:
    """Drop an attempt's job files (its instance's disk: channel copies, work files, what was uploaded),
    keeping its logs."""
    for child in folder.iterdir():
        if child.name != "logs":
            remove(child)


@dataclass
class Attempt:
    """One attempt of a step's job, recorded in ``state["attempts"]``."""

    execution: Execution
    state: dict[str, Any]
    number: int
    folder: Path
    kind: str | None = None

    @classmethod
    def begin(cls, execution: Execution, step: str, state: dict[str, Any]) -> Attempt:
        step_dir = execution.step_dir(step)
        earlier = attempt_folders(step_dir)
        number = max(earlier, default=0) + 1
        folder = step_dir / f"attempt-{number}"
        folder.mkdir(parents=True, exist_ok=False)
        for earlier_folder in earlier.values():
            drop_job_files(earlier_folder)
        state.setdefault("attempts", []).append(
            {"attempt": number, "folder": str(folder.relative_to(execution.folder)), "status": "Executing",
             "started_at": now_iso()}
        )  # fmt: skip
        execution.write_step_state(step, state)
        return cls(execution, state, number, folder)

    def end(self, status: str, error: BaseException | None = None, retry_in_s: float | None = None) -> None:
        """Record how the attempt ended. A succeeded attempt's job files go at once: its outputs are in
        the store, and on SageMaker its instance is gone (the copies cost each run several times its
        data: 223 of the demo's 338 MB). A failed attempt's stay for inspection until the next one."""
        if status == "Succeeded":
            drop_job_files(self.folder)
        record = self.state["attempts"][-1]
        record.update(status=status, ended_at=now_iso())
        if isinstance(error, KeyboardInterrupt):
            record["failure_reason"] = interrupt_reason(error)
        elif error is not None:
            self.kind = exception_type(error)
            first_line = (str(error).splitlines() or [""])[0]
            record.update(failure_reason=f"{type(error).__name__}: {first_line}", exception_type=self.kind)
        if retry_in_s is not None:
            record["retry_in_s"] = retry_in_s
        self.execution.write_step_state(self.state["name"], self.state)
