"""A local execution's job logs as ``dogpipe logs`` prints them: every attempt's ``logs/*.log``.

Each job writes ``steps/<step>/attempt-<n>/logs/<job>.log`` (a Training job one per host, a tuning
trial one per trial); this module finds them in the DAG's order and reads what was appended since the
last look, so ``--follow`` is a loop over :meth:`LogTail.new_lines`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.local.attempts import attempt_folders
from pipeline.local.executions import Execution
from pipeline.local.summary import dag_order


@dataclass(frozen=True)
class LogSource:
    """One job's log file and the label its lines are printed with (``Train/Train-algo-1``)."""

    label: str
    path: Path


def log_sources(execution: Execution, step: str | None = None) -> list[LogSource]:
    """Every job log of ``step`` (all steps when None), in the DAG's order and attempt order; the
    attempt shows in the label only for a step that ran more than once."""
    steps = [step] if step else _ordered_steps(execution)
    sources = []
    for name in steps:
        attempts = attempt_folders(execution.step_dir(name))
        for number, folder in sorted(attempts.items()):
            prefix = name if len(attempts) == 1 else f"{name}#{number}"
            for path in sorted((folder / "logs").rglob("*.log")):
                relative = path.relative_to(folder / "logs").with_suffix("")
                sources.append(LogSource(f"{prefix}/{relative.as_posix()}", path))
    return sources


def _ordered_steps(execution: Execution) -> list[str]:
    order = [name for name in dag_order(execution.definition) if execution.step_dir(name).is_dir()]
    folder = execution.folder / "steps"
    extra = (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in order)
        if folder.is_dir()
        else []
    )
    return order + extra


def step_names(execution: Execution) -> list[str]:
    """The steps the execution's definition declares (what ``dogpipe logs EXECUTION STEP`` accepts)."""
    return dag_order(execution.definition)


@dataclass
class LogTail:
    """Reads each source from where the last call stopped; a partial last line waits for its end
    unless ``final`` (the job is over)."""

    offsets: dict[Path, int] = field(default_factory=dict)

    def new_lines(self, sources: list[LogSource], final: bool = False) -> Iterator[str]:
        for source in sources:
            start = self.offsets.get(source.path, 0)
            try:
                with source.path.open("rb") as handle:
                    handle.seek(start)
                    data = handle.read()
            except FileNotFoundError:
                continue  # a failed attempt's folder being replaced: its log is kept, others may go
            complete = data if final else data[: data.rfind(b"\n") + 1]
            self.offsets[source.path] = start + len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                yield f"[{source.label}] {line}"
