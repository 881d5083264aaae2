"""Start the server: resolve and load the model, size the threads, run uvicorn, announce the URL.

The model is loaded (and optimised by ``training_code/model_optimize.py``) before the socket listens,
so a client that can connect gets a loaded model and ``/ping`` is 200. ``url_file`` is written once
uvicorn accepts connections, which lets a script start ``--port 0`` and learn the port without parsing
logs.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from pipeline.files import write_atomic

if TYPE_CHECKING:
    from pipeline.serving.capture_format import CaptureSettings

log = logging.getLogger(__name__)

# Connections beyond this many get uvicorn's 503. It counts connections, not work (a client that never
# finishes its body holds one until the body timeout): high enough that a few hundred such clients lock
# nobody out, below the file-descriptor limit. Work is bounded by ServingSettings.max_queued.
MAX_CONCURRENT_CONNECTIONS = 2048


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: where, with which limits, and how the model runs."""

    host: str = "127.0.0.1"
    port: int = 8080
    top_k: int = 3
    max_payload_bytes: int = 6 * 1024 * 1024
    max_batch: int = 16
    workers: int = 2
    body_timeout_s: float = 10.0
    threads: int | None = None
    optimize: str = "onednn"  # training_code.model_optimize.DEFAULT_OPTIMIZE, without importing torch
    model_version: str | None = None
    url_file: Path | None = None
    log_level: str = "info"
    capture: CaptureSettings | None = None


def connection_limit(wanted: int = MAX_CONCURRENT_CONNECTIONS) -> int:
    """``wanted``, or fewer when the process may not open that many files (sockets are files)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no resource module (Windows): keep the wish
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - 64))


class _AnnouncingServer(uvicorn.Server):
    """uvicorn, plus one line on stdout and the URL file once the socket accepts connections."""

    def __init__(self, config: uvicorn.Config, url_file: Path | None, version: str) -> None:
        super().__init__(config)
        self.url_file = url_file
        self.version = version

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started:
            return
        port = self.servers[0].sockets[0].getsockname()[1]
        url = f"http://{self.config.host}:{port}"
        print(f"dogpipe: serving model {self.version} at {url} (POST /invocations, GET /ping)", flush=True)
        if self.url_file is not None:
            write_atomic(self.url_file, url + "\n")


def serve_model(model: str, registry_root: Path, options: ServeOptions) -> None:
    """Serve MODEL until interrupted (Ctrl-C or SIGTERM)."""
    import torch

    from pipeline.serving.app import ServingSettings, create_app
    from pipeline.serving.model_source import resolve_model
    from pipeline.serving.model_threads import ModelThreads, shared_threads
    from training_code import inference

    settings = ServingSettings(
        max_payload_bytes=options.max_payload_bytes,
        max_batch=options.max_batch,
        workers=options.workers,
        body_timeout_s=options.body_timeout_s,
    )
    if options.workers == 1 and options.threads is not None:
        torch.set_num_threads(options.threads)  # one request at a time: its build gets what was asked
    shared = shared_threads(options.workers, options.threads)
    threads = ModelThreads(options.workers, shared)
    with ExitStack() as stack:
        stack.callback(threads.close)
        source = resolve_model(model, registry_root, stack)
        # Loaded on the solo thread, which then owns the process's one OpenMP team (model_threads).
        served = threads.call(
            inference.load_model,
            source.model_dir,
            top_k=options.top_k,
            version=options.model_version or source.version,
            optimize=options.optimize,
            shared_threads=shared if options.workers > 1 else None,
        )
        log.info("loaded %s (%s, %d classes)", served.version, served.optimized, len(served.classes))
        capture = None
        if options.capture is not None:
            from pipeline.serving.capture import CaptureWriter

            capture = CaptureWriter(options.capture)
            stack.callback(capture.close)  # idempotent after the app's shutdown closed it
            log.info("capturing %g%% of requests under %s", options.capture.sampling_percentage,
                     options.capture.endpoint_folder)  # fmt: skip
        config = uvicorn.Config(
            create_app(served, settings, threads, capture),
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            access_log=False,
            limit_concurrency=connection_limit(),
            timeout_keep_alive=30,
        )
        _AnnouncingServer(config, options.url_file, served.version).run()
