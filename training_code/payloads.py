"""What one inference request carries, checked before the model sees it: content type, reply type, JSON
shape and depth, base64, and each image's header against the per-image and per-request pixel budgets.

Shared by the SageMaker handlers (``inference.transform_fn``) and ``dogpipe serve`` (``pipeline/serving``),
so both refuse the same requests with the same status and the same ``{"error": ...}`` body. The checks
are cheap on purpose: a request is refused from its headers and its image headers, before any pixel is
decoded, so a hostile request costs microseconds, not the seconds and gigabytes its decoding would.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from PIL import Image

try:  # present only inside the SageMaker inference containers (and the toolkit tests)
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
except ImportError:  # pragma: no cover - depends on the environment
    _ToolkitError = None

JSON_TYPE = "application/json"
IMAGE_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "application/x-image"})
ACCEPTED_TYPES: frozenset[str] = IMAGE_TYPES | {JSON_TYPE}
DEFAULT_MAX_BATCH = 16
# Decoded pixels one request may ask for, counted from the image headers: five 12-megapixel photos or
# sixteen 2000x2000 images. Sixteen 9000x9000 PNGs (1.3 Gpx, 37 s and +1.1 GB to decode) are a 413.
DEFAULT_MAX_PIXELS = 64_000_000
INTERNAL_ERROR = "internal error while predicting; see the server log"


class _RequestErrorBase(Exception if _ToolkitError is None else _ToolkitError):  # type: ignore[misc]
    pass


class RequestError(_RequestErrorBase):
    """A request the model cannot answer because of what the client sent; ``status_code`` is the HTTP
    status to return and ``message`` says what is wrong (never a stack trace).

    Inside the container it is also the toolkit's ``BaseInferenceToolkitError``, so that one escaping
    ``transform_fn`` would still get its status; ``phrase`` is the HTTP reason phrase TorchServe sends."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.phrase = HTTPStatus(self.status_code).phrase
        Exception.__init__(self, message)

    def __str__(self) -> str:
        return self.message


class UnsupportedContentType(RequestError):
    status_code = 415


class NotAcceptable(RequestError):
    status_code = 406


class PayloadTooLarge(RequestError):
    status_code = 413


def error_document(message: str) -> str:
    """The body of every refusal, on SageMaker and on ``dogpipe serve``: ``{"error": message}``."""
    return json.dumps({"error": message})


@dataclass(frozen=True)
class ImagePayloads:
    """The encoded images of one request, their headers checked against the pixel budgets but not yet
    decoded: decoding needs the model's image size."""

    images: tuple[bytes, ...]


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


def check_accept(accept: str | None) -> None:
    """Only JSON replies exist: an ``Accept`` that excludes JSON is a 406 (checked before any work)."""
    accepted = {_media_type(part) for part in (accept or "").split(",") if part.strip()}
    if accepted and not ({JSON_TYPE, "*/*", "application/*"} & accepted):
        raise NotAcceptable(f"cannot answer in {accept!r}; this endpoint replies with {JSON_TYPE}")


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


def _load_json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"body is not valid JSON: {error}") from None
    except RecursionError:  # json's C scanner stops ~1000 levels down: the depth is the client's doing
        raise RequestError("body is not valid JSON: nested too deeply") from None


def _parse_json(body: bytes | str, max_batch: int) -> tuple[bytes, ...]:
    document = _load_json(body)
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


def header_pixels(payload: bytes, where: str) -> int:
    """Width × height from the image's header alone (nothing decoded); a 400 when there is no header
    PIL can read, since decoding would refuse it anyway. PIL's warning for an image between its limit
    and twice it is silenced: ``check_pixel_budget`` refuses that image with a 400 of its own."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(payload)) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:
        raise RequestError(f"{where}: image too large: {error}") from None
    except Exception as error:  # not an image, truncated header
        reason = "not a recognised image format" if isinstance(error, Image.UnidentifiedImageError) else error
        raise RequestError(f"{where}: not a usable image: {reason}") from None
    return width * height


def check_pixel_budget(images: tuple[bytes, ...], max_pixels: int) -> None:
    """Refuse a decompression bomb (one image over PIL's ``MAX_IMAGE_PIXELS``: 400) or a request whose
    images add up to more than ``max_pixels`` decoded pixels (413), from the headers, before any pixel
    is decoded. PIL alone only warns up to twice its limit, letting a small payload take gigabytes."""
    per_image = Image.MAX_IMAGE_PIXELS or max_pixels
    total = 0
    for index, payload in enumerate(images):
        where = "image" if len(images) == 1 else f"instances[{index}]"
        pixels = header_pixels(payload, where)
        if pixels > per_image:
            raise RequestError(
                f"{where}: image too large: {pixels:,} pixels, above the {per_image:,}-pixel limit"
                " (decompression bomb?)"
            )
        total += pixels
    if total > max_pixels:
        raise PayloadTooLarge(
            f"request too large: {len(images)} image(s) of {total:,} pixels in all, "
            f"at most {max_pixels:,} per request"
        )


def parse_request(
    body: bytes | str | None,
    content_type: str | None,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImagePayloads:
    """Check a request body's type, shape and pixel budget, and return its encoded images."""
    media_type = check_content_type(content_type)
    if not body:
        raise RequestError("empty request body")
    if media_type == JSON_TYPE:
        images = _parse_json(body, max_batch)
    elif isinstance(body, str):  # the toolkit decodes only UTF-8 types, but be safe
        raise RequestError(f"{media_type} body must be binary image bytes")
    else:
        images = (bytes(body),)
    check_pixel_budget(images, max_pixels)
    return ImagePayloads(images)
