"""SageMaker PyTorch serving handlers: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

The SageMaker PyTorch inference container imports this file from ``model.tar.gz/code/`` (``train.py``
copies it there with ``models.py`` and ``dogdata.py``), and ``dogpipe serve`` (``pipeline/serving``)
calls the very same functions, so an endpoint answers the same on SageMaker and on this machine.

Requests: one image (``image/jpeg``, ``image/png``, ``application/x-image``) or JSON
(``{"image": "<base64>"}`` or ``{"instances": ["<base64>", {"image": "<base64>"}, ...]}``).
Response (``application/json``)::

    {"predictions": [{"top_k": [{"breed": "...", "probability": 0.93}, ...]}, ...],
     "model_version": "...", "latency_ms": 12.5}

Every bad request raises a :class:`RequestError` carrying its HTTP status (400, 406, 413, 415). When the
SageMaker inference toolkit is importable (inside the container) it subclasses the toolkit's
``BaseInferenceToolkitError``, so the container answers 4xx instead of its blanket 500.

The toolkit calls each handler with exactly the standard arguments, so tunables come from the
container environment (set by the Deploy step): ``DOGPIPE_TOP_K``, ``DOGPIPE_MAX_BATCH``,
``DOGPIPE_MODEL_VERSION``, ``DOGPIPE_OPTIMIZE`` (``onednn``, ``compile``, ``trace`` or ``eager``; see
``model_optimize``). ``dogpipe serve`` passes the
same settings as arguments to :func:`load_model` and :func:`parse_request`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

if __package__:  # imported as training_code.inference (tests, dogpipe serve)
    from . import dogdata, model_optimize, models
else:  # inside the serving container: code/ is on sys.path
    import dogdata  # type: ignore[no-redef]
    import model_optimize  # type: ignore[no-redef]
    import models  # type: ignore[no-redef]

try:  # present only inside the SageMaker inference containers
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
except ImportError:  # pragma: no cover - depends on the container
    _ToolkitError = None

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
IMAGE_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "application/x-image"})
ACCEPTED_TYPES: frozenset[str] = IMAGE_TYPES | {JSON_TYPE}
DEFAULT_TOP_K = 3
DEFAULT_MAX_BATCH = 16
OPTIMIZE_MODES = model_optimize.OPTIMIZE_MODES
DEFAULT_OPTIMIZE = model_optimize.DEFAULT_OPTIMIZE


class _RequestErrorBase(Exception if _ToolkitError is None else _ToolkitError):  # type: ignore[misc]
    pass


class RequestError(_RequestErrorBase):
    """A request the model cannot answer because of what the client sent; ``status_code`` is the HTTP
    status to return and ``message`` says what is wrong (never a stack trace)."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        # The toolkit sends ``phrase`` as the response body: make it the same JSON the local server sends.
        self.phrase = json.dumps({"error": message})
        Exception.__init__(self, message)

    def __str__(self) -> str:
        return self.message


class UnsupportedContentType(RequestError):
    status_code = 415


class NotAcceptable(RequestError):
    status_code = 406


class PayloadTooLarge(RequestError):
    status_code = 413


@dataclass(frozen=True)
class ImagePayloads:
    """The encoded images of one request, checked for shape (count, base64) but not yet decoded:
    decoding needs the model's image size, which ``input_fn`` is not given."""

    images: tuple[bytes, ...]


class NormalizedClassifier(nn.Module):
    """uint8 ``N×3×S×S`` images in, class probabilities out.

    Normalisation (the training set's mean/std, the same ``x / 255 - mean) / std`` the training loader
    applies) and the softmax live inside the module so that tracing and freezing fuse them with the
    network, and a request's tensor never needs a second pass in Python.
    """

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = dogdata.normalize(images, self.mean, self.std)
        logits = self.network(pixels.contiguous(memory_format=torch.channels_last))
        return torch.softmax(logits.float(), dim=1)


