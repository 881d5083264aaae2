"""S3 as a folder: ``s3://bucket/key`` is ``<root>/s3/bucket/key``.

Jobs read and write only S3 URIs in a definition, so a folder with the same key layout is all the
local engine needs to run them. An S3 URI names either one object (a file) or a prefix (a folder);
like S3's ``S3Prefix`` inputs, a prefix that matches one file fetches that file. The local engine,
local deploys, ``dogpipe serve`` (registry models) and the report all read it, so it sits below them.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from urllib.parse import urlparse


class StoreError(ValueError):
    """An S3 URI that is malformed or names nothing in the local store."""


class ObjectStore:
    """Read and write S3 URIs under ``<root>/s3``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root) / "s3"

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
        target = self.path_for(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.part")
        temp.write_bytes(data)
        temp.replace(target)

    def put_file(self, source: Path, uri: str) -> None:
        target = self.path_for(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)

    def put_tree(self, source: Path, prefix_uri: str) -> int:
        """Upload every file under ``source`` to ``prefix_uri/<relative path>``; returns the count.

        The prefix is replaced, not merged, so a rerun never leaves stale objects of an earlier one.
        """
        target = self.path_for(prefix_uri.rstrip("/"))
        temp = target.with_name(f".{target.name}.part")
        shutil.rmtree(temp, ignore_errors=True)
        shutil.copytree(source, temp)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        temp.replace(target)
        return sum(1 for path in target.rglob("*") if path.is_file())

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
        """A digest of the objects under ``uri`` (key, size, mtime), like a listing of their ETags.

        ``None`` when nothing is there. Copies keep mtimes (``copy2``), so re-uploading the same
        files keeps the fingerprint; changing any file's content changes its size or mtime.
        """
        path = self.path_for(uri.rstrip("/"))
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(item for item in path.rglob("*") if item.is_file())
        else:
            return None
        digest = hashlib.sha256()
        for item in files:
            status = item.stat()
            digest.update(
                f"{item.relative_to(path.parent)}\0{status.st_size}\0{status.st_mtime_ns}\n".encode()
            )
        return digest.hexdigest()
