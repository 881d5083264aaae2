"""``python -m pipeline.serving.capture_child SETTINGS``: the writer child of a capturing endpoint server.

It reads framed records (:func:`pipeline.serving.capture_format.frame`) from its stdin, encodes each as a
SageMaker capture record and appends it as a JSON Line under the settings' endpoint folder, rotating
files at ``max_file_bytes`` and at each new hour and keeping the folder under ``max_total_bytes``
(``SETTINGS``: :meth:`CaptureSettings.to_json`). After each flush frame, and once more at the end, it
writes its totals, ``<written> <errors>``, as a line on its stdout. End of file on its stdin (the server
closed it or died) makes it write out what it holds and exit.

It runs at nice 19 and imports only the standard library and ``pipeline.serving.capture_format`` (whose
packages' ``__init__`` modules import nothing): no torch, no server, a start of a few tens of ms.
SIGINT and SIGTERM are ignored: a Ctrl-C or a stop signalled to the server's process group must not cut
the records the stopping server still hands over; SIGKILL and the end of its stdin end it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, BinaryIO

from pipeline.serving.capture_format import (
    FLUSH,
    RECORD,
    RECORD_HEADER,
    CaptureSettings,
    Exchange,
    capture_line,
)

log = logging.getLogger(__name__)


def _yield_the_cores() -> None:
    """Run the calling process (the writer child: one thread) at the lowest CPU priority: the model's
    intra-op threads use every core, and a record written beside them at normal priority preempted
    one, which held the whole parallel region back (measured: p50 1.14x with capture at 100 % on 2
    cores, when the writer was a thread of the server at normal priority)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)


class CaptureFiles:
    """The capture files of one endpoint: appends records, rotates, bounds the folder, counts."""

    def __init__(self, settings: CaptureSettings) -> None:
        self.settings = settings
        self.written = 0  # records appended to a file
        self.errors = 0  # records lost to a failed write
        self._file: IO[bytes] | None = None
        self._file_path: Path | None = None
        self._file_hour: str | None = None
        self._file_bytes = 0

    def write(self, exchange: Exchange) -> None:
        try:
            parts = capture_line(self.settings, exchange)
            size = sum(map(len, parts))
            handle = self._file_for(exchange.epoch_s, size)
            handle.writelines(parts)
            self._file_bytes += size
            self.written += 1
        except Exception:  # a full disk or a removed folder must cost records, never the writer
            self.errors += 1
            log.debug("capture write failed", exc_info=True)
            self.close()

    def flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError:
                self.errors += 1
                self.close()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None

    def _file_for(self, epoch_s: float, size: int) -> IO[bytes]:
        moment = datetime.fromtimestamp(epoch_s, timezone.utc)
        hour = moment.strftime("%Y/%m/%d/%H")
        full = self._file_bytes and self._file_bytes + size > self.settings.max_file_bytes
        if self._file is None or hour != self._file_hour or full:
            self.close()
            name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            path = self.settings.endpoint_folder / hour / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")
            self._file_path, self._file_hour, self._file_bytes = path, hour, 0
            self._enforce_total()
        assert self._file is not None
        return self._file

    def _enforce_total(self) -> None:
        """Delete this endpoint's oldest capture files (never the open one) beyond ``max_total_bytes``."""
        files = sorted(self.settings.endpoint_folder.rglob("*.jsonl"), key=lambda path: str(path))
        sizes = {path: path.stat().st_size for path in files if path.exists()}
        total = sum(sizes.values())
        for path in files:
            if total <= self.settings.max_total_bytes:
                break
            if path == self._file_path:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= sizes.get(path, 0)


def _read_exactly(source: BinaryIO, size: int) -> bytes | None:
    data = source.read(size) if size else b""
    return data if data is not None and len(data) == size else None


def serve(settings: CaptureSettings, source: BinaryIO, report: BinaryIO) -> CaptureFiles:
    """Write the records framed on ``source`` until its end; totals on ``report`` after each flush."""
    files = CaptureFiles(settings)

    def tell() -> None:
        with contextlib.suppress(OSError, ValueError):  # the server is gone: nobody to tell
            report.write(f"{files.written} {files.errors}\n".encode())
            report.flush()

    while True:
        tag = source.read(1)
        if tag == FLUSH:
            files.flush()
            tell()
            continue
        if tag != RECORD:
            break  # end of file (or a frame this code does not know: the stream is lost)
        header = _read_exactly(source, RECORD_HEADER.size)
        if header is None:
            break  # the server died mid-frame: that record is gone with it
        epoch_s, *sizes = RECORD_HEADER.unpack(header)
        parts = [_read_exactly(source, size) for size in sizes]
        if any(part is None for part in parts):
            break
        body, sent_type, reply, answered_type = (part or b"" for part in parts)
        sent = sent_type.decode("utf-8", "surrogatepass") or None
        files.write(Exchange(epoch_s, body, sent, reply, answered_type.decode("utf-8", "surrogatepass")))
    files.flush()
    files.close()
    tell()
    return files


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    _yield_the_cores()
    logging.basicConfig(level=logging.WARNING, format="dogpipe capture child: %(message)s")
    settings = CaptureSettings.from_json(args[0])
    serve(settings, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
