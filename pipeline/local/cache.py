"""Step caching across executions, as SageMaker's CacheConfig promises it.

A job step is reused when the arguments SageMaker compares for its type (:data:`KEY_ATTRIBUTES`)
are the same as in a previous successful run of the same step. SageMaker compares arguments only;
here the key also holds a fingerprint of every input object the arguments name (code archive, data
prefix, model artifact), so changing a file behind an unchanged URI is a cache miss instead of a
silently stale result. Fingerprints digest content (sha256 per file, remembered by stat in
:mod:`pipeline.file_digests`), never sizes and times alone. Output locations are left out of
the fingerprints: they are written by the step itself.

Two executions may share the cache: each entry is its own file (``<step>/<key>.json``), written whole
under a unique temporary name and renamed, and never read-modified-written, so concurrent saves of one
key leave one complete entry and need no lock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipeline.iso_duration import parse_iso_duration
from pipeline.local.executions import read_json, write_json
from pipeline.object_store import ObjectStore

CACHEABLE_STEP_TYPES = frozenset({"Processing", "Training", "Tuning", "Transform"})
# Subtrees that describe where a job writes, not what it reads.
_OUTPUT_KEYS = frozenset(
    {
        "ProcessingOutputConfig",
        "OutputDataConfig",
        "DebugHookConfig",
        "ProfilerConfig",
        "CheckpointConfig",
        "TensorBoardOutputConfig",
        "DebugRuleConfigurations",
        "ProfilerRuleConfigurations",
        "TransformOutput",
    }
)


def parse_duration(text: str) -> timedelta:
    """ISO-8601 duration of CacheConfig.ExpireAfter (``P30D``, ``PT1H``); months count 30 days."""
    try:
        return parse_iso_duration(text)
    except ValueError as error:
        raise ValueError(f"CacheConfig.ExpireAfter is {error}") from None


def input_uris(arguments: Any) -> list[str]:
    """Every ``s3://`` string in ``arguments`` outside the output subtrees, sorted and unique."""
    found: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                if key not in _OUTPUT_KEYS:
                    visit(inner)
        elif isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, str):
            found.update(re.findall(r"s3://[^\s\"',]+", value))

    visit(arguments)
    return sorted(found)


# The attributes SageMaker compares for each step type ("Default cache key attributes by pipeline
# step type"); output locations and job names are not among them.
KEY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "TrainingJobDefinitions"),
}
_TUNING_DEFINITION_ATTRIBUTES = (
    "AlgorithmSpecification",
    "HyperParameterRanges",
    "InputDataConfig",
    "StaticHyperParameters",
    "TuningObjective",
)


def key_attributes(step_type: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a step's arguments that decides a cache hit."""
    names = KEY_ATTRIBUTES.get(step_type)
    selected = {name: arguments[name] for name in names if name in arguments} if names else dict(arguments)
    definition = selected.get("TrainingJobDefinition")
    if isinstance(definition, Mapping):
        selected["TrainingJobDefinition"] = {
            name: definition[name] for name in _TUNING_DEFINITION_ATTRIBUTES if name in definition
        }
    return selected


def cache_key(step_type: str, arguments: Mapping[str, Any], store: ObjectStore) -> str:
    """A digest of the step type, its key attributes, and the content fingerprints of their inputs."""
    selected = key_attributes(step_type, arguments)
    fingerprints = {uri: store.fingerprint(uri) for uri in input_uris(selected)}
    payload = json.dumps([step_type, selected, fingerprints], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class StepCache:
    """Successful step results under ``<root>/cache/<step>/<key>.json``."""

    def __init__(self, root: Path | str) -> None:
        self.folder = Path(root) / "cache"

    def _path(self, step: str, key: str) -> Path:
        return self.folder / step / f"{key}.json"

    def lookup(self, step: str, key: str, expire_after: str | None) -> dict[str, Any] | None:
        """The cached entry, or ``None`` when absent or older than ``expire_after``."""
        path = self._path(step, key)
        if not path.is_file():
            return None
        entry = read_json(path)
        if expire_after:
            finished = datetime.fromisoformat(entry["finished_at"])
            if datetime.now(timezone.utc) - finished > parse_duration(expire_after):
                return None
        return entry

    def save(self, step: str, key: str, execution_id: str, properties: Mapping[str, Any]) -> None:
        write_json(
            self._path(step, key),
            {
                "execution_id": execution_id,
                "properties": dict(properties),
                "finished_at": datetime.now(timezone.utc).isoformat(),
            },
        )


def cache_enabled(step: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(enabled, ExpireAfter) of a step's CacheConfig; only job steps can be cached."""
    config = step.get("CacheConfig") or {}
    enabled = bool(config.get("Enabled")) and step.get("Type") in CACHEABLE_STEP_TYPES
    return enabled, config.get("ExpireAfter")
