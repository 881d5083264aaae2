"""A ``model.tar.gz`` summarised for the report: architecture, classes, parameters per layer, size."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any


class ArchiveError(ValueError):
    """The archive lacks what a model archive holds; the message says what."""


def _read_archive(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model_info.json`` (empty when absent) and the state dict of ``model.pth``."""
    import torch

    with tarfile.open(path) as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers()}
        info_member = members.get("model_info.json")
        info_file = tar.extractfile(info_member) if info_member else None
        info = json.load(info_file) if info_file else {}
        weights = members.get("model.pth")
        weights_file = tar.extractfile(weights) if weights else None
        if weights_file is None:
            raise ArchiveError("model.tar.gz has no model.pth")
        state = torch.load(io.BytesIO(weights_file.read()), map_location="cpu", weights_only=True)
    return info, state.get("state_dict", state) if isinstance(state, dict) else state


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"


def summarize(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A headline row and one row per layer (parameters, shapes) of the floating-point tensors."""
    info, state = _read_archive(path)
    layers: dict[str, dict[str, Any]] = {}
    for name, tensor in state.items():
        if not hasattr(tensor, "shape") or not tensor.is_floating_point():
            continue
        layer, _, kind = name.rpartition(".")
        entry = layers.setdefault(layer, {"layer": layer, "parameters": 0, "shapes": []})
        entry["parameters"] += int(tensor.numel())
        entry["shapes"].append(f"{kind} {tuple(tensor.shape)}")
    total = sum(entry["parameters"] for entry in layers.values())
    head = {
        "architecture": info.get("architecture"),
        "classes": len(info.get("classes", [])) or None,
        "layers with parameters": len(layers),
        "parameters": f"{total:,}",
        "model.tar.gz": _size(path),
    }
    return head, [{**e, "shapes": ", ".join(e["shapes"])} for e in layers.values()]