@dataclass
class ServedModel:
    """The loaded classifier with everything a prediction needs: the network (optimised by
    ``model_optimize`` when that was exact), the class names, the image size, and the reply settings.

    ``shared_classifier``, when present, is the same network built for fewer threads, for requests that
    run side by side with others (``model_optimize.THREAD_BOUND_MODES`` keep their build's threads, so a
    server needs one build for a request alone, using every core, and one for requests sharing them)."""

    classifier: nn.Module
    classes: list[str]
    image_size: int
    version: str
    top_k: int = DEFAULT_TOP_K
    optimized: str = "eager"
    info: dict[str, Any] = field(default_factory=dict)
    shared_classifier: nn.Module | None = None

    def preprocess(self, payload: bytes) -> torch.Tensor:
        """One encoded image → a uint8 ``3×S×S`` tensor, decoded exactly as evaluation decodes."""
        return decode_payload(payload, self.image_size)

    def probabilities(self, images: torch.Tensor, *, shared: bool = False) -> torch.Tensor:
        """Class probabilities for a uint8 ``N×3×S×S`` batch; ``shared``: other requests are running,
        so use the build for fewer threads when there is one."""
        classifier = (
            self.shared_classifier if shared and self.shared_classifier is not None else self.classifier
        )
        with torch.inference_mode():
            return classifier(images)

    def top_k_of(self, probabilities: torch.Tensor) -> list[dict[str, Any]]:
        """Per image, the ``top_k`` breeds with their probabilities, most likely first."""
        k = min(self.top_k, probabilities.shape[1])
        values, indices = probabilities.topk(k, dim=1)
        return [
            {
                "top_k": [
                    {"breed": self.classes[index], "probability": round(value, 6)}
                    for value, index in zip(row_values, row_indices, strict=True)
                ]
            }
            for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
        ]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"environment variable {name}={raw!r} must be at least 1")
    return value


def check_dimensions(payload: bytes) -> None:
    """Refuse a decompression bomb from its header, before any pixel is decoded.

    PIL only warns between ``MAX_IMAGE_PIXELS`` and twice that, and a warning would let a small payload
    claiming 100 megapixels take seconds and gigabytes; here anything above the limit is a 400.
    Headers PIL cannot read are left to ``decode_image``, which explains them.
    """
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(payload)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        width = height = None
    except Exception:  # not an image, truncated header: decode_image names the problem
        return
    if width is None or (limit is not None and width * height > limit):
        size = "" if width is None else f"{width}x{height} = {width * height:,} pixels, "
        raise RequestError(f"image too large: {size}above the {limit:,}-pixel limit (decompression bomb?)")


def decode_payload(payload: bytes, image_size: int) -> torch.Tensor:
    """Decode through ``dogdata.decode_image`` (the one implementation evaluation also uses), mapping
    its errors to a 400 that names the problem."""
    check_dimensions(payload)
    try:
        return dogdata.decode_image(payload, image_size)
    except dogdata.ImageDecodeError as error:
        raise RequestError(f"not a usable image: {error}") from None


def _weights_version(model_dir: Path) -> str:
    """A stable version when none is given: the first 12 hex digits of ``model.pth``'s sha256."""
    return "sha256:" + models.sha256_of(model_dir / models.MODEL_WEIGHTS_FILE)[:12]


def load_model(
    model_dir: str | Path,
    *,
    top_k: int = DEFAULT_TOP_K,
    version: str | None = None,
    optimize: str = DEFAULT_OPTIMIZE,
    shared_threads: int | None = None,
) -> ServedModel:
    """Load ``model.pth`` + ``model_info.json`` from ``model_dir`` (``weights_only=True``, through
    ``models.load_trained_model``) and prepare it for serving with torch's current thread count.

    ``shared_threads``: also build a ``shared_classifier`` for that many threads, when it is fewer and
    the served mode keeps its build's threads (a server running several requests at once)."""
    model_dir = Path(model_dir)
    network, info = models.load_trained_model(model_dir)
    missing = [key for key in ("classes", "image_size", "mean", "std") if key not in info]
    if missing:
        raise ValueError(f"{model_dir / models.MODEL_INFO_FILE}: missing {', '.join(missing)}")
    classes = [str(name) for name in info["classes"]]
    if len(classes) != int(info["num_classes"]):
        raise ValueError(
            f"{model_dir}: model_info.json lists {len(classes)} classes for num_classes {info['num_classes']}"
        )
    image_size = int(info["image_size"])
    normalized = NormalizedClassifier(network, info["mean"], info["std"])
    classifier, used = model_optimize.optimize_classifier(normalized, image_size, optimize)
    shared = None
    if (
        used in model_optimize.THREAD_BOUND_MODES
        and shared_threads
        and shared_threads < torch.get_num_threads()
    ):
        shared, shared_used = model_optimize.optimize_classifier(
            normalized, image_size, used, threads=shared_threads
        )
        if shared_used != used:  # it fell back: one build serves every request, as without the option
            log.warning("no %s build for %d thread(s); every request uses the %d-thread one", used,
                        shared_threads, torch.get_num_threads())  # fmt: skip
            shared = None
    return ServedModel(
        classifier=classifier,
        classes=classes,
        image_size=image_size,
        version=version or str(info.get("version") or _weights_version(model_dir)),
        top_k=top_k,
        optimized=used,
        info=info,
        shared_classifier=shared,
    )


