"""S3 as a folder: ``s3://bucket/key`` is ``<root>/s3/bucket/key``.

Jobs read and write only S3 URIs in a definition, so a folder with the same key layout is all the
local engine needs to run them. An S3 URI names either one object (a file) or a prefix (a folder);
like S3's ``S3Prefix`` inputs, a prefix that matches one file fetches that file. The local engine,
local deploys, ``dogpipe serve`` (registry models) and the report all read it, so it sits below them.

Writes are published whole: each is written aside under a name no other writer uses, then renamed into
place, so a reader (or another engine) sees the old object or the new one, never half of one, and a
writer killed midway leaves only a hidden ``.*.part`` behind.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from pipeline.file_digests import FileDigests
from pipeline.files import aside, atomic_path, is_aside, write_atomic


class StoreError(ValueError):
    """An S3 URI that is malformed or names nothing in the local store."""


class ObjectStore:
    """Read and write S3 URIs under ``<root>/s3``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root) / "s3"
        self.digests = FileDigests(Path(root) / "cache" / "digests.sqlite")

    def path_for(self, uri: str) -> Path:
        """The local path of ``uri``; refuses URIs that would escape the store (``..``)."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StoreError(f"not an S3 URI (s3://bucket/key): {uri!r}")
        key = parsed.path.lstrip("/")
        if any(part == ".." for part in key.split("/")):
            raise StoreError(f"S3 key may not contain '..': {uri!r}")
        return self.root / parsed.netloc / key

    def exists(self, uri: str) -> bool:
        return self.path_for(uri).exists()

    def put_bytes(self, uri: str, data: bytes) -> None:
        write_atomic(self.path_for(uri), data)

    def put_file(self, source: Path, uri: str) -> None:
        with atomic_path(self.path_for(uri)) as temp:
            shutil.copy2(source, temp)

    def put_tree(self, source: Path, prefix_uri: str) -> int:
        """Upload every file under ``source`` to ``prefix_uri/<relative path>``; returns the count.

        The prefix is replaced, not merged, so a rerun never leaves stale objects of an earlier one.
        """
        target = self.path_for(prefix_uri.rstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = aside(target)
        shutil.copytree(source, temp)
        publish_folder(temp, target)
        return sum(1 for path in target.rglob("*") if path.is_file())

    def put_files(self, files: Mapping[str, Path], prefix_uri: str) -> None:
        """Upload ``{key: local file}`` as ``prefix_uri/<key>``, published whole like :meth:`put_tree`."""
        target = self.path_for(prefix_uri.rstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = aside(target)
        temp.mkdir()
        for key, source in files.items():
            (temp / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, temp / key)
        publish_folder(temp, target)

    def put_merged_trees(self, sources: list[Path], prefix_uri: str) -> int:
        """Upload the files of several folders to one prefix, published whole like :meth:`put_tree`:
        what the instances of a multi-instance job upload to the same ``S3Uri``. Two folders holding
        the same key would leave S3 with whichever upload came last; here that is a ``StoreError``."""
        target = self.path_for(prefix_uri.rstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = aside(target)
        temp.mkdir()
        owner: dict[str, Path] = {}
        for source in sources:
            for path in sorted(source.rglob("*")):
                if not path.is_file():
                    continue
                key = path.relative_to(source).as_posix()
                if key in owner:
                    remove(temp)
                    raise StoreError(f"{owner[key]} and {source} both upload {key} to {prefix_uri}")
                owner[key] = source
                (temp / key).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, temp / key)
        publish_folder(temp, target)
        return len(owner)

    def keys(self, uri: str) -> list[str]:
        """The objects of the object or prefix ``uri``, as paths relative to it, sorted (S3 lists keys
        in UTF-8 order); a single object is ``[its name]``."""
        source = self.path_for(uri.rstrip("/"))
        if source.is_file():
            return [source.name]
        if not source.is_dir():
            raise StoreError(f"no such S3 object or prefix in the local store: {uri} (looked in {source})")
        found = (path for path in source.rglob("*") if path.is_file() and not _hidden(path, source))
        return sorted((path.relative_to(source).as_posix() for path in found), key=lambda key: key.encode())

    def get_keys(self, uri: str, keys: list[str], destination: Path) -> Path:
        """Copy only ``keys`` (from :meth:`keys`) of ``uri`` into ``destination``, keeping their paths."""
        source = self.path_for(uri.rstrip("/"))
        destination.mkdir(parents=True, exist_ok=True)
        for key in keys:
            origin = source if source.is_file() else source / key
            (destination / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination / key)
        return destination

    def get(self, uri: str, destination: Path) -> Path:
        """Copy the object or prefix ``uri`` into the folder ``destination``.

        An object lands as ``destination/<its name>`` (a .zip stays a zip); a prefix's files keep
        their paths relative to the prefix.
        """
        source = self.path_for(uri.rstrip("/"))
        destination.mkdir(parents=True, exist_ok=True)
        if source.is_file():
            shutil.copy2(source, destination / source.name)
        elif source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)
        else:
            raise StoreError(f"no such S3 object or prefix in the local store: {uri} (looked in {source})")
        return destination

    def read_text(self, uri: str) -> str:
        path = self.path_for(uri)
        if not path.is_file():
            raise StoreError(f"no such S3 object in the local store: {uri}")
        return path.read_text()

    def fingerprint(self, uri: str) -> str | None:
        """A digest of the objects under ``uri``: each key with the sha256 of its content (as S3's
        ETags identify content), ``None`` when nothing is there. File digests are remembered by stat
        (:mod:`pipeline.file_digests`), so an unchanged data set is not read again."""
        path = self.path_for(uri.rstrip("/"))
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(item for item in path.rglob("*") if item.is_file() and not _hidden(item, path))
        else:
            return None
        contents = self.digests.digests(files)
        digest = hashlib.sha256()
        for item in files:
            digest.update(f"{item.relative_to(path.parent)}\0{contents[item]}\n".encode())
        return digest.hexdigest()


def _hidden(item: Path, root: Path) -> bool:
    return any(is_aside(part) for part in item.relative_to(root).parts)


def publish_folder(staged: Path, target: Path) -> None:
    """Put the folder ``staged`` at ``target`` by renames only, replacing what was there."""
    for _ in range(10):  # another writer may publish the same prefix between the two renames
        if target.exists() or target.is_symlink():
            old = aside(target)
            try:
                target.replace(old)
            except FileNotFoundError:
                continue
            remove(old)
        try:
            staged.rename(target)
            return
        except OSError:
            continue
    raise StoreError(f"could not publish {target}: other writers kept replacing it")


def remove(path: Path) -> None:
    """Delete a file or a folder tree, whichever ``path`` is; nothing when it is gone already."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
