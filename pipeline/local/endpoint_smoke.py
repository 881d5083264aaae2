"""The check a freshly started local server must pass before it takes an endpoint's name: one real
prediction (``/ping`` alone does not show that the model can answer)."""

from __future__ import annotations

import json
import math

from pipeline.local.endpoint_records import EndpointError


def smoke_prediction(url: str) -> None:
    """One prediction on a generated image: the server must answer with a top-k for it.

    A server can answer ``/ping`` and still be unable to predict (wrong weights, a broken model), which
    is what a health check before switching traffic is for.
    """
    import io

    from PIL import Image

    from pipeline.serving.client import PredictError, invoke_http

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(buffer, format="JPEG")
    try:
        reply = invoke_http(url, buffer.getvalue(), "image/jpeg", timeout=60)
    except PredictError as error:
        raise EndpointError(f"smoke prediction failed: {error}") from None
    predictions = reply.get("predictions") or []
    top_k = predictions[0].get("top_k") if predictions else None
    if not top_k:
        raise EndpointError(f"smoke prediction failed: no top-k in the reply {json.dumps(reply)[:300]}")
    probabilities = [item.get("probability") for item in top_k]
    if not all(isinstance(p, (int, float)) and math.isfinite(p) and 0 <= p <= 1 for p in probabilities):
        raise EndpointError(f"smoke prediction failed: probabilities {probabilities} are not in [0, 1]")