def _media_type(content_type: str | None) -> str:
    """``image/JPEG; charset=x`` → ``image/jpeg``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None) -> str:
    """The request's media type if it is one this endpoint reads, else a 415 listing those it reads."""
    media_type = _media_type(content_type)
    if media_type not in ACCEPTED_TYPES:
        raise UnsupportedContentType(
            f"unsupported content type {content_type!r}; send one of {', '.join(sorted(ACCEPTED_TYPES))}"
        )
    return media_type


def _b64(value: Any, where: str) -> bytes:
    if isinstance(value, dict):
        value = value.get("image")
    if not isinstance(value, str) or not value:
        raise RequestError(f'{where}: expected a base64 string (or {{"image": base64}})')
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: not valid base64") from None
    if not data:
        raise RequestError(f"{where}: the image is empty")
    return data


def _parse_json(body: bytes | str, max_batch: int) -> tuple[bytes, ...]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"body is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not ({"image", "instances"} & document.keys()):
        raise RequestError('JSON body must be {"image": base64} or {"instances": [base64, ...]}')
    if "image" in document:
        return (_b64(document["image"], "image"),)
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError("instances: expected a non-empty list of base64 images")
    if len(instances) > max_batch:
        raise PayloadTooLarge(f"batch too large: {len(instances)} images, at most {max_batch} per request")
    return tuple(_b64(item, f"instances[{index}]") for index, item in enumerate(instances))


def parse_request(body: bytes | str | None, content_type: str | None, max_batch: int) -> ImagePayloads:
    """Check a request body's type, size and shape, and return its encoded images."""
    media_type = check_content_type(content_type)
    if not body:
        raise RequestError("empty request body")
    if media_type == JSON_TYPE:
        return ImagePayloads(_parse_json(body, max_batch))
    if isinstance(body, str):  # the toolkit decodes only UTF-8 types, but be safe
        raise RequestError(f"{media_type} body must be binary image bytes")
    return ImagePayloads((bytes(body),))


def predict(model: ServedModel, payloads: ImagePayloads, *, shared: bool = False) -> dict[str, Any]:
    """Decode, classify and rank one request's images; the reply before serialisation. ``shared``: other
    requests run at the same time (see :meth:`ServedModel.probabilities`)."""
    started = time.perf_counter()
    batch = torch.stack([model.preprocess(payload) for payload in payloads.images])
    predictions = model.top_k_of(model.probabilities(batch, shared=shared))
    return {
        "predictions": predictions,
        "model_version": model.version,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def check_accept(accept: str | None) -> None:
    """Only JSON replies exist: an ``Accept`` that excludes JSON is a 406 (checked before any work)."""
    accepted = {_media_type(part) for part in (accept or "").split(",") if part.strip()}
    if accepted and not ({JSON_TYPE, "*/*", "application/*"} & accepted):
        raise NotAcceptable(f"cannot answer in {accept!r}; this endpoint replies with {JSON_TYPE}")


def render(prediction: dict[str, Any], accept: str | None) -> str:
    """The reply as JSON text."""
    check_accept(accept)
    return json.dumps(prediction)


# --- the SageMaker handler contract (exact signatures: the toolkit counts parameters) ---------------


def model_fn(model_dir: str) -> ServedModel:
    """Load the model the container was given; tunables come from the endpoint's environment."""
    optimize = os.environ.get("DOGPIPE_OPTIMIZE") or DEFAULT_OPTIMIZE
    return load_model(
        model_dir,
        top_k=_env_int("DOGPIPE_TOP_K", DEFAULT_TOP_K),
        version=os.environ.get("DOGPIPE_MODEL_VERSION") or None,
        optimize=optimize,
    )


def input_fn(request_body: bytes | str, request_content_type: str) -> ImagePayloads:
    return parse_request(request_body, request_content_type, _env_int("DOGPIPE_MAX_BATCH", DEFAULT_MAX_BATCH))


def predict_fn(input_data: ImagePayloads, model: ServedModel) -> dict[str, Any]:
    return predict(model, input_data)


def output_fn(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    return render(prediction, accept), JSON_TYPE


__all__: Sequence[str] = (
    "ImagePayloads",
    "NormalizedClassifier",
    "NotAcceptable",
    "PayloadTooLarge",
    "RequestError",
    "ServedModel",
    "UnsupportedContentType",
    "check_accept",
    "check_content_type",
    "input_fn",
    "load_model",
    "model_fn",
    "output_fn",
    "parse_request",
    "predict",
    "predict_fn",
    "render",
)
