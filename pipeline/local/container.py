"""What a SageMaker container gives a job, recreated in a folder: ``/opt/ml`` remapped, ``python3``
on PATH. Running the job's process is :mod:`pipeline.local.job_process`.

Every job gets its own ``<job dir>/opt/ml`` and every ``/opt/ml`` in its command line, environment
and config files is rewritten to point there, so scripts that follow the container contract run
unchanged and two jobs never share a folder.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

OPT_ML = "/opt/ml"
# Python the container would run; the engine's own interpreter has the same packages.
_PYTHON_NAMES = ("python3", "python")


def max_runtime_seconds(request: Mapping[str, Any]) -> float | None:
    """``StoppingCondition.MaxRuntimeInSeconds`` of a Create*Job request, or None when it sets none."""
    value = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return float(value) if value is not None else None


def job_name(step: str, suffix: str | None = None) -> str:
    """A SageMaker-valid job name (≤ 63 chars, ``[a-zA-Z0-9-]``) derived from the step name."""
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", step).strip("-").lower()[:40] or "job"
    return f"{base}-{suffix or secrets.token_hex(4)}"


class Container:
    """One job's stand-in for a container: ``opt_ml`` is what ``/opt/ml`` means inside it."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.opt_ml = job_dir / "opt" / "ml"
        # A fresh folder, as a fresh instance: a folder left by another attempt is an engine bug.
        job_dir.mkdir(parents=True, exist_ok=False)
        self.opt_ml.mkdir(parents=True)
        self.bin_dir = job_dir / "bin"
        self._install_python_shims()

    def _install_python_shims(self) -> None:
        """``python3``/``python`` on PATH run this interpreter, as the container's Python would."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for name in _PYTHON_NAMES:
            link = self.bin_dir / name
            if not link.exists():
                link.symlink_to(sys.executable)

    def path(self, container_path: str) -> Path:
        """The local folder for an absolute container path under ``/opt/ml``."""
        return Path(self.remap(container_path))

    def remap(self, value: Any) -> Any:
        """Rewrite every ``/opt/ml`` inside strings (recursively through lists and dicts)."""
        if isinstance(value, str):
            return re.sub(r"(?<![\w.])/opt/ml(?=/|$|\s|['\"])", str(self.opt_ml), value)
        if isinstance(value, list):
            return [self.remap(item) for item in value]
        if isinstance(value, Mapping):
            return {key: self.remap(inner) for key, inner in value.items()}
        return value

    def command(self, argv: Sequence[str]) -> list[str]:
        """Remapped argv; a bare ``python3``/``python`` becomes this interpreter."""
        remapped = [self.remap(str(part)) for part in argv]
        if remapped and remapped[0] in _PYTHON_NAMES:
            remapped[0] = sys.executable
        return remapped

    def environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        """This process's environment plus the job's, remapped, with the shims first on PATH."""
        env = dict(os.environ)
        env.update({key: self.remap(str(value)) for key, value in extra.items()})
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        # The job runs in its own folder; the engine's checkout must not shadow the job's code.
        env.pop("PYTHONPATH", None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["DOGPIPE_OPT_ML"] = str(self.opt_ml)
        return env


def metric_values(line: str, definitions: Sequence[Mapping[str, str]]) -> dict[str, float]:
    """Values of the job's MetricDefinitions (``{"Name", "Regex"}``) found in one log line."""
    found: dict[str, float] = {}
    for definition in definitions:
        match = re.search(definition["Regex"], line)
        if match:
            try:
                found[definition["Name"]] = float(match.group(1) if match.groups() else match.group(0))
            except ValueError:
                continue
    return found


def run_on_every_host(count: int, run_host: Callable[[int], None]) -> None:
    """``run_host(i)`` for each of ``count`` instances at once (the first in this thread, as the one whose
    Ctrl-C the engine sees); every instance runs to its end, then the first failure is raised, as a
    SageMaker job with several instances fails when one of them does."""
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            run_host(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(index,), daemon=True) for index in range(1, count)]
    for thread in threads:
        thread.start()
    guarded(0)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
