"""Where preprocess.py reads a raw data set from: an ImageFolder on disk or inside one ``.zip``.

Both give POSIX paths relative to the folder holding ``train/ valid/ test/`` and read files by those
paths; single wrapper folders (``dogImages/`` in the original zip) are looked through. The source is
only ever read.

One instance of a sharded Preprocess (``ShardedByS3Key``) holds only some of the files: its share may
lack a split, or be empty. ``open_source(..., shard=True)`` accepts that (:class:`EmptySource` for an
empty share); the layout of the whole is then checked when the shares are merged.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SPLITS: tuple[str, ...] = ("train", "valid", "test")
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


class DataError(ValueError):
    """The input data set cannot be used as a whole (layout, classes); the message says what to fix."""


class EmptySource:
    """A share of a sharded input that received no file (more instances than objects)."""

    def __init__(self, input_dir: Path) -> None:
        self.description = str(input_dir)

    def files(self) -> list[str]:
        return []

    def read(self, path: str) -> bytes:
        raise FileNotFoundError(path)


class FolderSource:
    """An ImageFolder on disk; paths are POSIX, relative to the folder holding ``train/ valid/ test/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)

    def files(self) -> list[str]:
        found = []
        for folder, dirs, names in os.walk(self.root, followlinks=True):
            dirs[:] = sorted(name for name in dirs if name not in IGNORED_NAMES)
            relative = Path(folder).relative_to(self.root).as_posix()
            found += [posixpath.normpath(posixpath.join(relative, name)) for name in names]
        return sorted(found)

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()


class ZipSource:
    """An ImageFolder inside a zip archive, read member by member without extracting the archive."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, description: str) -> None:
        self.archive = archive
        self.prefix = prefix
        self.description = description

    def files(self) -> list[str]:
        return sorted(
            name[len(self.prefix) :]
            for name in self.archive.namelist()
            if name.startswith(self.prefix) and not name.endswith("/")
        )

    def read(self, path: str) -> bytes:
        return self.archive.read(self.prefix + path)


def _visible(names: list[str]) -> list[str]:
    return sorted(name for name in names if name not in IGNORED_NAMES and not name.startswith("."))


def _zip_prefix(archive: zipfile.ZipFile, description: str) -> str:
    """The member prefix holding ``train/ valid/ test/``, looking through single wrapper folders."""
    names = [name for name in archive.namelist() if not name.startswith("__MACOSX/")]
    prefix = ""
    while True:
        children = _visible(
            list({name[len(prefix) :].split("/", 1)[0] for name in names if name.startswith(prefix)})
        )
        folders = [child for child in children if any(name.startswith(f"{prefix}{child}/") for name in names)]
        if set(SPLITS) <= set(folders):
            return prefix
        if len(folders) != 1:
            raise DataError(
                f"{description}: no train/, valid/ and test/ folders inside (found: {children or 'nothing'})"
            )
        prefix += folders[0] + "/"


def _has_files(folder: Path) -> bool:
    return any(path.is_file() for path in folder.rglob("*"))


@contextmanager
def open_source(input_dir: Path, *, shard: bool = False) -> Iterator[FolderSource | ZipSource | EmptySource]:
    """Find the data set in ``input_dir``: split folders, a single wrapper folder, or one ``.zip``.

    ``shard``: ``input_dir`` holds one instance's share of the objects, so one split folder is enough
    and no file at all is an :class:`EmptySource`.
    """
    if shard and (not input_dir.is_dir() or not _has_files(input_dir)):
        yield EmptySource(input_dir)
        return
    if not input_dir.is_dir():
        raise DataError(f"input folder not found: {input_dir}")
    root = input_dir
    while True:
        entries = _visible([entry.name for entry in root.iterdir()])
        folders = [name for name in entries if (root / name).is_dir()]
        zips = [name for name in entries if name.lower().endswith(".zip") and (root / name).is_file()]
        if set(SPLITS) <= set(folders) or (shard and set(SPLITS) & set(folders)):
            yield FolderSource(root)
            return
        if len(zips) == 1 and not folders:
            with zipfile.ZipFile(root / zips[0]) as archive:
                description = str(root / zips[0])
                yield ZipSource(archive, _zip_prefix(archive, description), description)
            return
        if len(folders) == 1 and not zips:
            root = root / folders[0]
            continue
        if shard and not folders and not zips:  # a share holding only files beside the splits (README)
            yield EmptySource(input_dir)
            return
        raise DataError(
            f"{input_dir}: expected train/, valid/ and test/ folders or a single .zip of them "
            f"(found: {', '.join(entries) or 'nothing'})"
        )
