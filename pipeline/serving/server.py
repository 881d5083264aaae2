"""Start the server: resolve and load the model, size the threads, run uvicorn, announce the URL.

The model is loaded (and optimised by ``training_code/model_optimize.py``) before the socket listens,
so a client that can connect gets a loaded model and ``/ping`` is 200. ``url_file`` is written once
uvicorn accepts connections, which lets a script start ``--port 0`` and learn the port without parsing
logs.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import uvicorn

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


def shared_threads(workers: int, requested: int | None = None) -> int:
    """Torch threads of a request that runs beside others: the cores shared out between the worker
    threads, so that ``workers`` concurrent requests do not oversubscribe the CPU. A request alone gets
    every core (bench/endpoint_bench.py measures both)."""
    if requested is not None:
        return max(1, requested)
    return max(1, (os.cpu_count() or 1) // workers)


class _AnnouncingServer(uvicorn.Server):
    """uvicorn, plus one line on stdout and the URL file once the socket accepts connections."""

    def __init__(self, config: uvicorn.Config, url_file: Path | None, version: str) -> None:
        super().__init__(config)
        self.url_file = url_file
        self.version = version

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets=sockets)
        if not self.started:
            return
        port = self.servers[0].sockets[0].getsockname()[1]
        url = f"http://{self.config.host}:{port}"
        print(f"dogpipe: serving model {self.version} at {url} (POST /invocations, GET /ping)", flush=True)
        if self.url_file is not None:
            self.url_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.url_file.with_name(self.url_file.name + ".part")
            partial.write_text(url + "\n")
            partial.replace(self.url_file)


def serve_model(model: str, registry_root: Path, options: ServeOptions) -> None:
    """Serve MODEL until interrupted (Ctrl-C or SIGTERM)."""
    import torch

    from pipeline.serving.app import ServingSettings, create_app
    from pipeline.serving.model_source import resolve_model
    from training_code import inference

    settings = ServingSettings(
        max_payload_bytes=options.max_payload_bytes,
        max_batch=options.max_batch,
        workers=options.workers,
        body_timeout_s=options.body_timeout_s,
    )
    if options.workers == 1 and options.threads is not None:
        torch.set_num_threads(options.threads)  # one request at a time: its build gets what was asked
    with ExitStack() as stack:
        source = resolve_model(model, registry_root, stack)
        served = inference.load_model(
            source.model_dir,
            top_k=options.top_k,
            version=options.model_version or source.version,
            optimize=options.optimize,
            shared_threads=shared_threads(options.workers, options.threads) if options.workers > 1 else None,
        )
        log.info("loaded %s (%s, %d classes)", served.version, served.optimized, len(served.classes))
        config = uvicorn.Config(
            create_app(served, settings),
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            access_log=False,
            limit_concurrency=connection_limit(),
            timeout_keep_alive=30,
        )
        _AnnouncingServer(config, options.url_file, served.version).run()
