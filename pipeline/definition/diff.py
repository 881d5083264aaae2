"""What an upsert would change: the local definition against the deployed one (``dogpipe diff``).

Steps (including those inside a condition's branches) and parameters are matched by name, so a
reordered list is not a change; within a matched step
the JSON paths that differ are listed (``$.Arguments.HyperParameters.lr``), computed by DeepDiff.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from deepdiff import DeepDiff

from pipeline.definition.reader import BRANCHES, walk_steps

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class Change:
    """One step, parameter or top-level field that differs; ``paths`` for a changed one."""

    section: Literal["step", "parameter", "pipeline"]
    name: str
    kind: ChangeKind
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DefinitionDiff:
    changes: list[Change]

    @property
    def empty(self) -> bool:
        return not self.changes

    def lines(self) -> list[str]:
        """Human-readable, one change per line, paths indented under their step."""
        if self.empty:
            return ["no differences: the deployed pipeline matches the local definition"]
        out: list[str] = []
        for change in self.changes:
            out.append(f"{change.section} {change.name}: {change.kind}")
            out.extend(f"    {path}" for path in change.paths)
        return out


def _json_path(parts: list[Any]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def differing_paths(old: Any, new: Any) -> list[str]:
    """Sorted JSON paths at which ``old`` and ``new`` differ (additions, removals, changed values)."""
    tree = DeepDiff(old, new, view="tree", verbose_level=2)
    return sorted(
        {_json_path(level.path(output_format="list")) for levels in tree.values() for level in levels}
    )


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["Name"]: item for item in items}


def flatten_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, including those nested in a ConditionStep's branches, each reported on its own.

    The branches are replaced by the names they hold, so a condition step changes only when its
    condition or the membership of its branches does, not whenever a step inside a branch does.
    """
    flat: list[dict[str, Any]] = []
    for node in walk_steps(steps):
        arguments = node.raw.get("Arguments")
        if node.type == "Condition" and isinstance(arguments, dict):
            names = {key: [inner.get("Name") for inner in arguments.get(key) or []] for key in BRANCHES}
            flat.append({**node.raw, "Arguments": {**arguments, **names}})
        else:
            flat.append(dict(node.raw))
    return flat


def _compare(section: Literal["step", "parameter"], old: list[dict], new: list[dict]) -> list[Change]:
    before, after = _by_name(old), _by_name(new)
    changes = [Change(section, name, "added") for name in after if name not in before]
    changes += [Change(section, name, "removed") for name in before if name not in after]
    for name in after.keys() & before.keys():
        paths = differing_paths(before[name], after[name])
        if paths:
            changes.append(Change(section, name, "changed", paths))
    return changes


def diff_definitions(deployed: str | dict[str, Any], local: str | dict[str, Any]) -> DefinitionDiff:
    """Changes that going from ``deployed`` to ``local`` makes, steps first, then parameters."""
    old = json.loads(deployed) if isinstance(deployed, str) else deployed
    new = json.loads(local) if isinstance(local, str) else local
    changes = _compare("step", flatten_steps(old.get("Steps", [])), flatten_steps(new.get("Steps", [])))
    changes += _compare("parameter", old.get("Parameters", []), new.get("Parameters", []))
    rest_old = {key: value for key, value in old.items() if key not in {"Steps", "Parameters"}}
    rest_new = {key: value for key, value in new.items() if key not in {"Steps", "Parameters"}}
    top_paths = differing_paths(rest_old, rest_new)
    if top_paths:
        changes.append(Change("pipeline", "(top level)", "changed", top_paths))
    order = {"step": 0, "parameter": 1, "pipeline": 2}
    return DefinitionDiff(sorted(changes, key=lambda change: (order[change.section], change.name)))
