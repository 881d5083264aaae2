"""A folder of answers that are slow to compute and fully named by their inputs' hash.

``dogpipe graph``, ``validate`` and ``definition`` rebuild a definition that has not changed in the
seconds it takes to import the SageMaker SDK; torchvision's model list costs an import of torch. Both
are pure functions of inputs we can hash without importing anything, so their answers are kept here
under that hash: an entry is never stale, only unused. A cache that cannot be read or written is
skipped, never an error.

Where: ``$DOGPIPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/dogpipe``, else ``~/.cache/dogpipe``; deleting
it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.files import write_atomic

CACHE_ENV = "DOGPIPE_CACHE_DIR"
KEEP_PER_KIND = 32  # entries of one kind kept; older ones are removed when a new one is written


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dogpipe"


def digest(value: Any) -> str:
    """sha256 of a JSON-able value, canonical (sorted keys), so equal inputs give equal keys."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def versions(*distributions: str) -> dict[str, str | None]:
    """Installed versions from package metadata (nothing is imported)."""
    found: dict[str, str | None] = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cached_text(kind: str, key: str, compute: Callable[[], str]) -> str:
    """The answer stored under ``kind``/``key``, or ``compute()`` stored there for next time."""
    path = cache_dir() / kind / f"{key}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    text = compute()
    try:
        write_atomic(path, text)  # readers see the whole answer or none
        _prune(path.parent)
    except OSError:
        pass
    return text


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.txt"), key=lambda item: item.stat().st_mtime, reverse=True)
    for old in entries[KEEP_PER_KIND:]:
        old.unlink(missing_ok=True)
