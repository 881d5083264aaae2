"""Data capture on a local endpoint: each sampled request and its reply as one SageMaker capture record.

The records are SageMaker's JSON Lines (one object a line, the form Model Monitor reads)::

    {"captureData": {"endpointInput": {"observedContentType": "image/jpeg", "mode": "INPUT",
                                       "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{\\"predictions\\": ...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid4>", "inferenceTime": "2026-12-07T02:15:41Z"},
     "eventVersion": "0"}

in files laid out as SageMaker lays them out: ``<folder>/<endpoint>/<variant>/yyyy/mm/dd/hh/
<mm>-<ss>-<ms>-<uuid>.jsonl`` (UTC hour of the first record). JSON bodies are kept as text
(``"JSON"``, what ``CaptureContentTypeHeader.JsonContentTypes`` asks of SageMaker), anything else base64.

Off the request's path: the request only draws the sample and puts a reference to its body and reply
on a bounded queue (microseconds); a writer thread encodes and appends. A full queue drops the record
and counts it (``dropped``); a write that fails is counted (``errors``) and never reaches the request.
Bounded on disk: a file is closed at ``max_file_bytes`` or when the hour changes (rotation), and the
oldest files of this endpoint are deleted once its folder exceeds ``max_total_bytes``. Lines are appended
whole and flushed after each batch, so a reader sees complete records (a last partial line, while
one is being written, is to be skipped).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

VARIANT = "AllTraffic"
JSON_CONTENT_TYPES = ("application/json",)
EVENT_VERSION = "0"
_STOP = object()


@dataclass(frozen=True)
class CaptureSettings:
    """What one server records and where: ``folder`` is the capture prefix's local folder (the store's
    path of ``DataCaptureConfig.DestinationS3Uri``)."""

    folder: Path
    endpoint: str
    variant: str = VARIANT
    sampling_percentage: float = 100.0
    capture_input: bool = True
    capture_output: bool = True
    max_file_bytes: int = 4 * 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024
    queue_size: int = 1024

    def __post_init__(self) -> None:
        if not 0 <= self.sampling_percentage <= 100:
            raise ValueError(f"sampling percentage must be 0-100, got {self.sampling_percentage}")
        if not (self.capture_input or self.capture_output):
            raise ValueError("capture needs input, output or both")
        for name in ("max_file_bytes", "max_total_bytes", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def endpoint_folder(self) -> Path:
        return self.folder / self.endpoint / self.variant


def _media_type(content_type: str | None) -> str:
    return (content_type or "application/octet-stream").split(";", 1)[0].strip().lower()


def capture_entry(data: bytes, content_type: str | None, mode: str) -> dict[str, str]:
    """``endpointInput`` / ``endpointOutput``: JSON as text, everything else base64."""
    observed = content_type or "application/octet-stream"
    if _media_type(content_type) in JSON_CONTENT_TYPES:
        return {
            "observedContentType": observed,
            "mode": mode,
            "data": data.decode("utf-8", "replace"),
            "encoding": "JSON",
        }
    return {
        "observedContentType": observed,
        "mode": mode,
        "data": base64.b64encode(data).decode("ascii"),
        "encoding": "BASE64",
    }


def inference_time(epoch_s: float) -> str:
    """SageMaker's ``eventMetadata.inferenceTime``: UTC, ISO 8601, seconds, ``Z``."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_record(
    settings: CaptureSettings,
    epoch_s: float,
    body: bytes,
    content_type: str | None,
    reply: bytes,
    reply_type: str,
    event_id: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if settings.capture_input:
        data["endpointInput"] = capture_entry(body, content_type, "INPUT")
    if settings.capture_output:
        data["endpointOutput"] = capture_entry(reply, reply_type, "OUTPUT")
    return {
        "captureData": data,
        "eventMetadata": {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": inference_time(epoch_s)},
        "eventVersion": EVENT_VERSION,
    }


def _yield_the_cores() -> None:
    """Run the calling thread at the lowest CPU priority (Linux schedules threads, so ``nice`` applies
    to this thread alone): the model's intra-op threads use every core, and a record written beside
    them preempted one, which held the whole parallel region back (measured: p50 1.14x with capture at
    100% on 2 cores at normal priority)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class CaptureWriter:
    """Samples requests on the caller's thread, writes their records on its own (see the module doc)."""

    def __init__(
        self,
        settings: CaptureSettings,
        *,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.draw = draw
        self.captured = 0  # records put on the queue
        self.dropped = 0  # records refused by a full queue
        self.written = 0  # records appended to a file
        self.errors = 0  # records lost to a failed write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self._file: IO[bytes] | None = None
        self._file_path: Path | None = None
        self._file_hour: str | None = None
        self._file_bytes = 0
        self._thread = threading.Thread(target=self._run, name="dogpipe-capture", daemon=True)
        self._thread.start()

    def offer(self, body: bytes, content_type: str | None, reply: bytes, reply_type: str) -> bool:
        """Record this request if it is sampled and the queue has room; never blocks, never raises."""
        if self.settings.sampling_percentage < 100 and self.draw() * 100 >= self.settings.sampling_percentage:
            return False
        try:
            self._queue.put_nowait((self.clock(), body, content_type, reply, reply_type))
        except queue.Full:
            self.dropped += 1
            return False
        self.captured += 1
        return True

    def stats(self) -> dict[str, int]:
        return {
            "captured": self.captured,
            "dropped": self.dropped,
            "written": self.written,
            "errors": self.errors,
        }

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, close the file, stop the thread (again: nothing)."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout_s)

    # -- the writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        _yield_the_cores()
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not _STOP:  # drain what is already waiting: one flush per batch
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            for entry in batch:
                if entry is not _STOP:
                    self._write(entry)
            self._flush()
            if batch[-1] is _STOP:
                self._close_file()
                return

    def _write(self, entry: tuple[float, bytes, str | None, bytes, str]) -> None:
        epoch_s, body, content_type, reply, reply_type = entry
        try:
            record = capture_record(self.settings, epoch_s, body, content_type, reply, reply_type)
            line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
            handle = self._file_for(epoch_s, len(line))
            handle.write(line)
            self._file_bytes += len(line)
            self.written += 1
        except Exception:  # a full disk or a removed folder must cost records, never the server
            self.errors += 1
            log.debug("capture write failed", exc_info=True)
            self._close_file()

    def _file_for(self, epoch_s: float, size: int) -> IO[bytes]:
        moment = datetime.fromtimestamp(epoch_s, timezone.utc)
        hour = moment.strftime("%Y/%m/%d/%H")
        full = self._file_bytes and self._file_bytes + size > self.settings.max_file_bytes
        if self._file is None or hour != self._file_hour or full:
            self._close_file()
            name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            path = self.settings.endpoint_folder / hour / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")
            self._file_path, self._file_hour, self._file_bytes = path, hour, 0
            self._enforce_total()
        assert self._file is not None
        return self._file

    def _flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError:
                self.errors += 1
                self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None

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
