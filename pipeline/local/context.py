"""What every step runner receives: its resolved arguments and the engine's shared services."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.names import local_arn
from pipeline.object_store import ObjectStore


@dataclass(frozen=True)
class EngineSettings:
    """Knobs of the local engine that a definition cannot carry (from ``cfg.local``)."""

    root: Path
    endpoint_host: str = "127.0.0.1"
    endpoint_port: int = 0
    max_parallel_trials: int | None = None
    #: The local capture writer's bounds (``deploy.data_capture``); SageMaker manages its own files.
    capture_max_file_bytes: int = 4 * 1024 * 1024
    capture_max_total_bytes: int = 512 * 1024 * 1024

    @property
    def tracking_uri(self) -> str:
        """The MLflow store this engine hands to a job that asks for tracking and names none (its
        stand-in for a tracking server, as the folder under ``root`` is for S3)."""
        from pipeline.config.tracking import local_tracking_uri

        return local_tracking_uri(self.root)

    @property
    def trial_slots(self) -> int:
        """Parallel tuning trials this machine can take: the config's cap, never above the cores."""
        cores = os.cpu_count() or 1
        return max(1, min(cores, self.max_parallel_trials or cores))


@dataclass
class StepContext:
    """One step execution: ``arguments`` are already resolved (no expressions left)."""

    name: str
    step_type: str
    arguments: Mapping[str, Any]
    definition: Mapping[str, Any]
    work_dir: Path
    store: ObjectStore
    settings: EngineSettings
    execution_id: str
    echo: Callable[[str], None] = field(default=print)

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"


def arn(resource: str, name: str) -> str:
    """A local ARN shaped like SageMaker's, so ARN-parsing code behaves the same."""
    return local_arn(f"{resource}/{name.lower()}")
