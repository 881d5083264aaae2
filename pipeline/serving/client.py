"""``dogpipe predict``: send one image to an endpoint and print its top-k breeds.

A local endpoint is reached over HTTP at the URL its record holds; a SageMaker endpoint through
``sagemaker-runtime invoke_endpoint``. Both return the same JSON reply, printed by one formatter.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from pipeline.errors import DogpipeError
from pipeline.text import first_line

JSON_TYPE = "application/json"
REQUEST_TIMEOUT_S = 60.0
# InvokeEndpoint's payload limit (6 MB) and dogpipe serve's default: nothing larger can be answered, so
# a bigger file (or an endless one, /dev/zero) is refused after reading one byte more than this.
MAX_IMAGE_BYTES = 6 * 1024 * 1024


class PredictError(DogpipeError):
    """The image could not be sent or the endpoint refused it; the message is the endpoint's reason."""


def image_content_type(data: bytes) -> str:
    """``image/jpeg`` or ``image/png`` from the magic bytes, else ``application/x-image`` (the endpoint
    decides whether it can read it and says why not)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return "application/x-image"


def read_image(path: Path, limit: int = MAX_IMAGE_BYTES) -> tuple[bytes, str]:
    """The image's bytes and content type, read up to ``limit`` bytes (an endpoint takes no more)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise PredictError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > limit:
        raise PredictError(f"{path} is larger than {limit:,} bytes, the most an endpoint accepts")
    if not data:
        raise PredictError(f"{path} is empty")
    return data, image_content_type(data)


def _reason(text: str) -> str:
    """An error body as one short line: the JSON ``error``, an HTML page's title, else its first line."""
    document = None
    for candidate in (text, text[text.find("{") : text.rfind("}") + 1]):  # SageMaker wraps the body
        try:
            document = json.loads(candidate)
            break
        except json.JSONDecodeError:
            continue
    if isinstance(document, dict) and document.get("error"):
        return first_line(str(document["error"])) or ""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    plain = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    return " ".join((first_line(html.unescape(plain)) or "no reason given").split())[:200]


def failure(where: str, status: int, text: str) -> PredictError:
    """A refused request, blaming the right party: a 4xx is the image's fault, a 5xx the endpoint's."""
    if 400 <= status < 500:
        return PredictError(f"{where} refused the image ({status}): {_reason(text)}")
    return PredictError(f"{where} failed ({status}, a server error, not the image): {_reason(text)}")


def _reply(status: int, text: str, where: str) -> dict[str, Any]:
    if status >= 400:
        raise failure(where, status, text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if not isinstance(document, dict) or "predictions" not in document:
        raise PredictError(f"{where} sent an unexpected reply: {_reason(text)}")
    return document


def invoke_http(
    url: str, data: bytes, content_type: str, timeout: float = REQUEST_TIMEOUT_S
) -> dict[str, Any]:
    """POST to a local endpoint's ``/invocations``."""
    import requests

    target = url.rstrip("/") + "/invocations"
    try:
        response = requests.post(
            target, data=data, headers={"Content-Type": content_type, "Accept": JSON_TYPE}, timeout=timeout
        )
    except requests.RequestException as error:
        raise PredictError(f"cannot reach the endpoint at {url}: {error}") from None
    return _reply(response.status_code, response.text, target)


def invoke_sagemaker(runtime: Any, endpoint: str, data: bytes, content_type: str) -> dict[str, Any]:
    """``InvokeEndpoint`` on a ``sagemaker-runtime`` client; the model's 4xx arrives as a ModelError
    whose message is the endpoint's JSON error."""
    from botocore.exceptions import ClientError

    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType=content_type, Accept=JSON_TYPE, Body=data
        )
    except ClientError as error:
        details = error.response.get("Error", {})
        if details.get("Code") != "ModelError":  # no such endpoint, throttling, ...: SageMaker's words
            raise PredictError(
                f"endpoint {endpoint}: {details.get('Code')}: {details.get('Message')}"
            ) from None
        message = str(error.response.get("OriginalMessage") or details.get("Message") or error)
        quoted = re.search(r"\berror \((\d{3})\)", str(details.get("Message")))  # "client error (400)"
        status = int(error.response.get("OriginalStatusCode") or (quoted.group(1) if quoted else 500))
        raise failure(f"endpoint {endpoint}", status, message) from None
    body = response["Body"].read()
    return _reply(200, body.decode("utf-8", errors="replace"), f"endpoint {endpoint}")


def format_reply(reply: dict[str, Any]) -> str:
    """The top-k table, one block per image, then the model version and latency."""
    lines: list[str] = []
    for index, prediction in enumerate(reply.get("predictions", [])):
        if len(reply["predictions"]) > 1:
            lines.append(f"image {index + 1}:")
        width = max((len(item["breed"]) for item in prediction["top_k"]), default=5)
        lines.append(f"  {'breed':<{width}}  probability")
        lines.extend(
            f"  {item['breed']:<{width}}  {item['probability']:>11.4f}" for item in prediction["top_k"]
        )
    latency = reply.get("latency_ms")
    footer = f"model {reply.get('model_version', '?')}"
    if latency is not None:
        footer += f", {float(latency):.1f} ms"
    lines.append(footer)
    return "\n".join(lines)
