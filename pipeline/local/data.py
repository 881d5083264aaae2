"""``dogpipe run --data DIR``: check a local ImageFolder and stage it into the store by content.

Each data set goes to its own content-addressed prefix, ``<data.s3_uri's parent>/by-content/<digest>/
<name>``, and the run's data parameter points there: two runs started side by side with different data
each read their own, and the same data uploaded twice is stored once (and keeps the cache warm).
``<root>/data/latest.json`` remembers, per ``data.s3_uri``, what was staged last, for a later run
without ``--data``.

The folder is read as it is: symlinks are followed only inside it (one leaving it is refused, naming
the file, so nothing outside the data set is copied into the store), and loops or dangling links are
a one-line error.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from pipeline.local.executions import read_json, write_json
from pipeline.object_store import ObjectStore

SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """A ``--data`` folder that cannot be used, with what to fix."""


def scan(data_dir: Path) -> dict[str, Path]:
    """Every file of the data set by its key relative to ``data_dir`` (symlinks resolved)."""
    root = data_dir.resolve()
    files: dict[str, Path] = {}

    def visit(folder: Path, prefix: str, ancestors: frozenset[Path]) -> None:
        for entry in sorted(os.scandir(folder), key=lambda item: item.name):
            path, key = Path(entry.path), f"{prefix}{entry.name}"
            target = _follow(data_dir / key, root) if entry.is_symlink() else path
            if target.is_dir():
                if target.resolve() in ancestors:
                    raise DataError(
                        f"--data: {data_dir / key} is a symlink loop (it links to a folder above it)"
                    )
                visit(target, f"{key}/", ancestors | {target.resolve()})
            elif target.is_file():
                files[key] = target

    visit(root, "", frozenset({root}))
    return files


def _follow(link: Path, root: Path) -> Path:
    try:
        target = link.resolve(strict=True)
    except FileNotFoundError:
        raise DataError(f"--data: {link} is a dangling symlink (to {os.readlink(link)})") from None
    except (RuntimeError, OSError):
        raise DataError(f"--data: {link} is a symlink loop") from None
    if not target.is_relative_to(root):
        raise DataError(
            f"--data: {link} links outside the data folder (to {target}); copy the file into it instead"
        )
    return target


def check_image_folder(data_dir: Path, files: dict[str, Path]) -> None:
    """train/ valid/ test/, and at least two classes in train/ (one class trains nothing)."""
    missing = [split for split in SPLITS if not (data_dir / split).is_dir()]
    if missing:
        raise DataError(
            f"--data {data_dir}: an ImageFolder needs train/, valid/ and test/ "
            f"(missing: {', '.join(missing)})"
        )
    classes = sorted({key.split("/")[1] for key in files if key.startswith("train/") and key.count("/") >= 2})
    if len(classes) < 2:
        raise DataError(
            f"--data {data_dir}: a data set needs at least two classes (breed folders) in train/; "
            f"found {len(classes)}: {', '.join(classes) or 'none'}"
        )


def content_digest(store: ObjectStore, files: dict[str, Path]) -> str:
    """sha256 over every key and its file's content (file digests remembered by stat)."""
    digests = store.digests.digests(files.values())
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(f"{key}\0{digests[files[key]]}\n".encode())
    return digest.hexdigest()


def staged_uri(data_uri: str, digest: str) -> str:
    """``s3://b/datasets/dogImages/`` → ``s3://b/datasets/by-content/<digest[:16]>/dogImages/``."""
    trailing = "/" if data_uri.endswith("/") else ""
    parent, _, name = data_uri.rstrip("/").rpartition("/")
    return f"{parent}/by-content/{digest[:16]}/{name}{trailing}"


def stage_data(store: ObjectStore, root: Path, data_dir: Path, data_uri: str) -> tuple[str, int, bool]:
    """Check and upload ``data_dir``; returns (its URI in the store, files, whether it was copied now)."""
    if not data_dir.is_dir():
        raise DataError(f"--data {data_dir}: not a folder")
    files = scan(data_dir)
    check_image_folder(data_dir, files)
    uri = staged_uri(data_uri, content_digest(store, files))
    copied = not store.exists(uri)
    if copied and uri.endswith(".zip"):
        with tempfile.TemporaryDirectory() as temp:
            tree = Path(temp) / "data"
            for key, source in files.items():
                (tree / key).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, tree / key)
            store.put_file(Path(shutil.make_archive(str(Path(temp) / "archive"), "zip", tree)), uri)
    elif copied:
        store.put_files(files, uri)
    _remember(root, data_uri, uri)
    return uri, len(files), copied


def _pointer(root: Path) -> Path:
    return root / "data" / "latest.json"


def _remember(root: Path, data_uri: str, uri: str) -> None:
    pointer = _pointer(root)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(pointer.with_name(".latest.lock")):
        latest = read_json(pointer) if pointer.is_file() else {}
        write_json(pointer, {**latest, data_uri: uri})


def latest_data(store: ObjectStore, root: Path, data_uri: str) -> str:
    """What a run without ``--data`` reads: the data last staged for ``data_uri``, else ``data_uri``."""
    pointer = _pointer(root)
    uri = read_json(pointer).get(data_uri) if pointer.is_file() else None
    return uri if uri and store.exists(uri) else data_uri
