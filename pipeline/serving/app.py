"""The SageMaker inference protocol as a Starlette application.

``GET /ping`` answers 200 once the model is loaded. ``POST /invocations`` checks what it can before doing
any work (content type → 415, ``Accept`` → 406, declared size → 413), counts the body as it streams so
an oversized upload is refused without being held in memory, then runs ``parse_request`` + ``predict``
from ``training_code/inference.py`` on a model thread (``model_threads``): decoding and the forward
pass release the GIL, so the event loop keeps accepting requests meanwhile. A request that finds no
other in flight (nor any overlap in the last ``LOAD_MEMORY_S``) runs on the solo thread with the model
built for every core; one under load runs on one of ``workers`` shared threads with the build for its
share (``ServedModel.shared_classifier``), which is what keeps both the single-request latency and the
throughput under concurrency at their best (BENCHMARKS.md, endpoint).
Every refusal is ``{"error": "..."}`` with a 4xx status; the server keeps serving.

Bounds, so that no client can hold the server: the body must arrive within ``body_timeout_s`` (408; a
client that never finishes its body holds only its own connection, and only that long), at most
``max_queued`` requests wait for a worker thread (503 beyond), a request's images are held to a budget
of decoded pixels from their headers (413), and a client that disconnects is noted at debug level only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.serving.capture import CaptureWriter
from pipeline.serving.model_threads import ModelThreads, shared_threads
from training_code import inference, payloads

log = logging.getLogger(__name__)

#: After two requests were last in flight together, requests count as under load for this long and
#: run the build for a share of the cores even when one finds itself alone: under a steady load of a
#: few clients, one that took every core for a moment would fight the next arrivals for them (measured,
#: mobilenet_v2 at 4 clients: 368 req/s routing by the moment, 399 with this memory; BENCHMARKS.md).
LOAD_MEMORY_S = 0.25


@dataclass(frozen=True)
class ServingSettings:
    """Limits and concurrency of one server; the defaults match ``DeployConfig``'s. ``workers``: the
    shared threads for requests under load, beside the solo thread (``model_threads``); 1 runs one
    request at a time."""

    max_payload_bytes: int = 6 * 1024 * 1024
    max_batch: int = payloads.DEFAULT_MAX_BATCH
    max_pixels: int = payloads.DEFAULT_MAX_PIXELS
    workers: int = 2
    body_timeout_s: float = 10.0
    max_queued: int = 64

    def __post_init__(self) -> None:
        for name in (
            "max_payload_bytes",
            "max_batch",
            "max_pixels",
            "workers",
            "body_timeout_s",
            "max_queued",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def error_response(status: int, message: str) -> Response:
    """Every refusal: the same ``{"error": ...}`` body the SageMaker handler sends."""
    return Response(payloads.error_document(message), status_code=status, media_type=payloads.JSON_TYPE)


async def _read_counted(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise payloads.PayloadTooLarge(f"payload exceeds the {limit:,}-byte limit")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused with a 413 as soon as it is known to exceed ``limit`` bytes (first
    from ``Content-Length``, then by counting chunks: chunked uploads declare no length), or with a 408
    when it has not all arrived within ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise payloads.RequestError(f"invalid Content-Length header {declared!r}") from None
        if length > limit:
            raise payloads.PayloadTooLarge(f"payload of {length:,} bytes exceeds the {limit:,}-byte limit")
    try:
        if sys.version_info >= (3, 11):  # a deadline on this task; wait_for would start another task
            async with asyncio.timeout(timeout_s):
                return await _read_counted(request, limit)
        return await asyncio.wait_for(_read_counted(request, limit), timeout_s)
    except asyncio.TimeoutError:
        raise payloads.RequestError(
            f"request body not received within {timeout_s:g} s", status_code=408
        ) from None


class InferenceService:
    """The loaded model, its threads and its limits: what the routes share."""

    def __init__(
        self,
        model: inference.ServedModel,
        settings: ServingSettings,
        threads: ModelThreads,
        capture: CaptureWriter | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.threads = threads
        self.capture = capture
        # Requests between submission and reply, and when two last overlapped (monotonic seconds); read
        # and written on the event loop only.
        self.in_flight = 0
        self.overlapped_at = -math.inf

    def classify(
        self, body: bytes, content_type: str | None, shared: bool
    ) -> tuple[dict[str, Any], float, float]:
        """Runs in a worker thread: the same parse and predict the SageMaker handlers run; returns the
        reply and when the thread started and finished it (``perf_counter``), for ``Server-Timing``."""
        started = time.perf_counter()
        settings = self.settings
        images = payloads.parse_request(body, content_type, settings.max_batch, settings.max_pixels)
        return inference.predict(self.model, images, shared=shared), started, time.perf_counter()

    async def ping(self, request: Request) -> Response:
        answer: dict[str, Any] = {"status": "ok", "model_version": self.model.version}
        if self.capture is not None:
            answer["capture"] = self.capture.stats()
        return JSONResponse(answer)

    async def invocations(self, request: Request) -> Response:
        started = time.perf_counter()
        content_type = request.headers.get("content-type")
        try:
            payloads.check_content_type(content_type)
            payloads.check_accept(request.headers.get("accept"))
            body = await read_body(request, self.settings.max_payload_bytes, self.settings.body_timeout_s)
            received = time.perf_counter()
            reply, picked_up, predicted = await self._run(body, content_type)
        except payloads.RequestError as error:
            return error_response(error.status_code, error.message)
        except ClientDisconnect:  # the client left before sending its body: nobody to answer
            log.debug("client disconnected before sending its body")
            return Response(status_code=400)
        except Exception:  # a bug, not the client's fault: say so without leaking a stack trace
            log.exception("inference failed")
            return error_response(500, payloads.INTERNAL_ERROR)
        resumed = time.perf_counter()
        reply["latency_ms"] = round((resumed - started) * 1000, 3)
        # Where the request's time went inside the server (bench/endpoint_bench.py reads it): body read,
        # wait for a worker thread, parse + predict, back to the event loop.
        timing = (
            f"body;dur={(received - started) * 1000:.3f}, queue;dur={(picked_up - received) * 1000:.3f}, "
            f"predict;dur={(predicted - picked_up) * 1000:.3f}, resume;dur={(resumed - predicted) * 1000:.3f}"
        )
        text = json.dumps(reply).encode()
        if self.capture is not None:  # a queue put; the writer child encodes and writes it
            self.capture.offer(body, content_type, text, payloads.JSON_TYPE)
        return Response(text, media_type=payloads.JSON_TYPE, headers={"Server-Timing": timing})

    async def _run(self, body: bytes, content_type: str | None) -> tuple[dict[str, Any], float, float]:
        """``classify`` on the solo thread, or on a shared one when the server is under load (two
        requests overlapped within ``LOAD_MEMORY_S``); a 503 when ``max_queued`` requests already wait
        for a thread."""
        if self.in_flight >= self.settings.workers + self.settings.max_queued:
            raise payloads.RequestError("server busy: too many requests waiting; retry later", 503)
        self.in_flight += 1
        now = time.monotonic()
        if self.in_flight > 1:
            self.overlapped_at = now
        try:
            shared = now - self.overlapped_at < LOAD_MEMORY_S
            return await self.threads.run(self.classify, body, content_type, shared, shared=shared)
        finally:
            self.in_flight -= 1


async def _http_error(request: Request, error: Exception) -> Response:
    """404/405 and other routing errors as the same JSON shape as every other refusal."""
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, f"{error.detail}: {request.method} {request.url.path}")


def create_app(
    model: inference.ServedModel,
    settings: ServingSettings | None = None,
    threads: ModelThreads | None = None,
    capture: CaptureWriter | None = None,
) -> Starlette:
    """The ASGI application serving ``model`` (already loaded, so ``/ping`` is 200 from the start) on
    ``threads`` (the ones that loaded it, ideally: see ``model_threads``; new ones by default), recording
    sampled requests with ``capture`` (``pipeline.serving.capture``) when given."""
    settings = settings or ServingSettings()
    threads = threads or ModelThreads(settings.workers, shared_threads(settings.workers))
    service = InferenceService(model, settings, threads, capture)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        threads.close()
        if capture is not None:
            capture.close()

    app = Starlette(
        routes=[
            Route("/ping", service.ping, methods=["GET"]),
            Route("/invocations", service.invocations, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.service = service
    return app
