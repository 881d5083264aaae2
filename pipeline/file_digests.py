"""Content digests of files, memoised so that a re-run hashes only what changed.

The cache keys a step on the *content* of its inputs. Hashing a data set on every run would be slow,
so each file's sha256 is remembered (in SQLite, safe for several engines at once) with the file's
identity and stat: device, inode, size, mtime and ctime in nanoseconds. Any write to a file changes its
ctime, which no user call can set back (``os.utime`` sets mtime and *bumps* ctime), so content changed
with the same size and restored mtime is still a miss. A file whose ctime is within
:data:`RACY_WINDOW_S` of hashing is hashed but not remembered (a write in the same clock tick would not
move ctime: the "racy git" problem).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

RACY_WINDOW_S = 2.0
_CHUNK = 1 << 20
_SCHEMA = """CREATE TABLE IF NOT EXISTS digests (
    path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,
    sha256 TEXT NOT NULL)"""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FileDigests:
    """sha256 of files, remembered in ``path`` (an SQLite file) by identity and stat."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60)
            connection.execute(_SCHEMA)
            connection.commit()
            self._local.connection = connection
        return connection

    def digests(self, files: Iterable[Path]) -> dict[Path, str]:
        """The sha256 of each file; only files new or changed since they were last seen are read."""
        db = self._db()
        found: dict[Path, str] = {}
        fresh: list[tuple[str, int, int, int, int, int, str]] = []
        now = time.time()
        for path in files:
            status = path.stat()
            identity = (str(path), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                        status.st_ctime_ns)  # fmt: skip
            row = db.execute(
                "SELECT sha256 FROM digests WHERE path=? AND dev=? AND ino=? AND size=? AND mtime_ns=? "
                "AND ctime_ns=?",
                identity,
            ).fetchone()
            if row:
                found[path] = row[0]
                continue
            found[path] = sha256_of(path)
            if (
                status.st_ctime_ns / 1e9 < now - RACY_WINDOW_S
                and path.stat().st_ctime_ns == status.st_ctime_ns
            ):
                fresh.append((*identity, found[path]))
        if fresh:
            with db:
                db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)", fresh)
        return found
