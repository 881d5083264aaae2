"""Files published whole: the one atomic write every record, object, report and cache entry uses.

A file is written aside under a name no other writer uses (:func:`aside`: hidden, this process, this
thread and random bits, ending ``.part``), then renamed onto its target. A reader therefore sees the old
file or the new one, never half of one; two writers of one target (two engines, two threads) never
write into each other's temp file; a writer that fails removes its temp file, and one killed midway
leaves only a hidden ``.*.part`` behind, which the object store never lists.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PART_SUFFIX = ".part"


def aside(target: Path) -> Path:
    """A temp path beside ``target`` that no other writer (process or thread) uses."""
    unique = f"{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}"
    return target.with_name(f".{target.name}.{unique}{PART_SUFFIX}")


def is_aside(name: str) -> bool:
    """Whether a file name is one of :func:`aside`'s (a write under way, or one killed midway)."""
    return name.startswith(".") and name.endswith(PART_SUFFIX)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """A temp path to write ``target``'s content to; renamed onto ``target`` when the block ends
    normally, removed when it raises (the target stays as it was)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = aside(target)
    try:
        yield temp
        temp.replace(target)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def write_atomic(target: Path | str, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Publish ``data`` as ``target`` whole; returns the target."""
    with atomic_path(target) as temp:
        if isinstance(data, bytes):
            temp.write_bytes(data)
        else:
            temp.write_text(data, encoding=encoding)
    return Path(target)


def json_text(data: Any, default: Callable[[Any], Any] | None = None) -> str:
    """The one layout of every JSON record: two-space indent, sorted keys, a final newline."""
    return json.dumps(data, indent=2, sort_keys=True, default=default) + "\n"


def write_json_atomic(target: Path | str, data: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """Publish ``data`` as JSON (:func:`json_text`) under ``target`` whole."""
    return write_atomic(target, json_text(data, default))


def create_exclusively(target: Path | str, data: str) -> bool:
    """Publish ``data`` as ``target`` only if no file has that name yet (an atomic hard link, so two
    writers racing for one name never both win); False when the name was taken."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = aside(target)
    try:
        temp.write_text(data, encoding="utf-8")
        os.link(temp, target)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    return True
