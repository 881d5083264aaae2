"""Data capture of a local endpoint server: an endpoint config's ``DataCaptureConfig`` (SageMaker's
request shape, the one ``deploy_names.data_capture_request`` declares) turned into the ``dogpipe serve``
options that make the server write SageMaker's capture records into the local store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LocalCapture:
    """Data capture of one local server: an endpoint config's ``DataCaptureConfig`` (SageMaker's
    request shape) with its prefix mapped to the local store, and the writer's bounds."""

    folder: Path
    sampling_percentage: int
    modes: tuple[str, ...]
    max_file_bytes: int
    max_total_bytes: int

    @classmethod
    def from_request(
        cls, request: dict[str, Any] | None, store_path: Callable[[str], Path], max_file_bytes: int,
        max_total_bytes: int,
    ) -> LocalCapture | None:  # fmt: skip
        """None when the request captures nothing (absent, ``EnableCapture`` false, no modes)."""
        if not request or request.get("EnableCapture") is False:
            return None
        modes = tuple(str(option.get("CaptureMode")) for option in request.get("CaptureOptions") or [])
        if not modes:
            return None
        return cls(
            folder=store_path(str(request["DestinationS3Uri"])),
            sampling_percentage=int(request.get("InitialSamplingPercentage", 100)),
            modes=modes,
            max_file_bytes=max_file_bytes,
            max_total_bytes=max_total_bytes,
        )

    def arguments(self, endpoint: str) -> list[str]:
        """``dogpipe serve``'s capture options for this endpoint."""
        modes = ",".join(
            mode for mode in ("Input", "Output") if mode in self.modes or "InputAndOutput" in self.modes
        )
        return [
            "--capture-dir", str(self.folder), "--capture-endpoint", endpoint,
            "--capture-percent", str(self.sampling_percentage), "--capture-modes", modes,
            "--capture-max-file-bytes", str(self.max_file_bytes),
            "--capture-max-total-bytes", str(self.max_total_bytes),
        ]  # fmt: skip
